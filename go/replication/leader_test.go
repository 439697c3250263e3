package replication

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/producer"
)

// leaderLog records what Config.OnLeaderChange reports.
type leaderLog struct {
	mu      sync.Mutex
	reports [][2]string
}

func (l *leaderLog) report(id, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, [2]string{id, addr})
}

func (l *leaderLog) last() (id, addr string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reports) == 0 {
		return "", "", 0
	}
	r := l.reports[len(l.reports)-1]
	return r[0], r[1], len(l.reports)
}

func (l *leaderLog) all() [][2]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][2]string(nil), l.reports...)
}

func TestOnLeaderChange(t *testing.T) {
	logs := map[string]*leaderLog{}
	var mu sync.Mutex
	nodes := cluster(t, 3, func(c *Config) {
		ll := &leaderLog{}
		mu.Lock()
		logs[c.LocalID] = ll
		mu.Unlock()
		c.OnLeaderChange = ll.report
	})
	mu.Lock()
	defer mu.Unlock()
	old := nodes[0]
	for _, n := range nodes {
		testutil.Eventually(t, n.id+" to report the leader", 20*time.Second, func() bool {
			id, addr, _ := logs[n.id].last()
			return id == old.id && addr == old.addr
		})
		// The first report is the first known leader, never "no leader",
		// and a report is made only on a change.
		all := logs[n.id].all()
		if all[0][0] == "" {
			t.Errorf("%s: first report is an unknown leader: %v", n.id, all)
		}
		for i := 1; i < len(all); i++ {
			if all[i] == all[i-1] {
				t.Errorf("%s: repeated report: %v", n.id, all)
			}
		}
	}
	old.stop()
	nl := leaderOf(t, nodes[1:])
	for _, n := range nodes[1:] {
		testutil.Eventually(t, n.id+" to report the new leader", 20*time.Second, func() bool {
			id, addr, _ := logs[n.id].last()
			return id == nl.id && addr == nl.addr
		})
	}
	// The stopped node reports nothing more.
	_, _, before := logs[old.id].last()
	if _, err := nl.Append(ctxT(t), rec(0)); err != nil {
		t.Fatal(err)
	}
	if _, _, after := logs[old.id].last(); after != before {
		t.Errorf("a closed node reported a leader change")
	}
}

func TestFailedReportsAStoppedStateMachine(t *testing.T) {
	n := newNode(t, "solo", true, nil)
	waitLeader(t, n)
	ctx := ctxT(t)
	if _, err := n.Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	if err := n.Failed(); err != nil {
		t.Fatalf("Failed() = %v on a working node", err)
	}
	// A command past the records' end (not the proposer's: it would never
	// make one) is divergence: the state machine stops.
	bad := encodeRecords(5, n.raft.CurrentTerm(), Producer{}, producer.Config{}, [][]byte{rec(1)})
	if err := await(ctx, n.raft.Apply(bad, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctx, rec(1)); !errors.Is(err, ErrFailed) || !errors.Is(err, ErrDiverged) {
		t.Fatalf("append after a diverged entry: %v", err)
	}
	if err := n.Failed(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Failed() = %v, want ErrFailed", err)
	}
}

// TestTransferLeadershipAndReachable: the leader hands leadership to the
// follower named; a follower cannot; a stopped follower is reported
// unreachable by the leader once a heartbeat to it failed, a transfer to it
// fails and leaves the leader in place, and it is reachable again once
// back.
func TestTransferLeadershipAndReachable(t *testing.T) {
	nodes := cluster(t, 3, nil)
	old := leaderOf(t, nodes)
	var to, other *node
	for _, n := range nodes {
		switch {
		case n == old:
		case to == nil:
			to = n
		default:
			other = n
		}
	}
	var nle *commitlog.NotLeaderError
	if err := to.TransferLeadership(other.id, other.addr); !errors.As(err, &nle) {
		t.Fatalf("TransferLeadership on a follower: %v, want *commitlog.NotLeaderError", err)
	}
	if err := old.TransferLeadership(to.id, to.addr); err != nil {
		t.Fatalf("TransferLeadership(%s): %v", to.id, err)
	}
	testutil.Eventually(t, to.id+" to lead", 20*time.Second, to.IsLeader)

	other.stop()
	testutil.Eventually(t, other.id+" unreachable from the leader", 20*time.Second, func() bool { return !to.Reachable(other.id) })
	if err := to.TransferLeadership(other.id, other.addr); err == nil {
		t.Fatalf("TransferLeadership to a stopped node succeeded")
	}
	if !to.IsLeader() || !to.Reachable(old.id) {
		t.Fatalf("after a failed transfer: %s leader %v, %s reachable %v", to.id, to.IsLeader(), old.id, to.Reachable(old.id))
	}
	other.restart()
	testutil.Eventually(t, other.id+" reachable again", 20*time.Second, func() bool { return to.Reachable(other.id) })
}
