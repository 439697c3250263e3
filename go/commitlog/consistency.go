package commitlog

import (
	"fmt"
	"strings"
)

// Consistency is the read consistency asked of a Partition for one read.
type Consistency int

const (
	// ConsistencyLinearizable (the zero value) must return every record
	// whose append was acknowledged before the read started. A replicated
	// log serves it on the leader after confirming its leadership, and
	// refuses it elsewhere (*NotLeaderError).
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

// Valid reports whether c is one of the constants.
func (c Consistency) Valid() bool {
	return c == ConsistencyLinearizable || c == ConsistencyFollower
}

// ParseConsistency parses "linearizable" or "follower" (any case, spaces
// around ignored); other text fails with an error wrapping
// ErrUnknownConsistency.
func ParseConsistency(s string) (Consistency, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "linearizable":
		return ConsistencyLinearizable, nil
	case "follower":
		return ConsistencyFollower, nil
	default:
		return 0, fmt.Errorf("%w %q: want linearizable or follower", ErrUnknownConsistency, s)
	}
}
