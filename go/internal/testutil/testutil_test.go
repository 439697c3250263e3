package testutil

import (
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	Eventually(t, "the third call", time.Second, func() bool {
		calls++
		return calls == 3
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestEventuallyFailsAtTheDeadline(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(ft, "never", 30*time.Millisecond, func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("Eventually returned without failing the test")
	}
}

func TestLogWriterDropsWritesAfterTheTest(t *testing.T) {
	var w interface{ Write([]byte) (int, error) }
	t.Run("inner", func(t *testing.T) {
		w = LogWriter(t)
		if n, err := w.Write([]byte("during\n")); n != 7 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	})
	// The inner test has ended: t.Log would panic, the writer must not call it.
	if n, err := w.Write([]byte("late")); n != 4 || err != nil {
		t.Fatalf("late Write = %d, %v", n, err)
	}
}

// fakeT records Fatalf instead of stopping the test's goroutine.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit() // like t.Fatalf: end the calling goroutine
}

// A held port serves one listener after another without being bound again,
// and Close of one listener ends only its Accept.
func TestHeldPort(t *testing.T) {
	p := HoldPort(t)
	for round := range 2 {
		l := p.Listener()
		if l.Addr().String() != p.Addr() {
			t.Fatalf("listener on %s, want %s", l.Addr(), p.Addr())
		}
		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Close()
			}
			accepted <- err
		}()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c.Close()
		if err := <-accepted; err != nil {
			t.Fatalf("round %d: accept: %v", round, err)
		}
		if l.Closed() {
			t.Fatal("Closed before Close")
		}
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
		if !l.Closed() {
			t.Fatal("not Closed after Close")
		}
	}
	// With no listener open, a connection is closed at once: reading
	// from it ends instead of hanging.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a connection nobody accepts succeeded")
	}
	// Close ends an Accept that is waiting (a server's Shutdown).
	l := p.Listener()
	blocked := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		blocked <- err
	}()
	l.Close()
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("waiting Accept after Close: %v, want net.ErrClosed", err)
	}
}
