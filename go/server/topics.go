package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// DefaultReplicationFactor is the replication factor of a CreateTopic
// that asks for none, when the cluster has at least that many servers
// (else one per server).
const DefaultReplicationFactor = 3

// GetMetadata implements logv1.LogServer: the named topics, or every topic
// the caller may describe, ordered by name, and the cluster's servers
// (Config.Servers, as GetServers). A caller may describe a topic it has
// "describe", "produce" or "consume" on (Kafka's rule: writing or reading
// a topic implies describing it, which a client needs to route). Naming a
// topic the caller may not describe is PermissionDenied; naming an
// unknown one NotFound.
func (s *Server) GetMetadata(ctx context.Context, req *logv1.GetMetadataRequest) (*logv1.GetMetadataResponse, error) {
	names := slices.Clone(req.GetTopics())
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		if err := commitlog.ValidateTopicName(name); err != nil {
			return nil, s.statusError(ctx, onTopic(err, name))
		}
		if err := s.authorizeDescribe(ctx, name); err != nil {
			return nil, err
		}
	}
	topics, err := s.cluster.Topics(ctx, names...)
	if err != nil {
		return nil, s.statusError(ctx, s.unknownOf(ctx, names, err))
	}
	if len(names) == 0 { // every topic: only those the caller may describe
		topics = slices.DeleteFunc(topics, func(t commitlog.TopicInfo) bool {
			return s.authorizeDescribe(ctx, t.Name) != nil
		})
	}
	slices.SortFunc(topics, func(a, b commitlog.TopicInfo) int { return strings.Compare(a.Name, b.Name) })
	servers, err := s.lister.Servers(ctx)
	if err != nil {
		return nil, s.statusError(ctx, err)
	}
	states := serverStates(servers)
	out := make([]*logv1.TopicMetadata, len(topics))
	for i, t := range topics {
		out[i] = topicMetadata(t, states)
	}
	return &logv1.GetMetadataResponse{Topics: out, Servers: protoServers(servers)}, nil
}

// describeActions are the actions that let a caller describe a topic,
// describe first.
var describeActions = []string{auth.ActionDescribe, auth.ActionProduce, auth.ActionConsume}

