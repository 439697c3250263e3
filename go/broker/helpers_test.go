package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/replication"
)

// testNet stands in for the shared port's per-group stream layers: each
// (node address, group) gets a loopback listener of its own, and Dial of a
// node address reaches the listener of the same group on that node.
type testNet struct {
	mu     sync.Mutex
	layers map[string]*testLayer // by node address + "|" + group
}

func newTestNet() *testNet { return &testNet{layers: map[string]*testLayer{}} }

// node returns the StreamLayers of the node at addr.
func (n *testNet) node(addr string) StreamLayers { return testNode{n, addr} }

type testNode struct {
	net  *testNet
	addr string
}

func (tn testNode) Group(id string) (raft.StreamLayer, error) {
	tn.net.mu.Lock()
	defer tn.net.mu.Unlock()
	k := tn.addr + "|" + id
	if tn.net.layers[k] != nil {
		return nil, fmt.Errorf("group %q registered twice on %s", id, tn.addr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &testLayer{Listener: ln, net: tn.net, key: k, addr: tn.addr, group: id}
	tn.net.layers[k] = l
	return l, nil
}

// registered reports whether the node at addr has group registered.
func (n *testNet) registered(addr, group string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.layers[addr+"|"+group] != nil
}

type testLayer struct {
	net.Listener
	net              *testNet
	key, addr, group string
	once             sync.Once
}

type testAddr string

func (a testAddr) Network() string { return "test" }
func (a testAddr) String() string  { return string(a) }

func (l *testLayer) Addr() net.Addr { return testAddr(l.addr) }

func (l *testLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.net.mu.Lock()
	target := l.net.layers[string(addr)+"|"+l.group]
	l.net.mu.Unlock()
	if target == nil {
		return nil, fmt.Errorf("dial %s: no group %q there", addr, l.group)
	}
	return net.DialTimeout("tcp", target.Listener.Addr().String(), timeout)
}

func (l *testLayer) Close() error {
	l.once.Do(func() {
		l.net.mu.Lock()
		if l.net.layers[l.key] == l {
			delete(l.net.layers, l.key)
		}
		l.net.mu.Unlock()
	})
	return l.Listener.Close()
}

// testMeta is the metadata group reduced to its state machine: commands
// are applied directly, in order, as a leader's would be.
type testMeta struct {
	*metadata.FSM
	mu    sync.Mutex
	index uint64
}

func newTestMeta() *testMeta { return &testMeta{FSM: metadata.NewFSM()} }

func (m *testMeta) apply(c metadata.Command) error {
	b, err := metadata.EncodeCommand(c)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	if err, _ := m.FSM.Apply(&raft.Log{Index: m.index, Type: raft.LogCommand, Data: b}).(error); err != nil {
		return err
	}
	return nil
}

func (m *testMeta) register(t *testing.T, id string) {
	t.Helper()
	if err := m.apply(metadata.Command{Op: metadata.OpRegisterNode, Node: &metadata.Node{ID: id, RaftAddr: id, APIAddr: "api-" + id}}); err != nil {
		t.Fatal(err)
	}
}

func (m *testMeta) CreateTopic(_ context.Context, name string, cfg commitlog.TopicConfig) (metadata.Topic, error) {
	tc := metadata.TopicConfig{Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor,
		Retention: metadata.Retention{MaxBytes: cfg.RetentionBytes, MaxAge: cfg.RetentionAge}}
	var loads []metadata.NodeLoad
	m.View(func(s *metadata.State) { loads = s.Loads() })
	a, err := metadata.Place(loads, name, tc)
	if err != nil {
		return metadata.Topic{}, err
	}
	if err := m.apply(metadata.Command{Op: metadata.OpCreateTopic, Topic: name, Config: &tc, Assignment: a}); err != nil {
		return metadata.Topic{}, err
	}
	var t metadata.Topic
	m.View(func(s *metadata.State) { t = *s.Topics[name] })
	return t, nil
}

func (m *testMeta) DeleteTopic(_ context.Context, name string) error {
	return m.apply(metadata.Command{Op: metadata.OpDeleteTopic, Topic: name})
}

func (m *testMeta) ReplicaReady(_ context.Context, topic string, p int, epoch uint64, node string) error {
	return m.apply(metadata.Command{Op: metadata.OpReplicaReady, Topic: topic, Partition: p, Epoch: epoch, NodeID: node})
}

// reassign sets the replicas of topic's partition, and its Adding list.
func (m *testMeta) reassign(t *testing.T, topic string, p int, adding []string, replicas ...string) {
	t.Helper()
	var epoch uint64
	m.View(func(s *metadata.State) { epoch = s.Topics[topic].Partitions[p].Epoch })
	if err := m.apply(metadata.Command{Op: metadata.OpReassign, Topic: topic, Partition: p, Epoch: epoch, Replicas: replicas, Adding: adding}); err != nil {
		t.Fatal(err)
	}
}

// createRaw creates a topic with the given assignment, bypassing Place.
func (m *testMeta) createRaw(t *testing.T, name string, rf int, assignment ...[]string) {
	t.Helper()
	tc := metadata.TopicConfig{Partitions: len(assignment), ReplicationFactor: rf}
	if err := m.apply(metadata.Command{Op: metadata.OpCreateTopic, Topic: name, Config: &tc, Assignment: assignment}); err != nil {
		t.Fatal(err)
	}
}

func testLogger(t *testing.T, name string) hclog.Logger {
	level := hclog.Warn
	if testing.Verbose() {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: testutil.LogWriter(t)})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// env is a cluster of brokers sharing one metadata and one test network.
type env struct {
	t    *testing.T
	meta *testMeta
	net  *testNet
	dir  string
	// openedWith records, per node and partition ("n1 orders/0"), the
	// servers of the group's configuration when the replica opened.
	mu         sync.Mutex
	openedWith map[string]int
	// tweak, if set, changes every node's configuration.
	tweak func(*Config)
}

func newEnv(t *testing.T) *env {
	return &env{t: t, meta: newTestMeta(), net: newTestNet(), dir: t.TempDir(), openedWith: map[string]int{}}
}

// config is node id's broker configuration, with timings for loopback.
func (e *env) config(id string) Config {
	c := DefaultConfig()
	c.NodeID = id
	c.DataDir = filepath.Join(e.dir, id)
	c.Metadata = e.meta
	c.StreamLayers = e.net.node(id)
	c.RetryInterval = 50 * time.Millisecond
	c.LeaderReportInterval = 50 * time.Millisecond
	c.Replica.HeartbeatTimeout = 400 * time.Millisecond
	c.Replica.ElectionTimeout = 400 * time.Millisecond
	c.Replica.LeaderLeaseTimeout = 200 * time.Millisecond
	c.PreferredLeaderDelay = 0 // tests of balancing turn it on
	c.Logger = testLogger(e.t, id)
	c.OnOpen = func(topic string, p int, l *replication.Log) {
		servers, err := l.GetServers()
		if err != nil {
			e.t.Errorf("%s: servers of %s/%d: %v", id, topic, p, err)
		}
		e.mu.Lock()
		e.openedWith[fmt.Sprintf("%s %s/%d", id, topic, p)] = len(servers)
		e.mu.Unlock()
	}
	if e.tweak != nil {
		e.tweak(&c)
	}
	return c
}

// start registers node id in the metadata and starts its broker.
func (e *env) start(id string) *Broker {
	e.t.Helper()
	e.meta.register(e.t, id)
	return e.restart(id)
}

// restart starts node id's broker again on its data directory.
func (e *env) restart(id string) *Broker {
	e.t.Helper()
	b, err := New(e.config(id))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, replication.ErrClosed) {
			e.t.Errorf("close %s: %v", id, err)
		}
	})
	return b
}

// leader waits for a leader of topic's partition among bs and returns its
// broker.
func leader(t *testing.T, topic string, p int, bs ...*Broker) *Broker {
	t.Helper()
	var lb *Broker
	testutil.Eventually(t, fmt.Sprintf("a leader of %s/%d", topic, p), 30*time.Second, func() bool {
		for _, b := range bs {
			if l := b.Replica(topic, p); l != nil && l.IsLeader() {
				lb = b
				return true
			}
		}
		return false
	})
	return lb
}

// voters returns the voters of topic's partition as its replica on b
// knows them.
func voters(t *testing.T, b *Broker, topic string, p int) map[string]bool {
	t.Helper()
	l := b.Replica(topic, p)
	if l == nil {
		return nil
	}
	servers, err := l.GetServers()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, s := range servers {
		if s.Voter {
			out[s.ID] = true
		}
	}
	return out
}

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%03d", i)) }

func (m *testMeta) ReportLeaders(_ context.Context, node string, hints []metadata.LeaderHint) error {
	for i := range hints {
		hints[i].Leader = node
	}
	return m.apply(metadata.Command{Op: metadata.OpLeaders, Leaders: hints})
}
