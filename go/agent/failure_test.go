package agent_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/proglog/proglog/go/agent"
)

// TestNewFailureReleasesEverything: when New fails late (here, Serf cannot
// bind its port, after the listener, the replicated log and the gRPC
// server have started), what it started is stopped again: the same data
// directory and API port can be used at once.
func TestNewFailureReleasesEverything(t *testing.T) {
	e := newEnv(t)
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := free.Addr().String()
	free.Close()

	cfg := e.config("n0")
	cfg.Bootstrap = true
	cfg.BindAddr = apiAddr
	cfg.SerfBindAddr = taken.LocalAddr().String()
	if a, err := agent.New(cfg); err == nil {
		a.Shutdown(context.Background())
		t.Fatal("New succeeded with the gossip port taken")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft")); err != nil {
		t.Fatalf("the failed New did not get as far as the replicated log: %v", err)
	}

	cfg.SerfBindAddr = "127.0.0.1:0"
	n := e.start(cfg) // same data directory, same API port
	n.waitReady()
	if n.a.Addr() != apiAddr {
		t.Fatalf("serving on %s, want %s", n.a.Addr(), apiAddr)
	}
	select {
	case <-n.a.Failed():
		t.Fatalf("agent failed: %v", n.a.Err())
	default:
	}
}
