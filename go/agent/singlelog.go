package agent

import (
	"context"
	"fmt"

	"github.com/proglog/proglog/go/commitlog"
)

// errTopicsDisabled is CreateTopic's and DeleteTopic's answer on a node
// that serves the single replicated log.
var errTopicsDisabled = fmt.Errorf("%w: this node serves only the default topic until topics are enabled", commitlog.ErrInvalidTopic)

// SingleLog is the commitlog.Cluster of a node serving the single
// replicated log (go/replication's CommitLog) as the default topic's only
// partition, so the API server, which serves topics, keeps serving it
// unchanged; clients/go's test fixture serves its logs with it too. It is a
// bridge for issue 17: go/broker's Cluster replaces it, and this file is
// deleted then.
type SingleLog struct {
	Log commitlog.Partition
	// Servers lists the log's replicas, leader marked (Topics reports
	// them); nil lists none.
	Servers commitlog.ServerLister
}

var _ commitlog.Cluster = SingleLog{}

// Partition implements commitlog.Cluster: the log for the default topic's
// partition 0.
func (s SingleLog) Partition(topic string, partition int) (commitlog.Partition, error) {
	if topic != commitlog.DefaultTopic {
		return nil, fmt.Errorf("%w: %q (this node serves only %q)", commitlog.ErrUnknownTopic, topic, commitlog.DefaultTopic)
	}
	if partition != 0 {
		return nil, fmt.Errorf("%w: %q has only partition 0, not %d", commitlog.ErrUnknownPartition, topic, partition)
	}
	return s.Log, nil
}

// Topics implements commitlog.Cluster: the default topic, one partition
// replicated on every server of the log.
func (s SingleLog) Topics(ctx context.Context, names ...string) ([]commitlog.TopicInfo, error) {
	for _, name := range names {
		if name != commitlog.DefaultTopic {
			return nil, fmt.Errorf("%w: %q (this node serves only %q)", commitlog.ErrUnknownTopic, name, commitlog.DefaultTopic)
		}
	}
	var servers []commitlog.Server
	if s.Servers != nil {
		var err error
		if servers, err = s.Servers.Servers(ctx); err != nil {
			return nil, err
		}
	}
	return []commitlog.TopicInfo{{
		Name:       commitlog.DefaultTopic,
		Config:     commitlog.TopicConfig{Partitions: 1, ReplicationFactor: max(1, len(servers))},
		Partitions: []commitlog.PartitionInfo{{Partition: 0, Replicas: servers}},
	}}, nil
}

// CreateTopic implements commitlog.Cluster: refused, see errTopicsDisabled.
func (SingleLog) CreateTopic(context.Context, string, commitlog.TopicConfig) (commitlog.TopicInfo, error) {
	return commitlog.TopicInfo{}, errTopicsDisabled
}

// DeleteTopic implements commitlog.Cluster: refused, see errTopicsDisabled.
func (SingleLog) DeleteTopic(context.Context, string) error { return errTopicsDisabled }
