package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/seglog"
)

// gate holds back whoever calls wait until it is opened.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate  { return &gate{ch: make(chan struct{})} }
func (g *gate) wait() { <-g.ch }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// dropSnapshots makes stopped node n start again without its snapshots:
// its state machine starts empty and replays its Raft log (none of these
// tests' logs is compacted), so held back it lags behind what was
// acknowledged — as after a crash that came before any snapshot.
func dropSnapshots(t *testing.T, n *node) {
	t.Helper()
	dir := filepath.Join(n.dir, "raft", "snapshots")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// After every node restarts, state machines behind what was acknowledged
// (replaying their Raft logs from the start), a read of an acknowledged offset is never answered
// "past the end": while the state machines are held back it waits, then
// returns the record once they apply.
func TestReadsAfterFullRestartNeverPastTheEnd(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) { c.SnapshotInterval = time.Hour })
	ctx := ctxT(t)
	leader := leaderOf(t, nodes)
	appendRecs(t, ctx, leader, 20)
	for _, n := range nodes {
		waitData(t, n, 20)
	}
	for _, n := range nodes {
		n.stop()
	}
	for _, n := range nodes {
		dropSnapshots(t, n)
	}
	held := newGate()
	defer held.open() // before the nodes stop
	for _, n := range nodes {
		mod := n.mod
		n.mod = func(c *Config) { mod(c); c.beforeApply = held.wait }
		n.start()
	}

	// Held back: no node may call offset 10 past its end (no record).
	for _, n := range nodes {
		rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := n.Read(rctx, 10, ReadFollower)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrNotCaughtUp) {
			t.Fatalf("%s: follower read of acknowledged offset 10 while its state machine is held back: %v; want it to wait", n.id, err)
		}
	}

	held.open()
	leader = leaderOf(t, nodes)
	for _, n := range nodes {
		b, err := n.Read(ctx, 10, ReadFollower)
		if err != nil || !bytes.Equal(b, rec(10)) {
			t.Fatalf("%s: follower read of offset 10: %q, %v", n.id, b, err)
		}
		var oor *seglog.OffsetOutOfRangeError
		if _, err := n.Read(ctx, 20, ReadFollower); !errors.As(err, &oor) || oor.Next != 20 {
			t.Fatalf("%s: follower read past the end once caught up: %v", n.id, err)
		}
	}
	if b, err := leader.Read(ctx, 19, ReadLinearizable); err != nil || !bytes.Equal(b, rec(19)) {
		t.Fatalf("linearizable read of offset 19: %q, %v", b, err)
	}
}

// A node that hears no leader answers a read past its end with
// ErrNotCaughtUp once Config.ApplyTimeout has passed (ctx without a
// deadline), not "past the end".
func TestReadPastTheEndWithoutALeader(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) { c.ApplyTimeout = 200 * time.Millisecond })
	ctx := ctxT(t)
	if _, err := leaderOf(t, nodes).Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitData(t, n, 1)
	}
	alone := nodes[2]
	for _, n := range nodes[:2] {
		n.stop()
	}
	alone.restart()
	if _, err := alone.Read(context.Background(), 1, ReadFollower); !errors.Is(err, ErrNotCaughtUp) {
		t.Fatalf("read past the end without a leader: %v, want ErrNotCaughtUp", err)
	}
	if b, err := alone.Read(context.Background(), 0, ReadFollower); err != nil || !bytes.Equal(b, rec(0)) {
		t.Fatalf("read of a record it holds: %q, %v", b, err)
	}
}

// A read past the end on a node that knows no leader yet is answered once
// a leader tells it the commit index and its state machine applies up to
// it: the apply wakes the read, Raft's commit index is not polled
// (catchUpPoll of an hour).
//
// The replayed records' apply wakes it, but if the term changed between
// the commit index it applied up to and the read's check (an election
// more, as on a loaded machine), that commit index is of an earlier term,
// and the new leader's commits cover its no-op only, which no apply
// reports (the poll's case, see catchUpPoll). So the test appends records
// in the current term until the read returns: each one's apply wakes it.
func TestReadWaitingForALeaderWakesOnApply(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) { c.SnapshotInterval = time.Hour; c.catchUpPoll = time.Hour })
	ctx := ctxT(t)
	leader := leaderOf(t, nodes)
	appendRecs(t, ctx, leader, 20)
	for _, n := range nodes {
		waitData(t, n, 20)
	}
	for _, n := range nodes {
		n.stop()
		dropSnapshots(t, n)
	}
	alone := nodes[0]
	alone.start()
	got := make(chan error, 1)
	go func() {
		b, err := alone.Read(ctx, 10, ReadFollower)
		if err == nil && !bytes.Equal(b, rec(10)) {
			err = fmt.Errorf("offset 10 holds %q", b)
		}
		got <- err
	}()
	for _, n := range nodes[1:] {
		n.start()
	}
	waitData(t, alone, 20)
	for i := 20; ; i++ {
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("read of offset 10 waiting for a leader: %v", err)
			}
			return
		default:
		}
		off, err := leaderOf(t, nodes).Append(ctx, rec(i))
		switch {
		case errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeadershipLost):
			continue // an election meanwhile: append in the new term
		case err != nil:
			t.Fatal(err)
		}
		testutil.Eventually(t, fmt.Sprintf("%s to apply offset %d", alone.id, off), 20*time.Second, func() bool { return alone.NextOffset() > off })
	}
}

// A retention command writes no record, so the data log's last envelope
// does not name it. After a restart that takes the latest snapshot's
// entries as applied without handing them to the FSM again
// (NoSnapshotRestoreOnStart), reads must not wait for the FSM to apply a
// retention command the snapshot covers: Raft never hands it over, and a
// read past the end (either consistency) used to wait until its deadline,
// until the next append.
func TestReadsAfterRestartDoNotWaitForSnapshottedRetention(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) {
		c.SnapshotInterval = time.Hour
		c.SnapshotThreshold = 1 << 20
		c.TrailingLogs = 1 << 20 // the retention command stays in the Raft log
	})
	waitLeader(t, n)
	ctx := ctxT(t)
	appendRecs(t, ctx, n, 10)
	// The newest command: retention to offset 1.
	if err := await(ctx, n.raft.Apply(encodeRetain(1), time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n.restart()
	waitLeader(t, n)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, c := range []Consistency{ReadFollower, ReadLinearizable} {
		var oor *seglog.OffsetOutOfRangeError
		if _, err := n.Read(rctx, 10, c); !errors.As(err, &oor) || oor.Lowest != 1 || oor.Next != 10 {
			t.Fatalf("consistency %d: read past the end after restart: %v, want out of range [1, 10)", c, err)
		}
		if b, err := n.Read(rctx, 9, c); err != nil || !bytes.Equal(b, rec(9)) {
			t.Fatalf("consistency %d: offset 9: %q, %v", c, b, err)
		}
	}
}
