package discovery

import (
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/proglog/proglog/go/internal/testutil"
)

// call is one Handler call.
type call struct {
	op, id, rpcAddr string
	voter           bool
}

// recorder is a Handler that records its calls and can fail them.
type recorder struct {
	mu    sync.Mutex
	calls []call
	err   error
}

func (r *recorder) Join(id, rpcAddr string, voter bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{"join", id, rpcAddr, voter})
	return r.err
}

func (r *recorder) Leave(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{op: "leave", id: id})
	return r.err
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) has(c call) bool { return slices.Contains(r.snapshot(), c) }

func (r *recorder) about(id string) []call {
	var out []call
	for _, c := range r.snapshot() {
		if c.id == id {
			out = append(out, c)
		}
	}
	return out
}

var (
	keyA = []byte("0123456789abcdef")
	keyB = []byte("fedcba9876543210")
)

// testLogger sends logs to the test log until the test ends.
func testLogger(t *testing.T) hclog.Logger {
	w := testutil.LogWriter(t)
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Info, Output: w})
}

func testConfig(t *testing.T, name string, key []byte, join ...string) Config {
	c := DefaultConfig()
	c.NodeName = name
	c.BindAddr = "127.0.0.1:0"
	c.Profile = ProfileLocal
	c.ReconnectTimeout = time.Second
	c.ReapInterval = 200 * time.Millisecond
	// A distinct RPC address per member: members sharing one are left to
	// gossip to settle (see sharedAddr).
	c.Tags = map[string]string{TagRPCAddr: "127.0.0.1:" + fmt.Sprint(9000+crc32.ChecksumIEEE([]byte(name))%1000), TagVoter: "true"}
	if name == "n3" {
		c.Tags[TagVoter] = "false"
	}
	c.EncryptKey = key
	c.AllowInsecureGossip = key == nil
	c.StartJoinAddrs = join
	c.Logger = testLogger(t)
	return c
}

func start(t *testing.T, cfg Config, h Handler) *Membership {
	t.Helper()
	m, err := New(cfg, h)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func alive(m *Membership) int {
	n := 0
	for _, mem := range m.Members() {
		if mem.Status == StatusAlive {
			n++
		}
	}
	return n
}

// cluster starts n1 (voter), n2 (voter) and n3 (non-voter) with keyA.
func cluster(t *testing.T) ([]*Membership, []*recorder) {
	t.Helper()
	hs := []*recorder{{}, {}, {}}
	m1 := start(t, testConfig(t, "n1", keyA), hs[0])
	m2 := start(t, testConfig(t, "n2", keyA, m1.Addr()), hs[1])
	m3 := start(t, testConfig(t, "n3", keyA, m1.Addr()), hs[2])
	ms := []*Membership{m1, m2, m3}
	for _, m := range ms {
		testutil.Eventually(t, m.LocalMember().Name+" to see 3 alive members", 20*time.Second, func() bool { return alive(m) == 3 })
	}
	return ms, hs
}

func TestThreeMembersSeeEachOther(t *testing.T) {
	ms, hs := cluster(t)
	for i, m := range ms {
		self := m.LocalMember().Name
		for _, other := range ms {
			o := other.LocalMember()
			if o.Name == self {
				continue
			}
			want := call{"join", o.Name, o.Tags[TagRPCAddr], o.Name != "n3"}
			testutil.Eventually(t, fmt.Sprintf("%s's handler to get %+v", self, want), 20*time.Second, func() bool { return hs[i].has(want) })
		}
		if got := hs[i].about(self); len(got) != 0 {
			t.Errorf("%s's handler was called about itself: %v", self, got)
		}
		// Tags propagate.
		for _, mem := range m.Members() {
			wantVoter := mem.Name != "n3"
			if mem.RPCAddr == "" || mem.Voter != wantVoter || mem.Tags[TagRPCAddr] != mem.RPCAddr {
				t.Errorf("%s sees %s with tags %v (voter %v)", self, mem.Name, mem.Tags, mem.Voter)
			}
		}
	}
	if ms[0].LocalMember().Addr != ms[0].Addr() {
		t.Errorf("LocalMember().Addr %s != Addr() %s", ms[0].LocalMember().Addr, ms[0].Addr())
	}
}

func TestLeaveIsHandedToHandler(t *testing.T) {
	ms, hs := cluster(t)
	if err := ms[2].Leave(); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		testutil.Eventually(t, fmt.Sprintf("n%d's handler to get Leave(n3)", i+1), 20*time.Second, func() bool { return hs[i].has(call{op: "leave", id: "n3"}) })
	}
	testutil.Eventually(t, "n1 to see n3 as left", 10*time.Second, func() bool {
		for _, m := range ms[0].Members() {
			if m.Name == "n3" {
				return m.Status == StatusLeft
			}
		}
		return false
	})
	if err := ms[2].Leave(); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close = %v, want ErrClosed", err)
	}
	if err := ms[2].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFailedMemberIsReapedToLeave(t *testing.T) {
	ms, hs := cluster(t)
	ms[2].Close() // no Leave: a crash, as far as the others can tell
	testutil.Eventually(t, "n1 to see n3 failed or reaped", 30*time.Second, func() bool {
		for _, m := range ms[0].Members() {
			if m.Name == "n3" {
				return m.Status == StatusFailed
			}
		}
		return true // already reaped
	})
	// Failure alone is not a Leave; the reap after ReconnectTimeout is.
	testutil.Eventually(t, "n1's handler to get Leave(n3) after the reap", 30*time.Second, func() bool { return hs[0].has(call{op: "leave", id: "n3"}) })
	testutil.Eventually(t, "n3 to be reaped from n1's members", 10*time.Second, func() bool {
		for _, m := range ms[0].Members() {
			if m.Name == "n3" {
				return false
			}
		}
		return true
	})
}

