package commitlog

import (
	"errors"
	"fmt"
)

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrNotLeader: the call needs the leader and this node is not it. The
	// concrete error is *NotLeaderError.
	ErrNotLeader = errors.New("commitlog: not the leader")
	// ErrLeadershipLost: leadership changed while an append was in flight;
	// it may or may not have been written.
	ErrLeadershipLost = errors.New("commitlog: leadership lost; the append may or may not have been written")
	// ErrUnavailable: the partition cannot serve this call on this node now;
	// retry later or on another server.
	ErrUnavailable = errors.New("commitlog: unavailable on this node")
	// ErrUnknownConsistency: ParseConsistency was given an unknown name.
	ErrUnknownConsistency = errors.New("commitlog: unknown read consistency")
)

// NotLeaderError is returned by calls that need the leader on another node.
// errors.Is(err, ErrNotLeader) is true. LeaderID and LeaderAddr are empty
// while no leader is known (an election is under way). LeaderAddr is the
// leader's address for clients.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "commitlog: not the leader, and no leader is known yet"
	}
	return fmt.Sprintf("commitlog: not the leader; the leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// NotLeader reports true: discovery logs handler errors that say so at
// debug level, since they are expected on every node but the leader.
func (e *NotLeaderError) NotLeader() bool { return true }
