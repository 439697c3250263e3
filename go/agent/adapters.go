package agent

import (
	"context"

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

// defaultServers answers GetServers (go/server's Config.Servers): the
// servers of the default topic's partition 0, the cluster's servers as
// clients written for the single log know them.
type defaultServers struct{ b *broker.Broker }

var _ commitlog.ServerLister = defaultServers{}

// Servers lists the partition's Raft configuration where this node hosts
// a replica, else its replicas as the metadata lists them.
func (d defaultServers) Servers(ctx context.Context) ([]commitlog.Server, error) {
	if p, err := d.b.Partition(commitlog.DefaultTopic, 0); err == nil {
		if sl, ok := p.(commitlog.ServerLister); ok {
			return sl.Servers(ctx)
		}
	}
	topics, err := d.b.Topics(ctx, commitlog.DefaultTopic)
	if err != nil {
		return nil, err
	}
	return topics[0].Partitions[0].Replicas, nil
}
