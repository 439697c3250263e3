package metadata

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// Limits of a topic.
const (
	// MaxTopicNameLen is the longest topic name (Kafka's limit, so names
	// move between the systems).
	MaxTopicNameLen = 249
	// MaxPartitions is the most partitions a topic may have.
	MaxPartitions = 1024
	// MaxReplicationFactor is the most replicas a partition may have.
	MaxReplicationFactor = 7
)

// Node is a registered cluster member.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// Rack, if set, spreads a partition's replicas over racks.
	Rack string `json:"rack,omitempty"`
	// Leaving nodes get no new replicas; their replicas are moved away
	// (Replace) before RemoveNode succeeds.
	Leaving bool `json:"leaving,omitempty"`
	// LeavingSince is when the node was marked leaving, by the clock of
	// the leader that proposed it (the OpLeaveNode command's At).
	LeavingSince time.Time `json:"leaving_since,omitzero"`
}

// Retention bounds a topic's partitions (zero = keep everything).
type Retention struct {
	MaxBytes int64         `json:"max_bytes,omitempty"`
	MaxAge   time.Duration `json:"max_age,omitempty"`
}

// TopicConfig is what CreateTopic asks for.
type TopicConfig struct {
	Partitions        int       `json:"partitions"`
	ReplicationFactor int       `json:"replication_factor"`
	Retention         Retention `json:"retention,omitzero"`
}

// Validate reports the first setting that is not allowed.
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > MaxPartitions:
		return fmt.Errorf("%w: %d partitions, want 1 to %d", ErrInvalidTopic, c.Partitions, MaxPartitions)
	case c.ReplicationFactor < 1 || c.ReplicationFactor > MaxReplicationFactor:
		return fmt.Errorf("%w: replication factor %d, want 1 to %d", ErrInvalidTopic, c.ReplicationFactor, MaxReplicationFactor)
	case c.Retention.MaxBytes < 0 || c.Retention.MaxAge < 0:
		return fmt.Errorf("%w: negative retention", ErrInvalidTopic)
	}
	return nil
}

// Partition is one partition of a topic.
type Partition struct {
	// Replicas are the IDs of the nodes holding the partition, in
	// preference order: the first is the preferred leader.
	Replicas []string `json:"replicas"`
	// Epoch counts the changes of Replicas; a reassignment names the
	// epoch it was decided against.
	Epoch uint64 `json:"epoch"`
	// Adding are replicas a reassignment added to take over from another
	// one and that have not reported caught up yet (OpReplicaReady): the
	// replica they replace is dropped only once this is empty.
	Adding []string `json:"adding,omitempty"`
	// Leader is the partition's leader as last reported (OpLeaders), in
	// Raft term LeaderTerm of the partition's group: a hint for clients,
	// never used for correctness. Empty until a leader reports.
	Leader     string `json:"leader,omitempty"`
	LeaderTerm uint64 `json:"leader_term,omitempty"`
}

// Topic is a named set of partitions.
type Topic struct {
	Name       string      `json:"name"`
	Config     TopicConfig `json:"config"`
	Partitions []Partition `json:"partitions"`
	// Created is the metadata log index of the command that created it,
	// so a topic deleted and created again under the same name is told
	// apart (partition directories are named after it).
	Created uint64 `json:"created"`
}

// State is the cluster's metadata. The zero value is an empty cluster.
// It is not safe for concurrent use; the FSM guards it.
type State struct {
	Nodes  map[string]*Node  `json:"nodes"`
	Topics map[string]*Topic `json:"topics"`
	// ACLs are the access rules created at run time (OpCreateACLs),
	// sorted (CompareACLRules), without duplicates, at most
	// commitlog.MaxACLRules; ACLsChanged is the index of the command that
	// last changed them (0: never).
	ACLs        []ACLRule `json:"acls,omitempty"`
	ACLsChanged uint64    `json:"acls_changed,omitempty"`
	// Groups are the consumer groups by name.
	Groups map[string]*ConsumerGroup `json:"groups,omitempty"`
	// Applied is the index of the last command applied.
	Applied uint64 `json:"applied"`
}

// ValidateTopicName reports whether name may name a topic: 1 to
// MaxTopicNameLen of [a-zA-Z0-9._-], and not "." or "..".
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

