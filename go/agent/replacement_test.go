package agent_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TestLeavingNodeReplaced: a 3-node cluster (the default topic on all
// three) and a 4th node holding no replica; n3 leaves for good. After the
// replacement delay the metadata leader adds a replica on n4, n4 catches
// up and reports it to the metadata leader over log.v1.Internal (n4 does
// not lead the metadata group, so it cannot propose the report itself),
// and the controller then drops n3's replica and n3. Without the
// node-to-node report the replacement stalls with n4 being added for ever.
func TestLeavingNodeReplaced(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	config := func(name string) agent.Config {
		c := e.config(name)
		c.ReplicaReplacementDelay = 200 * time.Millisecond
		agent.SetControllerInterval(&c, 50*time.Millisecond)
		return c
	}
	c1 := config("n1")
	c1.Bootstrap = true
	n1 := e.start(c1)
	n1.waitReady()
	nodes := []*node{n1}
	join := func(name string) *node {
		c := config(name)
		c.StartJoinAddrs = []string{n1.a.SerfAddr()}
		n := e.start(c)
		nodes = append(nodes, n)
		return n
	}
	replicas := func(n *node) (reps, adding []string, nodeIDs []string) {
		n.a.Metadata().FSM().View(func(s *metadata.State) {
			if t := s.Topics[commitlog.DefaultTopic]; t != nil {
				reps = slices.Clone(t.Partitions[0].Replicas)
				adding = slices.Clone(t.Partitions[0].Adding)
			}
			for id := range s.Nodes {
				nodeIDs = append(nodeIDs, id)
			}
		})
		slices.Sort(reps)
		slices.Sort(nodeIDs)
		return reps, adding, nodeIDs
	}
	n2, n3 := join("n2"), join("n3")
	testutil.Eventually(t, "the default topic on n1, n2 and n3", 30*time.Second, func() bool {
		reps, _, _ := replicas(n1)
		return slices.Equal(reps, []string{"n1", "n2", "n3"})
	})
	n4 := join("n4")
	testutil.Eventually(t, "n4 registered", 30*time.Second, func() bool { in, _ := n1.registered("n4"); return in })
	for _, n := range nodes {
		n.waitReady()
	}
	if n4.a.Metadata().IsLeader() {
		t.Fatal("n4 leads the metadata group: the test needs the replica's node not to")
	}
	// Ten records through the default topic's leader, wherever it is
	// (leadership may move on a loaded machine; a retried record may be
	// written twice, which the comparison below allows).
	for i := range 10 {
		testutil.Eventually(t, fmt.Sprintf("record %d to be written", i), 30*time.Second, func() bool {
			for _, n := range nodes[:3] {
				if n.a.IsLeader() {
					_, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value(i)}})
					return err == nil
				}
			}
			return false
		})
	}

	n3.stop()
	testutil.Eventually(t, "n3's replica replaced by n4's and n3 removed", 60*time.Second, func() bool {
		reps, adding, ids := replicas(n1)
		return slices.Equal(reps, []string{"n1", "n2", "n4"}) && len(adding) == 0 && !slices.Contains(ids, "n3")
	})
	// n4 holds the records written before it was added.
	n4.waitReady()
	want := n1.readAll(ctx, 10)
	sameRecords(t, ctx, want, n2, n4)
	// The partition's leader took n3 out of the group.
	testutil.Eventually(t, "the group to be n1, n2, n4", 30*time.Second, func() bool {
		for _, n := range []*node{n1, n2, n4} {
			if r := n.a.Replica(); r != nil && r.IsLeader() {
				s := n.servers()
				return len(s) == 3 && s["n1"] && s["n2"] && s["n4"]
			}
		}
		return false
	})
}
