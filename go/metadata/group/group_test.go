package group

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/mux"
	"github.com/proglog/proglog/go/replication"
)

// clock is the test's time: it moves only when the test moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// node is one member with its own mux and Transport on a held loopback
// port; a restart registers the group with the same Transport again.
type node struct {
	t     testing.TB
	id    string
	dir   string
	port  *testutil.HeldPort
	trans *replication.Transport
	lg    hclog.Logger
	tick  chan time.Time // unbuffered: a send returns once the controller took it
	// sessionTick drives the coordinator's session checks (unbuffered).
	sessionTick chan time.Time
	*Group
}

// cluster is n nodes of which the first bootstraps the group; the others
// are started but not joined.
type cluster struct {
	t     testing.TB
	clock *clock
	mod   func(*Config)
	nodes []*node
}

func newCluster(t testing.TB, n int, mod func(*Config)) *cluster {
	c := &cluster{t: t, clock: &clock{now: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)}, mod: mod}
	for i := range n {
		nd := &node{t: t, id: "n" + string(rune('0'+i)), port: testutil.HoldPort(t), tick: make(chan time.Time), sessionTick: make(chan time.Time)}
		nd.dir = filepath.Join(t.TempDir(), nd.id)
		c.nodes = append(c.nodes, nd)
		c.start(nd)
		t.Cleanup(func() {
			if err := nd.Close(); err != nil {
				t.Errorf("close %s: %v", nd.id, err)
			}
		})
	}
	return c
}

func (c *cluster) start(nd *node) {
	t := c.t
	t.Helper()
	if nd.trans == nil {
		level := hclog.Warn
		if testing.Verbose() {
			level = hclog.Info
		}
		nd.lg = hclog.New(&hclog.LoggerOptions{Name: nd.id, Level: level, Output: testutil.LogWriter(t)})
		mc := mux.DefaultConfig()
		mc.InsecurePlaintext = true
		mc.Logger = nd.lg.Named("mux")
		m, err := mux.New(nd.port.Listener(), mc)
		if err != nil {
			t.Fatal(err)
		}
		go m.Serve()
		t.Cleanup(func() { m.Close() })
		tc := replication.DefaultTransportConfig()
		tc.Logger = nd.lg.Named("transport")
		if nd.trans, err = replication.NewTransport(m.DialRaft, m.RaftConns(), tc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.trans.Close() })
	}
	sl, err := nd.trans.Group(RaftGroup)
	if err != nil {
		t.Fatal(err)
	}
	lg := nd.lg
	cfg := DefaultConfig()
	cfg.DataDir = nd.dir
	cfg.LocalID = nd.id
	cfg.APIAddr = nd.port.Addr()
	cfg.StreamLayer = sl
	cfg.Bootstrap = nd == c.nodes[0]
	cfg.HeartbeatTimeout = 400 * time.Millisecond
	cfg.ElectionTimeout = 400 * time.Millisecond
	cfg.LeaderLeaseTimeout = 200 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = lg
	cfg.now = c.clock.Now
	cfg.tick = nd.tick
	cfg.sessionTick = nd.sessionTick
	if c.mod != nil {
		c.mod(&cfg)
	}
	g, err := Open(cfg)
	if err != nil {
		_ = sl.Close()
		t.Fatalf("Open(%s): %v", nd.id, err)
	}
	nd.Group = g
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// leader waits until one of the running nodes leads the group.
func (c *cluster) leader() *node {
	c.t.Helper()
	var l *node
	testutil.Eventually(c.t, "a metadata leader", 20*time.Second, func() bool {
		for _, nd := range c.nodes {
			if nd.Group != nil && !nd.closed() && nd.IsLeader() {
				l = nd
				return true
			}
		}
		return false
	})
	return l
}

// joinAll joins nodes[1:] through the leader, in order, once the default
// topic exists (so it starts on n0 and is topped up in join order).
func (c *cluster) joinAll() {
	c.t.Helper()
	c.leader().waitState("default topic", func(s *metadata.State) bool { return s.Topics[commitlog.DefaultTopic] != nil })
	for _, nd := range c.nodes[1:] {
		c.join(nd)
	}
}

func (c *cluster) join(nd *node) {
	c.t.Helper()
	if err := c.leader().Join(nd.id, nd.port.Addr(), true); err != nil {
		c.t.Fatalf("join %s: %v", nd.id, err)
	}
}

// view returns a copy of nd's state.
func (nd *node) view() *metadata.State {
	var b []byte
	var err error
	nd.FSM().View(func(s *metadata.State) { b, err = s.Encode() })
	if err != nil {
		nd.t.Fatal(err)
	}
	s, err := metadata.DecodeState(b)
	if err != nil {
		nd.t.Fatal(err)
	}
	return s
}

