package mux

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// RaftRPC is the first byte of every Raft connection; anything else is gRPC.
const RaftRPC byte = 1

// RaftALPN is the ALPN protocol Raft connections negotiate.
const RaftALPN = "proglog-raft/1"

// RaftHeaderVersion is the first byte of a Raft connection's header, sent
// after the TLS handshake; an acceptor refuses other versions.
const RaftHeaderVersion byte = 1

// MaxGroupIDLen is the longest group ID, in bytes, a Raft header may carry.
const MaxGroupIDLen = 512

// Defaults used by DefaultConfig.
const (
	DefaultReadTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxConns         = 4096
)

// Config configures a Mux and its Raft connections. Start from DefaultConfig and
// set the TLS configurations (or, in tests only, InsecurePlaintext).
type Config struct {
	// ReadTimeout bounds how long a new connection may take to send its
	// first byte; a silent connection is closed after it. Default 5s.
	ReadTimeout time.Duration
	// HandshakeTimeout bounds a Raft connection's set-up: the first byte,
	// the TLS handshake and the header, on both the accepting and the
	// dialing side (DialRaft uses the smaller of this and the timeout it is
	// given). Default 10s.
	HandshakeTimeout time.Duration
	// MaxConns caps the connections open at once on the port: Raft, gRPC
	// and those not routed yet. One over the cap is closed at once. It
	// bounds the file descriptors strangers can take, even with silent
	// connections; keep it above the gRPC server's own cap, so that Raft
	// peers find room. 0: no cap. Default 4096.
	MaxConns int

	// ServerTLS is the TLS configuration Raft connections are accepted with:
	// this node's certificate and, in ClientCAs, the CA that signs the
	// cluster's node certificates (the gRPC server's configuration fits; it
	// is cloned, not modified). Required unless InsecurePlaintext.
	ServerTLS *tls.Config
	// PeerTLS is the TLS configuration Raft connections are dialed with:
	// this node's certificate (sent as the client certificate) and, in
	// RootCAs, the CA. ServerName defaults to the host of the dialed
	// address. Cloned, not modified. Required unless InsecurePlaintext.
	PeerTLS *tls.Config
	// AuthorizePeer, if set, is called after a peer's certificate chain was
	// verified, on both sides of a Raft connection; an error rejects the
	// connection.
	AuthorizePeer func(tls.ConnectionState) error
	// OnHandshakeFailed, if set, is called for every accepted Raft
	// connection whose set-up failed (first byte, TLS handshake, the
	// certificate, AuthorizePeer, the header; its error is wrapped), for
	// metrics. The RaftListener logs these failures itself, at most once
	// per 10s.
	OnHandshakeFailed func(error)
	// OnConnLimit, if set, is called for every connection closed because
	// MaxConns connections were open, for metrics (logged at most once
	// per 10s).
	OnConnLimit func()

	// InsecurePlaintext runs Raft without TLS: no encryption, no
	// authentication, anyone who can reach the port can take part in
	// consensus. FOR TESTS ONLY. ServerTLS and PeerTLS must then be nil.
	InsecurePlaintext bool

	// AdvertiseAddr is the address RaftListener reports as its Addr
	// (Raft's own address, which peers dial). Default: the listener's
	// address. Must be a concrete host:port when the listener is bound to
	// a wildcard address. A DNS name is kept as a name, never resolved
	// here: peers resolve it whenever they dial (following the node to a
	// new IP address) and verify the node's certificate against it.
	AdvertiseAddr string

	// Logger receives connection errors. Default: hclog.Default() named
	// "mux".
	Logger hclog.Logger
}

// DefaultConfig returns a Config with the default timeouts and no TLS.
func DefaultConfig() Config {
	return Config{
		ReadTimeout:      DefaultReadTimeout,
		HandshakeTimeout: DefaultHandshakeTimeout,
		MaxConns:         DefaultMaxConns,
	}
}

// Validate checks c and returns an error wrapping ErrInvalidConfig that
// names the first problem.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.ReadTimeout <= 0 {
		return bad("ReadTimeout must be positive, got %v", c.ReadTimeout)
	}
	if c.HandshakeTimeout <= 0 {
		return bad("HandshakeTimeout must be positive, got %v", c.HandshakeTimeout)
	}
	if c.MaxConns < 0 {
		return bad("MaxConns must be 0 (no cap) or positive, got %d", c.MaxConns)
	}
	if c.InsecurePlaintext {
		if c.ServerTLS != nil || c.PeerTLS != nil {
			return bad("InsecurePlaintext is set but ServerTLS or PeerTLS is too; choose one")
		}
		return nil
	}
	if c.ServerTLS == nil || c.PeerTLS == nil {
		return bad("ServerTLS and PeerTLS are required (InsecurePlaintext is for tests only)")
	}
	if len(c.ServerTLS.Certificates) == 0 && c.ServerTLS.GetCertificate == nil {
		return bad("ServerTLS has no certificate")
	}
	if c.ServerTLS.ClientCAs == nil {
		return bad("ServerTLS.ClientCAs is nil: Raft peers must be verified against the cluster CA")
	}
	if len(c.PeerTLS.Certificates) == 0 && c.PeerTLS.GetClientCertificate == nil {
		return bad("PeerTLS has no certificate: Raft peers authenticate each other (mutual TLS)")
	}
	if c.PeerTLS.InsecureSkipVerify {
		return bad("PeerTLS.InsecureSkipVerify must be false")
	}
	return nil
}

func (c Config) logger() hclog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return hclog.Default().Named("mux")
}
