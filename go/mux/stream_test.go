package mux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

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

// dialer is a stream layer used only to Dial (its listener is never used).
func dialer(t *testing.T, cfg Config) *StreamLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStreamLayer(ln, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// expectRejected dials with d and checks the connection does not carry
// data: the handshake fails (TLS 1.2, or the dialer refusing the server),
// or the server's alert arrives on the first read (TLS 1.3 client
// handshakes finish before the server has checked the client certificate).
// It then proves the acceptor delivered nothing: the next accepted
// connection is a legitimate one.
func expectRejected(t *testing.T, d *StreamLayer, acceptor *StreamLayer, good *StreamLayer) {
	t.Helper()
	addr := acceptor.Addr().String()
	c, err := d.Dial(raft.ServerAddress(addr), 5*time.Second)
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
	echoRaft(t, good, acceptor, "legit")
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t, "cluster")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	startHealth(t, m) // plaintext gRPC shares the port with TLS Raft
	echoRaft(t, dialer(t, tlsConfig(t, p.node, p.ca)), m.StreamLayer(), "secure")
	checkHealth(t, m.Addr().String())

	// The connection really is TLS with the Raft ALPN.
	c, err := m.StreamLayer().Dial(loop(m.Addr()), 5*time.Second)
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
	s := acceptOne(t, m.StreamLayer())
	if _, ok := s.(*tls.Conn); !ok {
		t.Fatalf("Accept returned %T", s)
	}
}

func TestPeerFromAnotherCAIsRejected(t *testing.T) {
	p, other := newPKI(t, "cluster"), newPKI(t, "intruder")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	good := dialer(t, tlsConfig(t, p.node, p.ca))
	// The intruder trusts the cluster CA but holds a certificate of its own
	// CA, which it sends whatever CAs the server asks for.
	intruder := tlsConfig(t, other.node, p.ca)
	cert := tlsCert(other.node)
	intruder.PeerTLS.Certificates = nil
	intruder.PeerTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	expectRejected(t, dialer(t, intruder), m.StreamLayer(), good)
	// One that sends nothing is refused too.
	expectRejected(t, dialer(t, tlsConfig(t, other.node, p.ca)), m.StreamLayer(), good)
	// A node of the cluster refuses a server with a foreign certificate.
	rogue := startMux(t, tlsConfig(t, other.node, p.ca))
	rogue.StreamLayer()
	if c, err := good.Dial(loop(rogue.Addr()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("dialer accepted a server certificate from another CA")
	}
}

func TestUserCertificateCannotSpeakRaft(t *testing.T) {
	p := newPKI(t, "cluster")
	m := startMux(t, tlsConfig(t, p.node, p.ca))
	good := dialer(t, tlsConfig(t, p.node, p.ca))
	// "root" is a valid client of the gRPC API but not a node.
	expectRejected(t, dialer(t, tlsConfig(t, p.user, p.ca)), m.StreamLayer(), good)
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
	m.StreamLayer() // accepting (and handshaking) starts with the stream layer
	_, err := dialer(t, tlsConfig(t, p.node, p.ca)).Dial(loop(m.Addr()), 5*time.Second)
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
	if _, err := dialer(t, cfg).Dial(loop(m.Addr()), 5*time.Second); !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("dialer with a refusing AuthorizePeer: %v", err)
	}
}

func TestAcceptRejectsWrongFirstByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStreamLayer(ln, plainConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go s.Accept() // starts the accept loop; this connection is never delivered
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
	good := tlsConfig(t, p.node, p.ca)
	echoRaft(t, dialer(t, good), m.StreamLayer(), "not blocked")
	// And the stalled one is dropped after HandshakeTimeout.
	_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(stalled); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("stalled handshake not closed by the server")
		}
	}
}

func TestNewStreamLayerRejects(t *testing.T) {
	if _, err := NewStreamLayer(nil, plainConfig(t)); !errors.Is(err, ErrNilListener) {
		t.Errorf("nil listener: %v", err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := NewStreamLayer(ln, plainConfig(t)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("wildcard address without AdvertiseAddr: %v", err)
	}
	cfg := plainConfig(t)
	cfg.AdvertiseAddr = "127.0.0.1:7000"
	s, err := NewStreamLayer(ln, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr().String() != "127.0.0.1:7000" {
		t.Errorf("Addr = %v", s.Addr())
	}
	for _, bad := range []string{"no-port", "host:", "host:http", "host:0", "host:70000", ":7000", "0.0.0.0:7000", "[::]:7000"} {
		cfg.AdvertiseAddr = bad
		if _, err := NewStreamLayer(ln, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("bad AdvertiseAddr %q: %v", bad, err)
		}
	}
}

// A DNS name in AdvertiseAddr is what Raft advertises, unresolved: a node's
// certificate names it (a Kubernetes pod's stable name), and a pod's IP
// address changes when it restarts. It used to be resolved once, at start:
// peers then dialled the IP address, which the certificate does not cover,
// and kept dialling it after the pod had moved.
func TestStreamLayerAdvertisesNamesUnresolved(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, addr := range []string{"localhost:8400", "proglog-1.proglog-headless.ns.svc.cluster.local:8400", "[::1]:8400"} {
		cfg := plainConfig(t)
		cfg.AdvertiseAddr = addr
		s, err := NewStreamLayer(ln, cfg)
		if err != nil {
			t.Fatalf("AdvertiseAddr %q: %v", addr, err)
		}
		if got := s.Addr(); got.String() != addr || got.Network() != "tcp" {
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
	m.StreamLayer()
	user := dialer(t, tlsConfig(t, p.user, p.ca))
	for i := range attempts {
		if c, err := user.Dial(loop(m.Addr()), 5*time.Second); err == nil {
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
