package mux

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/proglog/proglog/go/internal/netlimit"
)

// RaftListener hands out the port's Raft connections once their set-up
// completed, with the group their header named (see the package
// documentation for the protocol and its security). Mux.RaftConns returns
// it.
type RaftListener struct {
	ln        net.Listener // Raft connections, first byte unread
	advertise net.Addr
	serverTLS *tls.Config // nil: plaintext
	timeout   time.Duration
	log       hclog.Logger
	onFailed  func(error) // Config.OnHandshakeFailed; nil if unset
	failLog   netlimit.Sometimes

	conns     chan raftConn
	done      chan struct{}
	closeOnce sync.Once
}

// raftConn is an accepted connection and the group its header named.
type raftConn struct {
	conn  net.Conn
	group string
}

// newRaftListener accepts from ln, whose connections start with RaftRPC,
// and sets each one up in its own goroutine from now on, so that a peer's
// DialRaft completes even before the first AcceptRaft. Closing the
// RaftListener closes ln.
func newRaftListener(ln net.Listener, advertise net.Addr, serverTLS *tls.Config, cfg Config) *RaftListener {
	l := &RaftListener{
		ln:        ln,
		advertise: advertise,
		serverTLS: serverTLS,
		timeout:   cfg.HandshakeTimeout,
		log:       cfg.logger(),
		onFailed:  cfg.OnHandshakeFailed,
		failLog:   netlimit.Sometimes{Interval: acceptLogInterval},
		conns:     make(chan raftConn),
		done:      make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

// raftAddr is the address Raft connections are advertised at: advertise
// if set, else the listener's, which must then be a concrete address.
// advertise is kept as given: a DNS name stays a name (see advertisedAddr).
func raftAddr(listen net.Addr, advertise string) (net.Addr, error) {
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

// appendHeader appends the Raft header naming group to b.
func appendHeader(b []byte, group string) []byte {
	b = append(b, RaftHeaderVersion)
	b = binary.AppendUvarint(b, uint64(len(group)))
	return append(b, group...)
}

// checkGroupID reports whether group fits in a header.
func checkGroupID(group string) error {
	if group == "" || len(group) > MaxGroupIDLen {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidGroupID, len(group), MaxGroupIDLen)
	}
	return nil
}

// DialRaft connects to the port at address for Raft group: it writes
// RaftRPC, completes a TLS handshake (unless plaintext) and writes the
// header naming group, all within timeout (or Config.HandshakeTimeout,
// whichever is smaller). The connection returned carries the group's Raft
// traffic. A group ID that does not fit a header is ErrInvalidGroupID.
func (m *Mux) DialRaft(address, group string, timeout time.Duration) (net.Conn, error) {
	if err := checkGroupID(group); err != nil {
		return nil, err
	}
	if timeout <= 0 || timeout > m.cfg.HandshakeTimeout {
		timeout = m.cfg.HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("mux: dial raft %s: %w", address, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	fail := func(what string, err error) (net.Conn, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("mux: %s raft %s: %w", what, address, err)
	}
	if m.peerTLS == nil {
		if _, err := conn.Write(appendHeader([]byte{RaftRPC}, group)); err != nil {
			return fail("dial", err)
		}
		_ = conn.SetDeadline(time.Time{})
		return conn, nil
	}
	if _, err := conn.Write([]byte{RaftRPC}); err != nil {
		return fail("dial", err)
	}
	cfg := m.peerTLS
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail("TLS handshake with", err)
	}
	if _, err := tc.Write(appendHeader(nil, group)); err != nil {
		return fail("write header to", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// AcceptRaft returns the next Raft connection that completed its set-up
// (first byte, TLS handshake, header) and the group its header named.
// Set-ups run concurrently, so a slow or hostile peer does not delay the
// others. After Close it fails with an error wrapping net.ErrClosed.
func (l *RaftListener) AcceptRaft() (conn net.Conn, group string, err error) {
	select {
	case c := <-l.conns:
		return c.conn, c.group, nil
	case <-l.done:
		return nil, "", &net.OpError{Op: "accept", Net: "tcp", Addr: l.advertise, Err: net.ErrClosed}
	}
}

func (l *RaftListener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
			default:
				if !errors.Is(err, net.ErrClosed) {
					l.log.Error("raft accept failed; no more raft connections", "error", err)
				}
				l.Close()
			}
			return
		}
		go l.setUp(c)
	}
}

func (l *RaftListener) setUp(c net.Conn) {
	conn, group, err := l.serverSetUp(c)
	if err != nil {
		if l.onFailed != nil {
			l.onFailed(err)
		}
		if ok, suppressed := l.failLog.Allow(); ok {
			l.log.Warn("raft connection rejected", "remote", c.RemoteAddr().String(), "error", err, "suppressed", suppressed)
		}
		_ = c.Close()
		return
	}
	select {
	case l.conns <- raftConn{conn: conn, group: group}:
	case <-l.done:
		_ = conn.Close()
	}
}

// serverSetUp reads the first byte, runs the TLS server handshake and
// reads the header, all within HandshakeTimeout.
func (l *RaftListener) serverSetUp(c net.Conn) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return nil, "", fmt.Errorf("read first byte: %w", err)
	}
	if b[0] != RaftRPC {
		return nil, "", fmt.Errorf("%w: got %#x", ErrNotRaft, b[0])
	}
	conn := c
	if l.serverTLS != nil {
		tc := tls.Server(c, l.serverTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, "", fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	group, err := readHeader(conn)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Time{})
	return conn, group, nil
}

// readHeader reads the header and returns the group it names. It reads
// exactly the header's bytes, so what follows is left to Raft, and it
// checks the length before it allocates.
func readHeader(r io.Reader) (string, error) {
	br := &byteReader{r: r}
	v, err := br.ReadByte()
	if err != nil {
		return "", fmt.Errorf("read raft header: %w", err)
	}
	if v != RaftHeaderVersion {
		return "", fmt.Errorf("%w: version %d, want %d", ErrBadHeader, v, RaftHeaderVersion)
	}
	n, err := binary.ReadUvarint(br)
	if br.err != nil {
		return "", fmt.Errorf("read raft header: %w", br.err)
	}
	if err != nil {
		return "", fmt.Errorf("%w: group ID length: %v", ErrBadHeader, err)
	}
	if n == 0 || n > MaxGroupIDLen {
		return "", fmt.Errorf("%w: group ID of %d bytes, want 1 to %d", ErrBadHeader, n, MaxGroupIDLen)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r, id); err != nil {
		return "", fmt.Errorf("read raft header: group ID: %w", err)
	}
	return string(id), nil
}

// byteReader reads r one byte at a time (never past the uvarint), keeping
// the read error apart from a malformed uvarint.
type byteReader struct {
	r   io.Reader
	err error
}

func (b *byteReader) ReadByte() (byte, error) {
	var p [1]byte
	if _, err := io.ReadFull(b.r, p[:]); err != nil {
		b.err = err
		return 0, err
	}
	return p[0], nil
}

// Close stops AcceptRaft and closes the port's Raft side: Raft connections
// arriving from now on are closed. The port stays open for gRPC;
// connections already handed out stay open.
func (l *RaftListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		_ = l.ln.Close()
	})
	return nil
}

// Addr is the address peers dial for Raft (Config.AdvertiseAddr, else the
// listener's).
func (l *RaftListener) Addr() net.Addr { return l.advertise }
