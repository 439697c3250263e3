package client

import (
	"cmp"
	"context"
	"slices"
	"time"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition uint32
}

func (tp TopicPartition) compare(o TopicPartition) int {
	return cmp.Or(cmp.Compare(tp.Topic, o.Topic), cmp.Compare(tp.Partition, o.Partition))
}

// PartitionOffset is a group's committed offset of a partition: the
// offset of the next record the group has to process. Committed is false
// when the group has committed nothing for it (Offset is then 0 and means
// nothing).
type PartitionOffset struct {
	TopicPartition
	Offset    uint64
	Committed bool
}

// GroupSummary is one group of ListGroups.
type GroupSummary struct {
	Group      string
	Generation uint64
	Members    int
}

// GroupMember is one member of a group (DescribeGroup).
type GroupMember struct {
	MemberID       string
	ClientID       string
	Topics         []string
	SessionTimeout time.Duration
	// Generation is the one the member last acknowledged.
	Generation uint64
	// Owned are the partitions it owns; Target those the group's current
	// generation assigns it (the owned ones included; the others wait for
	// their previous owner to hand them over).
	Owned, Target []TopicPartition
}

// GroupInfo describes a group (DescribeGroup).
type GroupInfo struct {
	Group      string
	Generation uint64
	// Members ordered by MemberID.
	Members []GroupMember
	// Offsets are the committed offsets, ordered by topic and partition.
	Offsets []PartitionOffset
}

// ListGroups lists the groups the cluster knows (those with members or
// committed offsets) that the caller may see ("group" permission), by
// name. Any server answers, from its copy of the metadata.
func (c *Client) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	var out []GroupSummary
	err := c.do(ctx, opServers, nil, func(ctx context.Context) error {
		resp, err := c.log.ListGroups(ctx, &logv1.ListGroupsRequest{})
		if err == nil {
			out = make([]GroupSummary, len(resp.GetGroups()))
			for i, g := range resp.GetGroups() {
				out[i] = GroupSummary{Group: g.GetGroup(), Generation: g.GetGeneration(), Members: int(g.GetMembers())}
			}
		}
		return err
	})
	return out, err
}

// DescribeGroup describes group: its generation, members (subscriptions,
// owned and target partitions) and committed offsets. A group without
// members or commits fails with ErrUnknownGroup. Any server answers, from
// its copy of the metadata.
func (c *Client) DescribeGroup(ctx context.Context, group string) (GroupInfo, error) {
	var info GroupInfo
	err := c.do(ctx, opServers, nil, func(ctx context.Context) error {
		resp, err := c.log.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: group})
		if err != nil {
			return err
		}
		info = GroupInfo{Group: resp.GetGroup(), Generation: resp.GetGeneration(), Offsets: offsetsFromProto(resp.GetOffsets())}
		for _, m := range resp.GetMembers() {
			info.Members = append(info.Members, GroupMember{
				MemberID: m.GetMemberId(), ClientID: m.GetClientId(), Topics: m.GetTopics(),
				SessionTimeout: m.GetSessionTimeout().AsDuration(), Generation: m.GetGeneration(),
				Owned: partitionsFromProto(m.GetOwned()), Target: partitionsFromProto(m.GetTarget()),
			})
		}
		return nil
	})
	return info, err
}

// FetchOffsets returns group's committed offsets of partitions (every
// committed one when none is named), ordered by topic and partition. Any
// server answers, from its copy of the metadata, which may lag the
// metadata leader's by a moment.
func (c *Client) FetchOffsets(ctx context.Context, group string, partitions ...TopicPartition) ([]PartitionOffset, error) {
	req := &logv1.FetchOffsetsRequest{Group: group}
	for _, tp := range slices.SortedFunc(slices.Values(partitions), TopicPartition.compare) {
		if n := len(req.Partitions); n == 0 || req.Partitions[n-1].Topic != tp.Topic {
			req.Partitions = append(req.Partitions, &logv1.TopicPartitions{Topic: tp.Topic})
		}
		last := req.Partitions[len(req.Partitions)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	var out []PartitionOffset
	err := c.do(ctx, opServers, nil, func(ctx context.Context) error {
		resp, err := c.log.FetchOffsets(ctx, req)
		if err == nil {
			out = offsetsFromProto(resp.GetOffsets())
		}
		return err
	})
	return out, err
}

func offsetsFromProto(ps []*logv1.PartitionOffset) []PartitionOffset {
	out := make([]PartitionOffset, len(ps))
	for i, p := range ps {
		out[i] = PartitionOffset{TopicPartition{p.GetTopic(), p.GetPartition()}, p.GetOffset(), p.GetCommitted()}
	}
	return out
}

func partitionsFromProto(ps []*logv1.TopicPartitions) []TopicPartition {
	var out []TopicPartition
	for _, tps := range ps {
		for _, p := range tps.GetPartitions() {
			out = append(out, TopicPartition{tps.GetTopic(), p})
		}
	}
	return out
}
