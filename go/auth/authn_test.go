package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

type fakeAuthInfo struct{}

func (fakeAuthInfo) AuthType() string { return "fake" }

func tlsPeer(chains [][]*x509.Certificate) *peer.Peer {
	return &peer.Peer{
		Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: chains}},
	}
}

func certCN(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
}

// Every shape of missing identity must yield Unauthenticated, never a panic.
func TestInterceptorsRejectMissingIdentity(t *testing.T) {
	cases := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"no peer", context.Background(), ErrNoPeer},
		{"nil auth info", peer.NewContext(context.Background(), &peer.Peer{}), ErrNotTLS},
		{"non-TLS auth info", peer.NewContext(context.Background(), &peer.Peer{AuthInfo: fakeAuthInfo{}}), ErrNotTLS},
		{"TLS without chains", peer.NewContext(context.Background(), tlsPeer(nil)), ErrNoVerifiedChain},
		{"TLS with empty chain", peer.NewContext(context.Background(), tlsPeer([][]*x509.Certificate{{}})), ErrNoVerifiedChain},
		{"TLS with nil leaf", peer.NewContext(context.Background(), tlsPeer([][]*x509.Certificate{{nil}})), ErrNoVerifiedChain},
		{"empty common name", peer.NewContext(context.Background(), tlsPeer([][]*x509.Certificate{{certCN("")}})), ErrEmptyCommonName},
	}
	unary := UnaryServerInterceptor()
	stream := StreamServerInterceptor()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SubjectFromPeer(tc.ctx); !errors.Is(err, tc.want) {
				t.Fatalf("SubjectFromPeer err = %v, want %v", err, tc.want)
			}
			called := false
			_, err := unary(tc.ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/x/y"}, func(context.Context, any) (any, error) {
				called = true
				return nil, nil
			})
			if status.Code(err) != codes.Unauthenticated || called {
				t.Fatalf("unary: err = %v, handler called = %v", err, called)
			}
			err = stream(nil, &fakeStream{ctx: tc.ctx}, &grpc.StreamServerInfo{FullMethod: "/x/y"}, func(any, grpc.ServerStream) error {
				called = true
				return nil
			})
			if status.Code(err) != codes.Unauthenticated || called {
				t.Fatalf("stream: err = %v, handler called = %v", err, called)
			}
		})
	}
}

func TestInterceptorsSetSubject(t *testing.T) {
	ctx := peer.NewContext(context.Background(), tlsPeer([][]*x509.Certificate{{certCN("root"), certCN("ca")}}))
	var got string
	_, err := UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
		got, _ = Subject(ctx)
		return nil, nil
	})
	if err != nil || got != "root" {
		t.Fatalf("unary: subject %q, err %v", got, err)
	}
	got = ""
	err = StreamServerInterceptor()(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{}, func(_ any, ss grpc.ServerStream) error {
		got, _ = Subject(ss.Context())
		return nil
	})
	if err != nil || got != "root" {
		t.Fatalf("stream: subject %q, err %v", got, err)
	}
	if _, ok := Subject(context.Background()); ok {
		t.Fatal("Subject of a bare context reported ok")
	}
}

type fakeStream struct{ ctx context.Context }

func (s *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeStream) SetTrailer(metadata.MD)       {}
func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SendMsg(any) error            { return nil }
func (s *fakeStream) RecvMsg(any) error            { return nil }
