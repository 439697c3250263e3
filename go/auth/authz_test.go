package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestDefaultPolicy(t *testing.T) {
	a, err := NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	// A consumer group is an object like a topic ("billing.workers");
	// changing ACL rules is "acl" on "*".
	for _, act := range []string{ActionProduce, ActionConsume, ActionServers, ActionGroup, ActionACL} {
		for _, obj := range []string{"log", "other-log", "billing.workers", "*"} {
			if err := a.Authorize("root", obj, act); err != nil {
				t.Errorf("root %s %s: %v", act, obj, err)
			}
			for _, sub := range []string{"nobody", "", "Root", "root2", "*"} {
				if err := a.Authorize(sub, obj, act); !errors.Is(err, ErrPermissionDenied) {
					t.Errorf("%q %s %s: err = %v, want denied", sub, act, obj, err)
				}
			}
		}
	}
}

func TestPolicyFromFilesWithRolesAndObjects(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.csv")
	os.WriteFile(policy, []byte(strings.Join([]string{
		"# comment",
		"p, producer, log, produce",
		"p, reader, log, consume",
		"p, reader, audit-*, consume",
		"g, alice, producer",
		"g, bob, reader",
		"",
	}, "\n")), 0o644)
	a, err := NewAuthorizer("", policy) // default model from the embedded file
	if err != nil {
		t.Fatal(err)
	}
	allow := [][3]string{{"alice", "log", ActionProduce}, {"bob", "log", ActionConsume}, {"bob", "audit-2025", ActionConsume}}
	deny := [][3]string{
		{"alice", "log", ActionConsume}, {"alice", "other", ActionProduce},
		{"bob", "log", ActionProduce}, {"bob", "other", ActionConsume},
		{"producer", "log", ActionServers}, {"root", "log", ActionProduce},
	}
	for _, r := range allow {
		if err := a.Authorize(r[0], r[1], r[2]); err != nil {
			t.Errorf("%v: %v", r, err)
		}
	}
	for _, r := range deny {
		if err := a.Authorize(r[0], r[1], r[2]); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%v: err = %v, want denied", r, err)
		}
	}
}

func TestMalformedPolicyIsAnError(t *testing.T) {
	for _, bad := range []string{"p, root, *", "x, root, *, *", "p, root, *, *, extra"} {
		if _, err := NewAuthorizerFromText(defaultModel, []byte(bad)); err == nil {
			t.Errorf("policy %q accepted", bad)
		}
	}
	if _, err := NewAuthorizer(filepath.Join(t.TempDir(), "missing.conf"), ""); err == nil {
		t.Error("missing model file accepted")
	}
	if _, err := NewAuthorizerFromText("[request_definition]\n", defaultPolicy); err == nil {
		t.Error("broken model accepted")
	}
}

// Cached decisions are the model's: asking twice gives the same answer,
// the cache stays bounded, and past the bound decisions are still right.
func TestDecisionCache(t *testing.T) {
	a, err := NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := a.Authorize("root", "log", ActionProduce); err != nil {
			t.Fatalf("pass %d: root produce: %v", i, err)
		}
		if err := a.Authorize("nobody", "log", ActionProduce); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("pass %d: nobody produce: %v", i, err)
		}
	}
	if n := a.rules.Load().cached.Load(); n != 2 {
		t.Fatalf("%d cached decisions, want 2", n)
	}
	for i := 0; i < maxCachedDecisions+10; i++ {
		if err := a.Authorize(fmt.Sprintf("client-%d", i), "log", ActionConsume); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("client-%d: %v", i, err)
		}
	}
	if n := a.rules.Load().cached.Load(); n != maxCachedDecisions {
		t.Fatalf("%d cached decisions, want the bound %d", n, maxCachedDecisions)
	}
	if err := a.Authorize("root", "log", ActionConsume); err != nil {
		t.Fatalf("root consume past the bound: %v", err)
	}
}

func BenchmarkAuthorize(b *testing.B) {
	a, err := NewAuthorizer("", "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Authorize("root", "log", ActionProduce); err != nil {
			b.Fatal(err)
		}
	}
}