// Apply applies c, the command at metadata log index index, and returns
// the command's error (the state is then unchanged; for OpCommitOffsets a
// *CommitsError, and only the refused commits changed nothing). Commands must be
// applied in log order; an index at or below Applied is ignored (a
// replay).
func (s *State) Apply(index uint64, c Command) error {
	if index <= s.Applied {
		return nil
	}
	s.Applied = index
	if s.Nodes == nil {
		s.Nodes = map[string]*Node{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*Topic{}
	}
	switch c.Op {
	case OpRegisterNode:
		return s.registerNode(c)
	case OpLeaveNode:
		n, ok := s.Nodes[c.NodeID]
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknownNode, c.NodeID)
		}
		if !n.Leaving {
			n.Leaving, n.LeavingSince = true, c.At
		}
		return nil
	case OpReturnNode:
		n, ok := s.Nodes[c.NodeID]
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknownNode, c.NodeID)
		}
		n.Leaving, n.LeavingSince = false, time.Time{}
		return nil
	case OpRemoveNode:
		return s.removeNode(c.NodeID)
	case OpCreateTopic:
		return s.createTopic(index, c)
	case OpDeleteTopic:
		if _, ok := s.Topics[c.Topic]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
		}
		delete(s.Topics, c.Topic)
		s.dropTopicFromGroups(c.Topic)
		return nil
	case OpReassign:
		return s.reassign(c)
	case OpReplicaReady:
		return s.replicaReady(c)
	case OpLeaders:
		return s.leaders(c)
	case OpCreateACLs:
		return s.createACLs(index, c)
	case OpDeleteACLs:
		return s.deleteACLs(index, c)
	case OpJoinGroup:
		return s.joinGroup(c)
	case OpLeaveGroup:
		return s.leaveGroup(c)
	case OpAckGroup:
		return s.ackGroup(c)
	case OpCommitOffsets:
		return s.commitOffsets(c)
	}
	return fmt.Errorf("%w: unknown op %q", ErrBadEncoding, c.Op)
}

func (s *State) registerNode(c Command) error {
	n := c.Node
	if n == nil || n.ID == "" || n.RaftAddr == "" || n.APIAddr == "" {
		return fmt.Errorf("%w: register_node needs an ID, a Raft address and an API address", ErrBadEncoding)
	}
	if err := s.checkNode(n); err != nil {
		return err
	}
	nn := *n
	if old, ok := s.Nodes[n.ID]; ok {
		// Registering again does not undo a leave (OpReturnNode does).
		nn.Leaving, nn.LeavingSince = old.Leaving, old.LeavingSince
	}
	s.Nodes[n.ID] = &nn
	return nil
}

