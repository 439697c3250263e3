package mux

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/netlimit"
)

// StreamLayer carries Raft's connections over the shared port; it
// implements raft.StreamLayer (see the package documentation for the
// protocol and its security).
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config // nil: plaintext
	peerTLS   *tls.Config // nil: plaintext
	timeout   time.Duration
	log       hclog.Logger
	onFailed  func(error) // Config.OnHandshakeFailed; nil if unset
	failLog   netlimit.Sometimes

	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer makes a stream layer accepting from ln, whose connections
// start with RaftRPC (Mux.RaftListener; New calls this for you). Closing
// the stream layer closes ln.
func NewStreamLayer(ln net.Listener, cfg Config) (*StreamLayer, error) {
	if ln == nil {
		return nil, ErrNilListener
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &StreamLayer{
		ln:       ln,
		timeout:  cfg.HandshakeTimeout,
		log:      cfg.logger(),
		failLog:  netlimit.Sometimes{Interval: acceptLogInterval},
		onFailed: cfg.OnHandshakeFailed,
		conns:    make(chan net.Conn),
		done:     make(chan struct{}),
	}
	a, err := streamAddr(ln.Addr(), cfg.AdvertiseAddr)
	if err != nil {
		return nil, err
	}
	s.advertise = a
	if !cfg.InsecurePlaintext {
		s.serverTLS, s.peerTLS = raftTLS(cfg)
	}
	// Accept and handshake from now on, so that a peer's Dial completes
	// even before Raft first calls Accept.
	go s.acceptLoop()
	return s, nil
}

// streamAddr is the address the stream layer advertises: advertise if set,
// else the listener's, which must then be a concrete address. advertise is
// kept as given: a DNS name stays a name (see advertisedAddr).
func streamAddr(listen net.Addr, advertise string) (net.Addr, error) {
	if advertise != "" {
		host, port, err := net.SplitHostPort(advertise)
		if err != nil {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q: %v", ErrInvalidConfig, advertise, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q: port %q is not a port number", ErrInvalidConfig, advertise, port)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return nil, fmt.Errorf("%w: AdvertiseAddr %q is not an address peers can dial", ErrInvalidConfig, advertise)
		}
		return advertisedAddr(advertise), nil
	}
	if ta, ok := listen.(*net.TCPAddr); ok && (ta.IP == nil || ta.IP.IsUnspecified()) {
		return nil, fmt.Errorf("%w: address %s is not one peers can dial; set AdvertiseAddr", ErrInvalidConfig, listen)
	}
	return listen, nil
}

// advertisedAddr is AdvertiseAddr as Raft's address: host:port exactly as
// configured. It is not resolved here: a name (a Kubernetes pod's stable DNS
// name) is what the node's certificate is issued for and what peers must
// verify, and peers resolve it each time they dial, so they follow the node
// to a new IP address (a restarted pod).
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// raftTLS derives the Raft connection configurations from the caller's:
// ALPN RaftALPN on both sides; on the server the client certificate is
// required and verified here (not by crypto/tls, which would demand the
// client-auth usage), as a node certificate: chain to ClientCAs with the
// server-auth usage.
func raftTLS(cfg Config) (server, peer *tls.Config) {
	server = cfg.ServerTLS.Clone()
	server.NextProtos = []string{RaftALPN}
	server.ClientAuth = tls.RequireAnyClientCert
	pool := server.ClientCAs
	authorize := cfg.AuthorizePeer
	server.VerifyPeerCertificate = nil
	server.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verifyNode(cs.PeerCertificates, pool); err != nil {
			return err
		}
		if authorize != nil {
			if err := authorize(cs); err != nil {
				return fmt.Errorf("%w: %w", ErrPeerRejected, err)
			}
		}
		return nil
	}

	peer = cfg.PeerTLS.Clone()
	peer.NextProtos = []string{RaftALPN}
	if authorize != nil {
		prev := peer.VerifyConnection
		peer.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			// crypto/tls verified the chain (server-auth usage) already.
			if err := authorize(cs); err != nil {
				return fmt.Errorf("%w: %w", ErrPeerRejected, err)
			}
			return nil
		}
	}
	return server, peer
}

// verifyNode checks that certs[0] chains to pool and may act as a server:
// only cluster nodes hold such certificates.
func verifyNode(certs []*x509.Certificate, pool *x509.CertPool) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no certificate", ErrPeerRejected)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("%w: certificate %q: %v", ErrPeerRejected, certs[0].Subject.CommonName, err)
	}
	return nil
}

// Dial implements raft.StreamLayer: it connects to address, writes RaftRPC
// and (unless plaintext) completes a TLS handshake, all within timeout (or
// Config.HandshakeTimeout, whichever is smaller).
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > s.timeout {
		timeout = s.timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("mux: dial raft %s: %w", address, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte{RaftRPC}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mux: dial raft %s: %w", address, err)
	}
	if s.peerTLS == nil {
		_ = conn.SetDeadline(time.Time{})
		return conn, nil
	}
	cfg := s.peerTLS
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			host = string(address)
		}
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mux: raft TLS handshake with %s: %w", address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// Accept implements net.Listener: it returns the next Raft connection that
// sent RaftRPC and completed its handshake. Handshakes run concurrently, so
// a slow or hostile peer does not delay the others.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: s.advertise, Err: net.ErrClosed}
	}
}

func (s *StreamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
			default:
				if !errors.Is(err, net.ErrClosed) {
					s.log.Error("raft accept failed; no more raft connections", "error", err)
				}
				s.Close()
			}
			return
		}
		go s.handshake(c)
	}
}

func (s *StreamLayer) handshake(c net.Conn) {
	conn, err := s.serverHandshake(c)
	if err != nil {
		if s.onFailed != nil {
			s.onFailed(err)
		}
		if ok, suppressed := s.failLog.Allow(); ok {
			s.log.Warn("raft connection rejected", "remote", c.RemoteAddr().String(), "error", err, "suppressed", suppressed)
		}
		_ = c.Close()
		return
	}
	select {
	case s.conns <- conn:
	case <-s.done:
		_ = conn.Close()
	}
}

func (s *StreamLayer) serverHandshake(c net.Conn) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return nil, fmt.Errorf("read first byte: %w", err)
	}
	if b[0] != RaftRPC {
		return nil, fmt.Errorf("%w: got %#x", ErrNotRaft, b[0])
	}
	if s.serverTLS == nil {
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}
	tc := tls.Server(c, s.serverTLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// Close implements net.Listener: Accept fails from now on and the
// underlying Raft listener is closed. Connections already made stay open.
func (s *StreamLayer) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.ln.Close()
	})
	return nil
}

// Addr implements net.Listener: the address peers dial (AdvertiseAddr).
func (s *StreamLayer) Addr() net.Addr { return s.advertise }
