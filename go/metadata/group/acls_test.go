package group

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
)

// aclRecorder keeps, per node, the rules of the last OnACLs call.
type aclRecorder struct {
	mu   sync.Mutex
	last map[string][]commitlog.ACLRule
}

func (r *aclRecorder) config(cfg *Config) {
	id := cfg.LocalID
	cfg.ACLActions = []string{"produce", "consume", "acl", "*"}
	cfg.OnACLs = func(rules []commitlog.ACLRule) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.last[id] = rules
	}
}

// get returns nd's last rules, and false if OnACLs was not called since
// forget.
func (r *aclRecorder) get(id string) ([]commitlog.ACLRule, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rules, ok := r.last[id]
	return rules, ok
}

func (r *aclRecorder) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.last, id)
}

func (r *aclRecorder) wait(t *testing.T, id string, want []commitlog.ACLRule) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%s: OnACLs(%v)", id, want), 20*time.Second, func() bool {
		got, ok := r.get(id)
		return ok && slices.Equal(got, want)
	})
}

// TestACLs: rules created on the leader reach every node's OnACLs and
// Rules, sorted; a follower refuses changes naming the leader, but checks
// the rules first; deletion ignores rules not there; a node restarted
// from its snapshot calls OnACLs with the rules before Open returns.
func TestACLs(t *testing.T) {
	rec := &aclRecorder{last: map[string][]commitlog.ACLRule{}}
	c := newCluster(t, 3, rec.config)
	for _, nd := range c.nodes {
		if rules, ok := rec.get(nd.id); !ok || len(rules) != 0 {
			t.Fatalf("%s: OnACLs after Open: %v (called: %v), want no rules", nd.id, rules, ok)
		}
	}
	c.joinAll()
	n0, ctx := c.leader(), ctxT(t)
	alice := commitlog.ACLRule{Subject: "alice", Object: "log", Action: "produce"}
	bob := commitlog.ACLRule{Subject: "bob", Object: "*", Action: "acl"}
	if err := n0.CreateACLs(ctx, []commitlog.ACLRule{bob, alice, bob}); err != nil {
		t.Fatal(err)
	}
	both := []commitlog.ACLRule{alice, bob}
	for _, nd := range c.nodes {
		rec.wait(t, nd.id, both)
		if got, err := nd.Rules(ctx); err != nil || !slices.Equal(got, both) {
			t.Fatalf("%s: Rules %v, %v; want %v", nd.id, got, err, both)
		}
	}

	tooMany := make([]commitlog.ACLRule, commitlog.MaxACLRulesPerRequest+1)
	for i := range tooMany {
		tooMany[i] = alice
	}
	for _, nd := range c.nodes[1:] {
		var nl *commitlog.NotLeaderError
		for name, err := range map[string]error{
			"create": nd.CreateACLs(ctx, []commitlog.ACLRule{{Subject: "carol", Object: "log", Action: "consume"}}),
			"delete": nd.DeleteACLs(ctx, []commitlog.ACLRule{alice}),
		} {
			if !errors.As(err, &nl) || nl.LeaderID != n0.id || nl.LeaderAddr != n0.port.Addr() {
				t.Fatalf("%s on follower %s: %v, want *commitlog.NotLeaderError naming %s", name, nd.id, err, n0.id)
			}
		}
		for name, err := range map[string]error{
			"unknown action":   nd.CreateACLs(ctx, []commitlog.ACLRule{{Subject: "carol", Object: "log", Action: "fly"}}),
			"empty subject":    nd.CreateACLs(ctx, []commitlog.ACLRule{{Object: "log", Action: "produce"}}),
			"too many":         nd.CreateACLs(ctx, tooMany),
			"delete too many":  nd.DeleteACLs(ctx, tooMany),
			"delete bad shape": nd.DeleteACLs(ctx, []commitlog.ACLRule{{Subject: "a\x00", Object: "log", Action: "produce"}}),
		} {
			if !errors.Is(err, commitlog.ErrInvalidACL) || !errors.Is(err, metadata.ErrInvalidACL) {
				t.Fatalf("%s on %s: %v, want ErrInvalidACL", name, nd.id, err)
			}
		}
		if err := nd.CreateACLs(ctx, nil); err != nil {
			t.Fatalf("no rules on %s: %v", nd.id, err)
		}
	}

	// An action this node does not know may still be deleted.
	if err := n0.DeleteACLs(ctx, []commitlog.ACLRule{alice, {Subject: "x", Object: "y", Action: "future"}}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		rec.wait(t, nd.id, []commitlog.ACLRule{bob})
	}

	n1 := c.nodes[1]
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	rec.forget(n1.id)
	c.start(n1)
	if rules, ok := rec.get(n1.id); !ok || !slices.Equal(rules, []commitlog.ACLRule{bob}) {
		t.Fatalf("restarted %s: OnACLs when Open returned: %v (called: %v), want [%v]", n1.id, rules, ok, bob)
	}
}
