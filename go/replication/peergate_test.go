package replication

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
)

// lineCounter counts the log lines holding a phrase.
type lineCounter struct {
	phrase []byte
	n      atomic.Int64
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, c.phrase)))
	return len(p), nil
}

// countingLogs makes every node log to the test and to counters of the
// phrases given.
func countingLogs(t *testing.T, phrases ...string) (func(*Config), []*lineCounter) {
	counters := make([]*lineCounter, len(phrases))
	ws := []io.Writer{testutil.LogWriter(t)}
	for i, p := range phrases {
		counters[i] = &lineCounter{phrase: []byte(p)}
		ws = append(ws, counters[i])
	}
	out := io.MultiWriter(ws...)
	return func(c *Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: c.LocalID, Level: hclog.Warn, Output: out})
	}, counters
}

// failedHeartbeats counts the leader's failed heartbeats to peer.
func failedHeartbeats(l *Log, peer string) *atomic.Int64 {
	var n atomic.Int64
	l.raft.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if h, ok := o.Data.(raft.FailedHeartbeatObservation); ok && h.PeerID == raft.ServerID(peer) {
			n.Add(1)
		}
		return false
	}))
	return &n
}

// A follower that is down for many heartbeat rounds while the leader
// appends costs the leader's replication at most a couple of failed
// append RPCs, so hashicorp/raft's backoff before its next one (10ms
// doubling per failure from the third) stays at its minimum and the
// follower, once back, gets the entries as soon as a heartbeat reaches it.
// Without the PeerGate every retry fails and backs off: about eight failed
// RPCs in the dozen heartbeat rounds waited here, and a second-long wait
// after the restart.
func TestRestartedFollowerCatchesUpAtOnce(t *testing.T) {
	logs, counts := countingLogs(t, "failed to appendEntries to")
	failedAppends := counts[0]
	nodes := newClusterOf(t, logs, logs, logs)
	leader := leaderOf(t, nodes)
	var down *node
	for _, n := range nodes {
		if n != leader {
			down = n
		}
	}
	ctx := ctxT(t)
	appendRecs(t, ctx, leader, 5)
	sameData(t, leader, down, 5)

	heartbeats := failedHeartbeats(leader.Log, down.id)
	before := failedAppends.n.Load()
	down.stop()
	for i := 5; i < 10; i++ {
		if _, err := leader.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Heartbeat rounds, not time: each failed heartbeat is one round.
	const rounds = 12
	testutil.Eventually(t, "the leader to fail heartbeats to the stopped follower", 30*time.Second,
		func() bool { return heartbeats.Load() >= rounds })
	if n := failedAppends.n.Load() - before; n > 2 {
		t.Fatalf("the leader's raft saw %d failed append RPCs to the stopped follower in %d heartbeat rounds, want at most 2", n, rounds)
	}
	down.start()
	sameData(t, leader, down, 10)
	if n := failedAppends.n.Load() - before; n > 2 {
		t.Fatalf("the leader's raft saw %d failed append RPCs to the restarted follower, want at most 2", n)
	}
}

// heldFor reports whether g holds a request for target.
func heldFor(g *PeerGate, target string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.down[raft.ServerAddress(target)]
	return p != nil && p.waiter != nil
}

// A leader holding a request for a follower that is down closes without
// Raft's shutdown waiting for it (raftutil.Shutdown would log that it gave
// up after raftutil.ShutdownTimeout).
func TestCloseReleasesARequestHeldForADownPeer(t *testing.T) {
	logs, counts := countingLogs(t, "raft did not stop in time")
	nodes := newClusterOf(t, logs, logs, logs)
	leader := leaderOf(t, nodes)
	var down *node
	for _, n := range nodes {
		if n != leader {
			down = n
		}
	}
	addr := down.addr
	down.stop()
	if _, err := leader.Append(ctxT(t), rec(0)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the leader's gate to hold a request for the stopped follower", 30*time.Second,
		func() bool { return heldFor(leader.gate, addr) })
	leader.stop()
	if n := counts[0].n.Load(); n != 0 {
		t.Fatalf("Close waited for Raft's shutdown to time out (%d times)", n)
	}
}

// The gate lets requests to a peer not known down through, holds them
// while the peer is down, one per peer (a newer one releases the older
// with errReplaced), and releases them when the peer answers, when it is
// forgotten (it left the group) or on Close.
func TestPeerGate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewPeerGate(raft.NewNetworkTransport(nopStream{ln}, 1, time.Second, io.Discard))
	const peer = raft.ServerAddress("peer:1")
	if err := g.wait(peer); err != nil {
		t.Fatalf("wait on a peer not known down: %v", err)
	}
	g.note(peer, false)
	g.note(peer, false) // still one entry
	if len(g.down) != 1 {
		t.Fatalf("%d peers noted down, want 1", len(g.down))
	}

	// waitHeld waits in a goroutine until g holds it.
	waitHeld := func() <-chan error {
		errc := make(chan error, 1)
		g.mu.Lock()
		prev := g.down[peer].waiter
		g.mu.Unlock()
		go func() { errc <- g.wait(peer) }()
		testutil.Eventually(t, "the request to be held", 10*time.Second, func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.down[peer].waiter != prev
		})
		return errc
	}
	older := waitHeld()
	newer := waitHeld()
	if err := <-older; !errors.Is(err, errReplaced) {
		t.Fatalf("older request: %v, want errReplaced", err)
	}
	g.note(peer, true)
	if err := <-newer; err != nil {
		t.Fatalf("request when the peer answered: %v", err)
	}
	if len(g.down) != 0 {
		t.Fatalf("%d peers noted down after the peer answered, want 0", len(g.down))
	}

	g.note(peer, false)
	forgotten := waitHeld()
	g.Forget(peer)
	if err := <-forgotten; !errors.Is(err, errForgotten) {
		t.Fatalf("request to a peer forgotten: %v, want errForgotten", err)
	}
	if len(g.down) != 0 {
		t.Fatalf("%d peers noted down after Forget, want 0", len(g.down))
	}

	g.note(peer, false)
	held := waitHeld()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Close() }()
	if err := <-held; !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("request at Close: %v, want raft.ErrTransportShutdown", err)
	}
	wg.Wait()
	if err := g.wait(peer); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("request to a down peer after Close: %v, want raft.ErrTransportShutdown", err)
	}
	g.note(peer, true)
	if err := g.wait("other:1"); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Fatalf("request after Close: %v", err)
	}
}

// Leave releases the request the leader's gate holds for the server it
// removes, which Raft no longer replicates to.
func TestLeaveReleasesTheRequestHeldForTheServer(t *testing.T) {
	nodes := cluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	var down *node
	for _, n := range nodes {
		if n != leader {
			down = n
		}
	}
	addr := down.addr
	down.stop()
	if _, err := leader.Append(ctxT(t), rec(0)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the leader's gate to hold a request for the stopped follower", 30*time.Second,
		func() bool { return heldFor(leader.gate, addr) })
	if err := leader.Leave(down.id); err != nil {
		t.Fatal(err)
	}
	if heldFor(leader.gate, addr) {
		t.Fatal("the gate still holds a request for the server removed")
	}
}
