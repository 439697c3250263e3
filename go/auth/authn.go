package auth

import (
	"context"
	"crypto/x509"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

type subjectKey struct{}

// WithSubject returns ctx carrying subject as the authenticated principal.
func WithSubject(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, subjectKey{}, subject)
}

// Subject returns the principal the authentication interceptors stored in
// ctx, and false if there is none.
func Subject(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(subjectKey{}).(string)
	return s, ok && s != ""
}

// SubjectFromPeer extracts the subject common name of the verified client
// certificate of the connection in ctx (PeerCertificate).
func SubjectFromPeer(ctx context.Context) (string, error) {
	cert, err := PeerCertificate(ctx)
	if err != nil {
		return "", err
	}
	cn := cert.Subject.CommonName
	if cn == "" {
		return "", ErrEmptyCommonName
	}
	return cn, nil
}

// PeerCertificate returns the verified client certificate of the
// connection in ctx. It inspects only what the TLS handshake verified
// (VerifiedChains), never the raw peer certificates.
func PeerCertificate(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil {
		return nil, ErrNoPeer
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, fmt.Errorf("%w (auth info %T)", ErrNotTLS, p.AuthInfo)
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 || chains[0][0] == nil {
		return nil, ErrNoVerifiedChain
	}
	return chains[0][0], nil
}

// authenticate returns ctx with the caller's subject (ctx itself if it has
// one: a server's tap handle may have authenticated the call), or an
// Unauthenticated status.
func authenticate(ctx context.Context) (context.Context, error) {
	if _, ok := Subject(ctx); ok {
		return ctx, nil // authenticated already, when the call's headers arrived
	}
	subject, err := SubjectFromPeer(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return WithSubject(ctx, subject), nil
}

// UnaryServerInterceptor authenticates unary calls; see the package doc.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authenticates streaming calls; see the package doc.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authenticate(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

// contextStream replaces a stream's context, the only way to hand values to
// a stream handler.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