func TestNodeWithoutTheKeyStaysOutside(t *testing.T) {
	h1, h2 := &recorder{}, &recorder{}
	m1 := start(t, testConfig(t, "n1", keyA), h1)
	m2 := start(t, testConfig(t, "n2", keyA, m1.Addr()), h2)
	testutil.Eventually(t, "the keyed pair to form", 20*time.Second, func() bool { return alive(m1) == 2 && alive(m2) == 2 })

	for _, tc := range []struct {
		name string
		key  []byte
	}{{"wrong-key", keyB}, {"no-key", nil}} {
		ih := &recorder{}
		_, err := New(testConfig(t, tc.name, tc.key, m1.Addr(), m2.Addr()), ih)
		if !errors.Is(err, ErrJoin) {
			t.Fatalf("%s: New joining the cluster = %v, want ErrJoin", tc.name, err)
		}
		// Started alone, then asked to join: same.
		in := start(t, testConfig(t, tc.name, tc.key), ih)
		if _, err := in.Join(m1.Addr()); !errors.Is(err, ErrJoin) {
			t.Fatalf("%s: Join = %v, want ErrJoin", tc.name, err)
		}
		if n := len(in.Members()); n != 1 {
			t.Errorf("%s sees %d members, want only itself", tc.name, n)
		}
		if calls := ih.snapshot(); len(calls) != 0 {
			t.Errorf("%s's handler was called: %v", tc.name, calls)
		}
	}
	// A legitimate join afterwards is seen; by then the intruders would have been too.
	m3 := start(t, testConfig(t, "n3", keyA, m2.Addr()), &recorder{})
	testutil.Eventually(t, "n1's handler to see n3", 20*time.Second, func() bool { return h1.has(call{"join", "n3", m3.LocalMember().RPCAddr, false}) })
	for _, m := range []*Membership{m1, m2} {
		if n := len(m.Members()); n != 3 {
			t.Errorf("%s has %d members, want 3: %v", m.LocalMember().Name, n, m.Members())
		}
	}
	for _, h := range []*recorder{h1, h2} {
		for _, c := range h.snapshot() {
			if c.id == "wrong-key" || c.id == "no-key" {
				t.Errorf("handler called about an intruder: %+v", c)
			}
		}
	}
}

func TestReconcile(t *testing.T) {
	ms, hs := cluster(t)
	testutil.Eventually(t, "initial joins", 20*time.Second, func() bool { return len(hs[0].snapshot()) >= 2 })
	before := len(hs[0].snapshot())
	if err := ms[0].Reconcile(); err != nil {
		t.Fatal(err)
	}
	got := hs[0].snapshot()[before:]
	slices.SortFunc(got, func(a, b call) int { return strings.Compare(a.id, b.id) })
	want := []call{
		{"join", "n2", ms[1].LocalMember().RPCAddr, true},
		{"join", "n3", ms[2].LocalMember().RPCAddr, false},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Reconcile calls %+v, want %+v", got, want)
	}

	ms[2].Leave()
	ms[2].Close()
	testutil.Eventually(t, "n1 to see n3 left", 20*time.Second, func() bool { return hs[0].has(call{op: "leave", id: "n3"}) })
	before = len(hs[0].snapshot())
	hs[0].mu.Lock()
	hs[0].err = errors.New("boom")
	hs[0].mu.Unlock()
	err := ms[0].Reconcile()
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Reconcile with a failing handler = %v", err)
	}
	got = hs[0].snapshot()[before:]
	if !slices.Contains(got, call{op: "leave", id: "n3"}) || !slices.Contains(got, call{"join", "n2", ms[1].LocalMember().RPCAddr, true}) {
		t.Fatalf("Reconcile after n3 left: %+v", got)
	}
	ms[0].Close()
	if err := ms[0].Reconcile(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reconcile after Close = %v", err)
	}
}

