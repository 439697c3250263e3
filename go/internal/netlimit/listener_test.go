package netlimit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// failingListener fails Accept with errs, in order, then delegates to
// Listener.
type failingListener struct {
	net.Listener
	errs    []error
	accepts int
}

func (f *failingListener) Accept() (net.Conn, error) {
	f.accepts++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func TestAcceptBacksOffOnTemporaryErrors(t *testing.T) {
	const failures = 12
	fl := &failingListener{Listener: listen(t)}
	for range failures {
		fl.errs = append(fl.errs, emfile())
	}
	var reported, waited []time.Duration
	l := NewListener(fl, Config{OnAcceptError: func(err error, d time.Duration) {
		if !errors.Is(err, syscall.EMFILE) {
			t.Errorf("reported %v, want EMFILE", err)
		}
		reported = append(reported, d)
	}})
	l.wait = func(d time.Duration, _ <-chan struct{}) { waited = append(waited, d) }
	go func() {
		c, err := net.Dial("tcp", fl.Addr().String())
		if err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if fmt.Sprint(waited) != fmt.Sprint(want) || fmt.Sprint(reported) != fmt.Sprint(want) {
		t.Fatalf("waited %v, reported %v; want %v", waited, reported, want)
	}
	if fl.accepts != failures+1 {
		t.Fatalf("inner Accept called %d times, want %d", fl.accepts, failures+1)
	}

	// The next error after a success waits the minimum again.
	fl.errs = []error{emfile()}
	waited = nil
	go func() {
		if c, err := net.Dial("tcp", fl.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(waited) != 1 || waited[0] != MinAcceptDelay {
		t.Fatalf("after a success waited %v, want [%v]", waited, MinAcceptDelay)
	}
}

func TestAcceptReturnsPermanentErrors(t *testing.T) {
	perm := errors.New("permanent")
	fl := &failingListener{Listener: listen(t), errs: []error{perm}}
	l := NewListener(fl, Config{})
	l.wait = func(time.Duration, <-chan struct{}) { t.Error("waited on a permanent error") }
	if _, err := l.Accept(); !errors.Is(err, perm) {
		t.Fatalf("Accept = %v, want %v", err, perm)
	}
}

func TestCloseEndsBackoff(t *testing.T) {
	fl := &failingListener{Listener: listen(t), errs: []error{emfile()}}
	l := NewListener(fl, Config{})
	l.wait = func(_ time.Duration, done <-chan struct{}) {
		l.Close()
		<-done
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

func TestMaxConns(t *testing.T) {
	ln := listen(t)
	rejected := make(chan net.Conn, 1)
	l := NewListener(ln, Config{MaxConns: 2, OnReject: func(c net.Conn) { rejected <- c }})
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial()
	a := <-accepted
	dial()
	<-accepted
	if l.Open() != 2 {
		t.Fatalf("Open = %d, want 2", l.Open())
	}
	// The third is closed by the server: the client reads EOF (or a reset).
	c3 := dial()
	<-rejected
	if _, err := c3.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over the cap was not closed")
	}
	// Closing one (twice: the slot is freed once) makes room for one more.
	a.Close()
	a.Close()
	if l.Open() != 1 {
		t.Fatalf("Open after a close = %d, want 1", l.Open())
	}
	dial()
	<-accepted
	if l.Open() != 2 {
		t.Fatalf("Open = %d, want 2", l.Open())
	}
	l.Close()
	for range accepted {
	}
}
