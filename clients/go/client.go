package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Client is a connection to a proglog cluster. It is safe for concurrent
// use; create one per cluster and share it.
type Client struct {
	cfg    config
	target string
	conn   *grpc.ClientConn
	log    logv1.LogClient
	rb     *resolverBuilder
	meta   *metadataCache
	// def is partition 0 of DefaultTopic, where the Client's own produce
	// and read methods go.
	def *Partition

	// mu guards the per-partition state, created on first use: the
	// pools of idle idempotent producers (idempotence.go) and each
	// topic's sticky partition for keyless records (topic.go); and the
	// making of batchers.
	mu        sync.Mutex
	producers map[partKey]*producers
	sticky    map[string]uint32
	// batchers holds a *batcher by partKey: read without c.mu on every
	// produce, stored under it (batcherFor).
	batchers sync.Map
	// queued bounds the bytes queued in all the batchers.
	queued *queueBound

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New connects to the cluster that target's servers belong to. target is
// "host:port", a comma-separated list of them, or the same with the
// "proglog://" prefix; one reachable server suffices, the others are
// discovered. New returns once a server has answered, or fails after the
// dial timeout (WithDialTimeout) or when ctx ends, with the last error seen,
// matching ErrUnavailable. A TLS mistake fails New at once, with an error
// matching ErrTLS that names it: a server certificate the CA does not
// verify (the wrong CA file), or a client certificate the servers refuse
// (none, or one signed by another CA). A client key pair that does not
// match, or a client certificate outside its validity period, fails New
// before any connection.
//
// Without TLS options the client verifies servers against the system roots
// and presents no certificate; proglog servers normally require one
// (WithTLSFiles, WithTLS).
func New(ctx context.Context, target string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	seeds, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	tlsCfg := cfg.tls
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	creds := credentials.NewTLS(tlsCfg)
	rb := newResolverBuilder(creds, cfg.dialOptions, cfg.discoveryInterval, cfg.logger)
	dialOpts := append(slices.Clone(cfg.dialOptions),
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(DefaultMaxRecvMsgBytes)),
		// Finds dead servers under idle streams; servers accept pings every 10s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	conn, err := grpc.NewClient(Scheme+":///"+strings.Join(seeds, ","), dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("proglog: %w", err)
	}
	conn.Connect()
	wctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout)
	defer cancel()
	select {
	case <-rb.resolved:
	case <-rb.failed:
		// The seeds did not answer: tell a TLS mistake from servers that
		// are down or still starting, and fail at once for the former.
		if err := diagnoseTLS(wctx, seeds, tlsCfg); err != nil {
			conn.Close()
			return nil, err
		}
	case <-wctx.Done():
	}
	if err := rb.waitResolved(wctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: no server of %s answered: %w", ErrUnavailable, target, err)
	}
	c := &Client{
		cfg: cfg, target: target, conn: conn, log: logv1.NewLogClient(conn), rb: rb,
		producers: map[partKey]*producers{},
		sticky:    map[string]uint32{},
		queued:    newQueueBound(cfg.maxQueuedBytes),
	}
	c.meta = &metadataCache{c: c, topics: map[string]*topicEntry{}}
	c.def = c.Topic(DefaultTopic).Partition(0)
	return c, nil
}

// Close closes the client's connections. Calls in progress fail with
// ErrClosed, and so do later calls and queued ProduceAsync records. Close
// returns once the client's goroutines have ended.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.conn.Close()
		for _, b := range c.allBatchers() {
			b.close()
		}
	})
	return c.closeErr
}

// Produce appends rec to partition 0 of DefaultTopic (the log of
// clusters before topics) and returns its offset, whatever its key. It is
// sent to the partition's leader and retried until its context or
// WithCallTimeout ends; the retries write the record at most once (see
// WithIdempotence). With batching on (the default), concurrent Produce
// calls are sent together in one ProduceBatch request while another is in
// flight (see ProduceAsync): a failure of the request fails every record
// of it, except a record the server refuses as too large, which fails
// alone while the others are sent again. Topic(name).Produce places
// records by key instead.
func (c *Client) Produce(ctx context.Context, rec *Record) (uint64, error) {
	return c.def.Produce(ctx, rec)
}

