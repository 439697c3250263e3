package replication

import (
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

// Consistency chooses what a read may return.
type Consistency int

const (
	// ReadLinearizable (the default) reads on the leader only, after
	// confirming leadership with a quorum and waiting until every command
	// in the leader's log when the read started is applied: a record whose
	// append was acknowledged before the read began is always visible.
	// Elsewhere it fails with *commitlog.NotLeaderError.
	ReadLinearizable Consistency = iota
	// ReadFollower reads this node's applied records as they are: only
	// committed records are ever applied, but it may lag behind the
	// leader.
	ReadFollower
)

func (c Consistency) String() string {
	switch c {
	case ReadLinearizable:
		return "linearizable"
	case ReadFollower:
		return "follower"
	default:
		return fmt.Sprintf("Consistency(%d)", int(c))
	}
}

// Defaults used by DefaultConfig.
const (
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	// DefaultCommitTimeout trades idle cost against follower delivery:
	// followers learn that entries are committed only from the leader's
	// next append RPC, which Raft sends when new entries arrive or after
	// CommitTimeout (randomised up to twice that) even with nothing to
	// send, so the last records of a burst reach the followers' streams
	// 1–2×CommitTimeout after their ack, and every idle partition costs
	// two such RPCs per CommitTimeout. docs/benchmarks.md ("Choosing the
	// partition groups' CommitTimeout") has the measurements behind the
	// choice.
	DefaultCommitTimeout     = 20 * time.Millisecond
	DefaultSnapshotInterval  = 2 * time.Minute
	DefaultSnapshotThreshold = 8192
	DefaultTrailingLogs      = 10240
	DefaultSnapshotRetain    = 2
	// DefaultSnapshotThresholdBytes and DefaultTrailingBytes bound the
	// Raft log on disk by bytes (see Config.SnapshotThresholdBytes).
	DefaultSnapshotThresholdBytes = 256 << 20
	DefaultTrailingBytes          = 64 << 20
	DefaultRetentionInterval      = 10 * time.Second
	DefaultApplyTimeout           = 10 * time.Second
	DefaultMaxPool                = 5
	DefaultTransportTimeout       = 10 * time.Second
	// DefaultJoinVerifyTimeout: see Config.JoinVerifyTimeout.
	DefaultJoinVerifyTimeout = 3 * time.Second
	// DefaultRaftMaxRecordBytes bounds one encoded Raft entry, hence one
	// batch: it holds a 4 MiB gRPC request with room to spare.
	DefaultRaftMaxRecordBytes = 8 << 20
	// DefaultMaxRecordBytes bounds one record: a 1 MiB client record.
	DefaultMaxRecordBytes = 1 << 20
)

// Config configures a Log. Start from DefaultConfig and set DataDir,
// LocalID and StreamLayer.
type Config struct {
	// DataDir holds everything: raft/log (the Raft log, which is the record
	// log), raft/stable (term and vote) and raft/snapshots. A DataDir of
	// the single-log layout (a data log in DataDir/data) is refused
	// (ErrOldLayout).
	DataDir string
	// LocalID is this node's Raft server ID (the discovery node name).
	LocalID string
	// StreamLayer carries Raft traffic, normally a Transport's group
	// (Transport.Group). Its Addr is this node's Raft address, which peers
	// dial and which is also its gRPC address (the port is shared),
	// reported by GetServers. The Log takes it over: Close closes it.
	StreamLayer raft.StreamLayer
	// PeerName, if set, authorizes Raft peers by identity (see the package
	// documentation, "Peers"): it returns the node a connection of
	// StreamLayer proved to be (for go/mux's TLS connections, the node its
	// certificate names), or an error if none. nil trusts every connection
	// StreamLayer lets through and adds members without checking them: for
	// tests only.
	PeerName func(net.Conn) (string, error)
	// OnPeerRejected, if set, is called with the reason (a Reject*
	// constant) whenever a Raft peer is rejected, for metrics. It must not
	// block.
	OnPeerRejected func(reason string)
	// JoinVerifyTimeout bounds the connection with which Join checks that a
	// new member is the node it claims to be (with PeerName). Default 3s.
	JoinVerifyTimeout time.Duration

	// Bootstrap makes a node with no Raft state start a cluster: of itself
	// alone, or of InitialServers. Ignored when state exists.
	Bootstrap bool
	// InitialServers, with Bootstrap, is the configuration a node with no
	// Raft state bootstraps the group with: every server a voter, LocalID
	// among them. Every replica of a new group may bootstrap with the same
	// list (hashicorp/raft allows identical bootstraps), so none has to be
	// added by Join. Empty: this node alone. The StreamLayer's address is
	// used for LocalID whatever RPCAddr says.
	InitialServers []Server

	// Raft timings: see raft.Config. Defaults 1s, 1s, 500ms, 20ms.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration

	// SnapshotInterval is how often Raft checks whether SnapshotThreshold
	// entries were added since the last snapshot, and snapshots if so.
	// Default 2m.
	SnapshotInterval time.Duration
	// SnapshotThreshold: see SnapshotInterval. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a compaction keeps behind the
	// snapshot, so slightly lagging followers catch up from the log rather
	// than from a snapshot. At least 1. Default 10240.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept. Default 2.
	SnapshotRetain int
	// SnapshotThresholdBytes bounds the Raft log by bytes as
	// SnapshotThreshold does by entries: after every write to the Raft
	// log, if its store files hold more than TrailingBytes +
	// SnapshotThresholdBytes, the node takes a snapshot and compacts the
	// log down to at most TrailingBytes behind it (whole segments). 0
	// disables it. Default 256 MiB; if set, at least the Raft log's
	// segment size (RaftLog.Segment.MaxStoreBytes), since compaction
	// removes whole segments.
	SnapshotThresholdBytes uint64
	// TrailingBytes bounds by bytes what a compaction triggered by
	// SnapshotThresholdBytes keeps behind the snapshot: the fewest of
	// TrailingLogs entries and the newest whole segments that fit in
	// TrailingBytes (the segment being written is always kept). Default
	// 64 MiB.
	TrailingBytes uint64

	// Retention bounds the records kept (by bytes and age of the Raft log's
	// segments, RaftLog.Segment.MaxStoreBytes being its granularity). It is
	// applied by the leader for the whole group: see RetentionInterval.
	// Zero keeps everything.
	Retention seglog.Retention
	// RetentionInterval is how often the leader checks Retention (it also
	// checks whenever its Raft log gains a segment). When retention allows
	// dropping the oldest segments, the leader proposes the new lowest
	// offset through Raft and every replica drops the records below it
	// (see the package documentation). Default 10s; must be positive when
	// Retention sets a limit.
	RetentionInterval time.Duration

	// MaxRecordBytes bounds one record (as the server encoded it); a
	// longer one is refused before it is proposed. It must fit in a Raft
	// entry (RaftLog.MaxRecordBytes). Default DefaultMaxRecordBytes.
	MaxRecordBytes uint64

	// ApplyTimeout bounds an append whose context has no deadline,
	// membership changes, and a read's wait for this node to catch up (see
	// Log.Read). Default 10s.
	ApplyTimeout time.Duration

	// MaxPool is the number of pooled connections per peer; TransportTimeout
	// bounds Raft RPC I/O. Defaults 5, 10s.
	MaxPool          int
	TransportTimeout time.Duration

	// RaftLog configures the Raft log, which is the record log
	// (InitialOffset is forced to 1). Its MaxRecordBytes bounds an encoded
	// entry, hence a batch. Its Sync is
	// SyncAlways by default: every entry is fsynced before the node
	// acknowledges it, so an append the leader acknowledged survives the
	// loss of any minority of machines. SyncInterval or SyncNever relax
	// that for throughput: a process crash still loses nothing, but a
	// machine crash or power loss may lose the last acknowledged entries of
	// that node (of every node, if all go down together), and a node that
	// lost entries it had voted for can break Raft's guarantees. Default:
	// go/seglog's defaults (SyncAlways) with MaxRecordBytes
	// DefaultRaftMaxRecordBytes.
	RaftLog seglog.Config

	// OnLeadershipChange, if set, is called with true when this node becomes
	// the leader and false when it stops being it, in order, from one
	// goroutine. Use it to reconcile membership (discovery's Reconcile);
	// do slow work in a goroutine of your own.
	OnLeadershipChange func(isLeader bool)
	// OnLeaderChange, if set, is called whenever the leader this node knows
	// of changes — any node's, not only this one's leadership — with its ID
	// and address, both empty while none is known (an election, or a node
	// not yet in a cluster). Calls come in order from one goroutine, each
	// with the state current when it is made (quick successive changes may
	// be reported once), starting with the first known leader. Use it for
	// readiness; do not block in it.
	OnLeaderChange func(id, addr string)

	// MinFreeBytes is the free-space watermark of the file system holding
	// DataDir (see go/diskspace). Below it the leader refuses appends with
	// an error wrapping diskspace.ErrLowSpace (the server answers
	// RESOURCE_EXHAUSTED) and every node keeps serving reads, heartbeats
	// and votes. Below half of it, the reserve, a node also refuses to
	// store Raft entries (StoreLogs fails, so the leader retries a
	// follower later and a leader steps down), which keeps the space it
	// still has for snapshots, snapshot installs and segment roll-overs,
	// never reaching ENOSPC there (applying entries writes nothing). Both resume by
	// themselves when space is freed. 0 disables both. Default
	// diskspace.DefaultMinFreeBytes (256 MiB).
	MinFreeBytes uint64

	// Producers bounds the idempotent producers' table every replica keeps
	// (see AppendIdempotent): a producer idle longer than Expiry (by the
	// leader's clock, the Raft entries' time) is forgotten, and past
	// MaxProducers the longest idle one is evicted if idle longer than
	// EvictAfter, else a new producer is refused. This node's values are
	// used while it leads: its proposer decides with them and puts them in
	// every idempotent command, and every replica's table takes them from
	// the command, never from its own Config.
	// Default producer.DefaultConfig() (24h, 10000, 5m).
	Producers producer.Config

	// statfs and diskRefresh replace statfs(2) and the free-space refresh
	// interval in tests (see diskspace.Config).
	statfs      func(dir string) (uint64, error)
	diskRefresh time.Duration

	// Logger receives Raft's and this package's logs. Default:
	// hclog.Default() named "replication".
	Logger hclog.Logger

	// beforeApply, if set (by tests), is called on Raft's FSM goroutine
	// before each batch of entries is applied: blocking in it holds the
	// state machine back.
	beforeApply func()
	// afterRestore, if set (by tests), is called each time the state
	// machine has restored a snapshot: one received from a leader (on
	// Raft's FSM goroutine), or the latest one, in New.
	afterRestore func()
	// catchUpPoll, if set (by tests), replaces catchUpPoll (catchup.go).
	catchUpPoll time.Duration
}

// DefaultConfig returns a Config with the defaults above.
func DefaultConfig() Config {
	rl := seglog.DefaultConfig()
	rl.MaxRecordBytes = DefaultRaftMaxRecordBytes
	return Config{
		HeartbeatTimeout:       DefaultHeartbeatTimeout,
		ElectionTimeout:        DefaultElectionTimeout,
		LeaderLeaseTimeout:     DefaultLeaderLeaseTimeout,
		CommitTimeout:          DefaultCommitTimeout,
		SnapshotInterval:       DefaultSnapshotInterval,
		SnapshotThreshold:      DefaultSnapshotThreshold,
		TrailingLogs:           DefaultTrailingLogs,
		SnapshotRetain:         DefaultSnapshotRetain,
		SnapshotThresholdBytes: DefaultSnapshotThresholdBytes,
		TrailingBytes:          DefaultTrailingBytes,
		RetentionInterval:      DefaultRetentionInterval,
		ApplyTimeout:           DefaultApplyTimeout,
		MaxPool:                DefaultMaxPool,
		TransportTimeout:       DefaultTransportTimeout,
		JoinVerifyTimeout:      DefaultJoinVerifyTimeout,
		MaxRecordBytes:         DefaultMaxRecordBytes,
		RaftLog:                rl,
		MinFreeBytes:           diskspace.DefaultMinFreeBytes,
		Producers:              producer.DefaultConfig(),
	}
}

// Validate checks c and returns an error wrapping ErrInvalidConfig that
// names the first problem. Raft's own constraints are checked too.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.DataDir == "":
		return bad("DataDir is required")
	case c.LocalID == "":
		return bad("LocalID is required")
	case c.StreamLayer == nil:
		return bad("StreamLayer is required")
	case c.TrailingLogs < 1:
		return bad("TrailingLogs must be at least 1, got %d: a compaction down to the last entry could not be told from a conflicting suffix", c.TrailingLogs)
	case c.SnapshotRetain < 1:
		return bad("SnapshotRetain must be at least 1, got %d", c.SnapshotRetain)
	case c.ApplyTimeout <= 0:
		return bad("ApplyTimeout must be positive, got %v", c.ApplyTimeout)
	case c.MaxPool < 1:
		return bad("MaxPool must be at least 1, got %d", c.MaxPool)
	case c.TransportTimeout <= 0:
		return bad("TransportTimeout must be positive, got %v", c.TransportTimeout)
	case c.PeerName != nil && c.JoinVerifyTimeout <= 0:
		return bad("JoinVerifyTimeout must be positive with PeerName, got %v", c.JoinVerifyTimeout)
	case c.RaftLog.MaxRecordBytes != 0 && c.RaftLog.MaxRecordBytes <= maxEntryOverhead:
		return bad("RaftLog.MaxRecordBytes %d leaves no room for entries", c.RaftLog.MaxRecordBytes)
	case c.MaxRecordBytes != 0 && c.MaxRecordBytes+maxEntryOverhead+maxCommandOverhead+binary.MaxVarintLen64 > c.raftRecordBytes():
		return bad("MaxRecordBytes %d does not fit in a raft entry of RaftLog.MaxRecordBytes %d", c.MaxRecordBytes, c.raftRecordBytes())
	case len(c.InitialServers) > 0 && !c.Bootstrap:
		return bad("InitialServers needs Bootstrap")
	case c.RetentionInterval < 0:
		return bad("RetentionInterval must not be negative, got %v", c.RetentionInterval)
	case c.RetentionInterval == 0 && c.retains():
		return bad("RetentionInterval must be positive when Retention sets a limit")
	}
	if seg := c.raftSegmentBytes(); c.SnapshotThresholdBytes != 0 && c.SnapshotThresholdBytes < seg {
		return bad("SnapshotThresholdBytes %d is below the Raft log's segment size %d: compaction removes whole segments", c.SnapshotThresholdBytes, seg)
	}
	if err := c.validateInitialServers(); err != nil {
		return bad("%v", err)
	}
	if err := c.Producers.Validate(); err != nil {
		return bad("Producers: %v", err)
	}
	if c.Retention.MaxAge < 0 {
		return bad("Retention.MaxAge must not be negative, got %v", c.Retention.MaxAge)
	}
	rl := c.RaftLog
	rl.InitialOffset = 1
	if err := rl.Validate(); err != nil {
		return bad("RaftLog: %v", err)
	}
	if err := raft.ValidateConfig(c.raftConfig()); err != nil {
		return bad("raft: %v", err)
	}
	return nil
}

