package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
)

// fakeClock is a clock the test moves forward.
type fakeClock struct{ offset atomic.Int64 }

var clockBase = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return clockBase.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// transfer is one leadership transfer a balancing loop made.
type transfer struct {
	from, group, to string
	err             error
}

// balancing records the balancing loops' passes and transfers per node.
type balancing struct {
	mu          sync.Mutex
	passes      map[string]int
	inflight    map[string]int
	maxInflight int
	transfers   []transfer
}

func newBalancing() *balancing {
	return &balancing{passes: map[string]int{}, inflight: map[string]int{}}
}

// tweak turns balancing on with delay and clk, recording into bl.
func (bl *balancing) tweak(delay time.Duration, clk *fakeClock) func(*Config) {
	return func(c *Config) {
		id := c.NodeID
		c.PreferredLeaderDelay = delay
		c.clock = clk.now
		c.onPass = func() {
			bl.mu.Lock()
			bl.passes[id]++
			bl.mu.Unlock()
		}
		c.onTransfer = func(k key, to string) func(error) {
			bl.mu.Lock()
			bl.inflight[id]++
			bl.maxInflight = max(bl.maxInflight, bl.inflight[id])
			bl.mu.Unlock()
			return func(err error) {
				bl.mu.Lock()
				bl.inflight[id]--
				bl.transfers = append(bl.transfers, transfer{id, k.String(), to, err})
				bl.mu.Unlock()
			}
		}
	}
}

func (bl *balancing) passesOf(id string) int {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	return bl.passes[id]
}

// to returns the transfers made to node to.
func (bl *balancing) to(to string) []transfer {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	var out []transfer
	for _, tr := range bl.transfers {
		if tr.to == to {
			out = append(out, tr)
		}
	}
	return out
}

// preferredTopic creates topic "t" of 3 partitions whose preferred leaders
// are bs[0], bs[1], bs[2].
func preferredTopic(e *env, bs []*Broker) {
	ids := func(i, j, k int) []string { return []string{bs[i].cfg.NodeID, bs[j].cfg.NodeID, bs[k].cfg.NodeID} }
	e.meta.createRaw(e.t, "t", 3, ids(0, 1, 2), ids(1, 2, 0), ids(2, 0, 1))
}

// allPreferred reports whether partition p of "t" is led by bs[p], for
// every p.
func allPreferred(bs []*Broker) bool {
	for p, b := range bs {
		if l := b.Replica("t", p); l == nil || !l.IsLeader() {
			return false
		}
	}
	return true
}

// TestPreferredLeadersReturnAfterRestart: every partition ends up led by
// its preferred replica; a node that stops loses its partition's
// leadership, is not handed it while down nor at once when back, and
// gets it again once it has been back for PreferredLeaderDelay. Each
// node makes one transfer at a time.
func TestPreferredLeadersReturnAfterRestart(t *testing.T) {
	const delay = time.Hour
	e := newEnv(t)
	clk, bl := &fakeClock{}, newBalancing()
	e.tweak = bl.tweak(delay, clk)
	bs := []*Broker{e.start("n0"), e.start("n1"), e.start("n2")}
	preferredTopic(e, bs)
	testutil.Eventually(t, "every partition led by its preferred replica", 30*time.Second, func() bool {
		clk.advance(delay)
		return allPreferred(bs)
	})
	appendTo(t, "t", 1, 0, 5, bs...)

	// n1 stops: t/1 fails over, and is not handed back while n1 is down
	// (n1 does not answer heartbeats), however long that is; a transfer
	// to it started before its leader noticed fails harmlessly.
	before := len(bl.to("n1"))
	if err := bs[1].Close(); err != nil {
		t.Fatal(err)
	}
	lb := leader(t, "t", 1, bs[0], bs[2])
	appendTo(t, "t", 1, 5, 5, bs[0], bs[2])
	from := bl.passesOf(lb.cfg.NodeID)
	testutil.Eventually(t, "balancing passes while n1 is down", 30*time.Second, func() bool {
		clk.advance(delay)
		return bl.passesOf(lb.cfg.NodeID) >= from+3
	})
	for _, tr := range bl.to("n1")[before:] {
		if tr.err == nil {
			t.Fatalf("transfer %+v to a stopped node succeeded", tr)
		}
	}
	down := len(bl.to("n1"))
	appendTo(t, "t", 1, 10, 5, bs[0], bs[2]) // still served

	// n1 is back and catches up; without time passing it is not handed
	// leadership.
	bs[1] = e.restart("n1")
	holds(t, bs[1], "t", 1, 0, 15)
	lb = leader(t, "t", 1, bs...)
	from = bl.passesOf(lb.cfg.NodeID)
	testutil.Eventually(t, "balancing passes with n1 back", 30*time.Second, func() bool {
		return bl.passesOf(lb.cfg.NodeID) >= from+3
	})
	if lb == bs[1] {
		t.Fatalf("n1 leads t/1 again before PreferredLeaderDelay passed")
	}
	for _, tr := range bl.to("n1")[down:] {
		t.Fatalf("transfer %+v before PreferredLeaderDelay passed", tr)
	}

	// Once the delay passed, every partition is led by its preferred
	// replica again.
	testutil.Eventually(t, "every partition led by its preferred replica after the restart", 30*time.Second, func() bool {
		clk.advance(delay)
		return allPreferred(bs)
	})
	var created uint64
	e.meta.View(func(s *metadata.State) { created = s.Topics["t"].Created })
	moved := false
	for _, tr := range bl.to("n1")[down:] {
		moved = moved || (tr.group == GroupID("t", created, 1) && tr.from == lb.cfg.NodeID && tr.err == nil)
	}
	if !moved {
		t.Fatalf("no transfer of t/1 from %s to n1: %+v", lb.cfg.NodeID, bl.to("n1"))
	}
	bl.mu.Lock()
	defer bl.mu.Unlock()
	if bl.maxInflight != 1 {
		t.Fatalf("at most %d transfers in flight on a node, want 1", bl.maxInflight)
	}
}

// TestPreferredLeaderDelayZero: with PreferredLeaderDelay 0 no balancing
// runs, and a partition led by another replica than its preferred one
// stays so.
func TestPreferredLeaderDelayZero(t *testing.T) {
	e := newEnv(t)
	clk, bl := &fakeClock{}, newBalancing()
	e.tweak = bl.tweak(0, clk)
	bs := []*Broker{e.start("n0"), e.start("n1"), e.start("n2")}
	preferredTopic(e, bs)
	lb := leader(t, "t", 0, bs...)
	if lb == bs[0] {
		if err := lb.Replica("t", 0).TransferLeadership("n1", "n1"); err != nil {
			t.Fatal(err)
		}
	}
	lb = leader(t, "t", 0, bs[1], bs[2])
	// The node leading t/0 reports itself in the metadata: its loops ran.
	testutil.Eventually(t, "the leader of t/0 in the metadata", 30*time.Second, func() bool {
		var hint string
		e.meta.View(func(s *metadata.State) { hint = s.Topics["t"].Partitions[0].Leader })
		clk.advance(time.Hour)
		return hint == lb.cfg.NodeID
	})
	if !lb.Replica("t", 0).IsLeader() {
		t.Fatalf("%s no longer leads t/0", lb.cfg.NodeID)
	}
	bl.mu.Lock()
	defer bl.mu.Unlock()
	if n := fmt.Sprint(bl.passes); len(bl.passes) != 0 || len(bl.transfers) != 0 {
		t.Fatalf("balancing passes %s and transfers %+v with PreferredLeaderDelay 0", n, bl.transfers)
	}
}
