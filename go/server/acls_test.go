package server_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// fakeACLs is a commitlog.ACLs keeping rules in memory; err, if set, is
// every change's answer.
type fakeACLs struct {
	mu      sync.Mutex
	rules   []commitlog.ACLRule
	err     error
	changes int
}

func (f *fakeACLs) CreateACLs(_ context.Context, rules []commitlog.ACLRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes++
	if f.err != nil {
		return f.err
	}
	f.rules = append(f.rules, rules...)
	return nil
}

func (f *fakeACLs) DeleteACLs(_ context.Context, rules []commitlog.ACLRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes++
	if f.err != nil {
		return f.err
	}
	f.rules = slices.DeleteFunc(f.rules, func(r commitlog.ACLRule) bool { return slices.Contains(rules, r) })
	return nil
}

func (f *fakeACLs) Rules(context.Context) ([]commitlog.ACLRule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rules), nil
}

func (f *fakeACLs) state() ([]commitlog.ACLRule, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rules), f.changes
}

func (f *fakeACLs) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func protoRule(sub, obj, act string) *logv1.ACLRule {
	return &logv1.ACLRule{Subject: sub, Object: obj, Action: act}
}

// Without Config.ACLs the ACL RPCs are UNIMPLEMENTED.
func TestACLRPCsWithoutPort(t *testing.T) {
	c, ctx := newFixture(t, fixtureOpts{}).client("root"), ctxT(t)
	_, cerr := c.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: []*logv1.ACLRule{protoRule("a", "log", "produce")}})
	_, derr := c.DeleteACLs(ctx, &logv1.DeleteACLsRequest{})
	_, lerr := c.ListACLs(ctx, &logv1.ListACLsRequest{})
	for name, err := range map[string]error{"create": cerr, "delete": derr, "list": lerr} {
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", name, err)
		}
	}
}

// TestACLRPCs: changes reach the port and ListACLs lists its rules, then
// the policy file's marked; the caller needs acl (changes) or describe
// (list) on "*"; the port's refusals are INVALID_ARGUMENT / INVALID_ACL
// and NOT_LEADER; more than MaxACLRulesPerRequest rules are refused
// before the request is decoded.
func TestACLRPCs(t *testing.T) {
	acls := &fakeACLs{}
	policy := []commitlog.ACLRule{{Subject: "root", Object: "*", Action: "*"}}
	f := newFixture(t, fixtureOpts{server: func(c *server.Config) { c.ACLs, c.ACLPolicyRules = acls, policy }})
	root, nobody, ctx := f.client("root"), f.client("nobody"), ctxT(t)

	alice, bob := protoRule("alice", "orders-*", "produce"), protoRule("bob", "*", "acl")
	if _, err := root.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: []*logv1.ACLRule{alice, bob}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.DeleteACLs(ctx, &logv1.DeleteACLsRequest{Rules: []*logv1.ACLRule{bob}}); err != nil {
		t.Fatal(err)
	}
	resp, err := root.ListACLs(ctx, &logv1.ListACLsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*logv1.ListedACLRule{{Rule: alice}, {Rule: protoRule("root", "*", "*"), FromPolicyFile: true}}
	if len(resp.Rules) != len(want) {
		t.Fatalf("ListACLs: %v, want %v", resp.Rules, want)
	}
	for i := range want {
		if !proto.Equal(resp.Rules[i], want[i]) {
			t.Fatalf("ListACLs[%d]: %v, want %v", i, resp.Rules[i], want[i])
		}
	}

	_, before := acls.state()
	_, cerr := nobody.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: []*logv1.ACLRule{bob}})
	_, derr := nobody.DeleteACLs(ctx, &logv1.DeleteACLsRequest{Rules: []*logv1.ACLRule{alice}})
	_, lerr := nobody.ListACLs(ctx, &logv1.ListACLsRequest{})
	for name, err := range map[string]error{"create": cerr, "delete": derr, "list": lerr} {
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("nobody %s: %v, want PermissionDenied", name, err)
		}
	}
	if _, after := acls.state(); after != before {
		t.Fatalf("the port saw %d changes from a caller without acl", after-before)
	}

	// The message is the cause only, without the packages' prefixes.
	acls.fail(fmt.Errorf("group: %w: the cluster would hold 4099 rules, at most 4096", fmt.Errorf("metadata: %w", commitlog.ErrInvalidACL)))
	_, err = root.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: []*logv1.ACLRule{protoRule("a", "log", "fly")}})
	if info := errorInfo(t, err, codes.InvalidArgument); info.Reason != "INVALID_ACL" || info.Domain != server.ErrorDomain {
		t.Fatalf("invalid rule: %v, ErrorInfo %v", err, info)
	}
	if msg, want := status.Convert(err).Message(), "the cluster would hold 4099 rules, at most 4096"; msg != want {
		t.Errorf("invalid rule: message %q, want %q", msg, want)
	}
	acls.fail(&commitlog.NotLeaderError{LeaderID: "n2", LeaderAddr: "10.0.0.2:8400"})
	_, err = root.DeleteACLs(ctx, &logv1.DeleteACLsRequest{Rules: []*logv1.ACLRule{alice}})
	if info := errorInfo(t, err, codes.FailedPrecondition); info.Reason != "NOT_LEADER" || info.Metadata["leader_addr"] != "10.0.0.2:8400" {
		t.Fatalf("on a follower: %v, ErrorInfo %v", err, info)
	}
	acls.fail(nil)

	_, before = acls.state()
	decoded := server.Unmarshalled(f.srv)
	many := make([]*logv1.ACLRule, commitlog.MaxACLRulesPerRequest+1)
	for i := range many {
		many[i] = alice
	}
	_, cerr = root.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: many})
	_, derr = root.DeleteACLs(ctx, &logv1.DeleteACLsRequest{Rules: many})
	for name, err := range map[string]error{"create": cerr, "delete": derr} {
		if info := errorInfo(t, err, codes.InvalidArgument); info.Reason != "INVALID_ACL" {
			t.Errorf("%s of %d rules: %v, ErrorInfo %v", name, len(many), err, info)
		}
	}
	if n := server.Unmarshalled(f.srv); n != decoded {
		t.Fatalf("%d requests of too many rules were decoded", n-decoded)
	}
	if _, after := acls.state(); after != before {
		t.Fatalf("the port saw %d requests of too many rules", after-before)
	}
	if _, err := root.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: many[:commitlog.MaxACLRulesPerRequest]}); err != nil {
		t.Fatalf("%d rules, the limit: %v", commitlog.MaxACLRulesPerRequest, err)
	}
}