// ProduceValue appends a record holding value to partition 0 of
// DefaultTopic and returns its offset.
func (c *Client) ProduceValue(ctx context.Context, value []byte) (uint64, error) {
	return c.def.Produce(ctx, &Record{Value: value})
}

// ProduceBatch appends recs atomically to partition 0 of DefaultTopic, at
// consecutive offsets, and returns the first one: recs[i] gets first+i.
// Either all are written or none, once (see WithIdempotence). It is sent
// as one request, not split: a request over the message limit
// (WithMaxMessageBytes) fails before sending with a *RecordTooLargeError
// (Request true) giving its size.
func (c *Client) ProduceBatch(ctx context.Context, recs []*Record) (first uint64, err error) {
	return c.def.ProduceBatch(ctx, recs)
}

// Consume reads the record at offset of partition 0 of DefaultTopic. An
// offset outside the log fails with an *OffsetOutOfRangeError telling the
// log's bounds.
func (c *Client) Consume(ctx context.Context, offset uint64) (*Record, error) {
	return c.def.Consume(ctx, offset)
}

// Servers asks the cluster for its servers, the leader marked.
func (c *Client) Servers(ctx context.Context) ([]Server, error) {
	var servers []Server
	err := c.do(ctx, opServers, nil, func(ctx context.Context) error {
		resp, err := c.log.GetServers(ctx, &logv1.GetServersRequest{})
		if err == nil {
			servers = serversFromProto(resp.GetServers())
		}
		return err
	})
	return servers, err
}

type op int

const (
	opProduce op = iota
	opRead       // Consume
	opStream     // Records
	opServers
	opBounds // Bounds (and Records' StopAtEnd)
	opAdmin  // CreateTopic, DeleteTopic, the ACL calls: the metadata leader
)

func (c *Client) routeFor(o op) route {
	switch o {
	case opProduce, opBounds:
		return routeLeader
	case opRead:
		if c.cfg.consistency == ReadLinearizable {
			return routeLeader
		}
		return routeFollower
	case opStream:
		return routeFollower
	default:
		return routeAny
	}
}

// do runs one call with the client's routing and retries; key names the
// partition the call is for (nil: none), routed by its metadata.
func (c *Client) do(ctx context.Context, o op, key *partKey, attempt func(context.Context) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.cfg.callTimeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.cfg.callTimeout)
			defer cancel()
		}
	}
	r := retrier{c: c, op: o, key: key, route: c.routeFor(o)}
	for {
		ci := &callInfo{route: r.route, part: r.partRoute(ctx), avoid: r.avoid}
		err := attempt(withCallInfo(ctx, ci))
		if err == nil {
			return nil
		}
		if err := r.next(ctx, err, ci); err != nil {
			return err
		}
	}
}

// retrier decides, failure after failure, whether and when a call is
// retried, and where.
type retrier struct {
	c         *Client
	op        op
	key       *partKey // the partition of the call, nil for none
	route     route
	admin     string // opAdmin: the metadata leader a NOT_LEADER named
	avoid     string // opAdmin: a metadata leader that failed, not picked next
	notFound  bool   // an unknown topic or partition was retried once
	retries   int    // retries made
	ambiguous int    // produce retries that may duplicate
	toLeader  bool   // a lagging follower's OUT_OF_RANGE sent the read to the leader
}

