package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Consistency chooses which servers Consume and Records read from.
type Consistency int

const (
	// ReadFollower (the default) spreads reads round-robin over the
	// followers, and reads from the leader when there are none. A follower
	// may lag: Consume retries at the leader when a follower says the offset
	// is past its end, so a record whose produce was acknowledged is always
	// found; a Records stream on a follower simply waits for it.
	ReadFollower Consistency = iota
	// ReadLinearizable sends every Consume to the leader, which confirms its
	// leadership with a quorum before answering: a record whose produce was
	// acknowledged before the Consume started is always returned. Records
	// streams still go to followers: servers stream committed records from
	// their own copy whatever the consistency.
	ReadLinearizable
)

func (c Consistency) proto() logv1.Consistency {
	if c == ReadLinearizable {
		return logv1.Consistency_CONSISTENCY_LINEARIZABLE
	}
	return logv1.Consistency_CONSISTENCY_FOLLOWER
}

func (c Consistency) String() string {
	switch c {
	case ReadFollower:
		return "follower"
	case ReadLinearizable:
		return "linearizable"
	default:
		return fmt.Sprintf("Consistency(%d)", int(c))
	}
}

// Defaults of the options below.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultCallTimeout = 30 * time.Second
	// DefaultRetries retries until the call's context (or WithCallTimeout)
	// ends.
	DefaultRetries           = -1
	DefaultBackoffMin        = 50 * time.Millisecond
	DefaultBackoffMax        = time.Second
	DefaultDiscoveryInterval = 10 * time.Second
	// DefaultMaxRecvMsgBytes is the largest response the client accepts;
	// it holds any record a server with a 1 MiB record limit returns many
	// times over.
	DefaultMaxRecvMsgBytes = 64 << 20
	// DefaultMaxMessageBytes is the largest request the client sends: a
	// proglog server's default message limit (go/server
	// DefaultMaxRecvMsgBytes, 4 MiB).
	DefaultMaxMessageBytes = 4 << 20
	// DefaultMaxBatchRecords and DefaultMaxBatchBytes bound the batches
	// that Produce and ProduceAsync records are coalesced into.
	DefaultMaxBatchRecords = 1000
	DefaultMaxBatchBytes   = 1 << 20
	// ServerMaxBatchRecords is a proglog server's default limit on the
	// records of one ProduceBatch (go/server DefaultMaxBatchRecords);
	// WithMaxBatchRecords may not exceed it.
	ServerMaxBatchRecords = 10_000
	// DefaultMaxQueuedBytes bounds the records waiting to be sent.
	DefaultMaxQueuedBytes = 32 << 20
	// DefaultMaxInFlight is how many batches may be in flight at once.
	DefaultMaxInFlight = 1
	// DefaultRejoinWait bounds how long a batch waits for the callers of
	// the batch that just completed (see WithRejoinWait).
	DefaultRejoinWait = 250 * time.Microsecond
)

// An Option configures New.
type Option func(*config)

type config struct {
	tls               *tls.Config
	dialTimeout       time.Duration
	callTimeout       time.Duration
	retries           int
	produceRetries    int // -1: same as retries
	backoffMin        time.Duration
	backoffMax        time.Duration
	consistency       Consistency
	discoveryInterval time.Duration
	metadataRefresh   time.Duration
	metadataMaxAge    time.Duration
	logger            *slog.Logger
	dialOptions       []grpc.DialOption
	batching          bool
	idempotence       bool
	linger            time.Duration
	rejoinWait        time.Duration
	maxBatchRecords   int
	maxBatchBytes     int
	maxMessageBytes   int
	maxInFlight       int
	maxQueuedBytes    int
	err               error
}

