package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
)

func rule(sub, obj, act string) ACLRule { return ACLRule{Subject: sub, Object: obj, Action: act} }

// applyACL applies op with rules at the next index and returns its error.
func applyACL(s *State, op Op, rules ...ACLRule) error {
	return s.Apply(s.Applied+1, Command{Op: op, ACLs: rules})
}

// TestACLCreateDelete: created rules are kept sorted and without
// duplicates, ACLsChanged follows the changes (and only them), deleting a
// rule that is not there succeeds, and the set survives a snapshot.
func TestACLCreateDelete(t *testing.T) {
	s := &State{}
	a, b, c := rule("alice", "orders-*", "produce"), rule("alice", "log", "consume"), rule("bob", "*", "describe")
	if err := applyACL(s, OpCreateACLs, c, a, b, a); err != nil {
		t.Fatal(err)
	}
	if want := []ACLRule{b, a, c}; !slices.Equal(s.ACLs, want) {
		t.Fatalf("rules %v, want %v", s.ACLs, want)
	}
	created := s.ACLsChanged
	if created != s.Applied {
		t.Fatalf("ACLsChanged %d, want the create's index %d", created, s.Applied)
	}
	if err := applyACL(s, OpCreateACLs, a); err != nil || s.ACLsChanged != created {
		t.Fatalf("creating an existing rule: %v, ACLsChanged %d, want unchanged %d", err, s.ACLsChanged, created)
	}
	if err := applyACL(s, OpDeleteACLs, rule("carol", "log", "produce")); err != nil || s.ACLsChanged != created || len(s.ACLs) != 3 {
		t.Fatalf("deleting a rule not there: %v, ACLsChanged %d, rules %v", err, s.ACLsChanged, s.ACLs)
	}
	if err := applyACL(s, OpDeleteACLs, a, rule("carol", "log", "produce")); err != nil {
		t.Fatal(err)
	}
	if want := []ACLRule{b, c}; !slices.Equal(s.ACLs, want) || s.ACLsChanged != s.Applied {
		t.Fatalf("after delete: %v (changed at %d, applied %d), want %v", s.ACLs, s.ACLsChanged, s.Applied, want)
	}
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.ACLs, s.ACLs) || back.ACLsChanged != s.ACLsChanged {
		t.Fatalf("snapshot round trip: %v at %d, want %v at %d", back.ACLs, back.ACLsChanged, s.ACLs, s.ACLsChanged)
	}
	if again, _ := back.Encode(); !bytes.Equal(again, enc) {
		t.Fatalf("snapshot round trip encodes differently:\n%s\n%s", enc, again)
	}
	if err := applyACL(s, OpDeleteACLs, b, c); err != nil || s.ACLs != nil {
		t.Fatalf("deleting every rule: %v, rules %#v, want nil", err, s.ACLs)
	}
}

// TestACLRefusedWithoutChange: invalid rules and commands over the limits
// are refused with ErrInvalidACL (also commitlog.ErrInvalidACL) and change
// nothing, the valid rules of the same command included.
func TestACLRefusedWithoutChange(t *testing.T) {
	s := &State{}
	if err := applyACL(s, OpCreateACLs, rule("alice", "log", "produce")); err != nil {
		t.Fatal(err)
	}
	ok := rule("bob", "log", "consume")
	long := strings.Repeat("x", commitlog.MaxACLFieldLen+1)
	many := make([]ACLRule, commitlog.MaxACLRulesPerRequest+1)
	for i := range many {
		many[i] = rule(fmt.Sprint("s", i), "log", "produce")
	}
	bad := []struct {
		name  string
		op    Op
		rules []ACLRule
	}{
		{"no rules", OpCreateACLs, nil},
		{"empty subject", OpCreateACLs, []ACLRule{ok, rule("", "log", "produce")}},
		{"empty object", OpCreateACLs, []ACLRule{ok, rule("bob", "", "produce")}},
		{"empty action", OpCreateACLs, []ACLRule{ok, rule("bob", "log", "")}},
		{"long subject", OpCreateACLs, []ACLRule{ok, rule(long, "log", "produce")}},
		{"long object", OpCreateACLs, []ACLRule{ok, rule("bob", long, "produce")}},
		{"long action", OpCreateACLs, []ACLRule{ok, rule("bob", "log", long)}},
		{"control character", OpCreateACLs, []ACLRule{ok, rule("bob\n", "log", "produce")}},
		{"not UTF-8", OpCreateACLs, []ACLRule{ok, rule("bob", "lo\xffg", "produce")}},
		{"too many in one", OpCreateACLs, many},
		{"delete too many", OpDeleteACLs, many},
		{"delete invalid", OpDeleteACLs, []ACLRule{rule("alice", "log", "produce"), rule("", "log", "produce")}},
	}
	for _, tc := range bad {
		before, _ := s.Encode()
		err := applyACL(s, tc.op, tc.rules...)
		if !errors.Is(err, ErrInvalidACL) || !errors.Is(err, commitlog.ErrInvalidACL) {
			t.Errorf("%s: %v, want ErrInvalidACL", tc.name, err)
		}
		s2, _ := DecodeState(mustEncode(t, s))
		s2.Applied--
		if again, _ := s2.Encode(); !bytes.Equal(before, again) {
			t.Errorf("%s: refused, yet the state changed", tc.name)
		}
	}
	if err := applyACL(s, OpCreateACLs, rule(strings.Repeat("y", commitlog.MaxACLFieldLen), "*", "*")); err != nil {
		t.Errorf("a subject of MaxACLFieldLen bytes: %v", err)
	}
}

