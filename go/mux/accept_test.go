package mux

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/proglog/proglog/go/internal/testutil"
)

// emfileListener fails its first failures Accepts with EMFILE, as accept4
// does when the process is out of file descriptors.
type emfileListener struct {
	net.Listener
	mu       sync.Mutex
	failures int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.failures > 0 {
		l.failures--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// Out of file descriptors, the mux backs off (see go/internal/netlimit for
// the delays) and logs once, not once per failed Accept, then serves again.
func TestAcceptErrorsAreRateLimited(t *testing.T) {
	const failures = 4
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	cfg := plainConfig(t)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})
	m, err := New(&emfileListener{Listener: ln, failures: failures}, cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	t.Cleanup(func() {
		m.Close()
		<-served
	})
	startHealth(t, m)

	// Served once the errors are over.
	checkHealth(t, m.Addr().String())
	if n := strings.Count(logs.String(), "too many open files"); n != 1 {
		t.Fatalf("%d log lines for %d failed Accepts, want 1:\n%s", n, failures, logs.String())
	}
	if !strings.Contains(logs.String(), "accept failed; backing off") {
		t.Fatalf("no backoff log line:\n%s", logs.String())
	}
}

// At most MaxConns connections are open on the port, silent ones included;
// closing one makes room.
func TestMaxConns(t *testing.T) {
	cfg := plainConfig(t)
	cfg.MaxConns = 2
	m := startMux(t, cfg)
	startHealth(t, m)
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two Raft connections, known to be open once each is accepted.
	raftOf := func() net.Conn {
		t.Helper()
		c := dial()
		if _, err := c.Write([]byte{RaftRPC}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := m.raft.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	raftOf()
	first := <-accepted
	raftOf()
	<-accepted
	// A third is closed, not routed.
	over := raftOf()
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	closed := make(chan error, 1)
	go func() {
		_, err := over.Read(make([]byte, 1))
		closed <- err
	}()
	select {
	case <-accepted:
		t.Fatal("a connection over the cap was routed")
	case err := <-closed:
		if isTimeout(err) {
			t.Fatalf("connection over the cap: read %v, want it closed by the server", err)
		}
	}
	// Closing one (on the server's side) makes room for a gRPC client.
	first.Close()
	checkHealth(t, m.Addr().String())
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
