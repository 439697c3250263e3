package agent

import (
	"context"
	"errors"
	"fmt"

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

// defaultLog is the default topic's partition 0 as the single log go/server
// serves until it takes a commitlog.Cluster: every call goes to the
// broker's replica of it at the time of the call, so it follows the
// replica opening, closing or moving away. A node that hosts none answers
// the broker's error (a *commitlog.NotLeaderError naming a replica's node,
// which clients follow).
type defaultLog struct{ b *broker.Broker }

var (
	_ commitlog.Partition    = defaultLog{}
	_ commitlog.ServerLister = defaultLog{}
)

// partition is the broker's replica. Until the metadata group's
// controller has created the default topic, the log is unavailable (not
// unknown: it will exist).
func (d defaultLog) partition() (commitlog.Partition, error) {
	p, err := d.b.Partition(commitlog.DefaultTopic, 0)
	if errors.Is(err, commitlog.ErrUnknownTopic) {
		return nil, fmt.Errorf("agent: the default topic is not created yet: %w", commitlog.ErrUnavailable)
	}
	return p, err
}

func (d defaultLog) Append(ctx context.Context, recs [][]byte) (uint64, error) {
	p, err := d.partition()
	if err != nil {
		return 0, err
	}
	return p.Append(ctx, recs)
}

func (d defaultLog) AppendIdempotent(ctx context.Context, pr commitlog.Producer, recs [][]byte) (commitlog.Appended, error) {
	p, err := d.partition()
	if err != nil {
		return commitlog.Appended{}, err
	}
	return p.AppendIdempotent(ctx, pr, recs)
}

func (d defaultLog) Read(ctx context.Context, offset uint64, c commitlog.Consistency) ([]byte, error) {
	p, err := d.partition()
	if err != nil {
		return nil, err
	}
	return p.Read(ctx, offset, c)
}

func (d defaultLog) Bounds(ctx context.Context, c commitlog.Consistency) (lowest, next uint64, err error) {
	p, err := d.partition()
	if err != nil {
		return 0, 0, err
	}
	return p.Bounds(ctx, c)
}

func (d defaultLog) Wait(ctx context.Context, offset uint64) error {
	p, err := d.partition()
	if err != nil {
		return err
	}
	return p.Wait(ctx, offset)
}

// LowestOffset and NextOffset are 0 on a node hosting no replica.
func (d defaultLog) LowestOffset() uint64 {
	if p, err := d.partition(); err == nil {
		return p.LowestOffset()
	}
	return 0
}

func (d defaultLog) NextOffset() uint64 {
	if p, err := d.partition(); err == nil {
		return p.NextOffset()
	}
	return 0
}

// Servers lists the partition's Raft configuration where this node hosts
// a replica, else its replicas as the metadata lists them.
func (d defaultLog) Servers(ctx context.Context) ([]commitlog.Server, error) {
	if p, err := d.partition(); err == nil {
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
