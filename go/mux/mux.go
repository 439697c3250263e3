package mux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soheilhy/cmux"

	"github.com/proglog/proglog/go/internal/netlimit"
)

// acceptLogInterval rate-limits the log lines of failed and refused
// Accepts.
const acceptLogInterval = 10 * time.Second

// Mux shares one listener between Raft and gRPC.
type Mux struct {
	cfg       Config
	root      net.Listener
	cm        cmux.CMux
	raft      *subListener // Raft connections, first byte unread
	grpc      *subListener
	advertise net.Addr    // the Raft address (see raftAddr)
	serverTLS *tls.Config // Raft's, from raftTLS; nil: plaintext
	peerTLS   *tls.Config // likewise
	raftOnce  sync.Once
	raftConns *RaftListener

	serving   atomic.Bool
	mu        sync.Mutex // orders served.Add against Close
	isClosed  bool
	served    sync.WaitGroup
	closeOnce sync.Once
	closed    chan struct{}
}

// New multiplexes ln. Call Serve (usually in a goroutine) to start routing
// connections, hand GRPCListener to grpc.Server.Serve, and RaftConns and
// DialRaft to the Raft transport (go/replication's Transport). The Mux owns
// ln: Close closes it.
func New(ln net.Listener, cfg Config) (*Mux, error) {
	if ln == nil {
		return nil, ErrNilListener
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.logger()
	// Temporary Accept errors (out of file descriptors) are retried with a
	// backoff inside root, so cmux, which retries at once, never sees them.
	acceptLog := &netlimit.Sometimes{Interval: acceptLogInterval}
	rejectLog := &netlimit.Sometimes{Interval: acceptLogInterval}
	root := netlimit.NewListener(ln, netlimit.Config{
		MaxConns: cfg.MaxConns,
		OnReject: func(c net.Conn) {
			if cfg.OnConnLimit != nil {
				cfg.OnConnLimit()
			}
			if ok, suppressed := rejectLog.Allow(); ok {
				log.Warn("connection refused: connection limit reached", "remote", c.RemoteAddr(), "limit", cfg.MaxConns, "suppressed", suppressed)
			}
		},
		OnAcceptError: func(err error, retry time.Duration) {
			if ok, suppressed := acceptLog.Allow(); ok {
				log.Warn("accept failed; backing off", "error", err, "retry_in", retry, "suppressed", suppressed)
			}
		},
	})
	cm := cmux.New(root)
	cm.SetReadTimeout(cfg.ReadTimeout)
	cm.HandleError(func(err error) bool {
		var nm cmux.ErrNotMatched
		switch {
		case errors.Is(err, net.ErrClosed):
			log.Debug("listener closed", "error", err)
		case errors.As(err, &nm):
			// Silent past ReadTimeout, or closed before its first byte.
			log.Debug("connection closed before it could be routed", "error", err)
		default:
			log.Warn("mux error", "error", err)
		}
		return true
	})
	advertise, err := raftAddr(ln.Addr(), cfg.AdvertiseAddr)
	if err != nil {
		return nil, err
	}
	m := &Mux{
		cfg:       cfg,
		root:      root,
		cm:        cm,
		advertise: advertise,
		closed:    make(chan struct{}),
	}
	if !cfg.InsecurePlaintext {
		m.serverTLS, m.peerTLS = raftTLS(cfg)
	}
	// Order matters: cmux tries matchers in registration order.
	m.raft = newSubListener(cm.Match(firstByteIs(RaftRPC)))
	m.grpc = newSubListener(cm.Match(firstByteIsNot(RaftRPC)))
	return m, nil
}

// firstByteIs matches connections whose first byte is b.
func firstByteIs(b byte) cmux.Matcher {
	return func(r io.Reader) bool {
		var p [1]byte
		n, _ := io.ReadFull(r, p[:])
		return n == 1 && p[0] == b
	}
}

// firstByteIsNot matches connections that send a first byte other than b.
// A connection that sends nothing (within ReadTimeout) matches nothing and
// is closed.
func firstByteIsNot(b byte) cmux.Matcher {
	return func(r io.Reader) bool {
		var p [1]byte
		n, _ := io.ReadFull(r, p[:])
		return n == 1 && p[0] != b
	}
}

// GRPCListener returns the listener of every connection that is not Raft.
// Closing it does not close the port.
func (m *Mux) GRPCListener() net.Listener { return m.grpc }

// RaftConns returns the listener of Raft connections, made on the first
// call (and then the same one): from then on every Raft connection is set
// up (first byte, TLS handshake, header) and handed to its AcceptRaft with
// the group its header named. Closing it does not close the port.
func (m *Mux) RaftConns() *RaftListener {
	m.raftOnce.Do(func() {
		m.raftConns = newRaftListener(m.raft, m.advertise, m.serverTLS, m.cfg)
	})
	return m.raftConns
}

// Addr returns the address of the shared listener.
func (m *Mux) Addr() net.Addr { return m.root.Addr() }

// Serve routes connections until Close, then returns nil; it returns the
// listener's error if the listener fails first. It may be called once.
func (m *Mux) Serve() error {
	if !m.serving.CompareAndSwap(false, true) {
		return ErrServing
	}
	m.mu.Lock()
	if m.isClosed {
		m.mu.Unlock()
		return nil
	}
	m.served.Add(1)
	m.mu.Unlock()
	defer m.served.Done()
	err := m.cm.Serve()
	select {
	case <-m.closed:
		return nil
	default:
		return fmt.Errorf("mux: serve: %w", err)
	}
}

// Close stops routing, closes the listener and the sub-listeners (their
// Accept fails with net.ErrClosed) and waits for Serve to return.
// Connections already handed out are not closed. Close is idempotent.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.isClosed = true
		m.mu.Unlock()
		close(m.closed)
		m.cm.Close()
		if cerr := m.root.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("mux: close listener: %w", cerr)
		}
		m.raft.Close()
		m.grpc.Close()
		m.RaftConns().Close() // made if need be, so it too reports closed
		m.served.Wait()
	})
	return err
}
