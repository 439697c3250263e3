package commitlog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Consumer-group errors, returned wrapped with the detail; test with
// errors.Is. The typed errors below carry their figures.
var (
	// ErrInvalidGroup: a group name or a request field is not allowed; the
	// message says which.
	ErrInvalidGroup = errors.New("commitlog: invalid group request")
	// ErrUnknownGroup: the group has no members and no committed offsets.
	ErrUnknownGroup = errors.New("commitlog: unknown group")
	// ErrUnknownMember: the member left or its session timed out.
	ErrUnknownMember = errors.New("commitlog: unknown group member")
	// ErrNotOwner: a commit for a partition the member does not own.
	ErrNotOwner = errors.New("commitlog: member does not own the partition")
	// ErrStaleGeneration: a generation older than the member acknowledged,
	// or newer than the group's.
	ErrStaleGeneration = errors.New("commitlog: stale generation")
	// ErrTooManyMembers: the group has the limit of members.
	ErrTooManyMembers = errors.New("commitlog: too many group members")
)

// Limits of the group requests (log.proto).
const (
	// MaxGroupNameLen is the longest group name (the topic rule).
	MaxGroupNameLen = MaxTopicNameLen
	// MaxGroupTopics is the most topics one member subscribes to.
	MaxGroupTopics = 256
	// MaxCommitOffsets is the most positions of one commit.
	MaxCommitOffsets = 4096
	// MaxClientIDLen is the longest client id.
	MaxClientIDLen = 255
	// DefaultSessionTimeout is a member's session timeout when it names none.
	DefaultSessionTimeout = 10 * time.Second
	// MaxGroupSubscriptions is the most (member, topic) subscriptions of
	// one group, and MaxGroupPartitions the most partitions it targets,
	// owns or has committed offsets of: with them one group's
	// DescribeGroup and FetchOffsets answer within one 4 MiB message.
	MaxGroupSubscriptions = 1024
	MaxGroupPartitions    = 4096
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout.
	MinSessionTimeout = time.Second
	MaxSessionTimeout = 5 * time.Minute
)

// ValidateGroupName reports whether name may name a group: the rule of
// topic names (ValidateTopicName), wrapping ErrInvalidGroup.
func ValidateGroupName(name string) error {
	if err := ValidateTopicName(name); err != nil {
		return fmt.Errorf("%w: group %q: must be 1 to %d of [a-zA-Z0-9._-], not . or ..", ErrInvalidGroup, name, MaxGroupNameLen)
	}
	return nil
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int
}

// PartitionOffset is a group's committed offset of a partition: the offset
// of the next record the group has to process. Committed is false when the
// group has committed nothing for it (Offset is then 0 and means nothing).
type PartitionOffset struct {
	TopicPartition
	Offset    uint64
	Committed bool
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group string
	// MemberID is empty for a new member.
	MemberID string
	Topics   []string
	// SessionTimeout 0 means DefaultSessionTimeout.
	SessionTimeout time.Duration
	ClientID       string
}

// Assignment is what a member owns in a generation (log.proto Assignment).
type Assignment struct {
	MemberID   string
	Generation uint64
	// Partitions the member owns and may read now, with the committed
	// offsets, ordered by topic and partition.
	Partitions        []PartitionOffset
	HeartbeatInterval time.Duration
}

// GroupSummary is one group of ListGroups.
type GroupSummary struct {
	Group      string
	Generation uint64
	Members    int
}

// GroupMember is one member of DescribeGroup.
type GroupMember struct {
	MemberID       string
	ClientID       string
	Topics         []string
	SessionTimeout time.Duration
	// Generation is the one the member last acknowledged.
	Generation uint64
	// Owned are the partitions it owns; Target those the group's current
	// generation assigns it (owned ones included).
	Owned  []TopicPartition
	Target []TopicPartition
}

// GroupInfo is DescribeGroup's answer.
type GroupInfo struct {
	Group      string
	Generation uint64
	// Members ordered by MemberID.
	Members []GroupMember
	// Offsets ordered by topic and partition.
	Offsets []PartitionOffset
}

// StaleGenerationError is ErrStaleGeneration with its figures.
type StaleGenerationError struct {
	Group, MemberID     string
	Generation, Current uint64
}

