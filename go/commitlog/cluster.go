package commitlog

import (
	"context"
	"errors"
	"time"
)

// DefaultTopic is the topic of a request that names none. The cluster
// creates it when it bootstraps, so clients and tools written for the
// single log keep working.
const DefaultTopic = "log"

// Topic errors, returned wrapped with the detail; test with errors.Is.
var (
	// ErrUnknownTopic: no topic of that name exists.
	ErrUnknownTopic = errors.New("commitlog: unknown topic")
	// ErrUnknownPartition: the topic exists but has no such partition.
	ErrUnknownPartition = errors.New("commitlog: unknown partition")
	// ErrTopicExists: CreateTopic named a topic that exists.
	ErrTopicExists = errors.New("commitlog: topic exists")
	// ErrInvalidTopic: a topic name or setting is not allowed; the message
	// says which.
	ErrInvalidTopic = errors.New("commitlog: invalid topic")
	// ErrNotEnoughNodes: the cluster has fewer live nodes than the
	// replication factor asked for.
	ErrNotEnoughNodes = errors.New("commitlog: not enough nodes")
)

// TopicConfig is what a topic is created with.
type TopicConfig struct {
	// Partitions is the number of partitions (at least 1).
	Partitions int
	// ReplicationFactor is the number of replicas of each partition (at
	// least 1, at most the number of nodes).
	ReplicationFactor int
	// RetentionBytes bounds each partition's size; 0 keeps everything.
	RetentionBytes int64
	// RetentionAge bounds each record's age; 0 keeps everything.
	RetentionAge time.Duration
}

// PartitionInfo describes one partition of a topic, for routing.
type PartitionInfo struct {
	// Partition is the partition's number, 0 to Partitions-1.
	Partition int
	// Replicas are the servers holding the partition, in preference order
	// (the first is the preferred leader). IsLeader marks the leader as
	// last reported: a hint, since a request to a node that is not the
	// leader is answered with a *NotLeaderError naming the real one.
	Replicas []Server
	// Epoch counts the changes of Replicas.
	Epoch uint64
	// Adding are the replicas a reassignment added that have not caught
	// up yet (a subset of Replicas).
	Adding []string
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string
	Config     TopicConfig
	Partitions []PartitionInfo
}

// Cluster is the cluster as the API server sees it: the partitions this
// node serves and the metadata of every topic. go/broker implements it;
// the server never sees Raft or the metadata group. Safe for concurrent
// use.
type Cluster interface {
	// Partition returns this node's replica of topic's partition. Errors:
	// ErrUnknownTopic, ErrUnknownPartition, or a *NotLeaderError naming a
	// node that holds a replica when this node holds none (so a client
	// with stale metadata is redirected).
	Partition(topic string, partition int) (Partition, error)
	// Topics describes the named topics, or every topic when names is
	// empty, as this node's copy of the metadata has them (it may lag the
	// metadata leader by a moment). An unknown name is ErrUnknownTopic.
	Topics(ctx context.Context, names ...string) ([]TopicInfo, error)
	// CreateTopic creates a topic and returns it as placed. Errors:
	// ErrTopicExists, ErrInvalidTopic, ErrNotEnoughNodes, and those of
	// reaching the metadata leader (ErrUnavailable; *NotLeaderError naming
	// the metadata leader when this node is not it: the caller follows it).
	CreateTopic(ctx context.Context, name string, cfg TopicConfig) (TopicInfo, error)
	// DeleteTopic deletes a topic and, asynchronously, its partitions'
	// data on every node. Errors: ErrUnknownTopic, and those of reaching
	// the metadata leader. The default topic cannot be deleted
	// (ErrInvalidTopic).
	DeleteTopic(ctx context.Context, name string) error
}
