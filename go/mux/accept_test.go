package mux

import (
	"bytes"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
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

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Out of file descriptors, the mux backs off (see go/internal/netlimit for
// the delays) and logs once, not once per failed Accept, then serves again.
func TestAcceptErrorsAreRateLimited(t *testing.T) {
	const failures = 4
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
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
