package group

import (
	"errors"
	"slices"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

// TestCreateDeleteTopic: CreateTopic places as metadata.Place says on the
// state it was decided against and is refused with sentinels that are
// also go/commitlog's; DeleteTopic deletes, refuses the default topic and
// an unknown one; on a follower both name the leader.
func TestCreateDeleteTopic(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.joinAll()
	n0 := c.nodes[0]
	before := n0.waitState("log on 3 nodes", func(s *metadata.State) bool { return len(replicas(s, "log", 0)) == 3 })
	ctx := ctxT(t)
	cfg := commitlog.TopicConfig{Partitions: 4, ReplicationFactor: 2, RetentionBytes: 1 << 30}
	want, err := metadata.Place(before.Loads(), "orders", metadata.TopicConfig{Partitions: 4, ReplicationFactor: 2, Retention: metadata.Retention{MaxBytes: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := n0.CreateTopic(ctx, "orders", cfg)
	if err != nil {
		t.Fatal(err)
	}
	for p, part := range tp.Partitions {
		if !slices.Equal(part.Replicas, want[p]) {
			t.Fatalf("partition %d on %v, Place says %v", p, part.Replicas, want[p])
		}
	}
	s := n0.view()
	if got := s.Topics["orders"]; got == nil || got.Created != tp.Created || got.Config.Retention.MaxBytes != 1<<30 || len(got.Partitions) != 4 {
		t.Fatalf("state has %+v, CreateTopic returned %+v", got, tp)
	}
	refused := []struct {
		name   string
		topic  string
		cfg    commitlog.TopicConfig
		want   error
		wantCL error
	}{
		{"exists", "orders", cfg, metadata.ErrTopicExists, commitlog.ErrTopicExists},
		{"bad name", "a/b", cfg, metadata.ErrInvalidTopic, commitlog.ErrInvalidTopic},
		{"no partitions", "x", commitlog.TopicConfig{ReplicationFactor: 1}, metadata.ErrInvalidTopic, commitlog.ErrInvalidTopic},
		{"factor above the nodes", "x", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 4}, metadata.ErrNotEnoughNodes, commitlog.ErrNotEnoughNodes},
	}
	for _, tc := range refused {
		if _, err := n0.CreateTopic(ctx, tc.topic, tc.cfg); !errors.Is(err, tc.want) || !errors.Is(err, tc.wantCL) {
			t.Errorf("%s: %v, want %v and %v", tc.name, err, tc.want, tc.wantCL)
		}
	}
	if err := n0.DeleteTopic(ctx, commitlog.DefaultTopic); !errors.Is(err, commitlog.ErrInvalidTopic) {
		t.Fatalf("delete the default topic: %v, want ErrInvalidTopic", err)
	}
	if err := n0.DeleteTopic(ctx, "nope"); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Fatalf("delete an unknown topic: %v, want ErrUnknownTopic", err)
	}
	for _, nd := range c.nodes[1:] {
		_, cerr := nd.CreateTopic(ctx, "other", cfg)
		for name, err := range map[string]error{"create": cerr, "delete": nd.DeleteTopic(ctx, "orders")} {
			var nl *commitlog.NotLeaderError
			if !errors.As(err, &nl) || nl.LeaderID != "n0" || nl.LeaderAddr != n0.port.Addr() {
				t.Fatalf("%s on follower %s: %v, want *commitlog.NotLeaderError naming n0 at %s", name, nd.id, err, n0.port.Addr())
			}
		}
	}
	if err := n0.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		nd.waitState("orders deleted", func(s *metadata.State) bool { return s.Topics["orders"] == nil && s.Topics["log"] != nil })
	}
}

func commitlogConfig(partitions, rf int) commitlog.TopicConfig {
	return commitlog.TopicConfig{Partitions: partitions, ReplicationFactor: rf}
}

// TestCreateTopicTooLarge: a topic whose command would exceed
// MaxCommandBytes is refused as invalid before it reaches Raft, and the
// group goes on.
func TestCreateTopicTooLarge(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.MaxCommandBytes = 512 })
	n0, ctx := c.nodes[0], ctxT(t)
	n0.waitState("default topic", func(s *metadata.State) bool { return s.Topics[commitlog.DefaultTopic] != nil })
	_, err := n0.CreateTopic(ctx, "wide", commitlogConfig(128, 1))
	if !errors.Is(err, ErrCommandTooLarge) || !errors.Is(err, commitlog.ErrInvalidTopic) {
		t.Fatalf("a topic of 128 partitions in 512 bytes: %v, want ErrCommandTooLarge and ErrInvalidTopic", err)
	}
	if _, err := n0.CreateTopic(ctx, "narrow", commitlogConfig(2, 1)); err != nil || !n0.IsLeader() {
		t.Fatalf("after the refusal: %v, leader %v", err, n0.IsLeader())
	}
}
