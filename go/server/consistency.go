package server

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Consistency is the read consistency the server asks of its CommitLog for
// one read. The type lives here, with the CommitLog interface, so that a
// replicated implementation (go/replication) depends on go/server and never
// the other way round: go/server knows nothing of Raft.
type Consistency int

const (
	// ConsistencyLinearizable (the zero value, and the server's default)
	// must return every record whose append was acknowledged before the
	// read started. A replicated log serves it on the leader after
	// confirming its leadership, and refuses it elsewhere (NOT_LEADER).
	ConsistencyLinearizable Consistency = iota
	// ConsistencyFollower may return the node's local state as it is: only
	// committed records, possibly lagging behind the leader.
	ConsistencyFollower
)

// String returns the name ParseConsistency accepts.
func (c Consistency) String() string {
	switch c {
	case ConsistencyLinearizable:
		return "linearizable"
	case ConsistencyFollower:
		return "follower"
	default:
		return fmt.Sprintf("Consistency(%d)", int(c))
	}
}

// ParseConsistency parses "linearizable" or "follower" (any case).
func ParseConsistency(s string) (Consistency, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "linearizable":
		return ConsistencyLinearizable, nil
	case "follower":
		return ConsistencyFollower, nil
	default:
		return 0, fmt.Errorf("%w: unknown read consistency %q: want linearizable or follower", ErrInvalidConfig, s)
	}
}

func (c Consistency) valid() bool {
	return c == ConsistencyLinearizable || c == ConsistencyFollower
}

// consistency maps a request's consistency to the CommitLog's:
// UNSPECIFIED is Config.DefaultConsistency, unknown values are
// InvalidArgument.
func (s *Server) consistency(c logv1.Consistency) (Consistency, error) {
	switch c {
	case logv1.Consistency_CONSISTENCY_UNSPECIFIED:
		return s.cfg.DefaultConsistency, nil
	case logv1.Consistency_CONSISTENCY_LINEARIZABLE:
		return ConsistencyLinearizable, nil
	case logv1.Consistency_CONSISTENCY_FOLLOWER:
		return ConsistencyFollower, nil
	default:
		return 0, status.Errorf(codes.InvalidArgument, "unknown consistency %d", int32(c))
	}
}