func defaultConfig() config {
	return config{
		dialTimeout:       DefaultDialTimeout,
		callTimeout:       DefaultCallTimeout,
		retries:           DefaultRetries,
		produceRetries:    -1,
		backoffMin:        DefaultBackoffMin,
		backoffMax:        DefaultBackoffMax,
		consistency:       ReadFollower,
		discoveryInterval: DefaultDiscoveryInterval,
		metadataRefresh:   DefaultMetadataRefresh,
		metadataMaxAge:    DefaultMetadataMaxAge,
		logger:            slog.New(slog.DiscardHandler),
		batching:          true,
		idempotence:       true,
		rejoinWait:        DefaultRejoinWait,
		maxBatchRecords:   DefaultMaxBatchRecords,
		maxBatchBytes:     0, // DefaultMaxBatchBytes, or the message limit if lower
		maxMessageBytes:   DefaultMaxMessageBytes,
		maxInFlight:       DefaultMaxInFlight,
		maxQueuedBytes:    DefaultMaxQueuedBytes,
	}
}

// validate checks the options that depend on each other.
func (c *config) validate() error {
	if c.err != nil {
		return c.err
	}
	if c.maxBatchBytes == 0 {
		c.maxBatchBytes = min(DefaultMaxBatchBytes, c.maxMessageBytes)
	}
	if c.maxBatchBytes > c.maxMessageBytes {
		return fmt.Errorf("proglog: WithMaxBatchBytes(%d): must be at most the message limit, %d (WithMaxMessageBytes)", c.maxBatchBytes, c.maxMessageBytes)
	}
	return nil
}

func (c *config) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// WithTLS sets the TLS configuration: RootCAs verify the servers,
// Certificates (or GetClientCertificate) authenticate the client. It is
// cloned. Without WithTLS or WithTLSFiles the client verifies servers
// against the system roots and presents no certificate.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg == nil {
			c.fail(errors.New("proglog: WithTLS(nil)"))
			return
		}
		c.tls = cfg.Clone()
	}
}

// WithTLSFiles loads the TLS configuration from PEM files: caFile verifies
// the servers (empty: the system roots), certFile and keyFile are the
// client's certificate and key (both empty: none). Errors are returned by
// New.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(c *config) {
		cfg, err := loadTLS(caFile, certFile, keyFile)
		if err != nil {
			c.fail(err)
			return
		}
		c.tls = cfg
	}
}

func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("proglog: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("proglog: no PEM certificates in CA file %s", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("proglog: load client key pair %s, %s: %w", certFile, keyFile, err)
		}
		if now := time.Now(); pair.Leaf != nil && (now.Before(pair.Leaf.NotBefore) || now.After(pair.Leaf.NotAfter)) {
			return nil, fmt.Errorf("proglog: client certificate %s is valid from %v to %v, not now", certFile, pair.Leaf.NotBefore, pair.Leaf.NotAfter)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// WithDialTimeout bounds how long New waits for a first answer from the
// cluster (default 10s). New fails after it, with the last error seen.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail(fmt.Errorf("proglog: WithDialTimeout(%v): must be positive", d))
			return
		}
		c.dialTimeout = d
	}
}

// WithCallTimeout bounds each Produce, ProduceBatch, Consume and Servers
// call, retries included, when its context has no earlier deadline
// (default 30s; 0 means no bound). Records streams are not bounded.
func WithCallTimeout(d time.Duration) Option {
	return nonNegative("WithCallTimeout", d, func(c *config) *time.Duration { return &c.callTimeout })
}

// WithRetries sets how many times a failed call is retried when retrying
// can help — the server is not the leader, unreachable, shutting down, or no
// leader is elected yet — with exponential backoff in between (default
// negative: retry until the call's context or WithCallTimeout ends; 0
// disables retries). For
// Records it bounds consecutive reconnections without a record in between.
// Produce calls are further limited by WithProduceRetries.
func WithRetries(n int) Option {
	return func(c *config) { c.retries = n }
}

// WithProduceRetries limits the retries of Produce and ProduceBatch after a
// failure that leaves it unknown whether the server wrote the records: the
// request reached a server, and the connection broke or the server answered
// UNAVAILABLE (its leadership changed or it timed out waiting for the
// cluster, possibly after committing). With idempotence (the default, see
// WithIdempotence) such a retry writes nothing twice; without it, it may
// write the records twice. By default these are retried like any other
// failure (exactly-once with idempotence, at-least-once without);
// WithProduceRetries(0) turns them into errors (at-most-once). Retries that cannot duplicate — a NOT_LEADER refusal, or
// a request that was never sent — are always made, within WithRetries.
func WithProduceRetries(n int) Option {
	return func(c *config) {
		if n < 0 {
			n = -1
		}
		c.produceRetries = n
	}
}

