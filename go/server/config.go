package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/telemetry"
)

// Defaults used by DefaultConfig.
const (
	// DefaultLogName is the name of the default topic (commitlog.DefaultTopic).
	DefaultLogName              = commitlog.DefaultTopic
	DefaultMaxRecordBytes       = 1 << 20 // 1 MiB, encoded record
	DefaultMaxBatchRecords      = 10_000
	DefaultMaxRecvMsgBytes      = 4 << 20 // holds a batch of four maximal records
	DefaultMaxSendMsgBytes      = 4 << 20
	DefaultMaxConcurrentStreams = 256
	DefaultMaxConnections       = 1024
	DefaultMaxStreams           = 4096
	DefaultMaxRecordHeaders     = 64
	DefaultMaxRecordHeaderBytes = 64 << 10
	DefaultMaxMetadataTopics    = 10_000
	DefaultMaxGroupLagSeries    = 10_000
	DefaultMaxConnectionIdle    = 5 * time.Minute
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultKeepaliveMinTime     = 10 * time.Second
	DefaultKeepaliveTime        = time.Minute
	DefaultKeepaliveTimeout     = 20 * time.Second
	DefaultShutdownTimeout      = 10 * time.Second
)

// messageOverhead bounds the protobuf framing a request or response adds
// around one record (tags, lengths, an offset), so that a record of
// MaxRecordBytes always fits in a message.
const messageOverhead = 64

// Authorizer decides whether subject may perform action on object (a
// topic's name; see go/auth), or on at least one object (AuthorizeAny, for
// the check before a call's topic is decoded); a refusal wraps
// auth.ErrPermissionDenied. *auth.Authorizer implements it.
type Authorizer interface {
	Authorize(subject, object, action string) error
	AuthorizeAny(subject, action string) error
}

// Config configures a Server. Start from DefaultConfig and set TLS and
// Authorizer, which have no defaults.
type Config struct {
	// ID names this node in GetServers. Default: the host name.
	ID string
	// AdvertiseAddr is the rpc_addr GetServers reports for this node.
	// Default: the address of the listener passed to Serve.
	AdvertiseAddr string

	// TLS is the server's TLS configuration (see auth.TLSConfig.Server);
	// required: the server has no plaintext mode. Its ClientCAs decide which
	// client certificates authenticate.
	TLS *tls.Config
	// Authorizer checks each call's principal, object (the topic) and
	// action. Required.
	Authorizer Authorizer
	// Servers answers GetServers; nil lists this node alone, as leader.
	Servers commitlog.ServerLister
	// Groups, if set, coordinates the consumer groups of log.proto's
	// JoinGroup … DescribeGroup; nil answers them UNIMPLEMENTED. With
	// Metrics too, New registers the consumer lag of the partitions this
	// node leads (proglog_consumer_group_lag).
	Groups commitlog.Groups
	// Internal, if set, takes the node-to-node reports of log.v1.Internal,
	// which the server then serves to node certificates only (see
	// log.proto). nil leaves the service unregistered (UNIMPLEMENTED).
	Internal Internal
	// ACLs, if set, keeps the ACL rules CreateACLs, DeleteACLs and
	// ListACLs change and list (the metadata group's); nil answers them
	// UNIMPLEMENTED. The Authorizer is what enforces them.
	ACLs commitlog.ACLs
	// ACLPolicyRules are the policy file's rules, which ListACLs lists
	// marked from_policy_file (the agent passes
	// auth.Authorizer.PolicyRules).
	ACLPolicyRules []commitlog.ACLRule
	// DefaultConsistency is the read consistency of a Consume that does not
	// ask for one (CONSISTENCY_UNSPECIFIED). Default (zero value)
	// commitlog.ConsistencyLinearizable.
	DefaultConsistency commitlog.Consistency

	// MaxRecordBytes caps a record's encoded size (value, key, headers and
	// timestamp with their framing). Larger records get ResourceExhausted.
	MaxRecordBytes int
	// MaxBatchRecords caps the records of one ProduceBatch.
	MaxBatchRecords int
	// MaxRecvMsgBytes and MaxSendMsgBytes cap gRPC messages; each must fit a
	// record of MaxRecordBytes plus framing.
	MaxRecvMsgBytes, MaxSendMsgBytes int
	// MaxConcurrentStreams caps concurrent calls per client connection.
	MaxConcurrentStreams uint32
	// MaxConnections caps the connections open at once on the listener
	// given to Serve; one over the cap is closed at once. 0: no cap.
	MaxConnections int
	// MaxStreams caps the calls running at once over all connections;
	// calls over the cap get ResourceExhausted. 0: no cap.
	MaxStreams int
	// MaxRecordHeaders caps the headers of one record, and
	// MaxRecordHeaderBytes the sum of their keys' and values' lengths;
	// both are checked on the wire, before the request is decoded, and a
	// record over either gets InvalidArgument.
	MaxRecordHeaders, MaxRecordHeaderBytes int
	// MaxMetadataTopics caps the topic names of one GetMetadata, counted
	// on the wire before the request is decoded; more get InvalidArgument.
	MaxMetadataTopics int
	// MaxGroupLagSeries caps the proglog_consumer_group_lag series of one
	// scrape; those past it are counted in
	// proglog_consumer_group_lag_dropped_series_total instead.
	MaxGroupLagSeries int
	// MaxConnectionIdle closes a connection that had no call for that long
	// (with a GOAWAY, so clients reconnect cleanly). 0: never.
	MaxConnectionIdle time.Duration
	// MaxConnectionAge closes every connection after that long, and
	// MaxConnectionAgeGrace bounds how long its running calls (and
	// ConsumeStreams) may go on after that. 0: no maximum age.
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// HandshakeTimeout bounds connection setup, TLS handshake included.
	HandshakeTimeout time.Duration
	// KeepaliveMinTime is the shortest ping interval clients may use;
	// clients pinging more often are disconnected (GOAWAY too_many_pings).
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how long a connection may be quiet before the server
	// pings it, and KeepaliveTimeout how long it waits for the answer
	// before closing it — this is how half-open connections, and the
	// ConsumeStreams on them, are found and released.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// ShutdownTimeout bounds the graceful part of Shutdown when its context
	// has no earlier deadline.
	ShutdownTimeout time.Duration

	// Logger receives RPC logs and failures. Default: discard.
	Logger *zap.Logger
	// Metrics, if set, counts RPCs and appends.
	Metrics *telemetry.Metrics
	// TracerProvider, if set, traces every RPC (otelgrpc).
	TracerProvider trace.TracerProvider
}

