package commitlog

import (
	"fmt"
	"math"
)

// Limits of a topic (log.proto's TopicConfig and CreateTopicRequest).
const (
	// MaxTopicNameLen is the longest topic name (Kafka's limit, so names
	// move between the systems).
	MaxTopicNameLen = 249
	// MaxPartitions is the most partitions a topic may have.
	MaxPartitions = 1024
	// MaxReplicationFactor is the most replicas a partition may have.
	MaxReplicationFactor = 7
)

// ValidateTopicName reports whether name may name a topic: 1 to
// MaxTopicNameLen of [a-zA-Z0-9._-], and not "." or "..". The error wraps
// ErrInvalidTopic and says what is wrong.
func ValidateTopicName(name string) error {
	if name == "" || len(name) > MaxTopicNameLen || name == "." || name == ".." {
		return fmt.Errorf("%w: name %q must be 1 to %d characters and not . or ..", ErrInvalidTopic, name, MaxTopicNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: name %q has %q; use letters, digits, '.', '_' and '-'", ErrInvalidTopic, name, r)
		}
	}
	return nil
}

// Validate reports the first setting of c that is not allowed, wrapping
// ErrInvalidTopic: partitions 1 to MaxPartitions, replication factor 1 to
// MaxReplicationFactor, no negative retention. Whether the cluster has
// ReplicationFactor nodes is the Cluster's check (ErrNotEnoughNodes).
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > MaxPartitions:
		return fmt.Errorf("%w: %d partitions, want 1 to %d", ErrInvalidTopic, c.Partitions, MaxPartitions)
	case c.ReplicationFactor < 1 || c.ReplicationFactor > MaxReplicationFactor:
		return fmt.Errorf("%w: replication factor %d, want 1 to %d", ErrInvalidTopic, c.ReplicationFactor, MaxReplicationFactor)
	case c.RetentionBytes < 0:
		return fmt.Errorf("%w: retention bytes %d is negative, want 0 (no bound) to %d", ErrInvalidTopic, c.RetentionBytes, int64(math.MaxInt64))
	case c.RetentionAge < 0:
		return fmt.Errorf("%w: retention age %v is negative, want 0 (no bound) or more", ErrInvalidTopic, c.RetentionAge)
	}
	return nil
}

// NotEnoughNodesError is ErrNotEnoughNodes with its figures: a topic asked
// for ReplicationFactor replicas and the cluster has Nodes live nodes.
// errors.Is(err, ErrNotEnoughNodes) is true. A Cluster returns it so the
// server can tell the client both numbers.
type NotEnoughNodesError struct {
	ReplicationFactor int
	Nodes             int
}

func (e *NotEnoughNodesError) Error() string {
	return fmt.Sprintf("%v: replication factor %d, but the cluster has %d live nodes", ErrNotEnoughNodes, e.ReplicationFactor, e.Nodes)
}

// Is reports whether target is ErrNotEnoughNodes.
func (e *NotEnoughNodesError) Is(target error) bool { return target == ErrNotEnoughNodes }