// WithBackoff sets the delay before the first retry (default 50ms), doubled
// for each further retry up to max (default 1s). Each delay is jittered
// between half and all of it.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) {
		if initial <= 0 || max < initial {
			c.fail(fmt.Errorf("proglog: WithBackoff(%v, %v): need 0 < initial <= max", initial, max))
			return
		}
		c.backoffMin, c.backoffMax = initial, max
	}
}

// WithConsistency chooses where reads go (default ReadFollower).
func WithConsistency(cons Consistency) Option {
	return func(c *config) {
		if cons != ReadFollower && cons != ReadLinearizable {
			c.fail(fmt.Errorf("proglog: unknown consistency %d", int(cons)))
			return
		}
		c.consistency = cons
	}
}

// WithMetadataRefresh bounds how often the client asks the cluster for a
// topic's metadata (GetMetadata): after a call found it stale (NOT_LEADER,
// UNAVAILABLE, an unknown topic or partition) it is asked again, but at
// most once per d per topic (default DefaultMetadataRefresh), so a storm
// of failing calls costs one metadata request per d.
func WithMetadataRefresh(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail(fmt.Errorf("proglog: WithMetadataRefresh(%v): must be positive", d))
			return
		}
		c.metadataRefresh = d
	}
}

// WithMetadataMaxAge sets how old a topic's metadata may get before the
// client asks for it again, on the topic's next call, even though no call
// found it stale (default DefaultMetadataMaxAge, 5 minutes, as Kafka's
// metadata.max.age.ms): so the client learns the replicas added since
// (a replacement of a failed server, a reassignment) and reads from them
// too.
func WithMetadataMaxAge(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail(fmt.Errorf("proglog: WithMetadataMaxAge(%v): must be positive", d))
			return
		}
		c.metadataMaxAge = d
	}
}

// WithDiscoveryInterval sets how often the client asks the cluster for its
// servers when nothing goes wrong (default 10s). Errors, connection
// failures and NOT_LEADER answers trigger a refresh at once.
func WithDiscoveryInterval(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail(fmt.Errorf("proglog: WithDiscoveryInterval(%v): must be positive", d))
			return
		}
		c.discoveryInterval = d
	}
}

// WithLogger sets where the client logs discovery changes and retries
// (default: nowhere). Retries log at debug level, leader changes at info.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	}
}

// WithTracerProvider traces every call of the client, discovery's
// included, with otelgrpc client spans from tp, and sends the caller's
// OpenTelemetry context (W3C traceparent/tracestate and baggage) in each
// call's metadata, so the server's spans join the caller's trace. Default:
// no spans and no propagation. A nil tp is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp == nil {
			return
		}
		c.dialOptions = append(c.dialOptions, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp),
			otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		)))
	}
}

// WithDialOptions adds gRPC dial options (interceptors, stats handlers,
// a custom dialer, ...) to the client's connections. Options that replace
// the transport credentials, the resolver or the load-balancing policy
// break discovery and routing; use WithTLS for credentials.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// WithBatching turns the coalescing of concurrent Produce calls on (the
// default) or off. Off, each Produce is its own Produce request, sent at
// once, and ProduceAsync sends its records one per request.
func WithBatching(on bool) Option {
	return func(c *config) { c.batching = on }
}

// WithIdempotence turns idempotent produces on (the default) or off. On,
// every produce request carries a producer ID (random, one per request in
// flight at once) and a sequence number, kept across all retries of the
// request, so the cluster writes a retried request at most once and
// answers it with the original offsets: with retries until the deadline
// (the default) every acknowledged record is written exactly once.
// Off, a retry after an ambiguous failure (a lost response, a leader
// change) may write the records again (see WithProduceRetries); use it
// only with servers older than idempotent producers.
func WithIdempotence(on bool) Option {
	return func(c *config) { c.idempotence = on }
}

