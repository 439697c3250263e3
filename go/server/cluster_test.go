package server_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
)

// cluster is the tests' commitlog.Cluster: one node holding every
// partition, each a server.StorageLog over a seglog of its own in a
// temporary directory (real storage; only placement is trivial). It holds
// the default topic from the start, whose partition 0 is the fixture's
// log.
type cluster struct {
	t    testing.TB
	dir  string
	lcfg seglog.Config
	self commitlog.Server // the one replica of every partition

	mu     sync.Mutex
	topics map[string]*clusterTopic
	// created and deleted count the CreateTopic and DeleteTopic calls
	// that reached the cluster.
	created, deleted int
	// fail, if set, is returned by every method instead of its answer
	// (the errors a real cluster returns that this one has no cause for).
	fail error
	// ledBy names the leader Topics reports for a partition whose leader
	// is not self (which then holds a follower replica).
	ledBy map[commitlog.TopicPartition]string
}

// leadElsewhere makes Topics report leader as the leader of topic's
// partition, self as a follower.
func (c *cluster) leadElsewhere(topic string, partition int, leader string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ledBy == nil {
		c.ledBy = map[commitlog.TopicPartition]string{}
	}
	c.ledBy[commitlog.TopicPartition{Topic: topic, Partition: partition}] = leader
}

// failWith makes every method of c return err (nil: answer again).
func (c *cluster) failWith(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

type clusterTopic struct {
	cfg   commitlog.TopicConfig
	parts []commitlog.Partition
	logs  []*seglog.Log // the seglogs this cluster opened, closed on delete
}

var _ commitlog.Cluster = (*cluster)(nil)

func newCluster(t testing.TB, dir string, lcfg seglog.Config, self commitlog.Server, defaultLog commitlog.Partition) *cluster {
	c := &cluster{t: t, dir: dir, lcfg: lcfg, self: self, topics: map[string]*clusterTopic{
		commitlog.DefaultTopic: {cfg: commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1}, parts: []commitlog.Partition{defaultLog}},
	}}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, tp := range c.topics {
			closeLogs(t, tp.logs)
		}
	})
	return c
}

func closeLogs(t testing.TB, logs []*seglog.Log) {
	for _, l := range logs {
		if err := l.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
			t.Errorf("close partition log: %v", err)
		}
	}
}

// create is CreateTopic for tests' setup: it fails the test on error.
func (c *cluster) create(name string, partitions int) {
	c.t.Helper()
	if _, err := c.CreateTopic(context.Background(), name, commitlog.TopicConfig{Partitions: partitions, ReplicationFactor: 1}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) Partition(topic string, partition int) (commitlog.Partition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	tp, ok := c.topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", commitlog.ErrUnknownTopic, topic)
	}
	if partition < 0 || partition >= len(tp.parts) {
		return nil, fmt.Errorf("%w: %q has %d partitions, not %d", commitlog.ErrUnknownPartition, topic, len(tp.parts), partition)
	}
	return tp.parts[partition], nil
}

func (c *cluster) info(name string, tp *clusterTopic) commitlog.TopicInfo {
	info := commitlog.TopicInfo{Name: name, Config: tp.cfg}
	for i := range tp.parts {
		replicas := []commitlog.Server{c.self}
		if leader, ok := c.ledBy[commitlog.TopicPartition{Topic: name, Partition: i}]; ok {
			follower := c.self
			follower.IsLeader = false
			replicas = []commitlog.Server{follower, {ID: leader, IsLeader: true}}
		}
		info.Partitions = append(info.Partitions, commitlog.PartitionInfo{Partition: i, Replicas: replicas, Epoch: 1})
	}
	return info
}

func (c *cluster) Topics(_ context.Context, names ...string) ([]commitlog.TopicInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	if len(names) == 0 {
		for name := range c.topics {
			names = append(names, name)
		}
	}
	var out []commitlog.TopicInfo
	for _, name := range names {
		tp, ok := c.topics[name]
		if !ok {
			return nil, fmt.Errorf("%w: %q", commitlog.ErrUnknownTopic, name)
		}
		out = append(out, c.info(name, tp))
	}
	// Unordered on purpose: the server orders by name.
	slices.Reverse(out)
	return out, nil
}

func (c *cluster) CreateTopic(_ context.Context, name string, cfg commitlog.TopicConfig) (commitlog.TopicInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.created++
	if c.fail != nil {
		return commitlog.TopicInfo{}, c.fail
	}
	if err := commitlog.ValidateTopicName(name); err != nil {
		return commitlog.TopicInfo{}, err
	}
	if err := cfg.Validate(); err != nil {
		return commitlog.TopicInfo{}, err
	}
	if _, ok := c.topics[name]; ok {
		return commitlog.TopicInfo{}, fmt.Errorf("%w: %q", commitlog.ErrTopicExists, name)
	}
	if cfg.ReplicationFactor > 1 {
		return commitlog.TopicInfo{}, fmt.Errorf("place %q: %w", name, &commitlog.NotEnoughNodesError{ReplicationFactor: cfg.ReplicationFactor, Nodes: 1})
	}
	tp := &clusterTopic{cfg: cfg}
	for i := range cfg.Partitions {
		l, err := seglog.Open(filepath.Join(c.dir, name, strconv.Itoa(i)), c.lcfg)
		if err != nil {
			closeLogs(c.t, tp.logs)
			return commitlog.TopicInfo{}, err
		}
		tp.logs = append(tp.logs, l)
		tp.parts = append(tp.parts, server.NewStorageLog(l))
	}
	c.topics[name] = tp
	return c.info(name, tp), nil
}

func (c *cluster) DeleteTopic(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted++
	if c.fail != nil {
		return c.fail
	}
	if name == commitlog.DefaultTopic {
		return fmt.Errorf("%w: the default topic cannot be deleted", commitlog.ErrInvalidTopic)
	}
	tp, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", commitlog.ErrUnknownTopic, name)
	}
	delete(c.topics, name)
	closeLogs(c.t, tp.logs)
	return nil
}

// partitionLog is the fixture cluster's partition of topic.
func partitionLog(t testing.TB, f *fixture, topic string, partition int) commitlog.Partition {
	t.Helper()
	p, err := f.cluster.Partition(topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// calls returns how many CreateTopic and DeleteTopic calls reached c.
func (c *cluster) calls() (created, deleted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created, c.deleted
}
