package metadata

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/proglog/proglog/go/commitlog"
)

// ErrInvalidACL: an ACL rule or command is not allowed; the message says
// why. It wraps commitlog.ErrInvalidACL.
var ErrInvalidACL = fmt.Errorf("metadata: %w", commitlog.ErrInvalidACL)

// ACLRule allows Subject to perform Action on Object: a rule created at
// run time (commitlog.ACLRule, encoded).
type ACLRule struct {
	Subject string `json:"subject"`
	Object  string `json:"object"`
	Action  string `json:"action"`
}

// CompareACLRules orders rules by subject, object and action.
func CompareACLRules(a, b ACLRule) int {
	return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Object, b.Object), cmp.Compare(a.Action, b.Action))
}

// Validate reports whether r has the shape of a rule: subject, object
// and action of 1 to commitlog.MaxACLFieldLen bytes of UTF-8 without
// control characters, wrapping ErrInvalidACL. Which actions exist is
// not checked here (see the package documentation).
func (r ACLRule) Validate() error {
	for _, f := range []struct{ name, v string }{{"subject", r.Subject}, {"object", r.Object}, {"action", r.Action}} {
		switch {
		case f.v == "" || len(f.v) > commitlog.MaxACLFieldLen:
			return fmt.Errorf("%w: %s %q must be 1 to %d bytes", ErrInvalidACL, f.name, f.v, commitlog.MaxACLFieldLen)
		case !IsText(f.v):
			return fmt.Errorf("%w: %s %q is not UTF-8 without control characters", ErrInvalidACL, f.name, f.v)
		}
	}
	return nil
}

// checkACLCommand checks the rules of an ACL command: 1 to
// commitlog.MaxACLRulesPerRequest rules of a valid shape.
func checkACLCommand(rules []ACLRule) error {
	if len(rules) == 0 || len(rules) > commitlog.MaxACLRulesPerRequest {
		return fmt.Errorf("%w: %d rules in one change, want 1 to %d", ErrInvalidACL, len(rules), commitlog.MaxACLRulesPerRequest)
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return nil
}

// createACLs adds the rules of c to the set, all or none.
func (s *State) createACLs(index uint64, c Command) error {
	if err := checkACLCommand(c.ACLs); err != nil {
		return err
	}
	set := append(slices.Clone(s.ACLs), c.ACLs...)
	slices.SortFunc(set, CompareACLRules)
	set = slices.Compact(set)
	if len(set) > commitlog.MaxACLRules {
		return fmt.Errorf("%w: the cluster would hold %d rules, at most %d", ErrInvalidACL, len(set), commitlog.MaxACLRules)
	}
	s.setACLs(index, set)
	return nil
}

// deleteACLs removes the rules of c from the set; rules it does not hold
// are ignored.
func (s *State) deleteACLs(index uint64, c Command) error {
	if err := checkACLCommand(c.ACLs); err != nil {
		return err
	}
	gone := make(map[ACLRule]bool, len(c.ACLs))
	for _, r := range c.ACLs {
		gone[r] = true
	}
	set := slices.DeleteFunc(slices.Clone(s.ACLs), func(r ACLRule) bool { return gone[r] })
	s.setACLs(index, set)
	return nil
}

// setACLs makes set (sorted, without duplicates) the rule set, noting the
// index of the change if it is one.
func (s *State) setACLs(index uint64, set []ACLRule) {
	if slices.Equal(set, s.ACLs) {
		return
	}
	if len(set) == 0 {
		set = nil
	}
	s.ACLs, s.ACLsChanged = set, index
}
