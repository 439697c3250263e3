package agent

import (
	"context"
	"maps"
	"slices"

	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/metadata/group"
)

// metadataGroup is the metadata group as go/broker uses it: its FSM's
// View and Changed, and its proposals.
type metadataGroup struct{ *group.Group }

func (m metadataGroup) View(fn func(*metadata.State)) { m.FSM().View(fn) }
func (m metadataGroup) Changed() <-chan struct{}      { return m.FSM().Changed() }

var _ broker.Metadata = metadataGroup{}

// clusterServers answers GetServers (go/server's Config.Servers): every
// node of the cluster the metadata lists and that is not leaving, by ID,
// with the leader of the default topic's partition 0 marked (the leader
// clients written for the single log send their writes to), when this
// node knows it: from its own replica of that partition, else from the
// broker's hint.
type clusterServers struct {
	meta *group.Group
	b    *broker.Broker
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
	var out []commitlog.Server
	c.meta.FSM().View(func(s *metadata.State) {
		for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
			if n := s.Nodes[id]; !n.Leaving {
				out = append(out, commitlog.Server{ID: id, Addr: n.APIAddr, IsLeader: id == leader})
			}
		}
	})
	return out, nil
}
