package server

import (
	"context"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// CreateACLs implements logv1.LogServer over Config.ACLs (see log.proto):
// action acl on "*"; the rule count was bounded on the wire (the codec),
// and the port checks the rules.
func (s *Server) CreateACLs(ctx context.Context, req *logv1.CreateACLsRequest) (*logv1.CreateACLsResponse, error) {
	if err := s.aclChange(ctx); err != nil {
		return nil, err
	}
	if err := s.cfg.ACLs.CreateACLs(ctx, aclRules(req.GetRules())); err != nil {
		return nil, s.statusError(ctx, err)
	}
	return &logv1.CreateACLsResponse{}, nil
}

// DeleteACLs implements logv1.LogServer as CreateACLs.
func (s *Server) DeleteACLs(ctx context.Context, req *logv1.DeleteACLsRequest) (*logv1.DeleteACLsResponse, error) {
	if err := s.aclChange(ctx); err != nil {
		return nil, err
	}
	if err := s.cfg.ACLs.DeleteACLs(ctx, aclRules(req.GetRules())); err != nil {
		return nil, s.statusError(ctx, err)
	}
	return &logv1.DeleteACLsResponse{}, nil
}

// ListACLs implements logv1.LogServer: action describe on "*"; the
// metadata's rules as this node's copy holds them, then
// Config.ACLPolicyRules marked from_policy_file.
func (s *Server) ListACLs(ctx context.Context, _ *logv1.ListACLsRequest) (*logv1.ListACLsResponse, error) {
	if s.cfg.ACLs == nil {
		return nil, errNoACLs
	}
	if err := s.authorize(ctx, auth.ObjectAll, auth.ActionDescribe); err != nil {
		return nil, err
	}
	rules, err := s.cfg.ACLs.Rules(ctx)
	if err != nil {
		return nil, s.statusError(ctx, err)
	}
	out := make([]*logv1.ListedACLRule, 0, len(rules)+len(s.cfg.ACLPolicyRules))
	for _, r := range rules {
		out = append(out, &logv1.ListedACLRule{Rule: protoACLRule(r)})
	}
	for _, r := range s.cfg.ACLPolicyRules {
		out = append(out, &logv1.ListedACLRule{Rule: protoACLRule(r), FromPolicyFile: true})
	}
	return &logv1.ListACLsResponse{Rules: out}, nil
}

// errNoACLs answers the ACL RPCs of a server without Config.ACLs.
var errNoACLs = status.Error(codes.Unimplemented, "this server keeps no ACL rules at run time")

// aclChange checks that the server keeps rules and the caller may change
// them.
func (s *Server) aclChange(ctx context.Context) error {
	if s.cfg.ACLs == nil {
		return errNoACLs
	}
	return s.authorize(ctx, auth.ObjectAll, auth.ActionACL)
}

func aclRules(in []*logv1.ACLRule) []commitlog.ACLRule {
	out := make([]commitlog.ACLRule, len(in))
	for i, r := range in {
		out[i] = commitlog.ACLRule{Subject: r.GetSubject(), Object: r.GetObject(), Action: r.GetAction()}
	}
	return out
}

func protoACLRule(r commitlog.ACLRule) *logv1.ACLRule {
	return &logv1.ACLRule{Subject: r.Subject, Object: r.Object, Action: r.Action}
}

// reasonInvalidACL is the ErrorInfo reason of a refused ACL rule or
// request (see log.proto).
const reasonInvalidACL = "INVALID_ACL"

// invalidACL builds the INVALID_ARGUMENT status of a refused rule or ACL
// request; msg says why (the cause only: see detail).
func invalidACL(msg string) *status.Status {
	st := status.New(codes.InvalidArgument, msg)
	if withD, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reasonInvalidACL, Domain: ErrorDomain}); err == nil {
		return withD
	}
	return st
}
