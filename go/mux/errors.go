package mux

import "errors"

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("mux: invalid config")
	// ErrNilListener: New was given no listener.
	ErrNilListener = errors.New("mux: nil listener")
	// ErrServing: Serve was called more than once.
	ErrServing = errors.New("mux: already serving")
	// ErrNotRaft: an accepted Raft connection did not start with RaftRPC.
	ErrNotRaft = errors.New("mux: connection does not start with the Raft byte")
	// ErrPeerRejected: a Raft peer's certificate is not a node certificate of
	// the cluster's CA, or Config.AuthorizePeer refused it.
	ErrPeerRejected = errors.New("mux: raft peer rejected")
	// ErrBadHeader: an accepted Raft connection's header is malformed: an
	// unknown version, or a group ID length that is not 1 to MaxGroupIDLen.
	ErrBadHeader = errors.New("mux: malformed raft header")
	// ErrInvalidGroupID: DialRaft was given a group ID that does not fit a
	// header (empty, or longer than MaxGroupIDLen bytes).
	ErrInvalidGroupID = errors.New("mux: invalid raft group ID")
)
