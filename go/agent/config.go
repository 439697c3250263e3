package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/metadata/group"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/replication"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	"github.com/proglog/proglog/go/telemetry"
)

// Defaults used by DefaultConfig.
const (
	DefaultBindAddr     = "127.0.0.1:8400"
	DefaultSerfBindAddr = "127.0.0.1:8402"
)

// RaftConfig holds the Raft timings and snapshot policy; see
// replication.Config for each field. Zero fields mean replication's
// defaults.
type RaftConfig struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	// SnapshotThresholdBytes and TrailingBytes bound the Raft log by
	// bytes (replication.Config).
	SnapshotThresholdBytes uint64
	TrailingBytes          uint64
}

// Config configures an Agent. Start from DefaultConfig and set DataDir,
// GossipKey and TLS.
type Config struct {
	// DataDir holds the node's state: raft/ (Raft log, term and vote,
	// snapshots) and data/ (the records). Required.
	DataDir string
	// NodeName identifies the node: its Raft server ID, Serf member name,
	// id in GetServers, and the name its certificate must carry (see TLS).
	// Unique in the cluster and stable across restarts; letters, digits,
	// '.', '_' and '-' (go/auth/nodeid). Default: the host name.
	NodeName string

	// BindAddr is the host:port of the node's one TCP port, which serves
	// the gRPC API and Raft (go/mux). Port 0 picks a free port. Default
	// 127.0.0.1:8400.
	BindAddr string
	// Listener, if set instead of BindAddr (which must then be empty), is
	// that port already bound: for embedders and tests that must keep a
	// port across restarts. The agent owns it from New on and closes it on
	// Shutdown, or when New fails.
	Listener net.Listener
	// AdvertiseAddr is the host:port the others reach that port at: Raft
	// peers dial it, GetServers lists it, NOT_LEADER errors point clients
	// to it. Default: the bound address; required when BindAddr is a
	// wildcard (0.0.0.0, [::]). The TLS certificate must be valid for its
	// host.
	AdvertiseAddr string

	// SerfBindAddr is the host:port of gossip (TCP and UDP). Port 0 picks a
	// free port. Default 127.0.0.1:8402.
	SerfBindAddr string
	// SerfAdvertiseAddr is the gossip address the others reach, if not
	// SerfBindAddr. Optional.
	SerfAdvertiseAddr string
	// StartJoinAddrs are gossip addresses of cluster members to join
	// through (this node's own is skipped). Empty for a first node.
	StartJoinAddrs []string
	// GossipKey is the base64 encoding of the 16, 24 or 32-byte key that
	// encrypts and authenticates gossip; the same on every node. Required.
	// See LoadOrCreateGossipKey for development.
	GossipKey string
	// GossipProfile chooses gossip timings: discovery.ProfileLAN (default)
	// or discovery.ProfileLocal for clusters on one host.
	GossipProfile discovery.Profile

	// Bootstrap makes a node without Raft state start a new cluster of
	// itself. Set it on one node of a new cluster only: two bootstrapped
	// nodes are two clusters. Ignored once the node has Raft state.
	Bootstrap bool
	// Voter makes the node a Raft voter (default); a non-voter replicates
	// and serves reads but takes no part in elections or quorums.
	Voter bool
	// ControllerVoters is how many nodes vote in the metadata group: the
	// first ones to join that may vote (Voter); the others hold the
	// metadata as non-voters (group.Config.ControllerVoters). The leader's
	// value applies. Default group.DefaultControllerVoters (3).
	ControllerVoters int
	// ReplicaReplacementDelay is how long a node is leaving before the
	// metadata leader moves its partition replicas to other nodes, so that
	// a restart moves no data (group.Config.ReplacementDelay). The
	// leader's value applies. Default group.DefaultReplacementDelay (10m).
	ReplicaReplacementDelay time.Duration
	// PreferredLeaderDelay is how long a partition's preferred replica
	// (the first of its replicas) must have been a reachable voter before
	// the node leading the partition in its place hands leadership back
	// to it, so that a restarted node is not handed leadership at once
	// (broker.Config.PreferredLeaderDelay); 0 turns this balancing off.
	// Default broker.DefaultPreferredLeaderDelay (10s).
	PreferredLeaderDelay time.Duration
	// DefaultReplicationFactor is the replication factor the default topic
	// is created with by the bootstrap node (on the nodes there are, then
	// topped up as nodes join; group.Config.DefaultTopicReplicationFactor).
	// Default group.DefaultDefaultTopicReplicationFactor (3).
	DefaultReplicationFactor int
	// controllerInterval, if set, replaces group.DefaultControllerInterval
	// (tests).
	controllerInterval time.Duration

	// TLS names the node's certificate and key and the CA file. The
	// certificate serves gRPC and authenticates the node to Raft peers, so
	// it must be this node's own (go/auth/nodeid): a URI SAN naming
	// NodeName, the serverAuth and clientAuth usages, and a SAN for
	// AdvertiseAddr's host (New checks it); the CA verifies client
	// certificates and peer nodes. Required: the node has no plaintext mode.
	TLS auth.TLSConfig
	// ACLModelFile and ACLPolicyFile are casbin files; empty means the
	// built-in ones (root may do everything, nobody else anything).
	ACLModelFile, ACLPolicyFile string

	// LogName is the name of the log, the ACL object. It must be "log"
	// (commitlog.DefaultTopic, the default): ACL objects are topic names,
	// and the node serves the default topic.
	LogName string
	// MaxRecordBytes caps a record's encoded size; gRPC message limits and
	// the replicated log's record and entry limits follow from it. It must
	// be the same on every node. Default 1 MiB.
	MaxRecordBytes int
	// ReadConsistency is the consistency of a Consume that does not ask for
	// one. Default commitlog.ConsistencyLinearizable.
	ReadConsistency commitlog.Consistency
	// ShutdownTimeout bounds how long Shutdown lets running calls finish.
	// Default server.DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxConnections caps the client connections open at once on the API
	// port, and MaxStreams the calls running at once over all of them (see
	// server.Config); 0 means no cap. Defaults server.DefaultMaxConnections
	// and server.DefaultMaxStreams.
	MaxConnections, MaxStreams int

	// Raft tunes Raft; zero fields keep replication's defaults.
	Raft RaftConfig

	// Retention bounds the records the cluster keeps: the leader raises the
	// lowest offset past the oldest whole Raft log segments while the log
	// holds more than Retention.MaxBytes or their last entry is older than
	// Retention.MaxAge, and every replica drops the same prefix (reads
	// below it fail with OUT_OF_RANGE). Zero values keep everything (the
	// default). Use the same values on every node: the leader's apply.
	Retention seglog.Retention
	// SegmentBytes is the size of the segments of the Raft log, which holds
	// the records (the unit retention removes; at least twice its largest
	// entry). 0 means go/seglog's default, 64 MiB; otherwise at least twice
	// MaxRecordBytes.
	SegmentBytes uint64

	// Sync chooses when the node fsyncs what it stores:
	//
	//   - seglog.SyncAlways (the default): the Raft log is fsynced before the
	//     node acknowledges an entry (one fsync per batch of entries), so an
	//     acknowledged append survives losing any minority of machines (the
	//     Raft log holds the records: there is no other log);
	//   - seglog.SyncInterval: the Raft log is fsynced every SyncInterval by
	//     a background goroutine, and at every snapshot;
	//   - seglog.SyncNever: it is not fsynced on the append path (the kernel
	//     writes the pages back; sealed segments are fsynced, and the log
	//     at every snapshot).
	//
	// The relaxed policies lose nothing when the process crashes, but a
	// crash or power loss of the machine may lose the last appends it
	// acknowledged (see replication.Config.RaftLog). Use the same policy on
	// every node.
	Sync seglog.SyncPolicy
	// SyncInterval is the fsync period under seglog.SyncInterval. Default 1s.
	SyncInterval time.Duration
	// MinFreeBytes is the free-space watermark of the file system holding
	// DataDir: below it the node refuses produces (RESOURCE_EXHAUSTED,
	// reason LOW_DISK_SPACE) and keeps serving reads and its part in Raft;
	// below half of it, it also refuses Raft entries (see
	// replication.Config.MinFreeBytes). Both resume by themselves once
	// space is freed. 0 disables refusing. Default
	// diskspace.DefaultMinFreeBytes (256 MiB).
	MinFreeBytes uint64
	// Producers bounds the idempotent producers' state every replica keeps
	// (replication.Config.Producers): idle longer than Producers.Expiry
	// (default 24h) a producer is forgotten, and past Producers.MaxProducers
	// (default 10000) the longest idle is evicted if idle longer than
	// Producers.EvictAfter (default 5m), else a new producer is refused.
	// The leader's values travel in the log: every node applies them.
	Producers producer.Config

	// MetricsAddr is the host:port of the Prometheus /metrics endpoint;
	// empty serves no endpoint (the metrics are still collected).
	MetricsAddr string
	// HealthAddr is the host:port of a plaintext gRPC port for probes that
	// cannot present a client certificate (Kubernetes' grpc probe); empty
	// (the default) serves none. It serves only grpc.health.v1.Health —
	// the main server's own health service, the same statuses: SERVING
	// once the node knows a leader, NOT_SERVING from Shutdown on, and
	// server.LivenessService SERVING until Shutdown. No log.v1.Log (calls
	// are Unimplemented), no reflection, no Raft: it tells a caller
	// without credentials nothing but whether the node is up and ready.
	// Port 0 picks a free port (see Agent.HealthAddr).
	HealthAddr string
	// HealthListener, if set instead of HealthAddr (which must then be
	// empty), is the health port already bound; owned like Listener.
	HealthListener net.Listener
	// Tracing says where spans go. Default: nowhere.
	Tracing telemetry.TraceConfig
	// Logger receives the node's logs, Raft's, Serf's and the mux's
	// included. Default: discard.
	Logger *zap.Logger
}

