package group

import (
	"context"
	"fmt"
	"slices"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

var _ commitlog.ACLs = (*Group)(nil)

// CreateACLs implements commitlog.ACLs: it adds rules to the metadata's
// (metadata.OpCreateACLs), all or none. Errors: commitlog.ErrInvalidACL
// (metadata.ErrInvalidACL) for more than commitlog.MaxACLRulesPerRequest
// rules, a rule of an invalid shape or whose action is not one of
// Config.ACLActions (checked on any node), or a set that would exceed
// commitlog.MaxACLRules (checked as the command applies); a
// *commitlog.NotLeaderError on a node that is not the leader; and the
// errors of reaching the leader as CreateTopic's. No rules is nothing to
// do.
func (g *Group) CreateACLs(ctx context.Context, rules []commitlog.ACLRule) error {
	mr, err := g.aclCommand(rules, true)
	if err != nil || len(mr) == 0 {
		return err
	}
	if _, err := g.propose(ctx, metadata.Command{Op: metadata.OpCreateACLs, ACLs: mr}); err != nil {
		return err
	}
	g.lg.Info("ACL rules created", "rules", len(mr))
	return nil
}

// DeleteACLs implements commitlog.ACLs: it removes rules from the
// metadata's (metadata.OpDeleteACLs); rules it does not hold are ignored.
// Errors as CreateACLs's, except that any action of a valid shape may be
// named (a rule created by a node that knew more actions can be deleted).
func (g *Group) DeleteACLs(ctx context.Context, rules []commitlog.ACLRule) error {
	mr, err := g.aclCommand(rules, false)
	if err != nil || len(mr) == 0 {
		return err
	}
	if _, err := g.propose(ctx, metadata.Command{Op: metadata.OpDeleteACLs, ACLs: mr}); err != nil {
		return err
	}
	g.lg.Info("ACL rules deleted", "rules", len(mr))
	return nil
}

// Rules implements commitlog.ACLs: the rules of this node's copy of the
// metadata, sorted by subject, object and action.
func (g *Group) Rules(ctx context.Context) ([]commitlog.ACLRule, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rules, _ := g.acls()
	return rules, nil
}

// aclCommand checks rules for a command (their actions too if
// checkAction) and returns them as the metadata's.
func (g *Group) aclCommand(rules []commitlog.ACLRule, checkAction bool) ([]metadata.ACLRule, error) {
	if len(rules) > commitlog.MaxACLRulesPerRequest {
		return nil, fmt.Errorf("%w: %d rules in one request, at most %d", metadata.ErrInvalidACL, len(rules), commitlog.MaxACLRulesPerRequest)
	}
	out := make([]metadata.ACLRule, len(rules))
	for i, r := range rules {
		out[i] = metadata.ACLRule(r)
		if err := out[i].Validate(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		if checkAction && !slices.Contains(g.cfg.ACLActions, r.Action) {
			return nil, fmt.Errorf("rule %d: %w: action %q is not one of %v", i, metadata.ErrInvalidACL, r.Action, g.cfg.ACLActions)
		}
	}
	return out, nil
}

// acls returns the rules of this node's copy of the metadata and the
// index of their last change.
func (g *Group) acls() ([]commitlog.ACLRule, uint64) {
	var rules []commitlog.ACLRule
	var at uint64
	g.fsm.View(func(s *metadata.State) {
		rules = make([]commitlog.ACLRule, len(s.ACLs))
		for i, r := range s.ACLs {
			rules[i] = commitlog.ACLRule(r)
		}
		at = s.ACLsChanged
	})
	return rules, at
}

// watchACLs calls Config.OnACLs with the rules each time this node's copy
// of the metadata changes them after the change at index last, until
// Close.
func (g *Group) watchACLs(last uint64) {
	defer g.wg.Done()
	for {
		changed := g.fsm.Changed()
		var at uint64
		g.fsm.View(func(s *metadata.State) { at = s.ACLsChanged })
		if at != last {
			var rules []commitlog.ACLRule
			rules, last = g.acls()
			g.cfg.OnACLs(rules)
		}
		select {
		case <-changed:
		case <-g.done:
			return
		}
	}
}
