package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
)

// cluster is n real go/server nodes over mutual TLS on loopback. With one
// node it is a plain single-node server (StorageLog, the server's own
// GetServers). With more, the nodes share one storage log and play a Raft
// cluster's roles the way go/replication's CommitLog does, with the same
// go/commitlog errors for the server to map: only the leader appends
// (others return *commitlog.NotLeaderError naming it, which the server
// answers FAILED_PRECONDITION with a NOT_LEADER ErrorInfo), every node
// serves follower reads and streams, only the leader linearizable reads,
// GetServers marks the leader — so routing, redirects and failover can be
// tested without consensus.
type cluster struct {
	t       *testing.T
	certs   certs.DevFiles
	storage *seglog.Log
	shared  *server.StorageLog
	nodes   []*node

	mu     sync.Mutex
	leader int // -1: none (an election)
	// noLeader gets a value (if it has room) each time a node answers
	// that there is no leader.
	noLeader chan struct{}
}

type node struct {
	c    *cluster
	idx  int
	id   string
	addr string
	srv  *server.Server
	done chan error

	appends, reads, streams, bounds atomic.Int64
	// failAfterAppend makes the next append succeed and then fail with
	// UNAVAILABLE, as a leader that lost leadership after committing does.
	failAfterAppend atomic.Bool
	// lostResponses makes that many appends succeed and then fail with
	// UNAVAILABLE, as failAfterAppend does once.
	lostResponses atomic.Int64
	// forgetProducer makes that many idempotent appends fail with
	// UNKNOWN_PRODUCER before writing, as a cluster that expired the
	// producer does.
	forgetProducer atomic.Int64
	// forgetAfterLoss makes the next lost response also forget the
	// producer (forgetProducer 1): the retry of a written request is
	// refused with UNKNOWN_PRODUCER.
	forgetAfterLoss atomic.Bool
	// unavailable makes that many appends fail with UNAVAILABLE before
	// writing, as a leader that cannot reach a quorum does.
	unavailable atomic.Int64
	// lowDisk makes appends fail as on a node below its free-space
	// watermark.
	lowDisk atomic.Bool
	// tooManyProducers makes idempotent appends fail as on a cluster
	// whose producer table is full of active producers.
	tooManyProducers atomic.Bool
	// lagging makes follower reads miss the newest record.
	lagging atomic.Bool
	stopped atomic.Bool
	// gate, when set, holds each append until the gate is opened.
	gate atomic.Pointer[gate]

	sizesMu sync.Mutex
	sizes   []int                // records per append, in order
	prods   []commitlog.Producer // producer of each append, in order
}

func (n *node) producers() []commitlog.Producer {
	n.sizesMu.Lock()
	defer n.sizesMu.Unlock()
	return slices.Clone(n.prods)
}

func (n *node) batchSizes() []int {
	n.sizesMu.Lock()
	defer n.sizesMu.Unlock()
	return slices.Clone(n.sizes)
}

// gate holds appends: each one sends on entered, then waits for release
// to be closed.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

type clusterOpts struct {
	nodes  int
	server func(*server.Config)
	tls    auth.TLSConfig // flags; files are filled in
}

func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 1
	}
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lcfg := seglog.DefaultConfig()
	lcfg.Sync = seglog.SyncNever
	storage, err := seglog.Open(filepath.Join(dir, "log"), lcfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, certs: files, storage: storage, shared: server.NewStorageLog(storage), noLeader: make(chan struct{}, 1)}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
		storage.Close()
	})
	for i := range o.nodes {
		c.nodes = append(c.nodes, c.start(i, o))
	}
	return c
}

func (c *cluster) start(i int, o clusterOpts) *node {
	t := c.t
	tlsFiles := o.tls
	tlsFiles.CertFile, tlsFiles.KeyFile, tlsFiles.CAFile = c.certs.ServerCert, c.certs.ServerKey, c.certs.CACert
	tlsCfg, err := tlsFiles.Server()
	if err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{c: c, idx: i, id: fmt.Sprintf("n%d", i), done: make(chan error, 1)}
	cfg := server.DefaultConfig()
	cfg.ID = n.id
	cfg.TLS = tlsCfg
	cfg.Authorizer = authz
	cfg.ShutdownTimeout = 2 * time.Second
	if o.server != nil {
		o.server(&cfg)
	}
	var clog commitlog.Partition = c.shared
	if o.nodes > 1 {
		clog, cfg.Servers = n, n
	}
	srv, err := server.New(cfg, singleLog{Log: clog, Servers: cfg.Servers})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr, n.srv = lis.Addr().String(), srv
	go func() { n.done <- srv.Serve(lis) }()
	return n
}

