package testutil

import (
	"net"
	"sync"
	"testing"
)

// HeldPort is a loopback TCP port bound for the whole test, for servers
// that a test restarts "at the same address". Binding the old port again
// after a stop races with every other process on the machine, which may
// have taken it as an ephemeral port meanwhile ("address already in use");
// a held port is never released until the test ends. Each server gets a
// Listener of it; closing that ends only that server's Accept calls. While
// no Listener is open, connections are closed as soon as they arrive, as
// they would be refused by a port nobody listens on.
type HeldPort struct {
	ln   net.Listener
	stop chan struct{}

	mu  sync.Mutex
	cur *PortListener // the open Listener; nil if none
}

// HoldPort binds a free loopback port until the end of t.
func HoldPort(t testing.TB) *HeldPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &HeldPort{ln: ln, stop: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			l := p.cur
			p.mu.Unlock()
			if l == nil {
				c.Close()
				continue
			}
			select {
			case l.conns <- c:
			case <-l.closed:
				c.Close()
			case <-p.stop:
				c.Close()
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(p.stop)
		ln.Close()
		<-done
	})
	return p
}

// Addr is the held address.
func (p *HeldPort) Addr() string { return p.ln.Addr().String() }

// Listener returns a new listener on the held port, which from now on gets
// its connections (a listener opened before gets none). After Close, its
// Accept fails with net.ErrClosed, and the port stays bound.
func (p *HeldPort) Listener() *PortListener {
	l := &PortListener{p: p, conns: make(chan net.Conn), closed: make(chan struct{})}
	p.mu.Lock()
	p.cur = l
	p.mu.Unlock()
	return l
}

// PortListener is one server's net.Listener on a HeldPort.
type PortListener struct {
	p      *HeldPort
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

// Accept waits for the next connection to the held port.
func (l *PortListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close ends this listener's Accept calls; the port stays bound.
func (l *PortListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.p.mu.Lock()
		if l.p.cur == l {
			l.p.cur = nil
		}
		l.p.mu.Unlock()
	})
	return nil
}

// Closed reports whether Close was called.
func (l *PortListener) Closed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Addr is the held port's address.
func (l *PortListener) Addr() net.Addr { return l.p.ln.Addr() }