// waitState waits until cond holds for nd's state.
func (nd *node) waitState(what string, cond func(*metadata.State) bool) *metadata.State {
	nd.t.Helper()
	var s *metadata.State
	testutil.Eventually(nd.t, nd.id+": "+what, 20*time.Second, func() bool {
		s = nd.view()
		return cond(s)
	})
	return s
}

// settle returns once nd's controller has finished handling a tick: the
// second send is taken only when the first tick's steps are done.
func (nd *node) settle() {
	nd.tick <- time.Time{}
	nd.tick <- time.Time{}
}

func replicas(s *metadata.State, topic string, p int) []string {
	t := s.Topics[topic]
	if t == nil || p >= len(t.Partitions) {
		return nil
	}
	return t.Partitions[p].Replicas
}

func suffrages(t *testing.T, g *Group) map[string]raft.ServerSuffrage {
	t.Helper()
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out := map[string]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s.Suffrage
	}
	return out
}

// TestBootstrapCreatesDefaultTopic: a one-node group registers its node
// and creates the default topic on it, wanting 3 replicas.
func TestBootstrapCreatesDefaultTopic(t *testing.T) {
	c := newCluster(t, 1, nil)
	n0 := c.nodes[0]
	id, addr, err := n0.WaitForLeader(ctxT(t))
	if err != nil || id != "n0" || addr != n0.port.Addr() {
		t.Fatalf("WaitForLeader: %s %s %v, want n0 at %s", id, addr, err, n0.port.Addr())
	}
	s := n0.waitState("default topic", func(s *metadata.State) bool { return s.Topics[commitlog.DefaultTopic] != nil })
	tp := s.Topics[commitlog.DefaultTopic]
	if len(tp.Partitions) != 1 || !slices.Equal(tp.Partitions[0].Replicas, []string{"n0"}) || tp.Config.ReplicationFactor != 3 {
		t.Fatalf("default topic %+v, want 1 partition on n0 wanting 3 replicas", *tp)
	}
	if n := s.Nodes["n0"]; n == nil || n.APIAddr != n0.port.Addr() || n.RaftAddr != n0.port.Addr() {
		t.Fatalf("n0's record: %+v", s.Nodes["n0"])
	}
}

