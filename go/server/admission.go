package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/internal/netlimit"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// methodACL is what admit checks of a call: action (or one of also) on
// object, or, when object is empty, on some object (the call's object is
// the topic or group its message names, which the handler checks once
// decoded).
type methodACL struct {
	action, object string
	also           []string
}

// methodACLs maps each log.v1.Log method, and gRPC server reflection's, to
// the check admit makes.
var methodACLs = map[string]methodACL{
	logv1.Log_Produce_FullMethodName:       {action: auth.ActionProduce},
	logv1.Log_ProduceBatch_FullMethodName:  {action: auth.ActionProduce},
	logv1.Log_ProduceStream_FullMethodName: {action: auth.ActionProduce},
	logv1.Log_Consume_FullMethodName:       {action: auth.ActionConsume},
	logv1.Log_ConsumeStream_FullMethodName: {action: auth.ActionConsume},
	logv1.Log_GetBounds_FullMethodName:     {action: auth.ActionConsume},
	logv1.Log_GetMetadata_FullMethodName:   {action: describeActions[0], also: describeActions[1:]},
	logv1.Log_CreateTopic_FullMethodName:   {action: auth.ActionCreate},
	logv1.Log_DeleteTopic_FullMethodName:   {action: auth.ActionDelete},
	logv1.Log_GetServers_FullMethodName:    {action: auth.ActionServers, object: auth.DefaultObject},
	// The group RPCs' object is the group their message names; ListGroups
	// lists the groups the caller has the action on.
	logv1.Log_JoinGroup_FullMethodName:     {action: auth.ActionGroup},
	logv1.Log_Heartbeat_FullMethodName:     {action: auth.ActionGroup},
	logv1.Log_LeaveGroup_FullMethodName:    {action: auth.ActionGroup},
	logv1.Log_CommitOffsets_FullMethodName: {action: auth.ActionGroup},
	logv1.Log_FetchOffsets_FullMethodName:  {action: auth.ActionGroup},
	logv1.Log_ListGroups_FullMethodName:    {action: auth.ActionGroup},
	logv1.Log_DescribeGroup_FullMethodName: {action: auth.ActionGroup},
	logv1.Log_CreateACLs_FullMethodName:    {action: auth.ActionACL, object: auth.ObjectAll},
	logv1.Log_DeleteACLs_FullMethodName:    {action: auth.ActionACL, object: auth.ObjectAll},
	logv1.Log_ListACLs_FullMethodName:      {action: auth.ActionDescribe, object: auth.ObjectAll},
	// Reflection has no handler of its own to authorize again: this is its only check.
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      {action: auth.ActionRead, object: auth.ObjectReflection},
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: {action: auth.ActionRead, object: auth.ObjectReflection},
}

// admit is the server's tap handle: it runs when a call's headers arrive,
// before its message is read, and refuses calls the caller may not make,
// so an unauthorized request costs no decoding. A call about a topic is
// admitted if the caller has the method's action on at least one object
// (Authorizer.AuthorizeAny): the topic is in the message, and the handler
// checks it once decoded, before any other work; the others are checked on
// their object here, and their handlers authorize again (the same, cached,
// decision). A log.v1.Internal call needs a node certificate instead
// (admitNode). It runs on the connection's reading goroutine, so it only
// does what is cheap.
func (s *Server) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	if isInternal(info.FullMethodName) {
		return s.admitNode(ctx, info.FullMethodName)
	}
	acl, ok := methodACLs[info.FullMethodName]
	if !ok {
		return ctx, nil
	}
	subject, err := auth.SubjectFromPeer(ctx)
	if err != nil {
		return nil, s.rejected(ctx, info.FullMethodName, rejectUnauthenticated, status.Error(codes.Unauthenticated, err.Error()))
	}
	check := func(action string) error {
		if acl.object == "" {
			return s.cfg.Authorizer.AuthorizeAny(subject, action)
		}
		return s.cfg.Authorizer.Authorize(subject, acl.object, action)
	}
	err = check(acl.action)
	for i := 0; err != nil && i < len(acl.also); i++ {
		err = check(acl.also[i])
	}
	if err != nil {
		on := fmt.Sprintf("%q", acl.object)
		switch {
		case acl.object != "":
		case acl.action == auth.ActionGroup:
			on = "any group"
		default:
			on = "any topic"
		}
		return nil, s.rejected(ctx, info.FullMethodName, rejectPermissionDenied,
			status.Errorf(codes.PermissionDenied, "%s may not %s on %s", subject, acl.action, on))
	}
	// The call's context: go/auth's interceptors find the subject there.
	return auth.WithSubject(ctx, subject), nil
}

// streamLimit caps the calls running at once (Config.MaxStreams).
type streamLimit chan struct{}

func (l streamLimit) acquire() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l streamLimit) release() { <-l }

func (s *Server) tooManyStreams(ctx context.Context, method string) error {
	return s.rejected(ctx, method, rejectTooManyStreams,
		status.Errorf(codes.ResourceExhausted, "server is running %d calls, its limit; retry later", cap(s.streams)))
}

func (s *Server) limitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.streams.acquire() {
		return nil, s.tooManyStreams(ctx, info.FullMethod)
	}
	defer s.streams.release()
	return handler(ctx, req)
}

func (s *Server) limitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.streams.acquire() {
		return s.tooManyStreams(ss.Context(), info.FullMethod)
	}
	defer s.streams.release()
	return handler(srv, ss)
}

// limitListener applies Config.MaxConnections to lis.
func (s *Server) limitListener(lis net.Listener) net.Listener {
	if s.cfg.MaxConnections == 0 {
		return lis
	}
	return netlimit.NewListener(lis, netlimit.Config{
		MaxConns: s.cfg.MaxConnections,
		OnReject: func(c net.Conn) {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.ConnectionRejected("api")
			}
			if ok, suppressed := s.connLog.Allow(); ok {
				s.cfg.Logger.Warn("connection refused: connection limit reached", zap.Stringer("peer", c.RemoteAddr()),
					zap.Int("limit", s.cfg.MaxConnections), zap.Int("suppressed", suppressed))
			}
		},
	})
}

// handshakeCreds reports failed TLS handshakes, which grpc drops silently.
type handshakeCreds struct {
	credentials.TransportCredentials
	failed func(peer net.Addr, err error)
}

func (c handshakeCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.failed(conn.RemoteAddr(), err)
	}
	return out, info, err
}

func (c handshakeCreds) Clone() credentials.TransportCredentials {
	return handshakeCreds{TransportCredentials: c.TransportCredentials.Clone(), failed: c.failed}
}

func (s *Server) handshakeFailed(peer net.Addr, err error) {
	reason := handshakeFailure(err)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.TLSHandshakeFailed(reason)
	}
	if ok, suppressed := s.handshakeLog.Allow(); ok {
		s.cfg.Logger.Warn("TLS handshake failed", zap.Stringer("peer", peer), zap.String("reason", reason),
			zap.Error(err), zap.Int("suppressed", suppressed))
	}
}

// handshakeFailure classifies a failed server handshake for the metric's
// reason label.
func handshakeFailure(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		netErr    net.Error
		alert     tls.AlertError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "unknown_authority"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "expired"
	case errors.As(err, &invalid):
		return "bad_certificate"
	case errors.As(err, &record):
		return "not_tls"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &alert):
		return "peer_alert"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return "closed"
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		// crypto/tls has no typed error for a client without a certificate.
		return "no_certificate"
	default:
		return "other"
	}
}
