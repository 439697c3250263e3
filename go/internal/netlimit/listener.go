package netlimit

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Backoff bounds of Accept after temporary errors (see the package doc).
const (
	MinAcceptDelay = 5 * time.Millisecond
	MaxAcceptDelay = time.Second
)

// Config configures a Listener. The zero value retries temporary Accept
// errors and sets no cap.
type Config struct {
	// MaxConns caps the connections open at once; 0 means no cap.
	MaxConns int
	// OnReject, if set, is called with each connection closed because
	// MaxConns was reached, before it is closed.
	OnReject func(net.Conn)
	// OnAcceptError, if set, is called with each temporary Accept error and
	// the delay Accept waits before retrying.
	OnAcceptError func(err error, delay time.Duration)
}

// Listener wraps a net.Listener; see the package doc.
type Listener struct {
	net.Listener
	cfg   Config
	slots chan struct{} // one element per open connection; nil if no cap

	// wait sleeps for d or until done is closed, whichever is first; a
	// test hook.
	wait      func(d time.Duration, done <-chan struct{})
	done      chan struct{}
	closeOnce sync.Once
}

// NewListener wraps ln; closing the Listener closes ln.
func NewListener(ln net.Listener, cfg Config) *Listener {
	l := &Listener{Listener: ln, cfg: cfg, wait: sleep, done: make(chan struct{})}
	if cfg.MaxConns > 0 {
		l.slots = make(chan struct{}, cfg.MaxConns)
	}
	return l
}

func sleep(d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// Open returns the number of connections currently open through l (always
// 0 without a cap).
func (l *Listener) Open() int { return len(l.slots) }

// Accept returns the next connection within the cap, retrying temporary
// errors with a backoff.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			delay = min(max(2*delay, MinAcceptDelay), MaxAcceptDelay)
			if l.cfg.OnAcceptError != nil {
				l.cfg.OnAcceptError(err, delay)
			}
			l.wait(delay, l.done)
			select {
			case <-l.done:
				return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
			default:
			}
			continue
		}
		delay = 0
		if l.slots == nil {
			return c, nil
		}
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			if l.cfg.OnReject != nil {
				l.cfg.OnReject(c)
			}
			_ = c.Close()
		}
	}
}

// Close closes the wrapped listener and ends a backoff in progress.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// temporary reports whether Accept may succeed if retried later.
func temporary(err error) bool {
	if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// conn frees its slot once, on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
