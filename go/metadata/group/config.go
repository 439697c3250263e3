package group

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

// ErrInvalidConfig: a Config field is not allowed; the message says which.
var ErrInvalidConfig = errors.New("metadata group: invalid config")

// Defaults used by DefaultConfig.
const (
	DefaultControllerVoters              = 3
	DefaultDefaultTopicReplicationFactor = 3
	DefaultReplacementDelay              = 10 * time.Minute
	DefaultControllerInterval            = 10 * time.Second
	DefaultHeartbeatTimeout              = time.Second
	DefaultElectionTimeout               = time.Second
	DefaultLeaderLeaseTimeout            = 500 * time.Millisecond
	// DefaultCommitTimeout is hashicorp/raft's: metadata changes are rare,
	// and a follower learning of one a moment later only delays when its
	// broker acts on it.
	DefaultCommitTimeout = 50 * time.Millisecond
	DefaultApplyTimeout  = 10 * time.Second
	// DefaultSnapshotInterval and DefaultSnapshotThreshold snapshot the
	// metadata often: it is small, and a node that restarts after a crash
	// restores its latest snapshot at once, so its broker reopens the
	// replicas it hosts before the metadata leader reaches it again, which
	// can take seconds (hashicorp/raft backs off from a follower that was
	// down). Only the changes since that snapshot wait for the leader.
	DefaultSnapshotInterval  = 5 * time.Second
	DefaultSnapshotThreshold = 16
	DefaultTrailingLogs      = 1024
	DefaultSnapshotRetain    = 2
	DefaultMaxPool           = 3
	DefaultTransportTimeout  = 10 * time.Second
	DefaultJoinVerifyTimeout = 3 * time.Second
	// DefaultMaxCommandBytes bounds one metadata log entry: a topic of
	// metadata.MaxPartitions partitions of metadata.MaxReplicationFactor
	// replicas named by long node IDs fits.
	DefaultMaxCommandBytes = 4 << 20
	// DefaultMaxGroupMembers bounds the members of one consumer group.
	DefaultMaxGroupMembers = 1000
	// DefaultMaxGroups bounds the consumer groups of the cluster: the
	// metadata's own limit (metadata.MaxConsumerGroups).
	DefaultMaxGroups = metadata.MaxConsumerGroups
	// DefaultSessionCheckInterval is how often the leader looks for
	// expired sessions: a member is removed at most this long after its
	// session timeout (commitlog.MinSessionTimeout and above).
	DefaultSessionCheckInterval = 100 * time.Millisecond
)

// Config configures a Group. Start from DefaultConfig and set DataDir,
// LocalID, APIAddr and StreamLayer.
type Config struct {
	// DataDir holds the group's Raft state: log/ (entries), stable (term
	// and vote) and snapshots/. The broker passes <node DataDir>/meta.
	DataDir string
	// LocalID is this node's ID (its discovery node name), in the Raft
	// configuration and in the metadata's node records.
	LocalID string
	// APIAddr is the address clients reach this node's API at; it is
	// registered with the node and returned by Leader. This node's Raft
	// address is StreamLayer.Addr() (with one port, the same address).
	APIAddr string
	// StreamLayer carries the group's Raft traffic: the stream layer of
	// group RaftGroup on the node's shared port (replication.Transport).
	// The Group takes it over: Close closes it.
	StreamLayer raft.StreamLayer
	// PeerName, if set, returns the node a connection of StreamLayer
	// proved to be (as replication.Config.PeerName): Join then adds only a
	// node that proves its ID at its address, and the group's Raft takes
	// requests only from members whose requests name the node their
	// connection proved (replication.GuardStreamLayer). nil takes every
	// node at its word: for tests only.
	PeerName func(net.Conn) (string, error)
	// OnPeerRejected, if set, is called with the reason (a
	// replication.Reject* constant) whenever a Raft peer is rejected, for
	// metrics. It must not block.
	OnPeerRejected func(reason string)
	// JoinVerifyTimeout bounds the connection Join checks a node with.
	JoinVerifyTimeout time.Duration

	// Bootstrap makes a node with no Raft state start the group as its
	// only voter; set it on the first node only. Ignored when state exists.
	Bootstrap bool
	// ControllerVoters is how many nodes vote in the group: the first ones
	// to join (that may vote); later ones are non-voters that still hold
	// the metadata. Odd numbers make sense (3 tolerates one failure, 5
	// two).
	ControllerVoters int
	// DefaultTopicReplicationFactor is the replication factor the default
	// topic (commitlog.DefaultTopic) is created with; it starts on the
	// nodes there are and is topped up as nodes join.
	DefaultTopicReplicationFactor int
	// ReplacementDelay is how long a node is leaving before the controller
	// moves its replicas to other nodes, so that a restart moves no data.
	ReplacementDelay time.Duration
	// ControllerInterval is how often the controller looks at the state
	// without a change (for ReplacementDelay).
	ControllerInterval time.Duration

	// Raft timings: see raft.Config.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	// ApplyTimeout bounds a proposal whose context has no deadline.
	ApplyTimeout time.Duration
	// SnapshotInterval, SnapshotThreshold and TrailingLogs: see
	// raft.Config. SnapshotRetain is how many snapshots are kept.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotRetain    int
	// MaxPool and TransportTimeout: see raft.NetworkTransportConfig.
	MaxPool          int
	TransportTimeout time.Duration
	// MaxCommandBytes bounds one command of the group's Raft log: a
	// larger proposal is refused (ErrCommandTooLarge) before it reaches
	// Raft.
	MaxCommandBytes uint64
	// MaxGroupMembers is the most members a consumer group may have
	// (commitlog.ErrTooManyMembers beyond).
	MaxGroupMembers int
	// MaxGroups is the most consumer groups the cluster keeps (a join
	// creating one more is refused: metadata.ErrTooManyGroups).
	MaxGroups int
	// SessionCheckInterval is how often the leader removes the consumer
	// group members whose session timed out.
	SessionCheckInterval time.Duration
	// Logger receives the group's logs. Default: hclog.Default() named
	// "meta".
	Logger hclog.Logger

	// ACLActions are the actions a rule created with CreateACLs may name
	// (the agent passes go/auth's Actions()); none allows no rule.
	ACLActions []string
	// OnACLs, if set, is called with the ACL rules of this node's copy of
	// the metadata: once in Open, with those of the state it restored,
	// before Open returns, then each time applying a command or a snapshot
	// changes them, from one goroutine (calls never overlap; changes that
	// follow each other quickly may be seen as one). It must not block
	// for long: it delays the next call, and Close waits for it.
	OnACLs func([]commitlog.ACLRule)

	// now, tick and sessionTick replace the clock, the controller's
	// ticker and the session checks' ticker; commitGate, if set, is called
	// before each commit entry is proposed (tests).
	now         func() time.Time
	tick        <-chan time.Time
	sessionTick <-chan time.Time
	commitGate  func()
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{
		JoinVerifyTimeout:             DefaultJoinVerifyTimeout,
		ControllerVoters:              DefaultControllerVoters,
		DefaultTopicReplicationFactor: DefaultDefaultTopicReplicationFactor,
		ReplacementDelay:              DefaultReplacementDelay,
		ControllerInterval:            DefaultControllerInterval,
		HeartbeatTimeout:              DefaultHeartbeatTimeout,
		ElectionTimeout:               DefaultElectionTimeout,
		LeaderLeaseTimeout:            DefaultLeaderLeaseTimeout,
		CommitTimeout:                 DefaultCommitTimeout,
		ApplyTimeout:                  DefaultApplyTimeout,
		SnapshotInterval:              DefaultSnapshotInterval,
		SnapshotThreshold:             DefaultSnapshotThreshold,
		TrailingLogs:                  DefaultTrailingLogs,
		SnapshotRetain:                DefaultSnapshotRetain,
		MaxPool:                       DefaultMaxPool,
		TransportTimeout:              DefaultTransportTimeout,
		MaxCommandBytes:               DefaultMaxCommandBytes,
		MaxGroupMembers:               DefaultMaxGroupMembers,
		MaxGroups:                     DefaultMaxGroups,
		SessionCheckInterval:          DefaultSessionCheckInterval,
	}
}