// TestJoinVotersTopUp: of five nodes joining a group of ControllerVoters
// 3, the first three vote and the others do not; every node holds the
// metadata; the default topic gains a replica on each of the first two
// nodes to join and then stays at 3; Join of a member changes nothing;
// Join and Leave on a follower are refused with the leader's address.
func TestJoinVotersTopUp(t *testing.T) {
	c := newCluster(t, 5, nil)
	n0 := c.nodes[0]
	n0.waitState("default topic", func(s *metadata.State) bool { return s.Topics[commitlog.DefaultTopic] != nil })
	want := [][]string{{"n0", "n1"}, {"n0", "n1", "n2"}, {"n0", "n1", "n2"}, {"n0", "n1", "n2"}}
	for i, nd := range c.nodes[1:] {
		c.join(nd)
		n0.waitState("log on "+nd.id, func(s *metadata.State) bool {
			return s.Nodes[nd.id] != nil && slices.Equal(replicas(s, "log", 0), want[i])
		})
	}
	got := suffrages(t, n0.Group)
	for id, v := range map[string]raft.ServerSuffrage{"n0": raft.Voter, "n1": raft.Voter, "n2": raft.Voter, "n3": raft.Nonvoter, "n4": raft.Nonvoter} {
		if got[id] != v {
			t.Fatalf("configuration %v: %s is %v, want %v", got, id, got[id], v)
		}
	}
	// Every node holds the same metadata, non-voters included.
	leaderState, _ := n0.view().Encode()
	for _, nd := range c.nodes[1:] {
		nd.waitState("the leader's state", func(s *metadata.State) bool {
			b, _ := s.Encode()
			return string(b) == string(leaderState)
		})
	}
	// Join of a member: nothing changes.
	before := n0.raft.GetConfiguration().Index()
	if err := n0.Join("n3", c.nodes[3].port.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if after := n0.raft.GetConfiguration().Index(); after != before {
		t.Fatalf("joining a member again changed the configuration (index %d to %d)", before, after)
	}
	// On a follower: refused, naming the leader.
	for name, err := range map[string]error{
		"join":  c.nodes[4].Join("n9", "127.0.0.1:1", true),
		"leave": c.nodes[4].Leave("n3"),
	} {
		var nl *commitlog.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != "n0" || nl.LeaderAddr != n0.port.Addr() {
			t.Fatalf("%s on a follower: %v, want *commitlog.NotLeaderError naming n0 at %s", name, err, n0.port.Addr())
		}
	}
	// A voter leaves: the next Join of a non-voter that may vote promotes it.
	if err := n0.Leave("n1"); err != nil {
		t.Fatal(err)
	}
	if err := n0.Join("n4", c.nodes[4].port.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if s := suffrages(t, n0.Group); s["n4"] != raft.Nonvoter {
		t.Fatalf("a node that may not vote was promoted: %v", s)
	}
	if err := n0.Join("n3", c.nodes[3].port.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if s := suffrages(t, n0.Group); s["n3"] != raft.Voter || len(s) != 4 {
		t.Fatalf("after n1 left and n3 joined again: %v, want n3 a voter and n1 gone", s)
	}
}

// TestJoinVerifiesIdentity: with PeerName, a node that does not prove to
// be the ID it joins as is neither added nor registered (and Join is no
// error, as discovery retries it); once it proves it, it is.
func TestJoinVerifiesIdentity(t *testing.T) {
	var mu sync.Mutex
	names := map[string]string{} // address n0 dials -> the node it proves to be
	c := newCluster(t, 2, func(cfg *Config) {
		if cfg.LocalID != "n0" {
			// n1 accepts n0's connections (Raft's peer checks).
			cfg.PeerName = func(net.Conn) (string, error) { return "n0", nil }
			return
		}
		cfg.PeerName = func(conn net.Conn) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if n, ok := names[conn.RemoteAddr().String()]; ok {
				return n, nil
			}
			return "", errors.New("no identity")
		}
	})
	n0, n1 := c.nodes[0], c.nodes[1]
	n0.waitState("default topic", func(s *metadata.State) bool { return s.Topics[commitlog.DefaultTopic] != nil })
	for _, proves := range []string{"", "n7"} {
		mu.Lock()
		if proves != "" {
			names[n1.port.Addr()] = proves
		}
		mu.Unlock()
		if err := n0.Join("n1", n1.port.Addr(), true); err != nil {
			t.Fatalf("join of a node proving %q: %v, want nil", proves, err)
		}
		if s := suffrages(t, n0.Group); len(s) != 1 {
			t.Fatalf("a node proving %q was added: %v", proves, s)
		}
		if s := n0.view(); s.Nodes["n1"] != nil {
			t.Fatalf("a node proving %q was registered", proves)
		}
	}
	mu.Lock()
	names[n1.port.Addr()] = "n1"
	mu.Unlock()
	c.join(n1)
	if s := suffrages(t, n0.Group); s["n1"] != raft.Voter {
		t.Fatalf("after proving its identity: %v", s)
	}
	n0.waitState("n1 registered", func(s *metadata.State) bool { return s.Nodes["n1"] != nil })
}

// TestRaftRefusesNonMembers: with PeerName, the group's Raft takes no
// request from a node that is not a member: a vote request of a higher
// term from one is rejected (not_member) and the leader keeps its term.
func TestRaftRefusesNonMembers(t *testing.T) {
	rejected := make(chan string, 16)
	c := newCluster(t, 2, func(cfg *Config) {
		if cfg.LocalID != "n0" {
			return
		}
		cfg.PeerName = func(net.Conn) (string, error) { return "n9", nil }
		cfg.OnPeerRejected = func(reason string) { rejected <- reason }
	})
	n0, n1 := c.nodes[0], c.nodes[1]
	n0.waitState("default topic", func(s *metadata.State) bool { return s.Topics[commitlog.DefaultTopic] != nil })
	term := n0.raft.CurrentTerm()
	req := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("n9"), Addr: []byte(n1.port.Addr())}, Term: term + 100, LastLogIndex: 1 << 20, LastLogTerm: term + 99}
	var resp raft.RequestVoteResponse
	if err := n1.Group.trans.RequestVote("n0", raft.ServerAddress(n0.port.Addr()), req, &resp); err == nil {
		t.Fatalf("a non-member's vote request was answered: %+v", resp)
	}
	select {
	case reason := <-rejected:
		if reason != replication.RejectNotMember {
			t.Fatalf("rejected as %q, want %q", reason, replication.RejectNotMember)
		}
	case <-ctxT(t).Done():
		t.Fatal("no rejection reported")
	}
	if got := n0.raft.CurrentTerm(); got != term || !n0.IsLeader() {
		t.Fatalf("after the request: term %d (was %d), leader %v", got, term, n0.IsLeader())
	}
}
