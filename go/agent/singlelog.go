package agent

import (
	"context"
	"fmt"

	"github.com/proglog/proglog/go/commitlog"
)

// errTopicsDisabled is CreateTopic's and DeleteTopic's answer on a node
// that serves the single replicated log.
var errTopicsDisabled = fmt.Errorf("%w: this node serves only the default topic until topics are enabled", commitlog.ErrInvalidTopic)

// singleLog is the commitlog.Cluster of a node serving the single
// replicated log (go/replication's CommitLog) as the default topic's only
// partition, so the API server, which serves topics, keeps serving it
// unchanged. It is a bridge for issue 17: go/broker's Cluster replaces it,
// and this file is deleted then.
type singleLog struct {
	log     commitlog.Partition
	servers commitlog.ServerLister // the log's replicas, leader marked
}

var _ commitlog.Cluster = singleLog{}

// Partition implements commitlog.Cluster: the log for the default topic's
// partition 0.
func (s singleLog) Partition(topic string, partition int) (commitlog.Partition, error) {
	if topic != commitlog.DefaultTopic {
		return nil, fmt.Errorf("%w: %q (this node serves only %q)", commitlog.ErrUnknownTopic, topic, commitlog.DefaultTopic)
	}
	if partition != 0 {
		return nil, fmt.Errorf("%w: %q has only partition 0, not %d", commitlog.ErrUnknownPartition, topic, partition)
	}
	return s.log, nil
}

// Topics implements commitlog.Cluster: the default topic, one partition
// replicated on every server of the log.
func (s singleLog) Topics(ctx context.Context, names ...string) ([]commitlog.TopicInfo, error) {
	for _, name := range names {
		if name != commitlog.DefaultTopic {
			return nil, fmt.Errorf("%w: %q (this node serves only %q)", commitlog.ErrUnknownTopic, name, commitlog.DefaultTopic)
		}
	}
	servers, err := s.servers.Servers(ctx)
	if err != nil {
		return nil, err
	}
	return []commitlog.TopicInfo{{
		Name:       commitlog.DefaultTopic,
		Config:     commitlog.TopicConfig{Partitions: 1, ReplicationFactor: len(servers)},
		Partitions: []commitlog.PartitionInfo{{Partition: 0, Replicas: servers}},
	}}, nil
}

// CreateTopic implements commitlog.Cluster: refused, see errTopicsDisabled.
func (singleLog) CreateTopic(context.Context, string, commitlog.TopicConfig) (commitlog.TopicInfo, error) {
	return commitlog.TopicInfo{}, errTopicsDisabled
}

// DeleteTopic implements commitlog.Cluster: refused, see errTopicsDisabled.
func (singleLog) DeleteTopic(context.Context, string) error { return errTopicsDisabled }
