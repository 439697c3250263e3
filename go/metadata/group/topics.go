package group

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

// CreateTopic creates topic name with cfg, its replicas placed by
// metadata.Place on the nodes that may take replicas, and returns it as
// created. Errors (test with errors.Is; go/commitlog's sentinels hold
// too): metadata.ErrInvalidTopic (also for a topic whose command would
// exceed Config.MaxCommandBytes), ErrTopicExists, ErrNotEnoughNodes (a
// replication factor above the live nodes); a *commitlog.NotLeaderError
// naming the group's leader on any other node; commitlog.ErrLeadershipLost
// if leadership moved while it was proposed (it may have been created).
func (g *Group) CreateTopic(ctx context.Context, name string, cfg commitlog.TopicConfig) (metadata.Topic, error) {
	mc := metadata.TopicConfig{
		Partitions:        cfg.Partitions,
		ReplicationFactor: cfg.ReplicationFactor,
		Retention:         metadata.Retention{MaxBytes: cfg.RetentionBytes, MaxAge: cfg.RetentionAge},
	}
	if err := metadata.ValidateTopicName(name); err != nil {
		return metadata.Topic{}, err
	}
	if err := mc.Validate(); err != nil {
		return metadata.Topic{}, err
	}
	if !g.IsLeader() {
		return metadata.Topic{}, g.notLeader()
	}
	g.decideMu.Lock()
	defer g.decideMu.Unlock()
	var assignment [][]string
	var err error
	g.fsm.View(func(s *metadata.State) {
		if _, ok := s.Topics[name]; ok {
			err = fmt.Errorf("%w: %q", metadata.ErrTopicExists, name)
			return
		}
		assignment, err = metadata.Place(s.Loads(), name, mc)
	})
	if err != nil {
		return metadata.Topic{}, err
	}
	index, err := g.propose(ctx, metadata.Command{Op: metadata.OpCreateTopic, Topic: name, Config: &mc, Assignment: assignment})
	if errors.Is(err, ErrCommandTooLarge) {
		return metadata.Topic{}, fmt.Errorf("%w: %w", metadata.ErrInvalidTopic, err)
	}
	if err != nil {
		return metadata.Topic{}, err
	}
	t := metadata.Topic{Name: name, Config: mc, Partitions: make([]metadata.Partition, len(assignment)), Created: index}
	for p, replicas := range assignment {
		t.Partitions[p] = metadata.Partition{Replicas: replicas}
	}
	g.lg.Info("topic created", "topic", name, "partitions", mc.Partitions, "replication_factor", mc.ReplicationFactor)
	return t, nil
}

// DeleteTopic deletes topic name. Errors: metadata.ErrUnknownTopic,
// ErrInvalidTopic for the default topic (commitlog.DefaultTopic, which
// clients without a topic use), and those of CreateTopic's for reaching
// the leader.
func (g *Group) DeleteTopic(ctx context.Context, name string) error {
	if name == commitlog.DefaultTopic {
		return fmt.Errorf("%w: the default topic %q cannot be deleted", metadata.ErrInvalidTopic, name)
	}
	if _, err := g.propose(ctx, metadata.Command{Op: metadata.OpDeleteTopic, Topic: name}); err != nil {
		return err
	}
	g.lg.Info("topic deleted", "topic", name)
	return nil
}

// Reassign sets the replicas of topic's partition to replicas if it is
// still at epoch (metadata.OpReassign: one replica added or removed at a
// time), adding naming the replica it adds to take over from another,
// which must report caught up (ReplicaReady) before that one is dropped.
// The controller moves replicas with it. Errors: metadata.ErrStale (the
// partition changed meanwhile), ErrUnknownTopic, ErrUnknownPartition,
// ErrUnknownNode, ErrBadEncoding (more than one change), and those of
// reaching the leader.
func (g *Group) Reassign(ctx context.Context, topic string, partition int, epoch uint64, replicas []string, adding ...string) error {
	_, err := g.propose(ctx, metadata.Command{Op: metadata.OpReassign, Topic: topic, Partition: partition, Epoch: epoch,
		Replicas: slices.Clone(replicas), Adding: slices.Clone(adding)})
	return err
}

// ReplicaReady reports that node's replica of topic's partition, added at
// epoch by a reassignment, caught up (metadata.OpReplicaReady): the
// partition's leader calls it, and the controller then drops the replica
// it replaces. Errors: metadata.ErrStale (not adding that node at that
// epoch), and those of reaching the leader.
func (g *Group) ReplicaReady(ctx context.Context, topic string, partition int, epoch uint64, node string) error {
	_, err := g.propose(ctx, metadata.Command{Op: metadata.OpReplicaReady, Topic: topic, Partition: partition, Epoch: epoch, NodeID: node})
	return err
}

// ReportLeaders records that node leads the partitions of hints, each in
// its term (metadata.OpLeaders, one command; Leader is set to node): leader
// hints for every node's GetMetadata, never used for correctness. At most
// metadata.MaxLeaderHints entries (ErrCommandTooLarge otherwise).
func (g *Group) ReportLeaders(ctx context.Context, node string, hints []metadata.LeaderHint) error {
	if len(hints) > metadata.MaxLeaderHints {
		return fmt.Errorf("%w: %d leader hints, at most %d", ErrCommandTooLarge, len(hints), metadata.MaxLeaderHints)
	}
	c := metadata.Command{Op: metadata.OpLeaders, Leaders: make([]metadata.LeaderHint, len(hints))}
	for i, h := range hints {
		h.Leader = node
		c.Leaders[i] = h
	}
	_, err := g.propose(ctx, c)
	return err
}
