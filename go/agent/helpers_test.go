package agent_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// testLogger logs warnings and up (everything with -v) to the test log and
// drops what goroutines log after the test ended.
func testLogger(t *testing.T) *zap.Logger {
	w := testutil.LogWriter(t)
	level := zapcore.WarnLevel
	if testing.Verbose() {
		level = zapcore.InfoLevel
	}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// env is what the nodes of one test share: a dev PKI and a gossip key;
// and each node's API port, held for the whole test so that a restarted
// node gets it back without binding it again.
type env struct {
	t     *testing.T
	dir   string
	certs certs.DevFiles
	key   string
	ports map[string]*testutil.HeldPort // by node name
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, certs: files, key: key, ports: map[string]*testutil.HeldPort{}}
}

// listener returns a listener on the API port of the node called name.
func (e *env) listener(name string) net.Listener {
	p := e.ports[name]
	if p == nil {
		p = testutil.HoldPort(e.t)
		e.ports[name] = p
	}
	return p.Listener()
}

// config is a loopback node with fast Raft and gossip timings.
func (e *env) config(name string) agent.Config {
	c := agent.DefaultConfig()
	c.NodeName = name
	c.DataDir = filepath.Join(e.dir, name)
	c.BindAddr = ""
	c.Listener = e.listener(name)
	c.SerfBindAddr = "127.0.0.1:0"
	c.GossipKey = e.key
	c.GossipProfile = discovery.ProfileLocal
	c.TLS = e.nodeTLS(name)
	c.MetricsAddr = "127.0.0.1:0"
	c.ShutdownTimeout = 5 * time.Second
	c.Raft = agent.RaftConfig{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Hour, // snapshots only when a test asks
		SnapshotThreshold:  1 << 30,
		TrailingLogs:       8,
	}
	c.Logger = testLogger(e.t).Named(name)
	return c
}

// nodeTLS returns the TLS files of node name, issuing its certificate if
// needed.
func (e *env) nodeTLS(name string) auth.TLSConfig {
	e.t.Helper()
	if _, err := certs.EnsureDev(e.certs.Dir, nil, name); err != nil {
		e.t.Fatal(err)
	}
	return auth.TLSConfig{CertFile: e.certs.NodeCert(name), KeyFile: e.certs.NodeKey(name), CAFile: e.certs.CACert}
}

// node is a running agent and a client of its API.
type node struct {
	t    *testing.T
	cfg  agent.Config
	a    *agent.Agent
	conn *grpc.ClientConn
	log  logv1.LogClient
}