// DefaultConfig returns the defaults above, ID set to the host name, no TLS
// and no Authorizer.
func DefaultConfig() Config {
	id, err := os.Hostname()
	if err != nil || id == "" {
		id = "proglog"
	}
	return Config{
		ID:                   id,
		MaxRecordBytes:       DefaultMaxRecordBytes,
		MaxBatchRecords:      DefaultMaxBatchRecords,
		MaxRecvMsgBytes:      DefaultMaxRecvMsgBytes,
		MaxSendMsgBytes:      DefaultMaxSendMsgBytes,
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		MaxConnections:       DefaultMaxConnections,
		MaxStreams:           DefaultMaxStreams,
		MaxRecordHeaders:     DefaultMaxRecordHeaders,
		MaxRecordHeaderBytes: DefaultMaxRecordHeaderBytes,
		MaxMetadataTopics:    DefaultMaxMetadataTopics,
		MaxGroupLagSeries:    DefaultMaxGroupLagSeries,
		MaxConnectionIdle:    DefaultMaxConnectionIdle,
		HandshakeTimeout:     DefaultHandshakeTimeout,
		KeepaliveMinTime:     DefaultKeepaliveMinTime,
		KeepaliveTime:        DefaultKeepaliveTime,
		KeepaliveTimeout:     DefaultKeepaliveTimeout,
		ShutdownTimeout:      DefaultShutdownTimeout,
		Logger:               zap.NewNop(),
	}
}

// Validate reports every problem with c, each wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.ID == "" {
		bad("ID is empty")
	}
	if c.TLS == nil {
		bad("TLS is nil; the server has no plaintext mode")
	} else if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
		bad("TLS has no server certificate")
	}
	if !c.DefaultConsistency.Valid() {
		bad("DefaultConsistency is %v, want linearizable or follower", c.DefaultConsistency)
	}
	if c.Authorizer == nil {
		bad("Authorizer is nil; without it every call would be denied")
	}
	if c.MaxRecordBytes <= 0 {
		bad("MaxRecordBytes is %d, must be positive", c.MaxRecordBytes)
	}
	if c.MaxBatchRecords <= 0 {
		bad("MaxBatchRecords is %d, must be positive", c.MaxBatchRecords)
	}
	if c.MaxRecordBytes > 0 {
		need := c.MaxRecordBytes + messageOverhead
		if c.MaxRecvMsgBytes < need {
			bad("MaxRecvMsgBytes is %d, must be at least MaxRecordBytes+%d = %d so a maximal record can be produced", c.MaxRecvMsgBytes, messageOverhead, need)
		}
		if c.MaxSendMsgBytes < need {
			bad("MaxSendMsgBytes is %d, must be at least MaxRecordBytes+%d = %d so a maximal record can be consumed", c.MaxSendMsgBytes, messageOverhead, need)
		}
	}
	if c.MaxConcurrentStreams == 0 {
		bad("MaxConcurrentStreams is 0, must be positive")
	}
	if c.MaxConnections < 0 || c.MaxStreams < 0 {
		bad("MaxConnections (%d) and MaxStreams (%d) must be 0 (no cap) or positive", c.MaxConnections, c.MaxStreams)
	}
	if c.MaxRecordHeaders <= 0 || c.MaxRecordHeaderBytes <= 0 {
		bad("MaxRecordHeaders (%d) and MaxRecordHeaderBytes (%d) must be positive", c.MaxRecordHeaders, c.MaxRecordHeaderBytes)
	}
	if c.MaxMetadataTopics <= 0 {
		bad("MaxMetadataTopics is %d, must be positive", c.MaxMetadataTopics)
	}
	if c.MaxGroupLagSeries <= 0 {
		bad("MaxGroupLagSeries is %d, must be positive", c.MaxGroupLagSeries)
	}
	if c.MaxConnectionIdle < 0 || c.MaxConnectionAge < 0 || c.MaxConnectionAgeGrace < 0 {
		bad("MaxConnectionIdle (%v), MaxConnectionAge (%v) and MaxConnectionAgeGrace (%v) must be 0 (off) or positive", c.MaxConnectionIdle, c.MaxConnectionAge, c.MaxConnectionAgeGrace)
	}
	if c.HandshakeTimeout <= 0 {
		bad("HandshakeTimeout is %v, must be positive", c.HandshakeTimeout)
	}
	if c.KeepaliveMinTime <= 0 {
		bad("KeepaliveMinTime is %v, must be positive", c.KeepaliveMinTime)
	}
	if c.KeepaliveTime <= 0 || c.KeepaliveTimeout <= 0 {
		bad("KeepaliveTime (%v) and KeepaliveTimeout (%v) must be positive", c.KeepaliveTime, c.KeepaliveTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("ShutdownTimeout is %v, must be positive", c.ShutdownTimeout)
	}
	if c.Logger == nil {
		bad("Logger is nil; use zap.NewNop() to discard")
	}
	return errors.Join(errs...)
}
