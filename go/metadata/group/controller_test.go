package group

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/metadata"
)

// TestLeavingNodeReplaced drives the controller's clock: a node that comes
// back before ReplacementDelay keeps its replicas; one leaving for the
// delay gets a replacement added first, dropped only once the replacement
// reported caught up, and is then removed; a leaving node nothing can
// replace loses its replica after the delay, and a node joining later
// tops the partition up again.
func TestLeavingNodeReplaced(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.joinAll()
	n0, ctx := c.nodes[0], ctxT(t)
	n0.waitState("log on n0-n2", func(s *metadata.State) bool {
		return slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n2"}) && s.Nodes["n3"] != nil
	})

	// n1 leaves and comes back within the delay: nothing moves.
	if err := n0.Leave("n1"); err != nil {
		t.Fatal(err)
	}
	c.clock.Add(DefaultReplacementDelay / 2)
	c.join(c.nodes[1])
	c.clock.Add(DefaultReplacementDelay)
	n0.settle()
	if s := n0.view(); s.Nodes["n1"].Leaving || !slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n2"}) {
		t.Fatalf("after n1 came back: n1 %+v, log on %v", *s.Nodes["n1"], replicas(s, "log", 0))
	}

	// n2 leaves: nothing moves before the delay.
	if err := n0.Leave("n2"); err != nil {
		t.Fatal(err)
	}
	c.clock.Add(DefaultReplacementDelay - time.Second)
	n0.settle()
	if s := n0.view(); !s.Nodes["n2"].Leaving || !slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n2"}) {
		t.Fatalf("before the delay: n2 %+v, log on %v", *s.Nodes["n2"], replicas(s, "log", 0))
	}
	// At the delay: n3 is added right after n2, as adding.
	c.clock.Add(time.Second)
	n0.settle()
	s := n0.view()
	p := s.Topics["log"].Partitions[0]
	if !slices.Equal(p.Replicas, []string{"n0", "n1", "n2", "n3"}) || !slices.Equal(p.Adding, []string{"n3"}) {
		t.Fatalf("at the delay: %+v, want n3 added after n2 and adding", p)
	}
	// n2 stays until n3 caught up.
	n0.settle()
	if s := n0.view(); !slices.Equal(replicas(s, "log", 0), p.Replicas) || s.Nodes["n2"] == nil {
		t.Fatalf("before n3 caught up: log on %v, n2 %v", replicas(s, "log", 0), s.Nodes["n2"])
	}
	if err := n0.ReplicaReady(ctx, "log", 0, p.Epoch, "n3"); err != nil {
		t.Fatal(err)
	}
	n0.waitState("n2 dropped and removed", func(s *metadata.State) bool {
		return slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n3"}) && s.Nodes["n2"] == nil
	})

	// n3 leaves; no node can take its replica: dropped after the delay.
	if err := n0.Leave("n3"); err != nil {
		t.Fatal(err)
	}
	c.clock.Add(DefaultReplacementDelay)
	n0.settle()
	n0.waitState("n3 dropped and removed", func(s *metadata.State) bool {
		return slices.Equal(replicas(s, "log", 0), []string{"n0", "n1"}) && s.Nodes["n3"] == nil
	})
	// n2 joins again: a new node to the metadata, and log is topped up.
	c.join(c.nodes[2])
	n0.waitState("log topped up on n2", func(s *metadata.State) bool {
		return slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n2"}) && !s.Nodes["n2"].Leaving
	})
}

// TestLeadershipMoves: a replacement started by one leader is finished by
// the next one's controller, which does not create the default topic
// again.
func TestLeadershipMoves(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.joinAll()
	n0, n1, ctx := c.nodes[0], c.nodes[1], ctxT(t)
	s := n0.waitState("log on n0-n2", func(s *metadata.State) bool {
		return slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n2"}) && s.Nodes["n3"] != nil
	})
	created := s.Topics["log"].Created
	if err := n0.Leave("n2"); err != nil {
		t.Fatal(err)
	}
	c.clock.Add(DefaultReplacementDelay)
	n0.settle()
	p := n0.view().Topics["log"].Partitions[0]
	if !slices.Equal(p.Adding, []string{"n3"}) {
		t.Fatalf("replacement not started: %+v", p)
	}
	if err := n0.raft.LeadershipTransferToServer("n1", raft.ServerAddress(n1.port.Addr())).Error(); err != nil {
		t.Fatal(err)
	}
	if l := c.leader(); l != n1 {
		t.Fatalf("leader %s after the transfer, want n1", l.id)
	}
	if err := n0.ReplicaReady(ctx, "log", 0, p.Epoch, "n3"); err == nil {
		t.Fatal("ReplicaReady on the old leader succeeded")
	}
	if err := n1.ReplicaReady(ctx, "log", 0, p.Epoch, "n3"); err != nil {
		t.Fatal(err)
	}
	s = n1.waitState("n1's controller drops n2 and removes it", func(s *metadata.State) bool {
		return slices.Equal(replicas(s, "log", 0), []string{"n0", "n1", "n3"}) && s.Nodes["n2"] == nil
	})
	n1.settle()
	if got := n1.view().Topics["log"]; got.Created != created {
		t.Fatalf("default topic created at %d, now %d", created, got.Created)
	}
}

// TestRestartKeepsState: every node closed and opened again holds the
// same metadata, from its snapshot and the log after it, and the
// controller does not change it.
func TestRestartKeepsState(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.joinAll()
	n0, ctx := c.nodes[0], ctxT(t)
	n0.waitState("log on 3 nodes", func(s *metadata.State) bool { return len(replicas(s, "log", 0)) == 3 })
	create := func(name string) {
		if _, err := n0.CreateTopic(ctx, name, commitlogConfig(3, 2)); err != nil {
			t.Fatal(err)
		}
	}
	create("a")
	for _, nd := range c.nodes {
		nd.waitState("topic a", func(s *metadata.State) bool { return s.Topics["a"] != nil })
		if err := nd.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot %s: %v", nd.id, err)
		}
	}
	create("b") // after the snapshots: from the log
	want, _ := n0.view().Encode()
	for _, nd := range c.nodes {
		nd.waitState("the leader's state", func(s *metadata.State) bool { b, _ := s.Encode(); return string(b) == string(want) })
	}
	for _, nd := range slices.Backward(c.nodes) {
		if err := nd.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	l := c.leader()
	for _, nd := range c.nodes {
		nd.waitState("the state before the restart", func(s *metadata.State) bool { b, _ := s.Encode(); return string(b) == string(want) })
	}
	l.settle()
	if got, _ := l.view().Encode(); string(got) != string(want) {
		t.Fatalf("the controller changed the state after the restart:\n%s\n%s", want, got)
	}
}

// TestControllerOnlyOnLeader: a follower's controller proposes nothing
// (its tick is taken and nothing changes), and its proposals are refused.
func TestControllerOnlyOnLeader(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.joinAll()
	n1 := c.nodes[1]
	want := n1.waitState("log on 2 nodes", func(s *metadata.State) bool { return len(replicas(s, "log", 0)) == 2 })
	c.clock.Add(time.Hour)
	n1.settle()
	if _, err := n1.propose(context.Background(), metadata.Command{Op: metadata.OpDeleteTopic, Topic: "log"}); err == nil {
		t.Fatal("a follower proposed")
	}
	if got := n1.view(); got.Applied != want.Applied {
		t.Fatalf("state moved on an idle cluster: applied %d, was %d", got.Applied, want.Applied)
	}
}