// authorizeDescribe authorizes describing topic: any of describeActions
// will do; the error is describe's.
func (s *Server) authorizeDescribe(ctx context.Context, topic string) error {
	var first error
	for _, action := range describeActions {
		err := s.authorize(ctx, topic, action)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// unknownOf marks err, the cluster's answer to Topics(names...), with the
// topic it is about when it is ErrUnknownTopic: the first of names the
// cluster does not know, asked one by one (only on this error path).
func (s *Server) unknownOf(ctx context.Context, names []string, err error) error {
	if !errors.Is(err, commitlog.ErrUnknownTopic) || len(names) == 0 {
		return err
	}
	if len(names) == 1 {
		return onTopic(err, names[0])
	}
	for _, name := range names {
		if _, one := s.cluster.Topics(ctx, name); errors.Is(one, commitlog.ErrUnknownTopic) {
			return onTopic(one, name)
		}
	}
	return err
}

// CreateTopic implements logv1.LogServer. The name and the settings are
// checked (commitlog.ValidateTopicName, TopicConfig.Validate) before the
// cluster sees them; zero settings take the defaults of log.proto's
// TopicConfig.
func (s *Server) CreateTopic(ctx context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	name := req.GetName()
	if err := commitlog.ValidateTopicName(name); err != nil {
		return nil, s.statusError(ctx, onTopic(err, name))
	}
	if err := s.authorize(ctx, name, auth.ActionCreate); err != nil {
		return nil, err
	}
	cfg, err := s.topicConfig(ctx, req.GetConfig())
	if err != nil {
		return nil, s.statusError(ctx, onTopic(err, name))
	}
	info, err := s.cluster.CreateTopic(ctx, name, cfg)
	if err != nil {
		return nil, s.statusError(ctx, onTopic(err, name))
	}
	// The topic exists now: without the servers (ctx ended) it is
	// described without replica states.
	var states map[string]commitlog.ServerState
	if servers, err := s.lister.Servers(ctx); err == nil {
		states = serverStates(servers)
	}
	return &logv1.CreateTopicResponse{Topic: topicMetadata(info, states)}, nil
}

// topicConfig is c with the defaults filled in, validated.
func (s *Server) topicConfig(ctx context.Context, c *logv1.TopicConfig) (commitlog.TopicConfig, error) {
	if c.GetRetentionBytes() > math.MaxInt64 {
		return commitlog.TopicConfig{}, fmt.Errorf("%w: retention bytes %d, want at most %d", commitlog.ErrInvalidTopic, c.GetRetentionBytes(), int64(math.MaxInt64))
	}
	cfg := commitlog.TopicConfig{
		Partitions:        int(c.GetPartitions()),
		ReplicationFactor: int(c.GetReplicationFactor()),
		RetentionBytes:    int64(c.GetRetentionBytes()),
	}
	if age := c.GetRetentionAge(); age != nil {
		if err := age.CheckValid(); err != nil {
			return commitlog.TopicConfig{}, fmt.Errorf("%w: retention age: %v", commitlog.ErrInvalidTopic, err)
		}
		cfg.RetentionAge = age.AsDuration()
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.ReplicationFactor == 0 {
		servers, err := s.lister.Servers(ctx)
		if err != nil {
			return commitlog.TopicConfig{}, err
		}
		cfg.ReplicationFactor = max(1, min(DefaultReplicationFactor, len(servers)))
	}
	return cfg, cfg.Validate()
}

// DeleteTopic implements logv1.LogServer. The default topic is refused
// here, before the cluster is asked.
func (s *Server) DeleteTopic(ctx context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	name := req.GetName()
	if err := commitlog.ValidateTopicName(name); err != nil {
		return nil, s.statusError(ctx, onTopic(err, name))
	}
	if err := s.authorize(ctx, name, auth.ActionDelete); err != nil {
		return nil, err
	}
	if name == commitlog.DefaultTopic {
		err := fmt.Errorf("%w: the default topic %q cannot be deleted (requests that name no topic use it)", commitlog.ErrInvalidTopic, name)
		return nil, s.statusError(ctx, onTopic(err, name))
	}
	if err := s.cluster.DeleteTopic(ctx, name); err != nil {
		return nil, s.statusError(ctx, onTopic(err, name))
	}
	return &logv1.DeleteTopicResponse{}, nil
}

// topicMetadata is t on the wire; states (serverStates) decide which
// replicas are in sync: not in the partition's Adding, and reachable (nil
// states: none is said to be).
func topicMetadata(t commitlog.TopicInfo, states map[string]commitlog.ServerState) *logv1.TopicMetadata {
	cfg := &logv1.TopicConfig{
		Partitions:        uint32(t.Config.Partitions),
		ReplicationFactor: uint32(t.Config.ReplicationFactor),
		RetentionBytes:    uint64(max(0, t.Config.RetentionBytes)),
	}
	if t.Config.RetentionAge > 0 {
		cfg.RetentionAge = durationpb.New(t.Config.RetentionAge)
	}
	parts := slices.Clone(t.Partitions)
	slices.SortFunc(parts, func(a, b commitlog.PartitionInfo) int { return a.Partition - b.Partition })
	out := &logv1.TopicMetadata{Name: t.Name, Config: cfg, Partitions: make([]*logv1.PartitionMetadata, len(parts))}
	for i, p := range parts {
		pm := &logv1.PartitionMetadata{Partition: uint32(p.Partition), Replicas: protoServers(p.Replicas), Epoch: p.Epoch}
		for j, r := range p.Replicas {
			if r.IsLeader {
				pm.LeaderId = r.ID
			}
			pm.Replicas[j].State = protoState(states[r.ID])
			if states != nil && !slices.Contains(p.Adding, r.ID) && reachable(states, r.ID) {
				pm.InSync = append(pm.InSync, r.ID)
			}
		}
		out.Partitions[i] = pm
	}
	return out
}