func (e *env) start(cfg agent.Config) *node {
	e.t.Helper()
	a, err := agent.New(cfg)
	if err != nil {
		e.t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	n := &node{t: e.t, cfg: cfg, a: a}
	e.t.Cleanup(n.stop)
	n.conn = e.dial(a.Addr(), "root")
	n.log = logv1.NewLogClient(n.conn)
	return n
}

// restart starts the node again on the same data directory and API
// address (its Raft address). Gossip gets a new port: a member that left
// may come back at another address.
func (e *env) restart(n *node, join ...string) *node {
	e.t.Helper()
	cfg := n.cfg
	cfg.Listener = e.listener(n.name())
	cfg.StartJoinAddrs = join
	cfg.Bootstrap = false
	return e.start(cfg)
}

func (e *env) dial(addr, identity string) *grpc.ClientConn {
	e.t.Helper()
	tlsCfg, err := auth.TLSConfig{CertFile: e.certs.ClientCert(identity), KeyFile: e.certs.ClientKey(identity), CAFile: e.certs.CACert}.Client()
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

func (n *node) stop() {
	if n.a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.a.Shutdown(ctx); err != nil {
		n.t.Errorf("Shutdown(%s): %v", n.cfg.NodeName, err)
	}
	n.conn.Close()
	n.a = nil
}

func (n *node) name() string { return n.cfg.NodeName }

// waitReady waits until the node knows a leader.
func (n *node) waitReady() {
	n.t.Helper()
	if err := n.a.WaitReady(ctxT(n.t, 30*time.Second)); err != nil {
		n.t.Fatalf("%s not ready: %v", n.name(), err)
	}
}

// health returns the node's health status over gRPC.
func (n *node) health(ctx context.Context) healthpb.HealthCheckResponse_ServingStatus {
	n.t.Helper()
	h, err := healthpb.NewHealthClient(n.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
	if err != nil {
		n.t.Fatalf("%s health: %v", n.name(), err)
	}
	return h.Status
}

// servers returns the Raft configuration as the node sees it: name → voter.
func (n *node) servers() map[string]bool {
	n.t.Helper()
	ss, err := n.a.Replica().GetServers()
	if err != nil {
		n.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range ss {
		out[s.ID] = s.Voter
	}
	return out
}

// defaultPartitionDir is the directory of the node's replica of the
// default topic's partition 0 (go/broker's layout).
func (n *node) defaultPartitionDir() string {
	n.t.Helper()
	var created uint64
	n.a.Metadata().FSM().View(func(s *metadata.State) {
		if t := s.Topics[commitlog.DefaultTopic]; t != nil {
			created = t.Created
		}
	})
	if created == 0 {
		n.t.Fatalf("%s: no default topic", n.name())
	}
	return broker.PartitionDir(n.cfg.DataDir, commitlog.DefaultTopic, created, 0)
}

// defaultGroup is the Raft group of the default topic's partition 0.
func (n *node) defaultGroup() string {
	n.t.Helper()
	var created uint64
	n.a.Metadata().FSM().View(func(s *metadata.State) { created = s.Topics[commitlog.DefaultTopic].Created })
	return broker.GroupID(commitlog.DefaultTopic, created, 0)
}

// registered reports whether the metadata, as node n has it, lists node
// id, and whether it is leaving.
func (n *node) registered(id string) (in, leaving bool) {
	n.a.Metadata().FSM().View(func(s *metadata.State) {
		if nd := s.Nodes[id]; nd != nil {
			in, leaving = true, nd.Leaving
		}
	})
	return in, leaving
}

func value(i int) []byte { return []byte(fmt.Sprintf("value-%05d", i)) }

// produce appends value(i) through the node's API and returns the offset.
func (n *node) produce(ctx context.Context, i int) uint64 {
	n.t.Helper()
	resp, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value(i)}})
	if err != nil {
		n.t.Fatalf("produce %d on %s: %v", i, n.name(), err)
	}
	return resp.Offset
}

// readAll reads offsets [0, count) from the node with a ConsumeStream,
// which waits for records the node has not applied yet.
func (n *node) readAll(ctx context.Context, count int) []*logv1.Record {
	n.t.Helper()
	if count == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := n.log.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil {
		n.t.Fatal(err)
	}
	out := make([]*logv1.Record, 0, count)
	for len(out) < count {
		resp, err := stream.Recv()
		if err != nil {
			n.t.Fatalf("%s stream after %d records: %v", n.name(), len(out), err)
		}
		out = append(out, resp.Record)
	}
	return out
}

// sameRecords checks that every node holds want, record by record.
func sameRecords(t *testing.T, ctx context.Context, want []*logv1.Record, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		got := n.readAll(ctx, len(want))
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("%s offset %d: %v, want %v", n.name(), i, got[i], want[i])
			}
		}
	}
}

// notLeaderInfo returns the NOT_LEADER details of err, or fails.
func notLeaderInfo(t *testing.T, err error) *errdetails.ErrorInfo {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("got %v, want FailedPrecondition NOT_LEADER", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == "NOT_LEADER" {
			return info
		}
	}
	t.Fatalf("no NOT_LEADER ErrorInfo in %v", st.Details())
	return nil
}

func isOutOfRange(err error) bool { return status.Code(err) == codes.OutOfRange }
