package replication

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/mux"
)

func transportLogger(t *testing.T, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testutil.LogWriter(t)})
}

// servedMux serves a plaintext mux on a loopback port until the test ends.
func servedMux(t *testing.T) *mux.Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := mux.DefaultConfig()
	mc.InsecurePlaintext = true
	mc.Logger = transportLogger(t, "mux")
	m, err := mux.New(ln, mc)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	go m.Serve()
	t.Cleanup(func() { m.Close() })
	return m
}

// newTestTransport is a Transport over m whose refusals go to refused.
func newTestTransport(t *testing.T, m *mux.Mux, backlog int, refused chan<- string) *Transport {
	t.Helper()
	cfg := DefaultTransportConfig()
	if backlog > 0 {
		cfg.AcceptBacklog = backlog
	}
	cfg.Logger = transportLogger(t, "transport")
	if refused != nil {
		cfg.OnRefused = func(reason string) { refused <- reason }
	}
	tr, err := NewTransport(m.DialRaft, m.RaftConns(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// testGroup is the Raft group of the tests that run a Log (go/broker names
// partitions' groups; this package takes any ID).
const testGroup = "t/log/1/0"

// muxGroup is the stream layer of testGroup over m, for the tests that run
// a Log.
func muxGroup(t *testing.T, m *mux.Mux) raft.StreamLayer {
	t.Helper()
	sl, err := newTestTransport(t, m, 0, nil).Group(testGroup)
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func group(t *testing.T, tr *Transport, id string) raft.StreamLayer {
	t.Helper()
	sl, err := tr.Group(id)
	if err != nil {
		t.Fatalf("Group(%q): %v", id, err)
	}
	return sl
}

// acceptIn returns the next connection of sl, failing after a deadline.
func acceptIn(t *testing.T, sl net.Listener) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	errc := make(chan error, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			errc <- err
			return
		}
		ch <- c
	}()
	select {
	case c := <-ch:
		t.Cleanup(func() { c.Close() })
		return c
	case err := <-errc:
		t.Fatalf("Accept: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Accept: no connection within 10s")
	}
	return nil
}

// sendTo dials sl's own node through sl and writes msg; the connection
// stays open until the test ends.
func sendTo(t *testing.T, sl raft.StreamLayer, msg string) net.Conn {
	t.Helper()
	c, err := sl.Dial(raft.ServerAddress(sl.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	return c
}

// receive checks the next connection accepted by sl carries msg.
func receive(t *testing.T, sl raft.StreamLayer, msg string) {
	t.Helper()
	if got := receiveN(t, sl, len(msg)); got != msg {
		t.Fatalf("accepted a connection carrying %q, want %q", got, msg)
	}
}

// receiveN returns the first n bytes of the next connection sl accepts.
func receiveN(t *testing.T, sl raft.StreamLayer, n int) string {
	t.Helper()
	c := acceptIn(t, sl)
	got := make([]byte, n)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(got)
}

// expectRefused waits for one refusal for reason and checks the server
// closed c.
func expectRefused(t *testing.T, refused <-chan string, reason string, c net.Conn) {
	t.Helper()
	select {
	case got := <-refused:
		if got != reason {
			t.Fatalf("refused for %q, want %q", got, reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not refused (%s)", reason)
	}
	if c == nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("refused connection not closed: %v", err)
	}
}

func TestTransportConfig(t *testing.T) {
	if err := DefaultTransportConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -1} {
		c := DefaultTransportConfig()
		c.AcceptBacklog = n
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("AcceptBacklog %d: %v, want ErrInvalidConfig", n, err)
		}
	}
	m := servedMux(t)
	if _, err := NewTransport(nil, m.RaftConns(), DefaultTransportConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no dial function: %v", err)
	}
	if _, err := NewTransport(m.DialRaft, nil, DefaultTransportConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no listener: %v", err)
	}
	if _, err := NewTransport(m.DialRaft, m.RaftConns(), TransportConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("zero config: %v", err)
	}
}

// Two groups on one port each receive only the connections that named
// them, and both advertise the node's one address.
func TestTransportRoutesByGroup(t *testing.T) {
	m := servedMux(t)
	tr := newTestTransport(t, m, 0, nil)
	a, b := group(t, tr, "a/0"), group(t, tr, "b/0")
	for _, sl := range []raft.StreamLayer{a, b} {
		if sl.Addr().String() != m.Addr().String() {
			t.Fatalf("group Addr %v, port %v", sl.Addr(), m.Addr())
		}
	}
	// Dialed in an order that differs from the order they are accepted
	// in; b's two set-ups may finish in either order.
	sendTo(t, b, "for b 1")
	sendTo(t, a, "for a 1")
	sendTo(t, b, "for b 2")
	receive(t, a, "for a 1")
	got := map[string]bool{receiveN(t, b, 7): true, receiveN(t, b, 7): true}
	if !got["for b 1"] || !got["for b 2"] {
		t.Fatalf("b accepted %v, want its two connections", got)
	}
	if _, err := tr.Group("a/0"); !errors.Is(err, ErrGroupExists) {
		t.Fatalf("registering a/0 twice: %v, want ErrGroupExists", err)
	}
	if _, err := tr.Group(""); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty group ID: %v, want ErrInvalidConfig", err)
	}
}

// A connection naming a group this node does not run is closed at once
// and counted; the known groups go on.
func TestTransportRefusesUnknownGroup(t *testing.T) {
	m := servedMux(t)
	refused := make(chan string, 4)
	tr := newTestTransport(t, m, 0, refused)
	a := group(t, tr, "a/0")
	c, err := m.DialRaft(m.Addr().String(), "nobody/3", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectRefused(t, refused, RefusedUnknownGroup, c)
	sendTo(t, a, "still routed")
	receive(t, a, "still routed")
}

// A group whose Raft does not accept fills its backlog; more connections
// for it are refused, and the accept loop goes on for the other groups.
func TestTransportFullBacklogDoesNotBlockOthers(t *testing.T) {
	m := servedMux(t)
	refused := make(chan string, 4)
	tr := newTestTransport(t, m, 1, refused)
	slow, other := group(t, tr, "slow/0"), group(t, tr, "other/0")
	sendTo(t, slow, "first")
	sendTo(t, slow, "second") // one of the two is refused: the backlog holds one
	expectRefused(t, refused, RefusedBacklogFull, nil)
	sendTo(t, other, "not blocked")
	receive(t, other, "not blocked")
	// The one queued is intact.
	if got := receiveN(t, slow, 5); got != "first" && got != "secon" {
		t.Fatalf("queued connection carries %q", got)
	}
}

// Closing a group closes its listener only: its Accept fails as a closed
// listener's does, connections naming it are refused, the other group and
// the port go on, and the ID can be registered again.
func TestTransportGroupClose(t *testing.T) {
	m := servedMux(t)
	refused := make(chan string, 4)
	tr := newTestTransport(t, m, 0, refused)
	a, b := group(t, tr, "a/0"), group(t, tr, "b/0")
	queued := sendTo(t, a, "queued")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// queued was either in a's backlog (closed with it) or arrives after
	// a is gone (refused): closed either way.
	_ = queued.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := queued.Read(make([]byte, 1)); err == nil || isNetTimeout(err) {
		t.Fatalf("connection for a closed group stayed open: %v", err)
	}
	c := sendTo(t, a, "after close")
	expectRefused(t, refused, RefusedUnknownGroup, c)
	sendTo(t, b, "b goes on")
	receive(t, b, "b goes on")
	a2 := group(t, tr, "a/0")
	sendTo(t, a2, "again")
	receive(t, a2, "again")
}

// Closing the Transport, or the port under it, closes every group.
func TestTransportClose(t *testing.T) {
	for _, how := range []string{"transport", "mux"} {
		t.Run(how, func(t *testing.T) {
			m := servedMux(t)
			tr := newTestTransport(t, m, 0, nil)
			a := group(t, tr, "a/0")
			accepted := make(chan error, 1)
			go func() {
				_, err := a.Accept()
				accepted <- err
			}()
			if how == "transport" {
				if err := tr.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				m.Close()
			}
			select {
			case err := <-accepted:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Accept = %v, want net.ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Accept still blocked")
			}
			if how == "transport" {
				if _, err := tr.Group("b/0"); !errors.Is(err, ErrTransportClosed) {
					t.Fatalf("Group after Close = %v, want ErrTransportClosed", err)
				}
			}
		})
	}
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// chanFSM hands every applied command to applied.
type chanFSM struct{ applied chan string }

func (f chanFSM) Apply(l *raft.Log) any { f.applied <- string(l.Data); return nil }
func (f chanFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("no snapshots in this test")
}
func (f chanFSM) Restore(io.ReadCloser) error { return errors.New("no snapshots in this test") }

// hashicorp/raft elects a leader and replicates in two groups whose nodes
// share one port each: two nodes, two groups, four Raft instances over two
// muxes.
func TestRaftGroupsShareOnePort(t *testing.T) {
	type member struct {
		r       *raft.Raft
		leader  chan bool
		applied chan string
	}
	nodes := []string{"n0", "n1"}
	groups := []string{"a/0", "b/0"}
	muxes := make([]*mux.Mux, len(nodes))
	trs := make([]*Transport, len(nodes))
	for i := range nodes {
		muxes[i] = servedMux(t)
		trs[i] = newTestTransport(t, muxes[i], 0, nil)
	}
	var servers []raft.Server
	for i, n := range nodes {
		servers = append(servers, raft.Server{ID: raft.ServerID(n), Address: raft.ServerAddress(muxes[i].Addr().String())})
	}
	members := map[string][]member{}
	for _, g := range groups {
		for i, n := range nodes {
			cfg := raft.DefaultConfig()
			cfg.LocalID = raft.ServerID(n)
			cfg.HeartbeatTimeout = 200 * time.Millisecond
			cfg.ElectionTimeout = 200 * time.Millisecond
			cfg.LeaderLeaseTimeout = 100 * time.Millisecond
			cfg.CommitTimeout = 5 * time.Millisecond
			cfg.Logger = transportLogger(t, g+"."+n)
			mb := member{leader: make(chan bool, 8), applied: make(chan string, 8)}
			cfg.NotifyCh = mb.leader
			nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: group(t, trs[i], g), MaxPool: 2, Timeout: 5 * time.Second, Logger: cfg.Logger,
			})
			store := raft.NewInmemStore()
			r, err := raft.NewRaft(cfg, chanFSM{mb.applied}, store, store, raft.NewInmemSnapshotStore(), nt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := r.Shutdown().Error(); err != nil {
					t.Errorf("shutdown %s %s: %v", g, n, err)
				}
			})
			if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
				t.Fatal(err)
			}
			mb.r = r
			members[g] = append(members[g], mb)
		}
	}
	for _, g := range groups {
		ms := members[g]
		var leader *member
		deadline := time.After(30 * time.Second)
		for leader == nil {
			select {
			case is := <-ms[0].leader:
				if is {
					leader = &ms[0]
				}
			case is := <-ms[1].leader:
				if is {
					leader = &ms[1]
				}
			case <-deadline:
				t.Fatalf("group %s: no leader", g)
			}
		}
		cmd := "command of " + g
		if err := leader.r.Apply([]byte(cmd), 10*time.Second).Error(); err != nil {
			t.Fatalf("group %s: Apply: %v", g, err)
		}
		for i, mb := range ms {
			select {
			case got := <-mb.applied:
				if got != cmd {
					t.Fatalf("group %s, %s applied %q, want %q", g, nodes[i], got, cmd)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("group %s: %s did not apply the command", g, nodes[i])
			}
		}
	}
	for _, g := range groups {
		for i, mb := range members[g] {
			select {
			case got := <-mb.applied:
				t.Errorf("group %s, %s applied another group's command %q", g, nodes[i], got)
			default:
			}
		}
	}
}
