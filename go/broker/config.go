package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/replication"
)

// Metadata is the cluster's metadata as the broker uses it: the local copy
// of the metadata group's state (go/metadata's FSM: View, Changed) and the
// proposals that go through the group's leader.
type Metadata interface {
	// View calls fn with the current state, which fn must not change or
	// keep.
	View(fn func(*metadata.State))
	// Changed returns a channel closed at the next change of the state.
	Changed() <-chan struct{}
	// CreateTopic places and creates a topic (errors as in
	// commitlog.Cluster.CreateTopic).
	CreateTopic(ctx context.Context, name string, cfg commitlog.TopicConfig) (metadata.Topic, error)
	// DeleteTopic deletes a topic (errors as in commitlog.Cluster.DeleteTopic).
	DeleteTopic(ctx context.Context, name string) error
	// ReplicaReady reports that node's replica of topic's partition, which
	// the reassignment at epoch added (metadata.Partition.Adding), caught
	// up (metadata.OpReplicaReady).
	ReplicaReady(ctx context.Context, topic string, partition int, epoch uint64, node string) error
	// ReportLeaders records that node leads the partitions of hints, each
	// in its term (metadata.OpLeaders; at most metadata.MaxLeaderHints).
	ReportLeaders(ctx context.Context, node string, hints []metadata.LeaderHint) error
}

// StreamLayers gives each Raft group its own stream layer on the node's
// one port (go/replication's Transport). Closing a returned layer
// unregisters its group only, and may be called more than once.
type StreamLayers interface {
	Group(id string) (raft.StreamLayer, error)
}

// Defaults of Config.
const (
	DefaultRetryInterval        = 5 * time.Second
	DefaultLeaderReportInterval = time.Second
	DefaultPreferredLeaderDelay = 10 * time.Second
)

// Config configures a Broker. Start from DefaultConfig.
type Config struct {
	// NodeID is this node's ID in the metadata (its Raft server ID in
	// every group).
	NodeID string
	// DataDir is the node's data directory; the partitions live under
	// DataDir/topics (see the package documentation).
	DataDir string
	// Metadata is the metadata group.
	Metadata Metadata
	// StreamLayers gives each partition's group its stream layer.
	StreamLayers StreamLayers
	// Replica is the template of every partition replica's configuration
	// (timings, limits, sync, producers, disk watermark, PeerName, logger).
	// The broker sets DataDir, LocalID, StreamLayer, Bootstrap,
	// InitialServers and OnLeadershipChange; Retention is the
	// topic's where the topic sets a limit, this template's otherwise.
	Replica replication.Config
	// RetryInterval is how often a replica that failed to open is tried
	// again, and how often partition leaders reconcile their groups'
	// membership without a metadata change (a new replica whose Join was
	// not verified yet). Default DefaultRetryInterval.
	RetryInterval time.Duration
	// LeaderReportInterval is how often this node reports the partitions
	// it leads whose leader hint in the metadata is not this node
	// (Metadata.ReportLeaders): at most one report, of at most
	// metadata.MaxLeaderHints partitions, per interval. Default
	// DefaultLeaderReportInterval.
	LeaderReportInterval time.Duration
	// PreferredLeaderDelay is how long a partition's preferred replica
	// (the first of its replica list) must have been a voter of the group
	// (and its node not leaving) before the node leading the partition in
	// its place hands leadership to it, so that a restarting node is not
	// handed leadership at once. Checked every RetryInterval; a failed
	// transfer is tried again after PreferredLeaderDelay. 0 turns
	// balancing off. Default DefaultPreferredLeaderDelay.
	PreferredLeaderDelay time.Duration
	// OnOpen, if set, is called with every replica the broker opened (for
	// metrics: its Recovery), before it serves.
	OnOpen func(topic string, partition int, l *replication.Log)
	// OnLeaderChange, if set, is called whenever the leader a local replica
	// knows of changes (see replication.Config.OnLeaderChange), with the
	// partition. It must not block.
	OnLeaderChange func(topic string, partition int, id, addr string)
	// Logger receives the broker's logs; replicas log to it named after
	// their partition unless Replica.Logger is set. Default
	// hclog.Default() named "broker".
	Logger hclog.Logger

	// clock, if set, replaces time.Now for PreferredLeaderDelay (tests).
	clock func() time.Time
	// onTransfer, if set, is called as a leadership transfer to a
	// preferred replica starts; the function it returns is called with the
	// outcome (tests).
	onTransfer func(k key, to string) func(error)
	// onPass, if set, is called after every balancing pass (tests).
	onPass func()
}

func (c Config) now() time.Time {
	if c.clock != nil {
		return c.clock()
	}
	return time.Now()
}

// DefaultConfig returns a Config with the defaults and
// replication.DefaultConfig() as the replica template.
func DefaultConfig() Config {
	return Config{Replica: replication.DefaultConfig(), RetryInterval: DefaultRetryInterval, LeaderReportInterval: DefaultLeaderReportInterval, PreferredLeaderDelay: DefaultPreferredLeaderDelay}
}

// Validate reports the first problem, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.NodeID == "":
		return bad("NodeID is required")
	case c.DataDir == "":
		return bad("DataDir is required")
	case c.Metadata == nil:
		return bad("Metadata is required")
	case c.StreamLayers == nil:
		return bad("StreamLayers is required")
	case c.RetryInterval <= 0:
		return bad("RetryInterval must be positive, got %v", c.RetryInterval)
	case c.LeaderReportInterval <= 0:
		return bad("LeaderReportInterval must be positive, got %v", c.LeaderReportInterval)
	case c.PreferredLeaderDelay < 0:
		return bad("PreferredLeaderDelay must not be negative, got %v", c.PreferredLeaderDelay)
	case c.Replica.DataDir != "" || c.Replica.LocalID != "" || c.Replica.StreamLayer != nil || c.Replica.Bootstrap || len(c.Replica.InitialServers) > 0:
		return bad("Replica must leave DataDir, LocalID, StreamLayer, Bootstrap and InitialServers unset: the broker sets them per partition")
	}
	// The template is checked as a replica would be, with the fields the
	// broker sets filled in.
	rc := c.Replica
	rc.DataDir, rc.LocalID, rc.StreamLayer = c.DataDir, c.NodeID, nopStream{}
	if err := rc.Validate(); err != nil {
		return bad("Replica: %v", err)
	}
	return nil
}

func (c Config) logger() hclog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return hclog.Default().Named("broker")
}
