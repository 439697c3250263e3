package clienttest

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// aclActions are the actions a rule may name (go/auth's).
var aclActions = []string{"*", "acl", "consume", "create", "delete", "describe", "group", "produce", "read", "servers"}

// PolicyRule is the one rule of the double's policy file, which ListACLs
// lists marked from_policy_file.
var PolicyRule = &logv1.ACLRule{Subject: "root", Object: "*", Action: "*"}

// CreateACLs adds the rules (on the metadata leader, NOT_LEADER
// elsewhere); an empty field or an unknown action is INVALID_ARGUMENT
// with reason INVALID_ACL, checked on any server.
func (s *server) CreateACLs(_ context.Context, req *logv1.CreateACLsRequest) (*logv1.CreateACLsResponse, error) {
	s.record("CreateACLs", "", 0)
	if err := checkRules(req.GetRules(), true); err != nil {
		return nil, err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.metaLeader != s.idx {
		return nil, s.c.notLeader(s.c.metaLeader)
	}
	for _, r := range req.GetRules() {
		if !slices.ContainsFunc(s.c.acls, func(a *logv1.ACLRule) bool { return proto.Equal(a, r) }) {
			s.c.acls = append(s.c.acls, proto.Clone(r).(*logv1.ACLRule))
		}
	}
	return &logv1.CreateACLsResponse{}, nil
}

// DeleteACLs removes the rules as CreateACLs adds them; any action may be
// named.
func (s *server) DeleteACLs(_ context.Context, req *logv1.DeleteACLsRequest) (*logv1.DeleteACLsResponse, error) {
	s.record("DeleteACLs", "", 0)
	if err := checkRules(req.GetRules(), false); err != nil {
		return nil, err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.metaLeader != s.idx {
		return nil, s.c.notLeader(s.c.metaLeader)
	}
	s.c.acls = slices.DeleteFunc(s.c.acls, func(a *logv1.ACLRule) bool {
		return slices.ContainsFunc(req.GetRules(), func(r *logv1.ACLRule) bool { return proto.Equal(a, r) })
	})
	return &logv1.DeleteACLsResponse{}, nil
}

// ListACLs lists the rules in the order they were created, then
// PolicyRule; any server answers.
func (s *server) ListACLs(context.Context, *logv1.ListACLsRequest) (*logv1.ListACLsResponse, error) {
	s.record("ListACLs", "", 0)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	resp := &logv1.ListACLsResponse{}
	for _, r := range s.c.acls {
		resp.Rules = append(resp.Rules, &logv1.ListedACLRule{Rule: proto.Clone(r).(*logv1.ACLRule)})
	}
	resp.Rules = append(resp.Rules, &logv1.ListedACLRule{Rule: proto.Clone(PolicyRule).(*logv1.ACLRule), FromPolicyFile: true})
	return resp, nil
}

func checkRules(rules []*logv1.ACLRule, action bool) error {
	for i, r := range rules {
		if r.GetSubject() == "" || r.GetObject() == "" || r.GetAction() == "" || action && !slices.Contains(aclActions, r.GetAction()) {
			return statusWithInfo(codes.InvalidArgument, fmt.Sprintf("rule %d (%v) is not allowed", i, r), "INVALID_ACL", nil)
		}
	}
	return nil
}