// TestACLLimit: the set holds at most commitlog.MaxACLRules rules; a
// create that would pass it is refused whole, one that adds only rules
// already there is not.
func TestACLLimit(t *testing.T) {
	s := &State{}
	var all []ACLRule
	for len(all) < commitlog.MaxACLRules {
		batch := make([]ACLRule, 0, commitlog.MaxACLRulesPerRequest)
		for i := 0; i < commitlog.MaxACLRulesPerRequest && len(all)+len(batch) < commitlog.MaxACLRules; i++ {
			batch = append(batch, rule(fmt.Sprintf("s%05d", len(all)+i), "log", "produce"))
		}
		if err := applyACL(s, OpCreateACLs, batch...); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	if len(s.ACLs) != commitlog.MaxACLRules {
		t.Fatalf("%d rules, want %d", len(s.ACLs), commitlog.MaxACLRules)
	}
	changed := s.ACLsChanged
	err := applyACL(s, OpCreateACLs, all[0], rule("one", "more", "produce"))
	if !errors.Is(err, ErrInvalidACL) || len(s.ACLs) != commitlog.MaxACLRules || s.ACLsChanged != changed {
		t.Fatalf("one rule above the limit: %v, %d rules", err, len(s.ACLs))
	}
	if err := applyACL(s, OpCreateACLs, all[:2]...); err != nil {
		t.Fatalf("rules already there, at the limit: %v", err)
	}
	if err := applyACL(s, OpDeleteACLs, all[0]); err != nil {
		t.Fatal(err)
	}
	if err := applyACL(s, OpCreateACLs, rule("one", "more", "produce")); err != nil {
		t.Fatalf("after a delete, room for one: %v", err)
	}
}

// TestACLReplicasAgree: replicas applying the same ACL commands in the
// same order, one of them replaying some (a restart) and one restored from
// a snapshot taken half-way, encode to the same bytes.
func TestACLReplicasAgree(t *testing.T) {
	cmds := []Command{
		{Op: OpCreateACLs, ACLs: []ACLRule{rule("b", "x", "produce"), rule("a", "y", "consume")}},
		{Op: OpCreateACLs, ACLs: []ACLRule{rule("", "x", "produce")}}, // refused
		{Op: OpDeleteACLs, ACLs: []ACLRule{rule("a", "y", "consume")}},
		{Op: OpCreateACLs, ACLs: []ACLRule{rule("c", "*", "acl"), rule("a", "y", "consume")}},
	}
	var r1, r2 State
	for i, c := range cmds {
		_ = r1.Apply(uint64(i+1), c)
	}
	for i, c := range cmds[:2] {
		_ = r2.Apply(uint64(i+1), c)
	}
	r3, err := DecodeState(mustEncode(t, &r2))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds {
		_ = r2.Apply(uint64(i+1), c) // the first two are replays
		_ = r3.Apply(uint64(i+1), c)
	}
	want := mustEncode(t, &r1)
	for name, s := range map[string]*State{"replayed": &r2, "restored": r3} {
		if got := mustEncode(t, s); !bytes.Equal(got, want) {
			t.Errorf("%s replica:\n%s\nwant\n%s", name, got, want)
		}
	}
}

func mustEncode(t *testing.T, s *State) []byte {
	t.Helper()
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