// DefaultConfig returns a Config with the defaults above: the host name
// as NodeName, loopback addresses, a voter that does not bootstrap.
func DefaultConfig() Config {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "proglog"
	}
	return Config{
		NodeName:      name,
		BindAddr:      DefaultBindAddr,
		SerfBindAddr:  DefaultSerfBindAddr,
		GossipProfile: discovery.ProfileLAN,
		Voter:         true,
		// The metadata group's.
		ControllerVoters:         group.DefaultControllerVoters,
		ReplicaReplacementDelay:  group.DefaultReplacementDelay,
		PreferredLeaderDelay:     broker.DefaultPreferredLeaderDelay,
		DefaultReplicationFactor: group.DefaultDefaultTopicReplicationFactor,
		LogName:                  server.DefaultLogName,
		MaxRecordBytes:           server.DefaultMaxRecordBytes,
		ReadConsistency:          commitlog.ConsistencyLinearizable,
		ShutdownTimeout:          server.DefaultShutdownTimeout,
		MaxConnections:           server.DefaultMaxConnections,
		MaxStreams:               server.DefaultMaxStreams,
		MinFreeBytes:             diskspace.DefaultMinFreeBytes,
		Producers:                producer.DefaultConfig(),
		Tracing:                  telemetry.DefaultTraceConfig(),
		Logger:                   zap.NewNop(),
	}
}