// next returns nil after waiting when the call should be retried, or the
// error to return.
func (r *retrier) next(ctx context.Context, err error, ci *callInfo) error {
	c := r.c
	if c.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return errFromStatus(ctx, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	addr, ro, sent := ci.result()
	var hinted <-chan struct{}
	switch nl, isNL := notLeader(st); {
	case isNL:
		// Refused before anything was written: always safe to retry.
		switch {
		case r.op == opAdmin:
			r.admin = nl.LeaderAddr
			c.meta.setLeader(nl.LeaderAddr)
			if nl.LeaderAddr == "" {
				// No leader known to the server that was thought to
				// lead: ask the others next.
				r.forgetAdmin(ci, addr)
			}
			hinted = closedChan
			if nl.LeaderAddr != "" {
				// Reachable even if discovery does not list it.
				hinted = c.rb.learn(nl.LeaderAddr)
			}
		case r.key != nil && c.meta.routed(r.key.topic):
			// The partition's leader, not the cluster's: only this
			// partition's route changes; discovery learns a new server
			// (and routes to it even when GetServers is refused).
			c.meta.hint(*r.key, nl.LeaderAddr)
			c.rb.refresh()
			if nl.LeaderAddr != "" {
				hinted = c.rb.learn(nl.LeaderAddr)
			}
		default:
			hinted = c.rb.hint(nl.LeaderAddr)
		}
		if r.op == opRead || r.op == opStream {
			r.route = routeLeader // this server serves reads from the leader only
		}
	case unknownTopic(st) && r.key != nil && (!r.notFound || c.meta.knows(*r.key)):
		// The metadata may lag a topic just created or changed: refresh
		// it and try once more; and again while the metadata has the
		// partition (a server whose copy of the metadata lags: the cache
		// drops a topic two fetches find unknown).
		r.notFound = true
		c.meta.invalidate(r.key.topic)
	case st.Code() == codes.Unavailable:
		if r.op == opAdmin {
			// The metadata leader it went to may be dead or cut off:
			// the others answer NOT_LEADER naming the current one.
			r.forgetAdmin(ci, addr)
		}
		c.rb.refresh()
		if r.key != nil {
			c.meta.invalidate(r.key.topic)
		}
		if r.op == opProduce && sent {
			if max := c.produceRetries(); max >= 0 && r.ambiguous >= max {
				return errFromStatus(ctx, err)
			}
			r.ambiguous++
		}
	case st.Code() == codes.OutOfRange && r.op == opRead && ro == roleFollower && !r.toLeader && pastEnd(st):
		// The follower may lag behind an acknowledged record: ask the leader
		// once, at once.
		r.toLeader, r.route = true, routeLeader
		c.cfg.logger.Debug("proglog: offset past a follower's end; reading from the leader", "server", addr)
		return nil
	default:
		return errFromStatus(ctx, err)
	}
	if c.cfg.retries >= 0 && r.retries >= c.cfg.retries {
		return errFromStatus(ctx, err)
	}
	r.retries++
	c.cfg.logger.Debug("proglog: retrying", "server", addr, "attempt", r.retries, "error", err)
	if err := c.pause(ctx, r.retries, hinted); err != nil {
		return errFromStatus(ctx, st.Err())
	}
	return nil
}

// forgetAdmin drops the metadata leader an opAdmin attempt was sent to
// (ci's route; addr is the server picked, empty when none was: it waited
// for that leader's connection) when the attempt failed there, so that
// the next attempt goes to another server, which names the current
// leader.
func (r *retrier) forgetAdmin(ci *callInfo, addr string) {
	if ci.part == nil || (addr != "" && addr != ci.part.leader) {
		return
	}
	r.admin = ""
	r.c.meta.forgetLeader(ci.part.leader)
	r.avoid = ci.part.leader
}

// closedChan is a hint already in effect: retry at once.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// partRoute returns where the next attempt goes: the partition's route
// from the metadata (nil: by discovery's roles), or for opAdmin the
// metadata leader.
func (r *retrier) partRoute(ctx context.Context) *partRoute {
	switch {
	case r.op == opAdmin:
		addr := r.admin
		if addr == "" {
			addr = r.c.meta.leader()
		}
		if addr == "" {
			return nil
		}
		return &partRoute{leader: addr}
	case r.key != nil:
		return r.c.meta.route(ctx, *r.key)
	}
	return nil
}

func (c *Client) produceRetries() int {
	if c.cfg.produceRetries < 0 {
		return c.cfg.retries
	}
	return c.cfg.produceRetries
}

// pastEnd reports whether an OUT_OF_RANGE status is for an offset at or
// after the end of the log (rather than before its start).
func pastEnd(st *status.Status) bool {
	info := errorInfo(st)
	if info == nil || info.GetReason() != reasonOutOfRange {
		return false
	}
	return parseUint(info.GetMetadata()["offset"]) >= parseUint(info.GetMetadata()["next"])
}

// pause waits before retry n: until a leader hint took effect if there is
// one (retrying at once), otherwise for the jittered backoff.
func (c *Client) pause(ctx context.Context, n int, hinted <-chan struct{}) error {
	d := c.backoff(n)
	if hinted != nil && n == 1 {
		d = c.cfg.backoffMax
	} else {
		hinted = nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-hinted:
		return nil
	case <-t.C:
		return nil
	}
}

func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.backoffMax
	if n < 30 {
		d = min(c.cfg.backoffMin<<(n-1), c.cfg.backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}