// WithLinger makes the client wait d after a record arrives at an idle
// sender before sending it, so that more records join its batch (default
// 0: send at once; records still batch up while a request is in flight).
// Flush cuts the wait short.
func WithLinger(d time.Duration) Option {
	return nonNegative("WithLinger", d, func(c *config) *time.Duration { return &c.linger })
}

// WithRejoinWait bounds how long the next batch waits, once a batch's
// records have their outcome, for as many records as that batch had to be
// queued again (default 250 µs; 0 turns the wait off). Callers that produce
// their next record as soon as Produce returns then join one batch instead
// of splitting into two groups that take turns (one queues while the
// other's batch is in flight), so each request carries about twice the
// records; a lone caller is not delayed (its own next record ends the
// wait), and the wait ends early once enough records are queued or at
// Flush. See docs/benchmarks.md for the measured effect.
func WithRejoinWait(d time.Duration) Option {
	return nonNegative("WithRejoinWait", d, func(c *config) *time.Duration { return &c.rejoinWait })
}

// WithMaxBatchRecords bounds the records of one batch that Produce and
// ProduceAsync records are coalesced into (default 1000, at most
// ServerMaxBatchRecords; lower it for servers configured with a lower
// --max-batch-records).
func WithMaxBatchRecords(n int) Option {
	return func(c *config) {
		if n < 1 || n > ServerMaxBatchRecords {
			c.fail(fmt.Errorf("proglog: WithMaxBatchRecords(%d): must be between 1 and %d", n, ServerMaxBatchRecords))
			return
		}
		c.maxBatchRecords = n
	}
}

// WithMaxBatchBytes bounds the encoded bytes of one such batch (default
// 1 MiB, or the message limit if lower); a record larger than it is sent
// alone. It may not exceed the
// message limit (WithMaxMessageBytes).
func WithMaxBatchBytes(n int) Option {
	return positive("WithMaxBatchBytes", n, func(c *config) *int { return &c.maxBatchBytes })
}

// WithMaxMessageBytes sets the largest request the client sends (default
// 4 MiB, a proglog server's default limit): set it to the servers'
// message limit if they were configured otherwise. A Produce or
// ProduceBatch request over it fails before sending with a
// *RecordTooLargeError giving the sizes.
func WithMaxMessageBytes(n int) Option {
	return positive("WithMaxMessageBytes", n, func(c *config) *int { return &c.maxMessageBytes })
}

// WithMaxInFlight bounds the batches of Produce and ProduceAsync records in
// flight at once (default 1); records queue up while that many are. With
// one, the ProduceAsync records of one goroutine are written in call
// order; with more, records of different batches may be written in another
// order than they were queued in (and batches are smaller: measured, no
// faster on one node with fsync before ack; see docs/benchmarks.md).
func WithMaxInFlight(n int) Option {
	return positive("WithMaxInFlight", n, func(c *config) *int { return &c.maxInFlight })
}

// WithMaxQueuedBytes bounds the encoded bytes of the records queued and
// not yet sent, for all partitions together (default 32 MiB): ProduceAsync
// and Produce wait for room beyond it. A record larger than the bound is
// still queued alone.
func WithMaxQueuedBytes(n int) Option {
	return positive("WithMaxQueuedBytes", n, func(c *config) *int { return &c.maxQueuedBytes })
}

// positive is an option setting the field field(c) to n, which must be
// positive (name is the option's, for the error).
func positive(name string, n int, field func(*config) *int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail(fmt.Errorf("proglog: %s(%d): must be positive", name, n))
			return
		}
		*field(c) = n
	}
}

// nonNegative is the Option named name that sets the duration field(c) to
// d, or makes New fail if d is negative.
func nonNegative(name string, d time.Duration, field func(*config) *time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail(fmt.Errorf("proglog: %s(%v): must not be negative", name, d))
			return
		}
		*field(c) = d
	}
}