// A rule set swapped into the server's Authorizer takes effect on the
// next call, in the admission check before decoding and in the handler,
// both of which cache decisions.
func TestRulesSwapInTheServer(t *testing.T) {
	authz, err := auth.NewAuthorizer("", "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{server: func(c *server.Config) { c.Authorizer = authz }})
	nobody, ctx := f.client("nobody"), ctxT(t)
	produce := func() error {
		_, err := nobody.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
		return err
	}
	for i := range 2 {
		if err := produce(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("before the rule (call %d): %v, want PermissionDenied", i, err)
		}
	}
	if err := authz.SetRules([]commitlog.ACLRule{{Subject: "nobody", Object: commitlog.DefaultTopic, Action: auth.ActionProduce}}); err != nil {
		t.Fatal(err)
	}
	if err := produce(); err != nil {
		t.Fatalf("after the rule: %v", err)
	}
	if err := authz.SetRules(nil); err != nil {
		t.Fatal(err)
	}
	if err := produce(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("after the rule was removed: %v, want PermissionDenied", err)
	}
}

// TestListACLsAtTheLimitFitsOneMessage: the metadata keeps at most
// commitlog.MaxACLRules rules, so that ListACLs's answer with every rule at
// its longest still fits the default send limit (there is no paging).
func TestListACLsAtTheLimitFitsOneMessage(t *testing.T) {
	long := string(make([]byte, commitlog.MaxACLFieldLen))
	resp := &logv1.ListACLsResponse{}
	for range commitlog.MaxACLRules {
		resp.Rules = append(resp.Rules, &logv1.ListedACLRule{Rule: &logv1.ACLRule{Subject: long, Object: long, Action: auth.ActionDescribe}})
	}
	if n := proto.Size(resp); n >= server.DefaultMaxSendMsgBytes {
		t.Fatalf("ListACLs of %d maximal rules is %d bytes, the send limit %d", commitlog.MaxACLRules, n, server.DefaultMaxSendMsgBytes)
	}
}