// Validate reports every problem with c, each wrapping ErrInvalidConfig.
// The packages the agent wires check their own settings again in New.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.DataDir == "" {
		bad("DataDir is empty")
	}
	if c.NodeName == "" {
		bad("NodeName is empty")
	} else if err := nodeid.ValidName(c.NodeName); err != nil {
		bad("NodeName: %v (it is the node's identity in its certificate)", err)
	}
	checkAddr := func(field, addr string, required bool) {
		if addr == "" {
			if required {
				bad("%s is empty", field)
			}
			return
		}
		if err := hostPort(addr); err != nil {
			bad("%s %q: %v", field, addr, err)
		}
	}
	if c.Listener != nil && c.BindAddr != "" {
		bad("BindAddr %q and Listener are exclusive: clear BindAddr to serve on Listener", c.BindAddr)
	}
	checkAddr("BindAddr", c.BindAddr, c.Listener == nil)
	checkAddr("AdvertiseAddr", c.AdvertiseAddr, false)
	checkAddr("SerfBindAddr", c.SerfBindAddr, true)
	checkAddr("SerfAdvertiseAddr", c.SerfAdvertiseAddr, false)
	checkAddr("MetricsAddr", c.MetricsAddr, false)
	if c.HealthListener != nil && c.HealthAddr != "" {
		bad("HealthAddr %q and HealthListener are exclusive: clear HealthAddr to serve on HealthListener", c.HealthAddr)
	}
	checkAddr("HealthAddr", c.HealthAddr, false)
	for _, a := range c.StartJoinAddrs {
		checkAddr("StartJoinAddrs entry", a, true)
	}
	if _, err := DecodeGossipKey(c.GossipKey); err != nil {
		bad("GossipKey: %v", err)
	}
	if c.GossipProfile != discovery.ProfileLAN && c.GossipProfile != discovery.ProfileLocal {
		bad("unknown GossipProfile %d", c.GossipProfile)
	}
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.CAFile == "" {
		bad("TLS needs CertFile, KeyFile and CAFile: the node serves mutual TLS only and its CA verifies clients and peers")
	}
	if c.LogName != commitlog.DefaultTopic {
		bad("LogName is %q, must be %q: ACL objects are topic names now, and this node serves the default topic %q", c.LogName, commitlog.DefaultTopic, commitlog.DefaultTopic)
	}
	if c.ControllerVoters < 1 {
		bad("ControllerVoters is %d, must be at least 1", c.ControllerVoters)
	}
	if c.ReplicaReplacementDelay < 0 {
		bad("ReplicaReplacementDelay is %v, must not be negative", c.ReplicaReplacementDelay)
	}
	if c.PreferredLeaderDelay < 0 {
		bad("PreferredLeaderDelay is %v, must not be negative", c.PreferredLeaderDelay)
	}
	if c.DefaultReplicationFactor < 1 || c.DefaultReplicationFactor > metadata.MaxReplicationFactor {
		bad("DefaultReplicationFactor is %d, must be 1 to %d", c.DefaultReplicationFactor, metadata.MaxReplicationFactor)
	}
	if c.MaxRecordBytes <= 0 {
		bad("MaxRecordBytes is %d, must be positive", c.MaxRecordBytes)
	}
	if c.MaxConnections < 0 || c.MaxStreams < 0 {
		bad("MaxConnections (%d) and MaxStreams (%d) must be 0 (no cap) or positive", c.MaxConnections, c.MaxStreams)
	}
	if !c.ReadConsistency.Valid() {
		bad("unknown ReadConsistency %v", c.ReadConsistency)
	}
	switch c.Sync {
	case seglog.SyncAlways, seglog.SyncInterval, seglog.SyncNever:
	default:
		bad("unknown Sync policy %v", c.Sync)
	}
	if c.SyncInterval < 0 {
		bad("SyncInterval is %v, must not be negative", c.SyncInterval)
	}
	if c.Retention.MaxAge < 0 {
		bad("Retention.MaxAge is %v, must not be negative", c.Retention.MaxAge)
	}
	if min := 2 * c.sizes().dataRecord; c.SegmentBytes != 0 && c.MaxRecordBytes > 0 && c.SegmentBytes < min {
		bad("SegmentBytes is %d, must be at least %d (twice MaxRecordBytes %d) or 0 for the default", c.SegmentBytes, min, c.MaxRecordBytes)
	}
	if c.ShutdownTimeout <= 0 {
		bad("ShutdownTimeout is %v, must be positive", c.ShutdownTimeout)
	}
	if err := c.Producers.Validate(); err != nil {
		bad("Producers: %v", err)
	}
	if err := c.Tracing.Validate(); err != nil {
		bad("Tracing: %v", err)
	}
	if c.Logger == nil {
		bad("Logger is nil; use zap.NewNop() to discard")
	}
	return errors.Join(errs...)
}