func (e *StaleGenerationError) Error() string {
	return fmt.Sprintf("commitlog: group %q member %q: generation %d is stale (current %d)", e.Group, e.MemberID, e.Generation, e.Current)
}

// Is reports whether target is ErrStaleGeneration.
func (e *StaleGenerationError) Is(target error) bool { return target == ErrStaleGeneration }

// NotOwnerError is ErrNotOwner with its figures.
type NotOwnerError struct {
	Group, MemberID string
	TopicPartition
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("commitlog: group %q member %q does not own %s/%d", e.Group, e.MemberID, e.Topic, e.Partition)
}

// Is reports whether target is ErrNotOwner.
func (e *NotOwnerError) Is(target error) bool { return target == ErrNotOwner }

// TooManyMembersError is ErrTooManyMembers with its figures.
type TooManyMembersError struct {
	Group string
	Limit int
}

func (e *TooManyMembersError) Error() string {
	return fmt.Sprintf("commitlog: group %q has its limit of %d members", e.Group, e.Limit)
}

// Is reports whether target is ErrTooManyMembers.
func (e *TooManyMembersError) Is(target error) bool { return target == ErrTooManyMembers }

// LimitError is ErrTooManyMembers for a limit of the whole cluster's
// consumer-group state rather than of one group's members (the metadata
// bounds what it keeps): Resource names what is counted, Limit the most the
// cluster keeps.
type LimitError struct {
	Group    string
	Resource string
	Limit    int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("commitlog: group %q: the cluster keeps at most %d %s", e.Group, e.Limit, e.Resource)
}

// Is reports whether target is ErrTooManyMembers.
func (e *LimitError) Is(target error) bool { return target == ErrTooManyMembers }

// Groups is the consumer-group coordinator as the API server sees it
// (log.proto's JoinGroup … DescribeGroup). The metadata group implements
// it; the server never sees Raft. The member calls (Join, Heartbeat, Leave,
// Commit) need the metadata leader: elsewhere they return a
// *NotLeaderError naming it. The reads (Fetch, List, Describe) answer from
// this node's copy of the metadata. Errors: the sentinels above (typed
// where they carry figures), ErrUnknownTopic, ErrUnavailable. Safe for
// concurrent use.
type Groups interface {
	JoinGroup(ctx context.Context, req JoinRequest) (Assignment, error)
	Heartbeat(ctx context.Context, group, memberID string, generation uint64) (Assignment, error)
	LeaveGroup(ctx context.Context, group, memberID string) error
	CommitOffsets(ctx context.Context, group, memberID string, generation uint64, offsets []PartitionOffset) error
	// FetchOffsets returns the committed offsets of the named partitions,
	// or of every committed one when partitions is empty.
	FetchOffsets(ctx context.Context, group string, partitions []TopicPartition) ([]PartitionOffset, error)
	ListGroups(ctx context.Context) ([]GroupSummary, error)
	DescribeGroup(ctx context.Context, group string) (GroupInfo, error)
}

// ACLRule allows Subject to perform Action on Object (log.proto ACLRule).
type ACLRule struct {
	Subject, Object, Action string
}

// ACL limits (log.proto).
const (
	// MaxACLRulesPerRequest bounds one CreateACLs or DeleteACLs.
	MaxACLRulesPerRequest = 1024
	// MaxACLRules bounds the rules the metadata keeps, so that ListACLs
	// answers in one message (rules of MaxACLFieldLen fields: ~2.2 MB).
	MaxACLRules = 4096
	// MaxACLFieldLen bounds a rule's subject and object.
	MaxACLFieldLen = 255
)

// ErrInvalidACL: a rule is not allowed; the message says why.
var ErrInvalidACL = errors.New("commitlog: invalid ACL rule")

// ACLs are the access rules kept in the cluster's metadata. Changes need
// the metadata leader (*NotLeaderError elsewhere); Rules answers from this
// node's copy. Safe for concurrent use.
type ACLs interface {
	CreateACLs(ctx context.Context, rules []ACLRule) error
	DeleteACLs(ctx context.Context, rules []ACLRule) error
	Rules(ctx context.Context) ([]ACLRule, error)
}
