package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

var _ commitlog.Cluster = (*Broker)(nil)

// Partition returns this node's replica of topic's partition (a
// replication.CommitLog). Errors (wrapped): commitlog.ErrUnknownTopic,
// commitlog.ErrUnknownPartition, commitlog.ErrUnavailable while the
// replica assigned here is not open yet or the default topic is not
// created yet, ErrClosed, or a
// *commitlog.NotLeaderError naming the partition's first replica (its
// preferred leader) and its API address when this node holds none.
func (b *Broker) Partition(topic string, partition int) (commitlog.Partition, error) {
	var (
		k        key
		err      error
		assigned bool
		hint     commitlog.NotLeaderError
	)
	b.cfg.Metadata.View(func(s *metadata.State) {
		t := s.Topics[topic]
		if t == nil && topic == commitlog.DefaultTopic {
			// The metadata controller creates it when the cluster
			// bootstraps: it will exist, so the caller retries.
			err = fmt.Errorf("broker: the default topic %q is not created yet: %w", topic, commitlog.ErrUnavailable)
			return
		}
		if t == nil {
			err = fmt.Errorf("broker: topic %q: %w", topic, commitlog.ErrUnknownTopic)
			return
		}
		if partition < 0 || partition >= len(t.Partitions) {
			err = fmt.Errorf("broker: topic %q has %d partitions, not %d: %w", topic, len(t.Partitions), partition, commitlog.ErrUnknownPartition)
			return
		}
		k = key{topic, t.Created, partition}
		for i, id := range t.Partitions[partition].Replicas {
			if id == b.cfg.NodeID {
				assigned = true
			}
			if i == 0 {
				hint.LeaderID = id
				if n := s.Nodes[id]; n != nil {
					hint.LeaderAddr = n.APIAddr
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	b.mu.RLock()
	r, closed := b.replicas[k], b.closed
	b.mu.RUnlock()
	switch {
	case r != nil:
		return r.clog, nil
	case closed:
		return nil, ErrClosed
	case assigned:
		return nil, fmt.Errorf("broker: the replica of %s/%d on this node is not open yet: %w", topic, partition, commitlog.ErrUnavailable)
	}
	return nil, &hint
}

// Topics describes the named topics (every topic when names is empty,
// sorted by name) from this node's copy of the metadata. Replicas carry
// their API addresses; IsLeader marks the leader as this node's replica
// knows it, or, for a partition this node does not host (or whose leader
// its replica does not know), as the metadata's leader hint names it.
func (b *Broker) Topics(ctx context.Context, names ...string) ([]commitlog.TopicInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		out []commitlog.TopicInfo
		err error
	)
	b.cfg.Metadata.View(func(s *metadata.State) {
		if len(names) == 0 {
			names = s.TopicNames()
		}
		out = make([]commitlog.TopicInfo, 0, len(names))
		for _, name := range names {
			t := s.Topics[name]
			if t == nil {
				err = fmt.Errorf("broker: topic %q: %w", name, commitlog.ErrUnknownTopic)
				return
			}
			out = append(out, b.topicInfo(s, t))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// topicInfo describes t, with leader hints from the local replicas and the
// metadata. It
// does not call into the metadata (it runs inside View).
func (b *Broker) topicInfo(s *metadata.State, t *metadata.Topic) commitlog.TopicInfo {
	info := commitlog.TopicInfo{
		Name: t.Name,
		Config: commitlog.TopicConfig{
			Partitions:        t.Config.Partitions,
			ReplicationFactor: t.Config.ReplicationFactor,
			RetentionBytes:    t.Config.Retention.MaxBytes,
			RetentionAge:      t.Config.Retention.MaxAge,
		},
		Partitions: make([]commitlog.PartitionInfo, len(t.Partitions)),
	}
	for p, part := range t.Partitions {
		// This node's replica knows best; else the leader's last report.
		leader := part.Leader
		b.mu.RLock()
		r := b.replicas[key{t.Name, t.Created, p}]
		b.mu.RUnlock()
		if r != nil {
			if id, _ := r.log.Leader(); id != "" {
				leader = id
			}
		}
		pi := commitlog.PartitionInfo{Partition: p, Epoch: part.Epoch, Replicas: make([]commitlog.Server, len(part.Replicas)), Adding: slices.Clone(part.Adding)}
		for i, id := range part.Replicas {
			pi.Replicas[i] = commitlog.Server{ID: id, IsLeader: id == leader}
			if n := s.Nodes[id]; n != nil {
				pi.Replicas[i].Addr = n.APIAddr
			}
		}
		info.Partitions[p] = pi
	}
	return info
}

// CreateTopic creates a topic through the metadata group and describes it
// as placed. Errors are the metadata group's (see commitlog.Cluster).
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg commitlog.TopicConfig) (commitlog.TopicInfo, error) {
	t, err := b.cfg.Metadata.CreateTopic(ctx, name, cfg)
	if err != nil {
		return commitlog.TopicInfo{}, err
	}
	var info commitlog.TopicInfo
	b.cfg.Metadata.View(func(s *metadata.State) { info = b.topicInfo(s, &t) })
	return info, nil
}

// DeleteTopic deletes a topic through the metadata group; every node's
// broker then closes its replicas and deletes their data. The default
// topic is refused (commitlog.ErrInvalidTopic).
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if name == commitlog.DefaultTopic {
		return fmt.Errorf("broker: the default topic %q cannot be deleted: %w", name, commitlog.ErrInvalidTopic)
	}
	return b.cfg.Metadata.DeleteTopic(ctx, name)
}