// A model that cannot evaluate a request would deny every call: refuse it
// at start instead.
func TestModelThatCannotEvaluateIsAnError(t *testing.T) {
	broken := strings.Replace(defaultModel, "keyMatch(r.obj, p.obj)", "noSuchMatch(r.obj, p.obj)", 1)
	if broken == defaultModel {
		t.Fatal("the default model changed; update the test")
	}
	_, err := NewAuthorizerFromText(broken, defaultPolicy)
	if err == nil || !strings.Contains(err.Error(), "cannot evaluate") {
		t.Fatalf("model with an unknown function: err = %v, want a refusal", err)
	}
}

// An evaluation error the probe cannot see (here a rule's invalid regular
// expression, reached only for its subject) denies the call, is counted
// and logged, and logging is rate-limited.
func TestEvalErrorsAreCountedAndLogged(t *testing.T) {
	regexModel := strings.Replace(defaultModel, "keyMatch(r.obj, p.obj)", "regexMatch(r.obj, p.obj)", 1)
	core, logs := observer.New(zapcore.DebugLevel)
	a, err := NewAuthorizerFromText(regexModel, []byte("p, root, .*, *\np, alice, ([, produce\n"), WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authorize("root", "log", ActionProduce); err != nil {
		t.Fatalf("root: %v", err)
	}
	for range 3 {
		if err := a.Authorize("alice", "log", ActionProduce); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("alice: err = %v, want denied", err)
		}
	}
	if n := a.EvalErrors(); n != 3 {
		t.Errorf("EvalErrors = %d, want 3", n)
	}
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 {
		t.Fatalf("%d error lines, want 1 (rate-limited): %v", len(errs), errs)
	}
	if got := errs[0].ContextMap()["subject"]; got != "alice" {
		t.Errorf("logged subject %v, want alice", got)
	}
}

func TestEmptyPolicyWarns(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	a, err := NewAuthorizerFromText(defaultModel, []byte("# nothing\n"), WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("no rule").Len(); n != 1 {
		t.Errorf("%d warnings about the empty policy, want 1: %v", n, logs.All())
	}
	if err := a.Authorize("root", "log", ActionProduce); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("root with an empty policy: %v", err)
	}
	core, logs = observer.New(zapcore.DebugLevel)
	if _, err := NewAuthorizerFromText(defaultModel, defaultPolicy, WithLogger(zap.New(core))); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("the default policy logged %v", logs.All())
	}
}

func TestTopicWildcardsAndAuthorizeAny(t *testing.T) {
	a, err := NewAuthorizerFromText(defaultModel, []byte(strings.Join([]string{
		"p, orders-app, orders.*, produce",
		"p, orders-app, orders.*, describe",
		"p, auditor, log, consume",
		"p, admin, *, create",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	allow := [][3]string{
		{"orders-app", "orders.eu", ActionProduce}, {"orders-app", "orders.us.west", ActionDescribe},
		{"auditor", "log", ActionConsume}, {"admin", "anything", ActionCreate},
	}
	deny := [][3]string{
		{"orders-app", "orders", ActionProduce}, {"orders-app", "ordersx", ActionProduce},
		{"orders-app", "orders.eu", ActionConsume}, {"orders-app", "log", ActionProduce},
		{"auditor", "orders.eu", ActionConsume}, {"admin", "log", ActionDelete},
	}
	for _, r := range allow {
		if err := a.Authorize(r[0], r[1], r[2]); err != nil {
			t.Errorf("%v: %v", r, err)
		}
	}
	for _, r := range deny {
		if err := a.Authorize(r[0], r[1], r[2]); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%v: err = %v, want denied", r, err)
		}
	}
	anyAllow := [][2]string{{"orders-app", ActionProduce}, {"orders-app", ActionDescribe}, {"auditor", ActionConsume}, {"admin", ActionCreate}}
	anyDeny := [][2]string{{"orders-app", ActionConsume}, {"auditor", ActionProduce}, {"admin", ActionDelete}, {"nobody", ActionProduce}}
	for i := 0; i < 2; i++ { // the second pass answers from the cache
		for _, r := range anyAllow {
			if err := a.AuthorizeAny(r[0], r[1]); err != nil {
				t.Errorf("pass %d: any %v: %v", i, r, err)
			}
		}
		for _, r := range anyDeny {
			if err := a.AuthorizeAny(r[0], r[1]); !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "on any object") {
				t.Errorf("pass %d: any %v: err = %v, want denied on any object", i, r, err)
			}
		}
	}
}
