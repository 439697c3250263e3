package mux

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/internal/testutil"
)

// pki is a CA with one node certificate (server-auth only, as
// certs.IssueServer makes them) and a user certificate (client-auth only).
type pki struct {
	ca         *certs.Authority
	node, user *certs.KeyPair
}

func newPKI(t *testing.T, name string) pki {
	t.Helper()
	ca, err := certs.NewAuthority(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node, err := ca.IssueServer()
	if err != nil {
		t.Fatal(err)
	}
	user, err := ca.IssueClient("root")
	if err != nil {
		t.Fatal(err)
	}
	return pki{ca: ca, node: node, user: user}
}

func tlsCert(kp *certs.KeyPair) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}
}

// tlsConfig builds a node's Raft configuration: own is the certificate it
// presents, trust the CA it verifies peers against.
func tlsConfig(t *testing.T, own *certs.KeyPair, trust *certs.Authority) Config {
	c := DefaultConfig()
	c.HandshakeTimeout = 5 * time.Second
	c.Logger = testLogger(t)
	c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{tlsCert(own)}, ClientCAs: trust.Pool(), MinVersion: tls.VersionTLS12}
	c.PeerTLS = &tls.Config{Certificates: []tls.Certificate{tlsCert(own)}, RootCAs: trust.Pool(), MinVersion: tls.VersionTLS12}
	return c
}

// expectRejected dials acceptor from d and checks the connection does not
// carry data: the handshake fails (TLS 1.2, or the dialer refusing the
// server), or the server's alert arrives on the first read (TLS 1.3 client
// handshakes finish before the server has checked the client certificate).
// It then proves the acceptor delivered nothing: the next accepted
// connection is a legitimate one, from good.
func expectRejected(t *testing.T, d, acceptor, good *Mux) {
	t.Helper()
	acceptor.RaftConns()
	c, err := d.DialRaft(loop(acceptor.Addr()), "g", 5*time.Second)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		_, err = c.Read(b[:])
		c.Close()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("rejected peer's connection stayed usable: %v", err)
		}
	}
	t.Logf("rejected as expected: %v", err)
	echoRaft(t, good, acceptor, "g", "legit")
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t, "cluster")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	startHealth(t, m) // plaintext gRPC shares the port with TLS Raft
	echoRaft(t, startMux(t, tlsConfig(t, p.node, p.ca)), m, "meta", "secure")
	checkHealth(t, m.Addr().String())

	// The connection really is TLS with the Raft ALPN.
	m.RaftConns()
	c, err := m.DialRaft(loop(m.Addr()), "log/0", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("Dial returned %T, want *tls.Conn", c)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != RaftALPN {
		t.Fatalf("ALPN %q, want %q", got, RaftALPN)
	}
	s, group := acceptRaft(t, m.RaftConns())
	if _, ok := s.(*tls.Conn); !ok {
		t.Fatalf("AcceptRaft returned %T", s)
	}
	if group != "log/0" {
		t.Fatalf("AcceptRaft group %q, want log/0", group)
	}
}

func TestPeerFromAnotherCAIsRejected(t *testing.T) {
	p, other := newPKI(t, "cluster"), newPKI(t, "intruder")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	good := startMux(t, tlsConfig(t, p.node, p.ca))
	// The intruder trusts the cluster CA but holds a certificate of its own
	// CA, which it sends whatever CAs the server asks for.
	intruder := tlsConfig(t, other.node, p.ca)
	cert := tlsCert(other.node)
	intruder.PeerTLS.Certificates = nil
	intruder.PeerTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	expectRejected(t, startMux(t, intruder), m, good)
	// One that sends nothing is refused too.
	expectRejected(t, startMux(t, tlsConfig(t, other.node, p.ca)), m, good)
	// A node of the cluster refuses a server with a foreign certificate.
	rogue := startMux(t, tlsConfig(t, other.node, p.ca))
	rogue.RaftConns()
	if c, err := good.DialRaft(loop(rogue.Addr()), "g", 5*time.Second); err == nil {
		c.Close()
		t.Fatal("dialer accepted a server certificate from another CA")
	}
}

func TestUserCertificateCannotSpeakRaft(t *testing.T) {
	p := newPKI(t, "cluster")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	good := startMux(t, tlsConfig(t, p.node, p.ca))
	// "root" is a valid client of the gRPC API but not a node.
	expectRejected(t, startMux(t, tlsConfig(t, p.user, p.ca)), m, good)
}

