package replication

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/log"
)

// Consistency chooses what a read may return.
type Consistency int

const (
	// ReadLinearizable (the default) reads on the leader only, after
	// confirming leadership with a quorum and waiting until every command
	// in the leader's log when the read started is applied: a record whose
	// append was acknowledged before the read began is always visible.
	// Elsewhere it fails with *NotLeaderError.
	ReadLinearizable Consistency = iota
	// ReadFollower reads this node's data log as it is: only committed
	// records are ever in it, but it may lag behind the leader.
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

// MaxEnvelopeOverhead is the most bytes the data log adds to a record (its
// envelope): DataLog.MaxRecordBytes should be the largest record the
// server accepts plus this.
const MaxEnvelopeOverhead = maxEnvelopeOverhead

// Defaults used by DefaultConfig.
const (
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	// DefaultCommitTimeout is short because followers learn that entries
	// are committed only from the leader's next append RPC, which Raft
	// sends when new entries arrive or after CommitTimeout (randomised up
	// to twice that): after a burst of appends the last records reach the
	// followers' data logs, hence their streams, up to 2×CommitTimeout
	// late. At 5ms an idle 3-node cluster spends about 3% of a core more
	// than at hashicorp/raft's 50ms (measured on the benchmark machine, see
	// docs/benchmarks.md).
	DefaultCommitTimeout     = 5 * time.Millisecond
	DefaultSnapshotInterval  = 2 * time.Minute
	DefaultSnapshotThreshold = 8192
	DefaultTrailingLogs      = 10240
	DefaultSnapshotRetain    = 2
	DefaultApplyTimeout      = 10 * time.Second
	DefaultMaxPool           = 5
	DefaultTransportTimeout  = 10 * time.Second
	// DefaultRaftMaxRecordBytes bounds one encoded Raft entry, hence one
	// batch: it holds a 4 MiB gRPC request with room to spare.
	DefaultRaftMaxRecordBytes = 8 << 20
	// DefaultDataMaxRecordBytes bounds a data record: a 1 MiB client record
	// plus its envelope.
	DefaultDataMaxRecordBytes = 1<<20 + maxEnvelopeOverhead
)

// Config configures a Log. Start from DefaultConfig and set DataDir,
// LocalID and StreamLayer.
type Config struct {
	// DataDir holds everything: raft/log (the Raft log), raft/stable (term
	// and vote), raft/snapshots, and data (the records).
	DataDir string
	// LocalID is this node's Raft server ID (the discovery node name).
	LocalID string
	// StreamLayer carries Raft traffic, normally mux.Mux.StreamLayer(). Its
	// Addr is this node's Raft address, which peers dial and which is also
	// its gRPC address (the port is shared), reported by GetServers. The
	// Log takes it over: Close closes it.
	StreamLayer raft.StreamLayer
	// Bootstrap makes a node with no Raft state start a cluster of itself;
	// set it on the first node only. Ignored when state exists.
	Bootstrap bool

	// Raft timings: see raft.Config. Defaults 1s, 1s, 500ms, 5ms.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration

	// SnapshotInterval is how often Raft checks whether SnapshotThreshold
	// entries were added since the last snapshot, and snapshots if so.
	// Default 2m.
	SnapshotInterval time.Duration
	// SnapshotThreshold: see SnapshotInterval. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a compaction keeps behind the
	// snapshot, so slightly lagging followers catch up from the log rather
	// than from a snapshot. Default 10240.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept. Default 2.
	SnapshotRetain int

	// ApplyTimeout bounds an append whose context has no deadline, and
	// membership changes. Default 10s.
	ApplyTimeout time.Duration

	// MaxPool is the number of pooled connections per peer; TransportTimeout
	// bounds Raft RPC I/O. Defaults 5, 10s.
	MaxPool          int
	TransportTimeout time.Duration

	// DataLog configures the data log. Its MaxRecordBytes bounds a record
	// plus its envelope (maxEnvelopeOverhead bytes at most); it must be the
	// same on every node, since a command that does not fit is rejected by
	// every node that applies it. Its sync policy may be relaxed: the Raft
	// log is the durable source and the data log is fsynced when a snapshot
	// is taken. Default: go/log's defaults with SyncInterval (1s) and
	// MaxRecordBytes DefaultDataMaxRecordBytes.
	DataLog log.Config
	// RaftLog configures the Raft log (InitialOffset is forced to 1). Its
	// MaxRecordBytes bounds an encoded entry, hence a batch. Its Sync is
	// SyncAlways by default: every entry is fsynced before the node
	// acknowledges it, so an append the leader acknowledged survives the
	// loss of any minority of machines. SyncInterval or SyncNever relax
	// that for throughput: a process crash still loses nothing, but a
	// machine crash or power loss may lose the last acknowledged entries of
	// that node (of every node, if all go down together), and a node that
	// lost entries it had voted for can break Raft's guarantees. Set the
	// data log's Sync to match (DataLog), or it keeps fsyncing on its own
	// interval. Default: go/log's defaults (SyncAlways) with MaxRecordBytes
	// DefaultRaftMaxRecordBytes.
	RaftLog log.Config

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
	// still has for applying the entries it accepted, snapshots and
	// segment roll-overs, never reaching ENOSPC there. Both resume by
	// themselves when space is freed. 0 disables both. Default
	// diskspace.DefaultMinFreeBytes (256 MiB).
	MinFreeBytes uint64

	// statfs and diskRefresh replace statfs(2) and the free-space refresh
	// interval in tests (see diskspace.Config).
	statfs      func(dir string) (uint64, error)
	diskRefresh time.Duration

	// Logger receives Raft's and this package's logs. Default:
	// hclog.Default() named "replication".
	Logger hclog.Logger
}

// DefaultConfig returns a Config with the defaults above.
func DefaultConfig() Config {
	dl := log.DefaultConfig()
	dl.Sync = log.SyncInterval
	dl.MaxRecordBytes = DefaultDataMaxRecordBytes
	rl := log.DefaultConfig()
	rl.MaxRecordBytes = DefaultRaftMaxRecordBytes
	return Config{
		HeartbeatTimeout:   DefaultHeartbeatTimeout,
		ElectionTimeout:    DefaultElectionTimeout,
		LeaderLeaseTimeout: DefaultLeaderLeaseTimeout,
		CommitTimeout:      DefaultCommitTimeout,
		SnapshotInterval:   DefaultSnapshotInterval,
		SnapshotThreshold:  DefaultSnapshotThreshold,
		TrailingLogs:       DefaultTrailingLogs,
		SnapshotRetain:     DefaultSnapshotRetain,
		ApplyTimeout:       DefaultApplyTimeout,
		MaxPool:            DefaultMaxPool,
		TransportTimeout:   DefaultTransportTimeout,
		DataLog:            dl,
		RaftLog:            rl,
		MinFreeBytes:       diskspace.DefaultMinFreeBytes,
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
	case c.SnapshotRetain < 1:
		return bad("SnapshotRetain must be at least 1, got %d", c.SnapshotRetain)
	case c.ApplyTimeout <= 0:
		return bad("ApplyTimeout must be positive, got %v", c.ApplyTimeout)
	case c.MaxPool < 1:
		return bad("MaxPool must be at least 1, got %d", c.MaxPool)
	case c.TransportTimeout <= 0:
		return bad("TransportTimeout must be positive, got %v", c.TransportTimeout)
	case c.DataLog.MaxRecordBytes != 0 && c.DataLog.MaxRecordBytes <= maxEnvelopeOverhead:
		return bad("DataLog.MaxRecordBytes %d leaves no room for records", c.DataLog.MaxRecordBytes)
	case c.RaftLog.MaxRecordBytes != 0 && c.RaftLog.MaxRecordBytes <= maxEntryOverhead:
		return bad("RaftLog.MaxRecordBytes %d leaves no room for entries", c.RaftLog.MaxRecordBytes)
	}
	if err := c.DataLog.Validate(); err != nil {
		return bad("DataLog: %v", err)
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
	// The data log is persistent and replay is idempotent, so a restart
	// does not rebuild it from the snapshot (see the package documentation).
	rc.NoSnapshotRestoreOnStart = true
	return rc
}

func (c Config) logger() hclog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return hclog.Default().Named("replication")
}
