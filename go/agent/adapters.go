package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/metadata/group"
	"github.com/proglog/proglog/go/metadata/report"
	"github.com/proglog/proglog/go/server"
)

// metadataGroup is the metadata group as go/broker uses it: its FSM's
// View and Changed, and its proposals. A ReplicaReady this node cannot
// propose (it does not lead the group) goes to the group's leader over
// log.v1.Internal (reports).
type metadataGroup struct {
	*group.Group
	reports *report.Client
}

func (m metadataGroup) View(fn func(*metadata.State)) { m.FSM().View(fn) }
func (m metadataGroup) Changed() <-chan struct{}      { return m.FSM().Changed() }

// ReplicaReady proposes the report here if this node leads the metadata
// group, else sends it to the leader (node is this node: the leader takes
// the reporting node from its certificate).
func (m metadataGroup) ReplicaReady(ctx context.Context, topic string, partition int, epoch uint64, node string) error {
	err := m.Group.ReplicaReady(ctx, topic, partition, epoch, node)
	if nl := (*commitlog.NotLeaderError)(nil); !errors.As(err, &nl) {
		return err
	}
	return m.reports.ReplicaReady(ctx, topic, partition, epoch)
}

// ReportLeaders proposes the hints here if this node leads the metadata
// group, else sends them to the leader (node is this node, as above).
func (m metadataGroup) ReportLeaders(ctx context.Context, node string, hints []metadata.LeaderHint) error {
	err := m.Group.ReportLeaders(ctx, node, hints)
	if nl := (*commitlog.NotLeaderError)(nil); !errors.As(err, &nl) {
		return err
	}
	return m.reports.ReportLeaders(ctx, hints)
}

var _ broker.Metadata = metadataGroup{}

// internalReports takes the reports other nodes send over log.v1.Internal
// (go/server's Config.Internal) to the metadata group, which proposes them
// if this node leads it.
type internalReports struct{ meta *group.Group }

var _ server.Internal = internalReports{}

// ReplicaReady implements server.Internal.
func (r internalReports) ReplicaReady(ctx context.Context, node, topic string, partition int, epoch uint64) error {
	err := r.meta.ReplicaReady(ctx, topic, partition, epoch, node)
	if errors.Is(err, metadata.ErrStale) {
		return fmt.Errorf("%w: %w", server.ErrStaleReport, err)
	}
	return err
}

// ReportLeaders implements server.Internal.
func (r internalReports) ReportLeaders(ctx context.Context, node string, leaders []server.PartitionLeader) error {
	hints := make([]metadata.LeaderHint, len(leaders))
	for i, l := range leaders {
		hints[i] = metadata.LeaderHint{Topic: l.Topic, Created: l.Created, Partition: l.Partition, Term: l.Term}
	}
	return r.meta.ReportLeaders(ctx, node, hints)
}

// clusterServers answers GetServers (go/server's Config.Servers): every
// node of the cluster the metadata lists and that is not leaving, by ID,
// with the leader of the default topic's partition 0 marked (the leader
// clients written for the single log send their writes to), when this
// node knows it: from its own replica of that partition, else from the
// broker's hint. Each node's state is gossip's (members): alive, failed,
// leaving (leaving or left), unknown when gossip does not know the node
// (yet); its metadata role is the metadata group's Raft configuration's.
type clusterServers struct {
	meta    *group.Group
	b       *broker.Broker
	members func() []discovery.Member
}

var _ commitlog.ServerLister = clusterServers{}

// Servers implements commitlog.ServerLister.
func (c clusterServers) Servers(ctx context.Context) ([]commitlog.Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var leader string
	if r := c.b.Replica(commitlog.DefaultTopic, 0); r != nil {
		leader, _ = r.Leader()
	} else if topics, err := c.b.Topics(ctx, commitlog.DefaultTopic); err == nil && len(topics[0].Partitions) > 0 {
		for _, s := range topics[0].Partitions[0].Replicas {
			if s.IsLeader {
				leader = s.ID
			}
		}
	}
	gossip := map[string]discovery.Member{}
	for _, m := range c.members() {
		gossip[m.Name] = m
	}
	voters := c.meta.Voters()
	var out []commitlog.Server
	c.meta.FSM().View(func(s *metadata.State) {
		for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
			if n := s.Nodes[id]; !n.Leaving {
				m, known := gossip[id]
				out = append(out, commitlog.Server{ID: id, Addr: n.APIAddr, IsLeader: id == leader, State: memberState(m, known), MetadataVoter: voters[id]})
			}
		}
	})
	return out, nil
}

// memberState is the liveness of a gossip member (known: gossip knows it).
func memberState(m discovery.Member, known bool) commitlog.ServerState {
	switch {
	case !known:
		return commitlog.StateUnknown
	case m.Status == discovery.StatusAlive:
		return commitlog.StateAlive
	case m.Status == discovery.StatusFailed:
		return commitlog.StateFailed
	case m.Status == discovery.StatusLeaving || m.Status == discovery.StatusLeft:
		return commitlog.StateLeaving
	}
	return commitlog.StateUnknown
}
