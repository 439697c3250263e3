package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/proglog/proglog/go/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testLogger sends a component's logs to the test log, and drops those
// that goroutines write after the test ended.
func testLogger(t *testing.T) hclog.Logger {
	t.Helper()
	w := testutil.LogWriter(t)
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: w})
}

func plainConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.InsecurePlaintext = true
	c.Logger = testLogger(t)
	return c
}

// startMux listens on a loopback port and serves a Mux until the test ends.
func startMux(t *testing.T, cfg Config) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(ln, cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return m
}

// startHealth serves a gRPC health service on the mux's gRPC listener.
func startHealth(t *testing.T, m *Mux) {
	t.Helper()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(m.GRPCListener()) }()
	t.Cleanup(func() { srv.Stop(); <-done })
}

func checkHealth(t *testing.T, addr string) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("health check over the shared port: %v", err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v", resp.Status)
	}
}

// acceptOne returns the next connection of l, failing after a deadline.
func acceptOne(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(10 * time.Second):
		t.Fatal("Accept: no connection within 10s")
		return nil
	}
}

// acceptRaft returns the next Raft connection of l and the group it
// named, failing after a deadline.
func acceptRaft(t *testing.T, l *RaftListener) (net.Conn, string) {
	t.Helper()
	type res struct {
		c     net.Conn
		group string
		err   error
	}
	ch := make(chan res, 1)
	go func() { c, g, err := l.AcceptRaft(); ch <- res{c, g, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("AcceptRaft: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c, r.group
	case <-time.After(10 * time.Second):
		t.Fatal("AcceptRaft: no connection within 10s")
		return nil, ""
	}
}

// echoRaft dials acceptor's port from d for group, sends msg and checks
// the accepting side receives it, under group, and can answer.
func echoRaft(t *testing.T, d, acceptor *Mux, group, msg string) {
	t.Helper()
	l := acceptor.RaftConns() // set-ups start with it
	c, err := d.DialRaft(loop(acceptor.Addr()), group, 5*time.Second)
	if err != nil {
		t.Fatalf("DialRaft: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	s, g := acceptRaft(t, l)
	if g != group {
		t.Fatalf("accepted group %q, want %q", g, group)
	}
	got := make([]byte, len(msg))
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("read on accepted raft conn: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("accepted conn got %q, want %q (first byte and header must be consumed)", got, msg)
	}
	if _, err := s.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 2)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || string(ack) != "ok" {
		t.Fatalf("reply: %q, %v", ack, err)
	}
}

// loop is the address of a on the loopback interface.
func loop(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return "127.0.0.1:" + p
}

func TestRaftAndGRPCShareThePort(t *testing.T) {
	m := startMux(t, plainConfig(t))
	startHealth(t, m)
	echoRaft(t, m, m, "g", "append-entries")
	checkHealth(t, m.Addr().String())
	// And Raft again after gRPC, on the same port.
	echoRaft(t, m, m, "g", "request-vote")
	if m.RaftConns().Addr().String() != m.Addr().String() {
		t.Fatalf("RaftConns Addr %v, mux Addr %v", m.RaftConns().Addr(), m.Addr())
	}
}

func TestRaftByteGoesToRaftSide(t *testing.T) {
	m := startMux(t, plainConfig(t))
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{RaftRPC, 'x'}); err != nil {
		t.Fatal(err)
	}
	s := acceptOne(t, m.raft)
	got := make([]byte, 2)
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != RaftRPC || got[1] != 'x' {
		t.Fatalf("raft side got %v: the sniffed byte must be replayed", got)
	}
}

func TestOtherBytesGoToGRPCListener(t *testing.T) {
	for _, first := range []byte{0, 2, 0x16, 'P'} {
		m := startMux(t, plainConfig(t))
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{first}); err != nil {
			t.Fatal(err)
		}
		s := acceptOne(t, m.GRPCListener())
		got := make([]byte, 1)
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(s, got); err != nil || got[0] != first {
			t.Fatalf("first byte %#x: gRPC listener read %v, %v", first, got, err)
		}
	}
}

func TestSilentConnectionDoesNotBlock(t *testing.T) {
	cfg := plainConfig(t)
	cfg.ReadTimeout = 300 * time.Millisecond
	m := startMux(t, cfg)
	startHealth(t, m)

	silent, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Others are served while the silent connection is still pending.
	start := time.Now()
	echoRaft(t, m, m, "g", "hello")
	checkHealth(t, m.Addr().String())
	t.Logf("served others %v after the silent connection", time.Since(start))

	// The silent connection is closed by the server after ReadTimeout.
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err = silent.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("silent connection not closed by the server: %v", err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(ln, plainConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, l := range map[string]net.Listener{"raft": m.raft, "grpc": m.GRPCListener()} {
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s Accept after Close = %v, want net.ErrClosed", name, err)
		}
	}
	if _, _, err := m.RaftConns().AcceptRaft(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("AcceptRaft after Close = %v, want net.ErrClosed", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("port still accepting after Close")
	}
	if err := m.Serve(); !errors.Is(err, ErrServing) {
		t.Errorf("second Serve = %v, want ErrServing", err)
	}
}

func TestServeAfterCloseReturnsNil(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(ln, plainConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := m.Serve(); err != nil {
		t.Fatalf("Serve after Close = %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(nil, plainConfig(t)); !errors.Is(err, ErrNilListener) {
		t.Errorf("nil listener: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := New(ln, DefaultConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no TLS and not insecure: %v", err)
	}
}
