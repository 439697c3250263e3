package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// MaxMemberIDLen bounds a request's member_id. The coordinator chooses
// member ids; a longer one cannot be one of them and is refused
// (INVALID_ARGUMENT, reason INVALID_GROUP) before the coordinator sees it.
const MaxMemberIDLen = 512

// errNoGroups is the answer of every group RPC without Config.Groups.
var errNoGroups = status.Error(codes.Unimplemented, "consumer groups are not served by this server (it has no group coordinator)")

// invalidGroup is an ErrInvalidGroup saying what is not allowed.
func invalidGroup(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{commitlog.ErrInvalidGroup}, args...)...)
}

// groupCall checks what every group RPC starts with: a coordinator, the
// group's name (commitlog.ValidateGroupName, before the name reaches the
// ACL's decision cache), the "group" action on it, and a member_id the
// coordinator could have issued, required when member is set (the calls
// of an existing member). Errors are statuses.
func (s *Server) groupCall(ctx context.Context, group, memberID string, member bool) error {
	if s.cfg.Groups == nil {
		return errNoGroups
	}
	if err := commitlog.ValidateGroupName(group); err != nil {
		return s.statusError(ctx, onGroup(err, group, ""))
	}
	if err := s.authorize(ctx, group, auth.ActionGroup); err != nil {
		return err
	}
	switch {
	case member && memberID == "":
		return s.statusError(ctx, onGroup(invalidGroup("member_id is required"), group, ""))
	case len(memberID) > MaxMemberIDLen:
		return s.statusError(ctx, onGroup(invalidGroup("member_id is %d bytes, at most %d", len(memberID), MaxMemberIDLen), group, ""))
	}
	return nil
}

// groupFailed is the status of err, the coordinator's answer to a call
// about group's member memberID; an ErrUnknownTopic names the first of
// topics the cluster does not know.
func (s *Server) groupFailed(ctx context.Context, err error, group, memberID string, topics []string) error {
	return s.statusError(ctx, onGroup(s.unknownOf(ctx, topics, err), group, memberID))
}

// consumable checks that names, the topics a call subscribes to or
// commits (de-duplicated by the caller, so each is checked once), are
// topic names and that the caller may consume each; errors are statuses.
func (s *Server) consumable(ctx context.Context, group string, names []string) error {
	for _, name := range names {
		if err := commitlog.ValidateTopicName(name); err != nil {
			return s.statusError(ctx, onGroup(onTopic(err, name), group, ""))
		}
		if err := s.authorize(ctx, name, auth.ActionConsume); err != nil {
			return err
		}
	}
	return nil
}

// sessionTimeout is a JoinGroupRequest's session timeout: 0 (the
// coordinator's default) when unset or zero, else within
// [commitlog.MinSessionTimeout, commitlog.MaxSessionTimeout].
func sessionTimeout(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalidGroup("session_timeout: %v", err)
	}
	t := d.AsDuration()
	if t != 0 && (t < commitlog.MinSessionTimeout || t > commitlog.MaxSessionTimeout) {
		return 0, invalidGroup("session_timeout %v is out of range: 0 for the default (%v), or %v to %v",
			t, commitlog.DefaultSessionTimeout, commitlog.MinSessionTimeout, commitlog.MaxSessionTimeout)
	}
	return t, nil
}

// JoinGroup implements logv1.LogServer.
func (s *Server) JoinGroup(ctx context.Context, req *logv1.JoinGroupRequest) (*logv1.JoinGroupResponse, error) {
	group, memberID := req.GetGroup(), req.GetMemberId()
	if err := s.groupCall(ctx, group, memberID, false); err != nil {
		return nil, err
	}
	// The codec refused more than commitlog.MaxGroupTopics before decoding.
	topics := slices.Clone(req.GetTopics())
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if len(topics) == 0 {
		return nil, s.statusError(ctx, onGroup(invalidGroup("topics is empty: subscribe to 1 to %d topics", commitlog.MaxGroupTopics), group, memberID))
	}
	timeout, err := sessionTimeout(req.GetSessionTimeout())
	if err == nil && len(req.GetClientId()) > commitlog.MaxClientIDLen {
		err = invalidGroup("client_id is %d bytes, at most %d", len(req.GetClientId()), commitlog.MaxClientIDLen)
	}
	if err != nil {
		return nil, s.statusError(ctx, onGroup(err, group, memberID))
	}
	if err := s.consumable(ctx, group, topics); err != nil {
		return nil, err
	}
	a, err := s.cfg.Groups.JoinGroup(ctx, commitlog.JoinRequest{
		Group: group, MemberID: memberID, Topics: topics, SessionTimeout: timeout, ClientID: req.GetClientId(),
	})
	if err != nil {
		return nil, s.groupFailed(ctx, err, group, memberID, topics)
	}
	return &logv1.JoinGroupResponse{Assignment: assignmentProto(a)}, nil
}

