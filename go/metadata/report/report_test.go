package report

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// fakeNode answers ReportReplicaReady with the errors of answers in turn
// (nil: success; the last one repeats) and counts the calls.
type fakeNode struct {
	logv1.UnimplementedInternalServer
	mu      sync.Mutex
	answers []error
	calls   int
	addr    string
}

func (f *fakeNode) ReportReplicaReady(context.Context, *logv1.ReportReplicaReadyRequest) (*logv1.ReportReplicaReadyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.answers[min(f.calls, len(f.answers)-1)]
	f.calls++
	if err != nil {
		return nil, err
	}
	return &logv1.ReportReplicaReadyResponse{}, nil
}

func (f *fakeNode) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// pki is a dev CA with one node certificate, "n1".
func pki(t *testing.T) certs.DevFiles {
	t.Helper()
	files, err := certs.EnsureDev(t.TempDir(), nil, "n1")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func (f *fakeNode) serve(t *testing.T, files certs.DevFiles) {
	t.Helper()
	tlsCfg, err := auth.TLSConfig{CertFile: files.NodeCert("n1"), KeyFile: files.NodeKey("n1"), CAFile: files.CACert}.Server()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	logv1.RegisterInternalServer(s, f)
	go s.Serve(ln) //nolint:errcheck // ends with Stop
	t.Cleanup(s.Stop)
	f.addr = ln.Addr().String()
}

func client(t *testing.T, files certs.DevFiles, leader func() string) *Client {
	t.Helper()
	tlsCfg, err := auth.TLSConfig{CertFile: files.NodeCert("n1"), KeyFile: files.NodeKey("n1"), CAFile: files.CACert}.Client()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.TLS, cfg.Leader = tlsCfg, leader
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func notLeaderStatus(addr string) error {
	st, err := status.New(codes.FailedPrecondition, "not the leader").WithDetails(&errdetails.ErrorInfo{
		Reason: reasonNotLeader, Domain: errorDomain, Metadata: map[string]string{"leader_id": "n2", "leader_addr": addr},
	})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// TestFollowsNotLeaderAndRetries: a report sent to a node that no longer
// leads goes at once to the leader its answer names; UNAVAILABLE there is
// retried until it succeeds.
func TestFollowsNotLeaderAndRetries(t *testing.T) {
	files := pki(t)
	leader := &fakeNode{answers: []error{status.Error(codes.Unavailable, "busy"), nil}}
	leader.serve(t, files)
	stale := &fakeNode{answers: []error{notLeaderStatus(leader.addr)}}
	stale.serve(t, files)
	c := client(t, files, func() string { return stale.addr })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.ReplicaReady(ctx, "log", 0, 1); err != nil {
		t.Fatal(err)
	}
	// stale, leader (UNAVAILABLE), after the backoff stale again (this
	// node's view has not changed) and leader.
	if got := leader.count(); got != 2 {
		t.Fatalf("the leader got %d calls, want 2", got)
	}
	if got := stale.count(); got != 2 {
		t.Fatalf("the stale leader got %d calls, want 2", got)
	}
}

// TestRefusedAtOnce: an answer a retry would not change is returned at
// once as ErrRefused, with the status.
func TestRefusedAtOnce(t *testing.T) {
	files := pki(t)
	n := &fakeNode{answers: []error{status.Error(codes.PermissionDenied, "not a node")}}
	n.serve(t, files)
	c := client(t, files, func() string { return n.addr })
	err := c.ReplicaReady(context.Background(), "log", 0, 1)
	if !errors.Is(err, ErrRefused) || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want ErrRefused with PermissionDenied", err)
	}
	if n.count() != 1 {
		t.Fatalf("%d calls, want 1", n.count())
	}
}

// TestNoLeaderUntilContextEnds: with no leader known the call waits, and
// returns the context's error.
func TestNoLeaderUntilContextEnds(t *testing.T) {
	c := client(t, pki(t), func() string { return "" })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.ReplicaReady(ctx, "log", 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplicaReady(context.Background(), "log", 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("a report after Close: %v, want ErrClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.TLS, good.Leader = &tls.Config{}, func() string { return "" }
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mod := range map[string]func(*Config){
		"TLS is required":       func(c *Config) { c.TLS = nil },
		"Leader is required":    func(c *Config) { c.Leader = nil },
		"MinBackoff must be":    func(c *Config) { c.MinBackoff = 0 },
		"MaxBackoff (1ms) must": func(c *Config) { c.MaxBackoff = time.Millisecond; c.MinBackoff = time.Second },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