// validateInitialServers checks that InitialServers, if set, names every
// server once, each with an address but LocalID's, and LocalID among them.
func (c Config) validateInitialServers() error {
	if len(c.InitialServers) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(c.InitialServers))
	for i, s := range c.InitialServers {
		switch {
		case s.ID == "":
			return fmt.Errorf("InitialServers[%d] has no ID", i)
		case seen[s.ID]:
			return fmt.Errorf("InitialServers names %q twice", s.ID)
		case s.RPCAddr == "" && s.ID != c.LocalID:
			return fmt.Errorf("InitialServers[%d] (%s) has no RPCAddr", i, s.ID)
		}
		seen[s.ID] = true
	}
	if !seen[c.LocalID] {
		return fmt.Errorf("InitialServers does not name LocalID %q", c.LocalID)
	}
	return nil
}

// bootstrapConfiguration is the configuration a bootstrapping node starts
// the group with (see InitialServers); local is its own address.
func (c Config) bootstrapConfiguration(local raft.ServerAddress) raft.Configuration {
	if len(c.InitialServers) == 0 {
		return raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(c.LocalID), Address: local, Suffrage: raft.Voter}}}
	}
	var cf raft.Configuration
	for _, s := range c.InitialServers {
		addr := raft.ServerAddress(s.RPCAddr)
		if s.ID == c.LocalID {
			addr = local
		}
		cf.Servers = append(cf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: addr, Suffrage: raft.Voter})
	}
	return cf
}

