package agent_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/internal/testutil"
)

// TestNewFailureReleasesEverything: when New fails late (here, Serf cannot
// bind its port, after the listener, the replicated log and the gRPC
// server have started), what it started is stopped again: its listeners
// are closed, and the same data directory can be used at once (on the same
// ports, held by the test: binding a port again after it was released
// races with other processes).
func TestNewFailureReleasesEverything(t *testing.T) {
	e := newEnv(t)
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	health := testutil.HoldPort(t)

	cfg := e.config("n0")
	cfg.Bootstrap = true
	api, healthLn := cfg.Listener.(*testutil.PortListener), health.Listener()
	cfg.HealthListener = healthLn
	cfg.SerfBindAddr = taken.LocalAddr().String()
	if a, err := agent.New(cfg); err == nil {
		a.Shutdown(context.Background())
		t.Fatal("New succeeded with the gossip port taken")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "meta")); err != nil {
		t.Fatalf("the failed New did not get as far as the metadata group: %v", err)
	}
	if !api.Closed() || !healthLn.Closed() {
		t.Fatalf("the failed New left its listeners open: API closed %v, health closed %v", api.Closed(), healthLn.Closed())
	}

	cfg.SerfBindAddr = "127.0.0.1:0"
	cfg.Listener, cfg.HealthListener = e.listener("n0"), health.Listener()
	n := e.start(cfg) // same data directory
	n.waitReady()
	if n.a.Addr() != api.Addr().String() || n.a.HealthAddr() != health.Addr() {
		t.Fatalf("serving on %s, health on %s, want %s and %s", n.a.Addr(), n.a.HealthAddr(), api.Addr(), health.Addr())
	}
	select {
	case <-n.a.Failed():
		t.Fatalf("agent failed: %v", n.a.Err())
	default:
	}
}

// TestHealthPortTaken: a taken Config.HealthAddr fails New before the
// replicated log is opened.
func TestHealthPortTaken(t *testing.T) {
	e := newEnv(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := e.config("n0")
	cfg.Bootstrap = true
	cfg.HealthAddr = taken.Addr().String()
	a, err := agent.New(cfg)
	if err == nil {
		a.Shutdown(context.Background())
		t.Fatal("New succeeded with the health port taken")
	}
	if !strings.Contains(err.Error(), "health") {
		t.Errorf("error does not say which port: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "meta")); !os.IsNotExist(err) {
		t.Fatalf("the metadata group was opened: %v", err)
	}
}

// An ACL model that cannot evaluate a request would deny every call: the
// node refuses to start and says why.
func TestBrokenACLModelRefusesToStart(t *testing.T) {
	e := newEnv(t)
	model := filepath.Join(e.dir, "model.conf")
	if err := os.WriteFile(model, []byte(`[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && noSuchFunction(r.obj, p.obj)
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("acl")
	cfg.Bootstrap = true
	cfg.ACLModelFile = model
	a, err := agent.New(cfg)
	if err == nil {
		a.Shutdown(context.Background())
		t.Fatal("a node with an ACL model that cannot evaluate started")
	}
	if !strings.Contains(err.Error(), "cannot evaluate") {
		t.Errorf("err = %v, want the model's evaluation error", err)
	}
}

// TestOldLayoutRefused: a data directory of the single-log release (raft/
// and data/ at its top) is refused before anything is created in it, with
// a message naming the layout and how to move the records.
func TestOldLayoutRefused(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("old")
	cfg.Bootstrap = true
	for _, dir := range []string{"raft", "data"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	api := cfg.Listener.(*testutil.PortListener)
	a, err := agent.New(cfg)
	if err == nil {
		a.Shutdown(context.Background())
		t.Fatal("a node started on the single-log layout")
	}
	if !errors.Is(err, broker.ErrOldLayout) || !strings.Contains(err.Error(), "proglog consume --from 0 | proglog produce") {
		t.Fatalf("err = %v, want broker.ErrOldLayout naming the way out", err)
	}
	for _, dir := range []string{"meta", "topics"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, dir)); !os.IsNotExist(err) {
			t.Fatalf("%s/ created in a refused data directory: %v", dir, err)
		}
	}
	if !api.Closed() {
		t.Fatal("the refused New left its listener open")
	}
}
