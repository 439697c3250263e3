package metadata

import (
	"fmt"
	"maps"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/commitlog"
)

// Limits of the whole state, so that its encoding stays below the
// snapshot size Restore takes whatever the cluster does (see "Size" in the
// package documentation; TestStateBudget adds up the worst case). Apply
// refuses a command that would exceed one.
const (
	// MaxNodes is the most nodes registered at once.
	MaxNodes = 1024
	// MaxNodeFieldLen bounds a node's addresses and rack.
	MaxNodeFieldLen = 255
	// MaxClusterPartitions is the most partitions of all topics together.
	MaxClusterPartitions = 8192
	// MaxConsumerGroups is the most consumer groups.
	MaxConsumerGroups = 10000
	// MaxGroupSubscriptions is the most (member, topic) subscriptions of
	// all groups together; members are fewer (each subscribes to one
	// topic at least).
	MaxGroupSubscriptions = 10000
	// MaxGroupTopicEntries is the most (group, topic) pairs that a group
	// subscribes to, owns partitions of or has offsets of, all groups
	// together.
	MaxGroupTopicEntries = 10000
	// MaxGroupPartitionEntries is the most (group, topic, partition)
	// triples that a group's members target, own or that have a
	// committed offset, all groups together. Commits never add one (a
	// member commits only partitions it owns): only joins do.
	MaxGroupPartitionEntries = 32768
	// MaxMemberIDLen bounds a member ID (the proposer's are 32 hex
	// digits).
	MaxMemberIDLen = 64
)

// IsText reports whether s is UTF-8 without control characters: JSON
// encodes such text in at most twice its length.
func IsText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// checkNode checks a node's fields, and that registering it keeps the
// nodes within MaxNodes.
func (s *State) checkNode(n *Node) error {
	if err := nodeid.ValidName(n.ID); err != nil {
		return fmt.Errorf("%w: register_node: %v", ErrBadEncoding, err)
	}
	for _, f := range []struct{ name, v string }{{"Raft address", n.RaftAddr}, {"API address", n.APIAddr}, {"rack", n.Rack}} {
		if len(f.v) > MaxNodeFieldLen || !IsText(f.v) {
			return fmt.Errorf("%w: register_node %q: the %s must be at most %d bytes of UTF-8 without control characters", ErrBadEncoding, n.ID, f.name, MaxNodeFieldLen)
		}
	}
	if _, ok := s.Nodes[n.ID]; !ok && len(s.Nodes) >= MaxNodes {
		return fmt.Errorf("%w: node %q would be one more than the cluster's %d", ErrTooManyNodes, n.ID, MaxNodes)
	}
	return nil
}

// checkPartitions checks that n more partitions keep the topics within
// MaxClusterPartitions.
func (s *State) checkPartitions(topic string, n int) error {
	total := 0
	for _, t := range s.Topics {
		total += len(t.Partitions)
	}
	if total+n > MaxClusterPartitions {
		return fmt.Errorf("%w: %q: %d more partitions would make %d, the cluster keeps at most %d", ErrInvalidTopic, topic, n, total+n, MaxClusterPartitions)
	}
	return nil
}

// groupUsage is what a consumer group counts against the limits.
type groupUsage struct {
	subscriptions, topics, partitions int
}

// usage returns g's usage, counted once per change of the group (the
// count is dropped by every command that changes it: forget).
func (g *ConsumerGroup) usage(s *State) groupUsage {
	if g.counted == nil {
		u := g.usageWith(s, "", nil)
		g.counted = &u
	}
	return *g.counted
}

// forget drops g's counted usage after a change.
func (g *ConsumerGroup) forget() { g.counted = nil }

// usageWith counts g's usage as it would be with member id subscribed to
// topics (id "" for g as it is).
func (g *ConsumerGroup) usageWith(s *State, id string, topics []string) groupUsage {
	var u groupUsage
	subscribed := map[string]bool{}
	subscribe := func(ts []string) {
		u.subscriptions += len(ts)
		for _, t := range ts {
			subscribed[t] = true
		}
	}
	for mid, m := range g.Members {
		if mid != id {
			subscribe(m.Topics)
		}
	}
	if id != "" {
		subscribe(topics)
	}
	// A subscribed topic's partitions are all targeted; others count
	// where a member owns them or the group committed them.
	for t := range subscribed {
		if tp := s.Topics[t]; tp != nil {
			u.partitions += len(tp.Partitions)
		}
	}
	u.topics = len(subscribed)
	held := map[string]bool{}
	for t := range g.Owners {
		held[t] = true
	}
	for t := range g.Offsets {
		held[t] = true
	}
	for t := range held {
		if subscribed[t] {
			continue
		}
		ps := make(map[int]bool, len(g.Offsets[t]))
		for p := range maps.Keys(g.Owners[t]) {
			ps[p] = true
		}
		for p := range maps.Keys(g.Offsets[t]) {
			ps[p] = true
		}
		u.topics++
		u.partitions += len(ps)
	}
	return u
}

// checkGroupLimits checks that member id of group subscribing to topics
// keeps the groups within the cluster's limits; g is the group (nil for a
// new one).
func (s *State) checkGroupLimits(group string, g *ConsumerGroup, id string, topics []string) error {
	if g == nil && len(s.Groups) >= MaxConsumerGroups {
		return fmt.Errorf("%w: %w", ErrTooManyGroups, &commitlog.LimitError{Group: group, Resource: "consumer groups", Limit: MaxConsumerGroups})
	}
	var others, cur groupUsage
	for name, h := range s.Groups {
		if name != group {
			u := h.usage(s)
			others.subscriptions += u.subscriptions
			others.topics += u.topics
			others.partitions += u.partitions
		}
	}
	if g == nil {
		g = &ConsumerGroup{}
	} else {
		cur = g.usage(s)
	}
	next := g.usageWith(s, id, topics)
	for _, l := range []struct {
		resource        string
		others, cur, to int
		limit           int
	}{
		{"group subscriptions (member, topic)", others.subscriptions, cur.subscriptions, next.subscriptions, MaxGroupSubscriptions},
		{"group topics (group, topic)", others.topics, cur.topics, next.topics, MaxGroupTopicEntries},
		{"group partitions (group, topic, partition)", others.partitions, cur.partitions, next.partitions, MaxGroupPartitionEntries},
	} {
		// A join that does not grow a count is never refused for it.
		if l.to > l.cur && l.others+l.to > l.limit {
			return &commitlog.LimitError{Group: group, Resource: l.resource, Limit: l.limit}
		}
	}
	// One group's answers (DescribeGroup, FetchOffsets) fit one message.
	for _, l := range []struct {
		resource string
		cur, to  int
		limit    int
	}{
		{"subscriptions (member, topic) of one group", cur.subscriptions, next.subscriptions, commitlog.MaxGroupSubscriptions},
		{"partitions of one group", cur.partitions, next.partitions, commitlog.MaxGroupPartitions},
	} {
		if l.to > l.cur && l.to > l.limit {
			return &commitlog.LimitError{Group: group, Resource: l.resource, Limit: l.limit}
		}
	}
	return nil
}
