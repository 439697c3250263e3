package agent_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/server"
)

// openHTTP2 opens a plaintext HTTP/2 connection to addr and waits for the
// server's first frame, so the connection is known to be held by the
// server, not just queued by the kernel.
func openHTTP2(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The client preface and an empty SETTINGS frame.
	preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
	if _, err := c.Write(preface); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 9)); err != nil {
		t.Fatalf("no frame from the health port: %v", err)
	}
	return c
}

// The health port holds at most agent.HealthMaxConns connections; one more
// is closed at once, and a freed slot is used again.
func TestHealthPortConnectionLimit(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	cfg := e.config("solo")
	cfg.Bootstrap = true
	cfg.HealthAddr = "127.0.0.1:0"
	n := e.start(cfg)
	addr := n.a.HealthAddr()

	held := make([]net.Conn, agent.HealthMaxConns)
	for i := range held {
		held[i] = openHTTP2(t, addr)
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ne net.Error
	if _, err := over.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection over the limit: read %v, want it closed by the server", err)
	}

	// Closing one makes room: a probe gets through once the server has
	// seen the close (WaitForReady rides out refused attempts before).
	held[0].Close()
	h := healthpb.NewHealthClient(dialPlain(t, addr))
	resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: server.LivenessService}, grpc.WaitForReady(true))
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("probe after a slot was freed: %v %v", resp, err)
	}
}
