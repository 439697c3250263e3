package auth

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
)

func aclRule(sub, obj, act string) commitlog.ACLRule {
	return commitlog.ACLRule{Subject: sub, Object: obj, Action: act}
}

// TestRulesBesideThePolicy: a request is allowed when the policy file or
// the rules allow it; a rule may name a role of the policy file; the
// rules' objects count for AuthorizeAny; PolicyRules lists the file's
// rules.
func TestRulesBesideThePolicy(t *testing.T) {
	a, err := NewAuthorizerFromText(defaultModel, []byte(strings.Join([]string{
		"p, root, *, *",
		"p, reader, log, consume",
		"g, bob, writers",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if want := []commitlog.ACLRule{aclRule("root", "*", "*"), aclRule("reader", "log", "consume")}; !slices.Equal(a.PolicyRules(), want) {
		t.Fatalf("PolicyRules %v, want %v", a.PolicyRules(), want)
	}
	rules := []commitlog.ACLRule{aclRule("alice", "orders-*", ActionProduce), aclRule("writers", "audit", ActionProduce)}
	if err := a.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	allow := [][3]string{
		{"root", "anything", ActionDelete}, {"reader", "log", ActionConsume}, // the file
		{"alice", "orders-eu", ActionProduce}, {"bob", "audit", ActionProduce}, // the rules (bob by his role)
	}
	deny := [][3]string{
		{"alice", "orders-eu", ActionConsume}, {"alice", "log", ActionProduce},
		{"bob", "orders-eu", ActionProduce}, {"reader", "audit", ActionProduce}, {"writers", "log", ActionConsume},
	}
	for _, r := range allow {
		if err := a.Authorize(r[0], r[1], r[2]); err != nil {
			t.Errorf("%v: %v", r, err)
		}
	}
	for _, r := range deny {
		if err := a.Authorize(r[0], r[1], r[2]); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%v: %v, want denied", r, err)
		}
	}
	for _, r := range [][2]string{{"alice", ActionProduce}, {"bob", ActionProduce}, {"reader", ActionConsume}} {
		if err := a.AuthorizeAny(r[0], r[1]); err != nil {
			t.Errorf("any %v: %v", r, err)
		}
	}
	if err := a.AuthorizeAny("alice", ActionConsume); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("any alice consume: %v, want denied", err)
	}
}

// TestSetRulesForgetsDecisions: decisions cached under one rule set are
// not answered under the next: a denial becomes an allowance when a rule
// is created, and back when it is deleted, for Authorize and AuthorizeAny.
func TestSetRulesForgetsDecisions(t *testing.T) {
	a, err := NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, allowed bool) {
		t.Helper()
		for i := 0; i < 2; i++ { // the second answer comes from the cache
			err, anyErr := a.Authorize("alice", "orders", ActionProduce), a.AuthorizeAny("alice", ActionProduce)
			if allowed && (err != nil || anyErr != nil) {
				t.Fatalf("%s (pass %d): %v, any: %v; want allowed", when, i, err, anyErr)
			}
			if !allowed && (!errors.Is(err, ErrPermissionDenied) || !errors.Is(anyErr, ErrPermissionDenied)) {
				t.Fatalf("%s (pass %d): %v, any: %v; want denied", when, i, err, anyErr)
			}
		}
	}
	check("before any rule", false)
	if err := a.SetRules([]commitlog.ACLRule{aclRule("alice", "orders", ActionProduce)}); err != nil {
		t.Fatal(err)
	}
	check("after the rule was created", true)
	if err := a.SetRules(nil); err != nil {
		t.Fatal(err)
	}
	check("after the rule was deleted", false)
}

// TestSetRulesNeedsThreeFieldPolicy: with a model whose policy has another
// shape, SetRules fails and keeps the rules it had.
func TestSetRulesNeedsThreeFieldPolicy(t *testing.T) {
	m := strings.Replace(defaultModel, "p = sub, obj, act", "p = sub, obj, act, eft", 1)
	a, err := NewAuthorizerFromText(m, []byte("p, root, *, *, allow"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRules([]commitlog.ACLRule{aclRule("alice", "log", ActionProduce)}); err == nil || !strings.Contains(err.Error(), "not (sub, obj, act)") {
		t.Fatalf("SetRules with a 4-field policy: %v", err)
	}
	if err := a.Authorize("alice", "log", ActionProduce); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("the rule of a failed SetRules is in force: %v", err)
	}
	if err := a.SetRules(nil); err != nil {
		t.Fatalf("no rules need no shape: %v", err)
	}
}

// TestSetRulesWhileAuthorizing: requests evaluated while the rules change
// (run with -race) see the old rules or the new ones, never an error of
// another kind.
func TestSetRulesWhileAuthorizing(t *testing.T) {
	a, err := NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := a.Authorize("alice", "log", ActionProduce); err != nil && !errors.Is(err, ErrPermissionDenied) {
					t.Error(err)
					return
				}
				_ = a.AuthorizeAny("alice", ActionConsume)
			}
		}()
	}
	for i := range 50 {
		var rules []commitlog.ACLRule
		if i%2 == 0 {
			rules = []commitlog.ACLRule{aclRule("alice", "log", ActionProduce)}
		}
		if err := a.SetRules(rules); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := a.Authorize("alice", "log", ActionProduce); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("after the last SetRules (none): %v", err)
	}
}
