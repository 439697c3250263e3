package client_test

import (
	"errors"
	"slices"
	"testing"

	client "github.com/proglog/proglog/clients/go"
)

// CreateACLs and DeleteACLs go to the metadata leader, following
// NOT_LEADER; ListACLs lists the metadata's rules, then the policy
// file's; a refused rule is ErrInvalidACL.
func TestACLs(t *testing.T) {
	tc, cl := topicCluster(t, 3)
	tc.SetMetadataLeader(2)
	ctx := ctxT(t)
	rule := client.ACLRule{Subject: "alice", Object: "orders-*", Action: "produce"}
	if err := cl.CreateACLs(ctx, []client.ACLRule{rule}); err != nil {
		t.Fatal(err)
	}
	if n, m := len(callsOf(tc, 2, "CreateACLs")), countCalls(tc, 3, "CreateACLs"); n != 1 || m > 2 {
		t.Fatalf("the metadata leader got %d of %d CreateACLs calls, want 1 of at most 2 (one NOT_LEADER)", n, m)
	}
	policy := client.ListedACLRule{ACLRule: client.ACLRule{Subject: "root", Object: "*", Action: "*"}, FromPolicyFile: true}
	got, err := cl.ListACLs(ctx)
	if want := []client.ListedACLRule{{ACLRule: rule}, policy}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListACLs: %v, %v; want %v", got, err, want)
	}
	err = cl.CreateACLs(ctx, []client.ACLRule{{Subject: "alice", Object: "log", Action: "fly"}})
	if !errors.Is(err, client.ErrInvalidACL) || !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("a rule of an unknown action: %v, want ErrInvalidACL and ErrInvalidArgument", err)
	}
	if err := cl.DeleteACLs(ctx, []client.ACLRule{rule}); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.ListACLs(ctx); err != nil || !slices.Equal(got, []client.ListedACLRule{policy}) {
		t.Fatalf("ListACLs after DeleteACLs: %v, %v", got, err)
	}
}