// notLeader mimics replication's *NotLeaderError.
type notLeader struct{}

func (notLeader) Error() string   { return "not the leader" }
func (notLeader) NotLeader() bool { return true }

// levelHandler fails every call with err.
type levelHandler struct{ err error }

func (h levelHandler) Join(string, string, bool) error { return h.err }
func (h levelHandler) Leave(string) error              { return h.err }

func TestHandlerErrorLogLevels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		level string
	}{
		{"not leader", fmt.Errorf("wrapped: %w", notLeader{}), "[DEBUG]"},
		{"other", errors.New("disk on fire"), "[ERROR]"},
	} {
		var buf testutil.SyncBuffer
		cfg := testConfig(t, "n1", keyA)
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &buf})
		m1 := start(t, cfg, levelHandler{tc.err})
		start(t, testConfig(t, "n2", keyA, m1.Addr()), &recorder{})
		testutil.Eventually(t, "the handler error to be logged", 20*time.Second, func() bool { return strings.Contains(buf.String(), tc.err.Error()) })
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.Contains(line, tc.err.Error()) && !strings.Contains(line, tc.level) {
				t.Errorf("%s: logged as %q, want level %s", tc.name, line, tc.level)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(testConfig(t, "n1", keyA), nil); !errors.Is(err, ErrNilHandler) {
		t.Errorf("nil handler: %v", err)
	}
	if _, err := New(Config{}, &recorder{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty config: %v", err)
	}
	// Nobody listens there.
	cfg := testConfig(t, "n1", keyA, "127.0.0.1:1")
	if _, err := New(cfg, &recorder{}); !errors.Is(err, ErrJoin) {
		t.Errorf("unreachable join address: %v", err)
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{StatusNone: "none", StatusAlive: "alive", StatusLeaving: "leaving", StatusLeft: "left", StatusFailed: "failed"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

// A node replaced at the same RPC address under a new name before gossip
// noticed that the old one died: neither is handed to the handler while
// both look alive (it would swap one out for the other and back); once the
// old one is failed, the periodic reconcile hands the new one over.
func TestReplacedAtSameAddress(t *testing.T) {
	h1 := &recorder{}
	c1 := testConfig(t, "n1", keyA)
	c1.ReconcileInterval = 200 * time.Millisecond
	m1 := start(t, c1, h1)
	old := testConfig(t, "old", keyA, m1.Addr())
	mOld := start(t, old, &recorder{})
	testutil.Eventually(t, "n1 to see old", 20*time.Second, func() bool { return h1.has(call{"join", "old", old.Tags[TagRPCAddr], true}) })

	// Dies without leaving; its replacement comes up at once with the
	// same RPC address.
	if err := mOld.serf.Shutdown(); err != nil {
		t.Fatal(err)
	}
	repl := testConfig(t, "replacement", keyA, m1.Addr())
	repl.Tags[TagRPCAddr] = old.Tags[TagRPCAddr]
	start(t, repl, &recorder{})
	want := call{"join", "replacement", repl.Tags[TagRPCAddr], true}
	testutil.Eventually(t, "n1's handler to get the replacement", 30*time.Second, func() bool { return h1.has(want) })
	// A few more reconciles, run here rather than waited for.
	for range 3 {
		if err := m1.Reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	calls := h1.snapshot()
	first := slices.Index(calls, want)
	for _, c := range calls[first:] {
		if c.op == "join" && c.id == "old" {
			t.Errorf("old handed to Join after its replacement: %v", calls[first:])
			break
		}
	}
	for _, m := range m1.Members() {
		if m.Name == "old" && m.Status == StatusAlive {
			t.Errorf("old is still alive when its replacement was joined")
		}
	}
}

// A join that reaches only this node is no join: a list of names (a
// Kubernetes StatefulSet's PROGLOG_JOIN) holds the node's own, which may
// resolve while the others' do not yet. It used to count as joined, so the
// agent stopped retrying and the node stayed alone (found on a real
// Kubernetes node, //k8s/node:node_test).
func TestJoiningOnlyItselfFails(t *testing.T) {
	m1 := start(t, testConfig(t, "n1", keyA), &recorder{})
	if n, err := m1.Join(m1.Addr()); !errors.Is(err, ErrJoin) {
		t.Fatalf("Join(own address) = %d, %v; want ErrJoin", n, err)
	}
	m2 := start(t, testConfig(t, "n2", keyA), &recorder{})
	if n, err := m2.Join(m2.Addr(), m1.Addr()); err != nil || n != 2 {
		t.Fatalf("Join(own and another's address) = %d, %v; want 2, nil", n, err)
	}
}