// Heartbeat implements logv1.LogServer.
func (s *Server) Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	group, memberID := req.GetGroup(), req.GetMemberId()
	if err := s.groupCall(ctx, group, memberID, true); err != nil {
		return nil, err
	}
	a, err := s.cfg.Groups.Heartbeat(ctx, group, memberID, req.GetGeneration())
	if err != nil {
		return nil, s.groupFailed(ctx, err, group, memberID, nil)
	}
	return &logv1.HeartbeatResponse{Assignment: assignmentProto(a)}, nil
}

// LeaveGroup implements logv1.LogServer.
func (s *Server) LeaveGroup(ctx context.Context, req *logv1.LeaveGroupRequest) (*logv1.LeaveGroupResponse, error) {
	group, memberID := req.GetGroup(), req.GetMemberId()
	if err := s.groupCall(ctx, group, memberID, true); err != nil {
		return nil, err
	}
	if err := s.cfg.Groups.LeaveGroup(ctx, group, memberID); err != nil {
		return nil, s.groupFailed(ctx, err, group, memberID, nil)
	}
	return &logv1.LeaveGroupResponse{}, nil
}

// CommitOffsets implements logv1.LogServer. A commit naming a partition
// twice is refused: which offset is meant is not clear.
func (s *Server) CommitOffsets(ctx context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	group, memberID := req.GetGroup(), req.GetMemberId()
	if err := s.groupCall(ctx, group, memberID, true); err != nil {
		return nil, err
	}
	// The codec refused more than commitlog.MaxCommitOffsets before decoding.
	in := req.GetOffsets()
	if len(in) == 0 {
		return nil, s.statusError(ctx, onGroup(invalidGroup("offsets is empty: commit 1 to %d positions", commitlog.MaxCommitOffsets), group, memberID))
	}
	offsets := make([]commitlog.PartitionOffset, len(in))
	topics := make([]string, len(in))
	for i, o := range in {
		offsets[i] = commitlog.PartitionOffset{TopicPartition: commitlog.TopicPartition{Topic: o.GetTopic(), Partition: int(o.GetPartition())}, Offset: o.GetOffset(), Committed: true}
		topics[i] = o.GetTopic()
	}
	if tp, ok := repeated(offsets); ok {
		return nil, s.statusError(ctx, onGroup(invalidGroup("offsets name %s/%d more than once", tp.Topic, tp.Partition), group, memberID))
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if err := s.consumable(ctx, group, topics); err != nil {
		return nil, err
	}
	if err := s.cfg.Groups.CommitOffsets(ctx, group, memberID, req.GetGeneration(), offsets); err != nil {
		return nil, s.groupFailed(ctx, err, group, memberID, topics)
	}
	return &logv1.CommitOffsetsResponse{}, nil
}

// repeated returns a partition offsets names more than once, if any.
func repeated(offsets []commitlog.PartitionOffset) (commitlog.TopicPartition, bool) {
	seen := make(map[commitlog.TopicPartition]struct{}, len(offsets))
	for _, o := range offsets {
		if _, dup := seen[o.TopicPartition]; dup {
			return o.TopicPartition, true
		}
		seen[o.TopicPartition] = struct{}{}
	}
	return commitlog.TopicPartition{}, false
}

// FetchOffsets implements logv1.LogServer. Partitions named twice are
// fetched once; a TopicPartitions naming no partition is refused.
func (s *Server) FetchOffsets(ctx context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	group := req.GetGroup()
	if err := s.groupCall(ctx, group, "", false); err != nil {
		return nil, err
	}
	// The codec refused more than commitlog.MaxCommitOffsets partitions
	// (or entries) before decoding.
	var parts []commitlog.TopicPartition
	for _, tp := range req.GetPartitions() {
		if err := commitlog.ValidateTopicName(tp.GetTopic()); err != nil {
			return nil, s.statusError(ctx, onGroup(onTopic(err, tp.GetTopic()), group, ""))
		}
		if len(tp.GetPartitions()) == 0 {
			return nil, s.statusError(ctx, onGroup(invalidGroup("partitions of topic %q is empty: name them, or name no topic to fetch every committed offset", tp.GetTopic()), group, ""))
		}
		for _, p := range tp.GetPartitions() {
			parts = append(parts, commitlog.TopicPartition{Topic: tp.GetTopic(), Partition: int(p)})
		}
	}
	slices.SortFunc(parts, compareTopicPartitions)
	parts = slices.Compact(parts)
	offsets, err := s.cfg.Groups.FetchOffsets(ctx, group, parts)
	if err != nil {
		return nil, s.groupFailed(ctx, err, group, "", nil)
	}
	return &logv1.FetchOffsetsResponse{Offsets: offsetsProto(offsets)}, nil
}

// ListGroups implements logv1.LogServer: the groups the caller has the
// "group" action on, ordered by name.
func (s *Server) ListGroups(ctx context.Context, _ *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	if s.cfg.Groups == nil {
		return nil, errNoGroups
	}
	groups, err := s.cfg.Groups.ListGroups(ctx)
	if err != nil {
		return nil, s.statusError(ctx, err)
	}
	groups = slices.DeleteFunc(groups, func(g commitlog.GroupSummary) bool {
		return s.authorize(ctx, g.Group, auth.ActionGroup) != nil
	})
	slices.SortFunc(groups, func(a, b commitlog.GroupSummary) int { return strings.Compare(a.Group, b.Group) })
	out := make([]*logv1.GroupSummary, len(groups))
	for i, g := range groups {
		out[i] = &logv1.GroupSummary{Group: g.Group, Generation: g.Generation, Members: uint32(g.Members)}
	}
	return &logv1.ListGroupsResponse{Groups: out}, nil
}

// DescribeGroup implements logv1.LogServer.
func (s *Server) DescribeGroup(ctx context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	group := req.GetGroup()
	if err := s.groupCall(ctx, group, "", false); err != nil {
		return nil, err
	}
	info, err := s.cfg.Groups.DescribeGroup(ctx, group)
	if err != nil {
		return nil, s.groupFailed(ctx, err, group, "", nil)
	}
	members := slices.Clone(info.Members)
	slices.SortFunc(members, func(a, b commitlog.GroupMember) int { return strings.Compare(a.MemberID, b.MemberID) })
	out := &logv1.DescribeGroupResponse{Group: group, Generation: info.Generation, Offsets: offsetsProto(info.Offsets),
		Members: make([]*logv1.GroupMember, len(members))}
	for i, m := range members {
		out.Members[i] = &logv1.GroupMember{
			MemberId: m.MemberID, ClientId: m.ClientID, Topics: m.Topics, SessionTimeout: durationpb.New(m.SessionTimeout),
			Generation: m.Generation, Owned: topicPartitionsProto(m.Owned), Target: topicPartitionsProto(m.Target),
		}
	}
	return out, nil
}

func compareTopicPartitions(a, b commitlog.TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return a.Partition - b.Partition
}

// assignmentProto is a on the wire.
func assignmentProto(a commitlog.Assignment) *logv1.Assignment {
	return &logv1.Assignment{MemberId: a.MemberID, Generation: a.Generation, Partitions: offsetsProto(a.Partitions),
		HeartbeatInterval: durationpb.New(a.HeartbeatInterval)}
}

// offsetsProto is offsets on the wire, ordered by topic and partition.
func offsetsProto(offsets []commitlog.PartitionOffset) []*logv1.PartitionOffset {
	offsets = slices.Clone(offsets)
	slices.SortFunc(offsets, func(a, b commitlog.PartitionOffset) int {
		return compareTopicPartitions(a.TopicPartition, b.TopicPartition)
	})
	out := make([]*logv1.PartitionOffset, len(offsets))
	for i, o := range offsets {
		out[i] = &logv1.PartitionOffset{Topic: o.Topic, Partition: uint32(o.Partition), Offset: o.Offset, Committed: o.Committed}
	}
	return out
}

// topicPartitionsProto is tps on the wire: one TopicPartitions per topic,
// ordered by topic and partition.
func topicPartitionsProto(tps []commitlog.TopicPartition) []*logv1.TopicPartitions {
	tps = slices.Clone(tps)
	slices.SortFunc(tps, compareTopicPartitions)
	var out []*logv1.TopicPartitions
	for _, tp := range tps {
		if len(out) == 0 || out[len(out)-1].Topic != tp.Topic {
			out = append(out, &logv1.TopicPartitions{Topic: tp.Topic})
		}
		last := out[len(out)-1]
		last.Partitions = append(last.Partitions, uint32(tp.Partition))
	}
	return out
}