// ParseSyncPolicy parses a Config.Sync policy by its flag name: "always",
// "interval" or "never".
func ParseSyncPolicy(s string) (seglog.SyncPolicy, error) {
	switch s {
	case "always":
		return seglog.SyncAlways, nil
	case "interval":
		return seglog.SyncInterval, nil
	case "never":
		return seglog.SyncNever, nil
	}
	return 0, fmt.Errorf("%w: unknown sync policy %q: want always, interval or never", ErrInvalidConfig, s)
}

// hostPort checks that addr is host:port with a numeric port.
func hostPort(addr string) error {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}

// sizes are the message and storage limits that follow from
// MaxRecordBytes.
type sizes struct {
	recvMsg, dataRecord, raftEntry uint64
}

func (c Config) sizes() sizes {
	rec := uint64(c.MaxRecordBytes)
	// Room for a maximal record plus framing, and at least the default.
	msg := max(uint64(server.DefaultMaxRecvMsgBytes), rec+1<<16)
	return sizes{
		recvMsg:    msg,
		dataRecord: rec,
		// One Raft entry holds one append: a ProduceBatch (one message) or
		// a ProduceStream group, which queues up to about two messages'
		// worth of records; the extra MiB covers per-record framing.
		raftEntry: max(replication.DefaultRaftMaxRecordBytes, 2*msg+1<<20),
	}
}
