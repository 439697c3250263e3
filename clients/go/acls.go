package client

import (
	"context"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// ACLRule allows Subject (a client certificate's common name, or a role
// of the servers' policy file) to perform Action on Object (a topic or
// group name or "*", with "*" wildcards such as "orders-*"). Actions are
// "produce", "consume", "servers", "create", "delete", "describe",
// "group", "acl", "read" and "*" (every action).
type ACLRule struct {
	Subject, Object, Action string
}

// ListedACLRule is a rule of ListACLs: FromPolicyFile marks a rule of the
// servers' policy file, which DeleteACLs cannot remove.
type ListedACLRule struct {
	ACLRule
	FromPolicyFile bool
}

// CreateACLs adds rules to those kept in the cluster's metadata, all or
// none; every server enforces them once its copy of the metadata has them
// (a request is allowed when the policy file or these rules allow it). It
// goes to the metadata leader, following NOT_LEADER answers, and needs
// the "acl" action on "*". A rule the servers refuse (an unknown action,
// an empty or over-long field, more than 1024 rules in one call, more
// than the cluster's limit) fails with ErrInvalidACL.
func (c *Client) CreateACLs(ctx context.Context, rules []ACLRule) error {
	req := &logv1.CreateACLsRequest{Rules: protoACLRules(rules)}
	return c.admin(ctx, func(ctx context.Context) error {
		_, err := c.log.CreateACLs(ctx, req)
		return err
	})
}

// DeleteACLs removes rules from those kept in the cluster's metadata, as
// CreateACLs adds them; rules that do not exist are ignored.
func (c *Client) DeleteACLs(ctx context.Context, rules []ACLRule) error {
	req := &logv1.DeleteACLsRequest{Rules: protoACLRules(rules)}
	return c.admin(ctx, func(ctx context.Context) error {
		_, err := c.log.DeleteACLs(ctx, req)
		return err
	})
}

// ListACLs returns the rules kept in the cluster's metadata, then those
// of the policy file, as the server asked holds them: the metadata leader
// when the client knows it (after CreateACLs, say), else any server,
// whose copy may lag the leader's by the metadata's replication delay. It
// needs the "describe" action on "*".
func (c *Client) ListACLs(ctx context.Context) ([]ListedACLRule, error) {
	var out []ListedACLRule
	err := c.do(ctx, opAdmin, nil, func(ctx context.Context) error {
		resp, err := c.log.ListACLs(ctx, &logv1.ListACLsRequest{})
		if err != nil {
			return err
		}
		out = make([]ListedACLRule, len(resp.GetRules()))
		for i, r := range resp.GetRules() {
			out[i] = ListedACLRule{
				ACLRule:        ACLRule{Subject: r.GetRule().GetSubject(), Object: r.GetRule().GetObject(), Action: r.GetRule().GetAction()},
				FromPolicyFile: r.GetFromPolicyFile(),
			}
		}
		return nil
	})
	return out, err
}

func protoACLRules(rules []ACLRule) []*logv1.ACLRule {
	out := make([]*logv1.ACLRule, len(rules))
	for i, r := range rules {
		out[i] = &logv1.ACLRule{Subject: r.Subject, Object: r.Object, Action: r.Action}
	}
	return out
}