func TestAuthorizePeer(t *testing.T) {
	p := newPKI(t, "cluster")
	cfg := tlsConfig(t, p.node, p.ca)
	calls := make(chan string, 8)
	cfg.AuthorizePeer = func(cs tls.ConnectionState) error {
		calls <- cs.PeerCertificates[0].Subject.CommonName
		return fmt.Errorf("node %q is not in the allow list", cs.PeerCertificates[0].Subject.CommonName)
	}
	m := startMux(t, cfg)
	m.RaftConns() // accepting (and handshaking) starts with RaftConns
	_, err := startMux(t, tlsConfig(t, p.node, p.ca)).DialRaft(loop(m.Addr()), "g", 5*time.Second)
	if err == nil {
		// TLS 1.3: the refusal shows on the first read; Accept must not deliver.
		t.Log("client handshake finished before the server refused")
	}
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("AuthorizePeer not called")
	}
	// The dialing side applies it too.
	if _, err := startMux(t, cfg).DialRaft(loop(m.Addr()), "g", 5*time.Second); !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("dialer with a refusing AuthorizePeer: %v", err)
	}
}

func TestAcceptRejectsWrongFirstByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// cmux routes only RaftRPC here; the set-up checks it all the same.
	l := newRaftListener(ln, ln.Addr(), nil, plainConfig(t))
	defer l.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{'G', 'E', 'T'}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err = c.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("wrong first byte: connection not closed: %v", err)
	}
}

func TestStalledHandshakeDoesNotBlockAccept(t *testing.T) {
	p := newPKI(t, "cluster")
	cfg := tlsConfig(t, p.node, p.ca)
	cfg.HandshakeTimeout = 500 * time.Millisecond
	m := startMux(t, cfg)
	// A peer that sends the Raft byte and then nothing.
	stalled, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Write([]byte{RaftRPC}); err != nil {
		t.Fatal(err)
	}
	echoRaft(t, startMux(t, tlsConfig(t, p.node, p.ca)), m, "g", "not blocked")
	// And the stalled one is dropped after HandshakeTimeout.
	_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(stalled); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("stalled handshake not closed by the server")
		}
	}
}

func TestNewRejectsAdvertiseAddr(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	if _, err := New(listen(), plainConfig(t)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("wildcard address without AdvertiseAddr: %v", err)
	}
	cfg := plainConfig(t)
	for _, bad := range []string{"no-port", "host:", "host:http", "host:0", "host:70000", ":7000", "0.0.0.0:7000", "[::]:7000"} {
		cfg.AdvertiseAddr = bad
		if _, err := New(listen(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("bad AdvertiseAddr %q: %v", bad, err)
		}
	}
}

// A DNS name in AdvertiseAddr is what Raft advertises, unresolved: a node's
// certificate names it (a Kubernetes pod's stable name), and a pod's IP
// address changes when it restarts. It used to be resolved once, at start:
// peers then dialled the IP address, which the certificate does not cover,
// and kept dialling it after the pod had moved.
func TestRaftAdvertisesNamesUnresolved(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:7000", "localhost:8400", "proglog-1.proglog-headless.ns.svc.cluster.local:8400", "[::1]:8400"} {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := plainConfig(t)
		cfg.AdvertiseAddr = addr
		m, err := New(ln, cfg)
		if err != nil {
			ln.Close()
			t.Fatalf("AdvertiseAddr %q: %v", addr, err)
		}
		t.Cleanup(func() { m.Close() })
		if got := m.RaftConns().Addr(); got.String() != addr || got.Network() != "tcp" {
			t.Errorf("AdvertiseAddr %q: Addr() = %s %q", addr, got.Network(), got)
		}
	}
}

