package agent_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TestACLRulesOverTheCluster: a subject the policy file denies producing
// to a topic may produce on every node once a rule is created through a
// follower's API (its NOT_LEADER followed to the metadata leader), is
// denied again on every node once the rule is deleted, and a node
// restarted with the rule in its metadata enforces it as soon as it
// starts, before it hears from the metadata leader.
func TestACLRulesOverTheCluster(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 3*time.Minute)
	nodes := cluster3(t, e)
	var leader, follower *node
	testutil.Eventually(t, "a metadata leader", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.Metadata().IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	if _, err := leader.a.Broker().CreateTopic(ctx, "T", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	nobody := map[*node]logv1.LogClient{}
	for _, n := range nodes {
		nobody[n] = logv1.NewLogClient(e.dial(n.a.Addr(), "nobody"))
	}
	// probe is nobody's produce to partition 7 of T, which T does not
	// have, on n: PERMISSION_DENIED while the ACL refuses it, NOT_FOUND
	// once the ACL allows it (the partition is looked up after the ACL
	// check, and the answer does not depend on leadership).
	probe := func(n *node) codes.Code {
		_, err := nobody[n].Produce(ctx, &logv1.ProduceRequest{Topic: "T", Partition: 7, Record: &logv1.Record{Value: []byte("x")}})
		return status.Code(err)
	}
	denied := func(n *node) bool {
		switch c := probe(n); c {
		case codes.PermissionDenied:
			return true
		case codes.NotFound:
			return false
		default:
			t.Fatalf("%s: nobody's produce to T/7: %v", n.name(), c)
			return false
		}
	}
	waitAll := func(what string, wantDenied bool) {
		t.Helper()
		for _, n := range nodes {
			testutil.Eventually(t, n.name()+": "+what, 30*time.Second, func() bool { return denied(n) == wantDenied })
		}
	}
	for _, n := range nodes {
		if !denied(n) {
			t.Fatalf("%s: nobody may produce to T before any rule", n.name())
		}
	}

	rule := &logv1.ACLRule{Subject: "nobody", Object: "T", Action: "produce"}
	create := &logv1.CreateACLsRequest{Rules: []*logv1.ACLRule{rule}}
	_, err := follower.log.CreateACLs(ctx, create)
	info := notLeaderInfo(t, err)
	if info.Metadata["leader_addr"] != leader.a.Addr() {
		t.Fatalf("NOT_LEADER names %s, want the metadata leader %s", info.Metadata["leader_addr"], leader.a.Addr())
	}
	if _, err := logv1.NewLogClient(e.dial(info.Metadata["leader_addr"], "root")).CreateACLs(ctx, create); err != nil {
		t.Fatal(err)
	}
	waitAll("nobody may produce to T", false)
	// And a real produce: on T/0's leader, wherever it is at the time.
	testutil.Eventually(t, "nobody's produce to T/0 on its leader", 30*time.Second, func() bool {
		for _, n := range nodes {
			_, err := nobody[n].Produce(ctx, &logv1.ProduceRequest{Topic: "T", Record: &logv1.Record{Value: []byte("by rule")}})
			if status.Code(err) == codes.PermissionDenied {
				t.Fatalf("%s: %v", n.name(), err)
			}
			if err == nil {
				return true
			}
		}
		return false
	})
	resp, err := follower.log.ListACLs(ctx, &logv1.ListACLsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listed, fromFile int
	for _, r := range resp.Rules {
		switch {
		case r.FromPolicyFile && r.Rule.Subject == "root":
			fromFile++
		case !r.FromPolicyFile && r.Rule.Subject == "nobody" && r.Rule.Object == "T" && r.Rule.Action == "produce":
			listed++
		}
	}
	if listed != 1 || fromFile != 1 || len(resp.Rules) != 2 {
		t.Fatalf("ListACLs on %s: %v, want the rule and root's of the policy file", follower.name(), resp.Rules)
	}

	if _, err := leader.log.DeleteACLs(ctx, &logv1.DeleteACLsRequest{Rules: []*logv1.ACLRule{rule}}); err != nil {
		t.Fatal(err)
	}
	waitAll("nobody denied again", true)

	if _, err := leader.log.CreateACLs(ctx, create); err != nil {
		t.Fatal(err)
	}
	waitAll("nobody may produce to T again", false)
	follower.stop()
	restarted := e.restart(follower, leader.a.SerfAddr())
	for i, n := range nodes {
		if n == follower {
			nodes[i] = restarted
		}
	}
	nobody[restarted] = logv1.NewLogClient(e.dial(restarted.a.Addr(), "nobody"))
	if denied(restarted) {
		t.Fatalf("restarted %s denies nobody: the rule of its snapshot is not in force", restarted.name())
	}
}
