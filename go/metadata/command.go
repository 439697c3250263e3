package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Op names a Command.
type Op string

// The commands.
const (
	// OpRegisterNode adds Node, or updates its addresses and rack.
	OpRegisterNode Op = "register_node"
	// OpLeaveNode marks NodeID leaving since At: it gets no new replicas.
	// Marking a leaving node again keeps its first At.
	OpLeaveNode Op = "leave_node"
	// OpReturnNode clears NodeID's Leaving: it came back (a restart)
	// before its replicas were moved.
	OpReturnNode Op = "return_node"
	// OpRemoveNode forgets NodeID; refused while it holds a replica.
	OpRemoveNode Op = "remove_node"
	// OpCreateTopic creates Topic with Config, its partitions' replicas
	// as in Assignment (decided by Place).
	OpCreateTopic Op = "create_topic"
	// OpDeleteTopic deletes Topic.
	OpDeleteTopic Op = "delete_topic"
	// OpReassign sets the replicas of Topic's Partition to Replicas, and
	// its Adding to Adding, if the partition is still at Epoch. It adds or
	// removes at most one replica; Adding may name only the one it adds.
	OpReassign Op = "reassign"
	// OpReplicaReady reports that NodeID's replica of Topic's Partition,
	// added at Epoch, caught up: it leaves the partition's Adding.
	OpReplicaReady Op = "replica_ready"
	// OpLeaders records partition leaders as hints (LeaderHint): each of
	// Leaders whose topic still has that creation index, whose leader
	// holds a replica of the partition, and whose term is above the one
	// recorded. The others are ignored: a report may race a reassignment
	// or a deletion, and hints never decide correctness.
	OpLeaders Op = "leaders"
	// OpCreateACLs adds ACLs (1 to commitlog.MaxACLRulesPerRequest rules)
	// to the state's rules, all or none: refused if a rule is not valid
	// (ACLRule.Validate) or the set would exceed commitlog.MaxACLRules.
	OpCreateACLs Op = "create_acls"
	// OpDeleteACLs removes ACLs from the state's rules; rules it does not
	// hold are ignored.
	OpDeleteACLs Op = "delete_acls"
	// OpJoinGroup adds Join's member to consumer group Group (Join.New),
	// or replaces a member's subscription, client ID and session timeout;
	// a new member or a changed subscription starts a new generation.
	OpJoinGroup Op = "join_group"
	// OpLeaveGroup removes Members from Group (a leave, or sessions that
	// expired), starting a new generation; those that are not members are
	// ignored.
	OpLeaveGroup Op = "leave_group"
	// OpAckGroup records that MemberID of Group follows Generation; for
	// the current generation, its partitions no longer targeted go to
	// their targets.
	OpAckGroup Op = "ack_group"
	// OpCommitOffsets applies each of Commits on its own (all of its
	// offsets or none), fenced by membership, generation and ownership.
	OpCommitOffsets Op = "commit_offsets"
)

// MaxLeaderHints bounds the entries of one OpLeaders command, so that a
// command of topics of MaxTopicNameLen stays far below the metadata
// group's command limit.
const MaxLeaderHints = 1024

// LeaderHint says that Leader leads Topic's Partition in Term of the
// partition's Raft group.
type LeaderHint struct {
	Topic string `json:"topic"`
	// Created is the topic's creation index (Topic.Created).
	Created   uint64 `json:"created"`
	Partition int    `json:"partition"`
	Leader    string `json:"leader"`
	Term      uint64 `json:"term"`
}

// Command is one change of the State. Which fields are used depends on Op.
type Command struct {
	Op         Op            `json:"op"`
	Node       *Node         `json:"node,omitempty"`
	NodeID     string        `json:"node_id,omitempty"`
	Topic      string        `json:"topic,omitempty"`
	Config     *TopicConfig  `json:"config,omitempty"`
	Assignment [][]string    `json:"assignment,omitempty"`
	Partition  int           `json:"partition,omitempty"`
	Epoch      uint64        `json:"epoch,omitempty"`
	Replicas   []string      `json:"replicas,omitempty"`
	Adding     []string      `json:"adding,omitempty"`
	Leaders    []LeaderHint  `json:"leaders,omitempty"`
	Group      string        `json:"group,omitempty"`
	Join       *GroupJoin    `json:"join,omitempty"`
	Members    []string      `json:"members,omitempty"`
	MemberID   string        `json:"member_id,omitempty"`
	Generation uint64        `json:"generation,omitempty"`
	Commits    []GroupCommit `json:"commits,omitempty"`
	ACLs       []ACLRule     `json:"acls,omitempty"`
	// At is when the proposer decided the command, by its clock.
	At time.Time `json:"at,omitzero"`
}

// Encoding versions (the first byte).
const (
	commandVersion  = 1
	snapshotVersion = 1
)

// EncodeCommand encodes c for the metadata Raft log.
func EncodeCommand(c Command) ([]byte, error) { return encode(commandVersion, c) }

// DecodeCommand decodes what EncodeCommand encoded.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	return c, decode(commandVersion, b, &c)
}

// Encode encodes the state for a snapshot. Equal states encode to equal
// bytes.
func (s *State) Encode() ([]byte, error) { return encode(snapshotVersion, s) }

// DecodeState decodes what State.Encode encoded.
func DecodeState(b []byte) (*State, error) {
	s := &State{}
	if err := decode(snapshotVersion, b, s); err != nil {
		return nil, err
	}
	if s.Nodes == nil {
		s.Nodes = map[string]*Node{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*Topic{}
	}
	return s, nil
}

// encode writes v as JSON without HTML escaping, so that text fields take
// at most twice their length (the state's size budget counts on it).
func encode(version byte, v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte(version)
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, fmt.Errorf("metadata: encode: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func decode(version byte, b []byte, v any) error {
	if len(b) == 0 || b[0] != version {
		return fmt.Errorf("%w: want version %d", ErrBadEncoding, version)
	}
	d := json.NewDecoder(bytes.NewReader(b[1:]))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadEncoding, err)
	}
	if d.More() {
		return fmt.Errorf("%w: trailing data", ErrBadEncoding)
	}
	return nil
}
