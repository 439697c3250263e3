package server_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// tryEverything calls every Log method and returns their errors by name.
func tryEverything(ctx context.Context, c logv1.LogClient) map[string]error {
	errs := map[string]error{}
	_, errs["Produce"] = c.Produce(ctx, &logv1.ProduceRequest{Record: rec("x")})
	_, errs["ProduceBatch"] = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("x")}})
	_, errs["Consume"] = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	_, errs["GetServers"] = c.GetServers(ctx, &logv1.GetServersRequest{})
	_, errs["GetBounds"] = c.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if ps, err := c.ProduceStream(ctx); err != nil {
		errs["ProduceStream"] = err
	} else {
		_ = ps.Send(&logv1.ProduceRequest{Record: rec("x")})
		_, errs["ProduceStream"] = ps.Recv()
	}
	if cs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
		errs["ConsumeStream"] = err
	} else {
		_, errs["ConsumeStream"] = cs.Recv()
	}
	return errs
}

// seed writes one record as root so consume calls have something to read.
func seed(t *testing.T, f *fixture) {
	t.Helper()
	if _, err := f.client("root").Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("seed")}); err != nil {
		t.Fatal(err)
	}
}

func TestRejectedClients(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	seed(t, f)

	other, err := certs.NewAuthority("someone else's CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.IssueClient("root") // right name, wrong issuer
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-72 * time.Hour)
	expired, err := f.ca.Issue(certs.Request{CommonName: "root", Client: true, NotBefore: past, NotAfter: past.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	serverOnly, err := f.ca.Issue(certs.Request{CommonName: "root", Server: true}) // no clientAuth usage
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		tls  *tls.Config
		// want is a substring of the TLS alert the server sends.
		want string
	}{
		{"no certificate", f.clientTLS(""), "certificate required"},
		{"certificate from another CA", f.tlsWithPair(foreign), "unknown certificate authority"},
		{"expired certificate", f.tlsWithPair(expired), "expired certificate"},
		{"server-only certificate", f.tlsWithPair(serverOnly), "bad certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// gRPC reports a refused handshake as Unavailable; under TLS
			// 1.3 the alert may reach it only as a broken connection.
			for method, err := range tryEverything(ctx, logv1.NewLogClient(f.conn(tc.tls))) {
				if c := status.Code(err); c != codes.Unavailable && c != codes.Unauthenticated {
					t.Errorf("%s: %v, want the handshake refused", method, err)
				}
			}
			// Why: the alert the server sends on a bare TLS connection.
			if err := f.handshakeAlert(tc.tls); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("handshake: %v, want %q", err, tc.want)
			}
		})
	}
	if next := f.storage.NextOffset(); next != 1 {
		t.Fatalf("rejected clients changed the log: next offset %d, want 1", next)
	}
}

// With client certificates optional at the TLS layer, the authentication
// interceptor is what refuses anonymous callers.
func TestAnonymousClientUnauthenticated(t *testing.T) {
	f := newFixture(t, fixtureOpts{tls: auth.TLSConfig{OptionalClientCert: true}})
	seed(t, f)
	for method, err := range tryEverything(ctxT(t), logv1.NewLogClient(f.conn(f.clientTLS("")))) {
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", method, err)
		}
	}
	if next := f.storage.NextOffset(); next != 1 {
		t.Fatalf("anonymous client changed the log: next offset %d", next)
	}
	// A bad certificate is still refused at the handshake in this mode.
	past := time.Now().Add(-72 * time.Hour)
	expired, _ := f.ca.Issue(certs.Request{CommonName: "root", Client: true, NotBefore: past, NotAfter: past.Add(time.Hour)})
	_, err := logv1.NewLogClient(f.conn(f.tlsWithPair(expired))).Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("x")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("expired cert in optional mode: %v", err)
	}
	if err := f.handshakeAlert(f.tlsWithPair(expired)); err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Fatalf("expired cert in optional mode, handshake: %v", err)
	}
}

func TestNobodyPermissionDenied(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	seed(t, f)
	for method, err := range tryEverything(ctxT(t), f.client("nobody")) {
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", method, err)
		}
	}
	if next := f.storage.NextOffset(); next != 1 {
		t.Fatalf("nobody changed the log: next offset %d", next)
	}
}

func TestRootAllowed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	seed(t, f)
	for method, err := range tryEverything(ctxT(t), f.client("root")) {
		if err != nil {
			t.Errorf("%s: %v", method, err)
		}
	}
	// Produce, ProduceBatch and ProduceStream each wrote one record.
	if next := f.storage.NextOffset(); next != 4 {
		t.Fatalf("next offset %d, want 4", next)
	}
}

// Authorization uses the request's topic as the object: a grant for
// another topic lets the call past the check before decoding (the caller
// may produce somewhere) but not past the handler's check of the topic.
func TestAuthorizationIsPerResource(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte("p, root, *, *\np, nobody, other-log, produce\np, nobody, audit, consume\np, nobody, log, servers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer("", policy) // built-in model
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	f.cluster.create("audit", 1)
	ctx := ctxT(t)
	if _, err := f.client("root").Produce(ctx, &logv1.ProduceRequest{Topic: "audit", Record: rec("seed")}); err != nil {
		t.Fatal(err)
	}
	c := f.client("nobody")
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "audit", Record: rec("x")}); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `produce on "audit"`) {
		t.Fatalf("produce on audit with a grant for other-log: %v", err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: "audit", Offset: 0}); err != nil {
		t.Fatalf("consume on audit with a grant for audit: %v", err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("consume on the default topic with a grant for audit: %v", err)
	}
	// servers is checked on "log", as before topics.
	if _, err := c.GetServers(ctx, &logv1.GetServersRequest{}); err != nil {
		t.Fatalf("servers with a grant on log: %v", err)
	}
	if next := partitionLog(t, f, "audit", 0).NextOffset(); next != 1 {
		t.Fatalf("next offset %d", next)
	}
}