// stop shuts the node's server down (idempotent).
func (n *node) stop() {
	if n.stopped.Swap(true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	<-n.done
}

// target lists every node, comma-separated.
func (c *cluster) target() string {
	s := "proglog://"
	for i, n := range c.nodes {
		if i > 0 {
			s += ","
		}
		s += n.addr
	}
	return s
}

func (c *cluster) setLeader(i int) {
	c.mu.Lock()
	c.leader = i
	c.mu.Unlock()
}

func (c *cluster) leaderNode() *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader < 0 {
		return nil
	}
	return c.nodes[c.leader]
}

// tls returns client options with the dev certificate of name.
func (c *cluster) tls(name string) client.Option {
	return client.WithTLSFiles(c.certs.CACert, c.certs.ClientCert(name), c.certs.ClientKey(name))
}

// client connects as name ("root" unless given) with fast test timings.
func (c *cluster) client(opts ...client.Option) *client.Client {
	c.t.Helper()
	all := append([]client.Option{c.tls("root"), client.WithDialTimeout(5 * time.Second), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	cl, err := client.New(ctxT(c.t), c.target(), all...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

func (n *node) notLeader() error {
	l := n.c.leaderNode()
	if l == nil {
		select {
		case n.c.noLeader <- struct{}{}:
		default:
		}
		return &commitlog.NotLeaderError{}
	}
	return &commitlog.NotLeaderError{LeaderID: l.id, LeaderAddr: l.addr}
}

// append appends recs for producer p (plain if p.ID is 0) through the
// fault hooks.
func (n *node) append(ctx context.Context, p commitlog.Producer, recs [][]byte) (commitlog.Appended, error) {
	if n.c.leaderNode() != n {
		return commitlog.Appended{}, n.notLeader()
	}
	n.appends.Add(1)
	n.sizesMu.Lock()
	n.sizes = append(n.sizes, len(recs))
	n.prods = append(n.prods, commitlog.Producer{ID: p.ID, Sequence: p.Sequence}) // the checksum left out
	n.sizesMu.Unlock()
	if g := n.gate.Load(); g != nil {
		g.entered <- struct{}{}
		<-g.release
	}
	if n.unavailable.Add(-1) >= 0 {
		return commitlog.Appended{}, fmt.Errorf("the leader cannot reach a quorum: %w", commitlog.ErrUnavailable)
	}
	if n.lowDisk.Load() {
		return commitlog.Appended{}, &diskspace.LowSpaceError{Dir: "/data", Free: 1, Required: 2}
	}
	if p.ID != 0 && n.tooManyProducers.Load() {
		return commitlog.Appended{}, &producer.SequenceError{Err: producer.ErrTooManyProducers, ProducerID: p.ID, Limit: 1}
	}
	if p.ID != 0 && n.forgetProducer.Add(-1) >= 0 {
		// The server maps it to its UNKNOWN_PRODUCER status, message included.
		return commitlog.Appended{}, &producer.SequenceError{Err: producer.ErrUnknownProducer, ProducerID: p.ID, Sequence: p.Sequence}
	}
	var a commitlog.Appended
	var err error
	if p.ID == 0 {
		a.First, err = n.c.shared.Append(ctx, recs)
	} else {
		a, err = n.c.shared.AppendIdempotent(ctx, p, recs)
	}
	if err == nil && (n.failAfterAppend.Swap(false) || n.lostResponses.Add(-1) >= 0) {
		if n.forgetAfterLoss.Swap(false) {
			n.forgetProducer.Store(1)
		}
		return commitlog.Appended{}, commitlog.ErrLeadershipLost
	}
	return a, err
}

// Append implements commitlog.Partition.
func (n *node) Append(ctx context.Context, recs [][]byte) (uint64, error) {
	a, err := n.append(ctx, commitlog.Producer{}, recs)
	return a.First, err
}

// AppendIdempotent implements commitlog.Partition.
func (n *node) AppendIdempotent(ctx context.Context, p commitlog.Producer, recs [][]byte) (commitlog.Appended, error) {
	return n.append(ctx, p, recs)
}

// Read implements commitlog.Partition: linearizable reads on the leader
// only.
func (n *node) Read(ctx context.Context, off uint64, c commitlog.Consistency) ([]byte, error) {
	if c == commitlog.ConsistencyLinearizable && n.c.leaderNode() != n {
		return nil, n.notLeader()
	}
	n.reads.Add(1)
	if next := n.c.shared.NextOffset(); n.lagging.Load() && next > 0 && off >= next-1 {
		return nil, &seglog.OffsetOutOfRangeError{Offset: off, Lowest: n.c.shared.LowestOffset(), Next: next - 1}
	}
	return n.c.shared.Read(ctx, off, c)
}

// Bounds implements commitlog.Partition: linearizable on the leader only.
func (n *node) Bounds(ctx context.Context, c commitlog.Consistency) (lowest, next uint64, err error) {
	if c == commitlog.ConsistencyLinearizable && n.c.leaderNode() != n {
		return 0, 0, n.notLeader()
	}
	n.bounds.Add(1)
	return n.c.shared.Bounds(ctx, c)
}

func (n *node) LowestOffset() uint64 { return n.c.shared.LowestOffset() }
func (n *node) NextOffset() uint64   { return n.c.shared.NextOffset() }

// Wait implements commitlog.Partition; it counts streams (one Wait per stream
// start is enough to tell which node serves it).
func (n *node) Wait(ctx context.Context, off uint64) error {
	n.streams.Add(1)
	return n.c.shared.Wait(ctx, off)
}

// Servers implements commitlog.ServerLister: every node, leader marked.
func (n *node) Servers(context.Context) ([]commitlog.Server, error) {
	l := n.c.leaderNode()
	var out []commitlog.Server
	for _, m := range n.c.nodes {
		out = append(out, commitlog.Server{ID: m.id, Addr: m.addr, IsLeader: m == l})
	}
	return out, nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v (%T), want one matching %v", err, err, target)
	}
}

// errFixtureTopics is CreateTopic's and DeleteTopic's answer on a node
// that serves the single replicated log.
var errFixtureTopics = fmt.Errorf("%w: the test fixture serves only the default topic", commitlog.ErrInvalidTopic)

// singleLog is the fixture's commitlog.Cluster: its one log (shared
// storage, or a node of the simulated cluster) as the default topic's only
// partition; the fixture has no other topics.
type singleLog struct {
	Log commitlog.Partition
	// Servers lists the log's replicas, leader marked (Topics reports
	// them); nil lists none.
	Servers commitlog.ServerLister
}

var _ commitlog.Cluster = singleLog{}

// Partition implements commitlog.Cluster: the log for the default topic's
// partition 0.
func (s singleLog) Partition(topic string, partition int) (commitlog.Partition, error) {
	if topic != commitlog.DefaultTopic {
		return nil, fmt.Errorf("%w: %q (this node serves only %q)", commitlog.ErrUnknownTopic, topic, commitlog.DefaultTopic)
	}
	if partition != 0 {
		return nil, fmt.Errorf("%w: %q has only partition 0, not %d", commitlog.ErrUnknownPartition, topic, partition)
	}
	return s.Log, nil
}

// Topics implements commitlog.Cluster: the default topic, one partition
// replicated on every server of the log.
func (s singleLog) Topics(ctx context.Context, names ...string) ([]commitlog.TopicInfo, error) {
	for _, name := range names {
		if name != commitlog.DefaultTopic {
			return nil, fmt.Errorf("%w: %q (this node serves only %q)", commitlog.ErrUnknownTopic, name, commitlog.DefaultTopic)
		}
	}
	var servers []commitlog.Server
	if s.Servers != nil {
		var err error
		if servers, err = s.Servers.Servers(ctx); err != nil {
			return nil, err
		}
	}
	return []commitlog.TopicInfo{{
		Name:       commitlog.DefaultTopic,
		Config:     commitlog.TopicConfig{Partitions: 1, ReplicationFactor: max(1, len(servers))},
		Partitions: []commitlog.PartitionInfo{{Partition: 0, Replicas: servers}},
	}}, nil
}

// CreateTopic implements commitlog.Cluster: refused, see errFixtureTopics.
func (singleLog) CreateTopic(context.Context, string, commitlog.TopicConfig) (commitlog.TopicInfo, error) {
	return commitlog.TopicInfo{}, errFixtureTopics
}

// DeleteTopic implements commitlog.Cluster: refused, see errFixtureTopics.
func (singleLog) DeleteTopic(context.Context, string) error { return errFixtureTopics }
