// Package mux serves Raft and gRPC on one TCP port.
//
// # Protocol
//
// A connection whose first byte is RaftRPC (1) belongs to Raft; every other
// connection goes to gRPC. A gRPC client never sends that byte first: a TLS
// connection starts with a handshake record (0x16) and a plaintext HTTP/2
// connection with the preface "PRI * HTTP/2.0". The first byte is sniffed by
// cmux (github.com/soheilhy/cmux) and replayed, so the gRPC server sees the
// connection from its first byte.
//
// Raft connections are made by StreamLayer, which implements
// raft.StreamLayer: Dial connects, writes RaftRPC and runs a TLS client
// handshake; Accept reads the byte back and runs the TLS server handshake.
// Both sides authenticate (mutual TLS): the server verifies the dialer's
// certificate against ServerTLS.ClientCAs and the dialer verifies the server's
// against PeerTLS.RootCAs. A peer must present a node certificate, one with
// the server-auth extended key usage: a client certificate issued to a user by
// the same CA (client-auth only) cannot speak Raft. Config.AuthorizePeer can
// narrow this further (for example to a list of node names). Both sides
// negotiate the ALPN protocol RaftALPN, so a Raft connection is never mistaken
// for another TLS protocol. Config.InsecurePlaintext turns TLS off; it exists
// for tests only.
//
// # Deadlines
//
// A connection that sends nothing cannot stall the port: each connection is
// matched in its own goroutine, and one that has not sent its first byte
// within Config.ReadTimeout is closed. A Raft connection must also complete
// its TLS handshake within Config.HandshakeTimeout; the handshake runs in its
// own goroutine, so a slow peer never delays Accept for the others.
//
// # Connections
//
// At most Config.MaxConns connections are open on the port at once, Raft,
// gRPC and not yet routed together: one over the cap is closed at once
// (logged at most every 10s). With the first-byte deadline this bounds
// the file descriptors a stranger can hold.
//
// Out of file descriptors (EMFILE, ENFILE) or on another temporary Accept
// error, the port backs off like net/http, 5ms doubling to 1s and reset by
// the next successful Accept, instead of retrying at once; the failure is
// logged at most once every 10s with the number of lines suppressed (see
// go/internal/netlimit).
//
// # Closing
//
// The listeners returned by RaftListener and GRPCListener, and the
// StreamLayer, can be closed independently: closing one (grpc.Server.Stop
// closes its listener, raft closes its stream layer on shutdown) does not
// close the shared port. Mux.Close closes the port and everything on it.
package mux
