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
// Raft connections are dialed by Mux.DialRaft and accepted through
// Mux.RaftConns; go/mux does not import Raft (go/replication's Transport
// adapts these connections to hashicorp/raft's StreamLayer, one per Raft
// group). DialRaft connects, writes RaftRPC, runs a TLS client handshake and
// writes the header; the RaftListener reads the byte back, runs the TLS
// server handshake, reads the header and hands the connection to
// AcceptRaft with the group it names.
//
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
// # Raft header
//
// Every node runs several Raft groups on its one port (the metadata group
// and one per partition replica), so a Raft connection names its group. The
// header, the first bytes inside TLS (right after RaftRPC without it), is
//
//	version   1 byte, RaftHeaderVersion (1)
//	length    uvarint, 1 to MaxGroupIDLen (512)
//	group ID  length bytes
//
// followed by the group's Raft traffic. The acceptor reads it within the
// same HandshakeTimeout as the handshake, byte by byte up to the group ID,
// whose length it checks before allocating it. Another version, a length
// out of range or a malformed uvarint (ErrBadHeader), or a header that is
// late or cut short, closes the connection as a failed handshake does:
// reported to Config.OnHandshakeFailed and logged at most once per 10s.
// Which groups exist is not go/mux's business: it hands on any group ID.
//
// # Deadlines
//
// A connection that sends nothing cannot stall the port: each connection is
// matched in its own goroutine, and one that has not sent its first byte
// within Config.ReadTimeout is closed. A Raft connection must also complete
// its TLS handshake and send its header within Config.HandshakeTimeout; the
// set-up runs in its own goroutine, so a slow peer never delays AcceptRaft
// for the others.
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
// The listeners returned by RaftConns and GRPCListener can be closed
// independently: closing one (grpc.Server.Stop closes its listener) does
// not close the shared port. Mux.Close closes the port and everything on
// it.
package mux
