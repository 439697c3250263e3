package mux

import (
	"net"
	"sync"
)

// subListener is one protocol's share of the port. Unlike cmux's own
// listeners, closing it stops its Accept without closing the shared port.
type subListener struct {
	inner net.Listener // a cmux listener; fails once the mux is closed
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newSubListener(inner net.Listener) *subListener {
	s := &subListener{inner: inner, conns: make(chan net.Conn), done: make(chan struct{})}
	go s.pump()
	return s
}

// pump hands matched connections to Accept until the mux closes; after
// Close it keeps draining them, closing each.
func (s *subListener) pump() {
	for {
		c, err := s.inner.Accept()
		if err != nil {
			return
		}
		select {
		case s.conns <- c:
		case <-s.done:
			_ = c.Close()
		}
	}
}

// Accept implements net.Listener.
func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: s.Addr(), Err: net.ErrClosed}
	}
}

// Close implements net.Listener; it leaves the shared port open.
func (s *subListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// Addr implements net.Listener: the shared port's address.
func (s *subListener) Addr() net.Addr { return s.inner.Addr() }