// retains reports whether Retention sets a limit.
func (c Config) retains() bool {
	return c.Retention.MaxBytes > 0 || c.Retention.MaxAge > 0
}

// maxRecordBytes is MaxRecordBytes, default substituted.
func (c Config) maxRecordBytes() uint64 {
	if c.MaxRecordBytes == 0 {
		return DefaultMaxRecordBytes
	}
	return c.MaxRecordBytes
}

// raftRecordBytes is RaftLog.MaxRecordBytes, default substituted.
func (c Config) raftRecordBytes() uint64 {
	if c.RaftLog.MaxRecordBytes == 0 {
		return seglog.DefaultMaxRecordBytes
	}
	return c.RaftLog.MaxRecordBytes
}

// raftSegmentBytes is the Raft log's segment size, default substituted.
func (c Config) raftSegmentBytes() uint64 {
	if c.RaftLog.Segment.MaxStoreBytes == 0 {
		return seglog.DefaultMaxStoreBytes
	}
	return c.RaftLog.Segment.MaxStoreBytes
}

// raftConfig is the raft.Config for c (without NotifyCh and logger).
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
	// New restores the latest snapshot itself (snapshotStore.restoreLatest):
	// Raft's Open of a snapshot adds the log's entries, for followers.
	rc.NoSnapshotRestoreOnStart = true
	return rc
}

func (c Config) logger() hclog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return hclog.Default().Named("replication")
}