// Validate reports the first field that is not allowed.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.DataDir == "":
		return bad("DataDir is required")
	case c.LocalID == "":
		return bad("LocalID is required")
	case c.APIAddr == "":
		return bad("APIAddr is required")
	case c.StreamLayer == nil:
		return bad("StreamLayer is required")
	case c.PeerName != nil && c.JoinVerifyTimeout <= 0:
		return bad("JoinVerifyTimeout must be positive with PeerName, got %v", c.JoinVerifyTimeout)
	case c.ControllerVoters < 1:
		return bad("ControllerVoters must be at least 1, got %d", c.ControllerVoters)
	case c.DefaultTopicReplicationFactor < 1 || c.DefaultTopicReplicationFactor > metadata.MaxReplicationFactor:
		return bad("DefaultTopicReplicationFactor must be 1 to %d, got %d", metadata.MaxReplicationFactor, c.DefaultTopicReplicationFactor)
	case c.ReplacementDelay < 0:
		return bad("ReplacementDelay must not be negative, got %v", c.ReplacementDelay)
	case c.ControllerInterval <= 0:
		return bad("ControllerInterval must be positive, got %v", c.ControllerInterval)
	case c.ApplyTimeout <= 0:
		return bad("ApplyTimeout must be positive, got %v", c.ApplyTimeout)
	case c.SnapshotRetain < 1:
		return bad("SnapshotRetain must be at least 1, got %d", c.SnapshotRetain)
	case c.MaxPool < 1:
		return bad("MaxPool must be at least 1, got %d", c.MaxPool)
	case c.TransportTimeout <= 0:
		return bad("TransportTimeout must be positive, got %v", c.TransportTimeout)
	case c.MaxCommandBytes == 0:
		return bad("MaxCommandBytes must be positive")
	case c.MaxGroupMembers < 1:
		return bad("MaxGroupMembers must be at least 1, got %d", c.MaxGroupMembers)
	case c.MaxGroups < 1 || c.MaxGroups > metadata.MaxConsumerGroups:
		return bad("MaxGroups must be 1 to %d (metadata.MaxConsumerGroups), got %d", metadata.MaxConsumerGroups, c.MaxGroups)
	case c.SessionCheckInterval <= 0:
		return bad("SessionCheckInterval must be positive, got %v", c.SessionCheckInterval)
	}
	if err := raft.ValidateConfig(c.raftConfig()); err != nil {
		return bad("raft: %v", err)
	}
	return nil
}

func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.LocalID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	return rc
}

func (c Config) logger() hclog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return hclog.Default().Named("meta")
}

func (c Config) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