// Failed Raft handshakes (here: a user certificate, which no node holds)
// are each reported to OnHandshakeFailed, for metrics, but logged at most
// once per interval: anyone who can reach the port could otherwise flood
// the log.
func TestFailedHandshakesAreCountedAndRateLimited(t *testing.T) {
	const attempts = 5
	p := newPKI(t, "cluster")
	cfg := tlsConfig(t, p.node, p.ca)
	failed := make(chan error, attempts)
	cfg.OnHandshakeFailed = func(err error) { failed <- err }
	var logs testutil.SyncBuffer
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	m := startMux(t, cfg)
	m.RaftConns()
	user := startMux(t, tlsConfig(t, p.user, p.ca))
	for i := range attempts {
		if c, err := user.DialRaft(loop(m.Addr()), "g", 5*time.Second); err == nil {
			// TLS 1.3: the refusal shows on the first read.
			var b [1]byte
			_, _ = c.Read(b[:])
			c.Close()
		}
		select {
		case err := <-failed:
			if !errors.Is(err, ErrPeerRejected) {
				t.Fatalf("attempt %d: OnHandshakeFailed(%v), want ErrPeerRejected", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d: OnHandshakeFailed not called", i)
		}
	}
	if n := strings.Count(logs.String(), "raft connection rejected"); n != 1 {
		t.Fatalf("%d log lines for %d failed handshakes, want 1:\n%s", n, attempts, logs.String())
	}
}

// rawRaft opens a plaintext connection to m's port and writes b.
func rawRaft(t *testing.T, m *Mux, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectClosed checks the server closed c (EOF or reset, not our own read
// deadline).
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil || isTimeout(err) {
		t.Fatalf("%s: connection not closed by the server: %v", what, err)
	}
}

// The header's bytes on the wire are those the package documentation
// gives: RaftRPC, version 1, uvarint length, group ID; what follows is the
// group's traffic.
func TestHeaderWireFormat(t *testing.T) {
	m := startMux(t, plainConfig(t))
	group := strings.Repeat("g", 200) // a two-byte uvarint length
	b := []byte{RaftRPC, 1, 200, 1}
	b = append(append(b, group...), 'x')
	rawRaft(t, m, b)
	c, got := acceptRaft(t, m.RaftConns())
	if got != group {
		t.Fatalf("group %q, want %q", got, group)
	}
	var next [1]byte
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, next[:]); err != nil || next[0] != 'x' {
		t.Fatalf("after the header: %q, %v; want x", next, err)
	}
}

// Two groups on one port: each accepted connection carries the group its
// dialer named.
func TestGroupsShareThePort(t *testing.T) {
	p := newPKI(t, "cluster")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	d := startMux(t, tlsConfig(t, p.node, p.ca))
	for _, g := range []string{"meta", "log/0", "orders/7", "meta", strings.Repeat("x", MaxGroupIDLen)} {
		echoRaft(t, d, m, g, "hello "+g[:min(len(g), 8)])
	}
}

func TestDialRaftRejectsGroupIDs(t *testing.T) {
	m := startMux(t, plainConfig(t))
	for _, g := range []string{"", strings.Repeat("x", MaxGroupIDLen+1)} {
		if _, err := m.DialRaft(loop(m.Addr()), g, 5*time.Second); !errors.Is(err, ErrInvalidGroupID) {
			t.Errorf("group of %d bytes: %v, want ErrInvalidGroupID", len(g), err)
		}
	}
}

// A malformed header closes the connection at once, without waiting for
// the rest of it (HandshakeTimeout is long here, so only the check can
// close it): a length over MaxGroupIDLen is refused before anything is
// allocated or read for it. Each refusal is reported; other connections
// are served.
func TestBadHeadersAreRefused(t *testing.T) {
	cfg := plainConfig(t)
	cfg.HandshakeTimeout = time.Hour
	failed := make(chan error, 1)
	cfg.OnHandshakeFailed = func(err error) { failed <- err }
	m := startMux(t, cfg)
	m.RaftConns()
	for name, b := range map[string][]byte{
		"version 0":          {RaftRPC, 0, 1, 'g'},
		"version 2":          {RaftRPC, 2, 1, 'g'},
		"empty group":        {RaftRPC, 1, 0},
		"513 bytes":          {RaftRPC, 1, 0x81, 0x04}, // then nothing
		"a terabyte":         binary.AppendUvarint([]byte{RaftRPC, 1}, 1<<40),
		"overflowing length": {RaftRPC, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		c := rawRaft(t, m, b)
		select {
		case err := <-failed:
			if !errors.Is(err, ErrBadHeader) {
				t.Errorf("%s: OnHandshakeFailed(%v), want ErrBadHeader", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not refused", name)
		}
		expectClosed(t, c, name)
	}
	echoRaft(t, m, m, "g", "still served")
}

// A header that does not arrive within HandshakeTimeout (here: the version
// and then silence, and a group ID cut short) is dropped, and waiting for
// it delays no other connection.
func TestSlowHeaderDoesNotBlockOthers(t *testing.T) {
	cfg := plainConfig(t)
	cfg.HandshakeTimeout = 300 * time.Millisecond
	failed := make(chan error, 2)
	cfg.OnHandshakeFailed = func(err error) { failed <- err }
	m := startMux(t, cfg)
	m.RaftConns()
	silent := rawRaft(t, m, []byte{RaftRPC, 1})
	short := rawRaft(t, m, []byte{RaftRPC, 1, 5, 'a', 'b'})
	// Served while both are pending: the set-up of each runs apart.
	echoRaft(t, m, m, "g", "not blocked")
	for range 2 {
		select {
		case err := <-failed:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("OnHandshakeFailed(%v), want a deadline", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("late header not refused")
		}
	}
	expectClosed(t, silent, "silent after the version")
	expectClosed(t, short, "group ID cut short")
}