func (s *State) removeNode(id string) error {
	if _, ok := s.Nodes[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	for _, name := range s.TopicNames() {
		for p, part := range s.Topics[name].Partitions {
			if slices.Contains(part.Replicas, id) {
				return fmt.Errorf("%w: node %q still holds a replica of %s/%d; move it first", ErrStale, id, name, p)
			}
		}
	}
	delete(s.Nodes, id)
	return nil
}

func (s *State) createTopic(index uint64, c Command) error {
	if err := ValidateTopicName(c.Topic); err != nil {
		return err
	}
	if c.Config == nil {
		return fmt.Errorf("%w: create_topic without a config", ErrBadEncoding)
	}
	cfg := *c.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, ok := s.Topics[c.Topic]; ok {
		return fmt.Errorf("%w: %q", ErrTopicExists, c.Topic)
	}
	if err := s.checkPartitions(c.Topic, cfg.Partitions); err != nil {
		return err
	}
	if len(c.Assignment) != cfg.Partitions {
		return fmt.Errorf("%w: %d partitions assigned, the topic has %d", ErrBadEncoding, len(c.Assignment), cfg.Partitions)
	}
	parts := make([]Partition, cfg.Partitions)
	for p, replicas := range c.Assignment {
		// Fewer replicas than the factor only for a topic created on fewer
		// nodes (the default topic at bootstrap); the controller tops it up.
		if err := s.checkReplicas(replicas, 1, cfg.ReplicationFactor); err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
		parts[p] = Partition{Replicas: slices.Clone(replicas)}
	}
	s.Topics[c.Topic] = &Topic{Name: c.Topic, Config: cfg, Partitions: parts, Created: index}
	return nil
}

func (s *State) reassign(c Command) error {
	p, err := s.partition(c)
	if err != nil {
		return err
	}
	if c.Epoch != p.Epoch {
		return fmt.Errorf("%w: %s/%d is at epoch %d, the command was decided at %d", ErrStale, c.Topic, c.Partition, p.Epoch, c.Epoch)
	}
	// A reassignment moves one replica at a time, as a partition's Raft
	// group changes one server at a time: it adds one node, removes one,
	// or only reorders. The count may be one above the factor while a new
	// replica catches up, and below it for a topic created on fewer nodes.
	rf := s.Topics[c.Topic].Config.ReplicationFactor
	if err := s.checkReplicas(c.Replicas, 1, rf+1); err != nil {
		return fmt.Errorf("%s/%d: %w", c.Topic, c.Partition, err)
	}
	added, removed := diff(p.Replicas, c.Replicas), diff(c.Replicas, p.Replicas)
	if len(added)+len(removed) > 1 {
		return fmt.Errorf("%w: %s/%d from %v to %v changes %d replicas, at most one at a time", ErrBadEncoding, c.Topic, c.Partition, p.Replicas, c.Replicas, len(added)+len(removed))
	}
	for _, id := range c.Adding {
		if !slices.Contains(added, id) {
			return fmt.Errorf("%w: %s/%d: adding %q, which the reassignment does not add", ErrBadEncoding, c.Topic, c.Partition, id)
		}
	}
	p.Replicas = slices.Clone(c.Replicas)
	p.Adding = slices.Clone(c.Adding)
	p.Epoch++
	return nil
}

func (s *State) replicaReady(c Command) error {
	p, err := s.partition(c)
	if err != nil {
		return err
	}
	i := slices.Index(p.Adding, c.NodeID)
	if c.Epoch != p.Epoch || i < 0 {
		return fmt.Errorf("%w: %s/%d at epoch %d is not adding %q (the report is for epoch %d)", ErrStale, c.Topic, c.Partition, p.Epoch, c.NodeID, c.Epoch)
	}
	p.Adding = slices.Delete(p.Adding, i, i+1)
	if len(p.Adding) == 0 {
		p.Adding = nil
	}
	return nil
}

// leaders records the hints of c that apply (see OpLeaders).
func (s *State) leaders(c Command) error {
	if len(c.Leaders) > MaxLeaderHints {
		return fmt.Errorf("%w: %d leader hints, at most %d", ErrBadEncoding, len(c.Leaders), MaxLeaderHints)
	}
	for _, h := range c.Leaders {
		t := s.Topics[h.Topic]
		if t == nil || t.Created != h.Created || h.Partition < 0 || h.Partition >= len(t.Partitions) {
			continue
		}
		p := &t.Partitions[h.Partition]
		if h.Term <= p.LeaderTerm || !slices.Contains(p.Replicas, h.Leader) {
			continue
		}
		p.Leader, p.LeaderTerm = h.Leader, h.Term
	}
	return nil
}

// partition returns the partition c names.
func (s *State) partition(c Command) (*Partition, error) {
	t, ok := s.Topics[c.Topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, c.Topic)
	}
	if c.Partition < 0 || c.Partition >= len(t.Partitions) {
		return nil, fmt.Errorf("%w: %s has no partition %d", ErrUnknownPartition, c.Topic, c.Partition)
	}
	return &t.Partitions[c.Partition], nil
}

// diff returns the IDs of b that are not in a.
func diff(a, b []string) []string {
	var out []string
	for _, id := range b {
		if !slices.Contains(a, id) {
			out = append(out, id)
		}
	}
	return out
}

// checkReplicas checks that replicas names lo to hi distinct registered
// nodes.
func (s *State) checkReplicas(replicas []string, lo, hi int) error {
	if len(replicas) < lo || len(replicas) > hi {
		return fmt.Errorf("%w: %d replicas, want %d to %d", ErrBadEncoding, len(replicas), lo, hi)
	}
	seen := make(map[string]bool, len(replicas))
	for _, id := range replicas {
		if _, ok := s.Nodes[id]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownNode, id)
		}
		if seen[id] {
			return fmt.Errorf("%w: node %q named twice", ErrBadEncoding, id)
		}
		seen[id] = true
	}
	return nil
}

// TopicNames returns the topics' names, sorted.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for name := range s.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Loads returns, for every node that may take new replicas (registered,
// not leaving), how many replicas and preferred leaderships it holds.
func (s *State) Loads() []NodeLoad {
	loads := make(map[string]*NodeLoad, len(s.Nodes))
	for id, n := range s.Nodes {
		if !n.Leaving {
			loads[id] = &NodeLoad{ID: id, Rack: n.Rack}
		}
	}
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			for i, id := range p.Replicas {
				if l := loads[id]; l != nil {
					l.Replicas++
					if i == 0 {
						l.Leaders++
					}
				}
			}
		}
	}
	out := make([]NodeLoad, 0, len(loads))
	for _, l := range loads {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
