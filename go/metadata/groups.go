package metadata

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/proglog/proglog/go/commitlog"
)

// ConsumerGroup is one consumer group's state (see "Consumer groups" in
// the package documentation).
type ConsumerGroup struct {
	// Generation counts the changes of the group's members and
	// subscriptions; 0 before the first member joined.
	Generation uint64 `json:"generation"`
	// Members by ID.
	Members map[string]*GroupMember `json:"members,omitempty"`
	// Owners names, per topic and partition, the member that owns it (may
	// read it and commit its offset). A partition nobody owns is absent.
	Owners map[string]map[int]string `json:"owners,omitempty"`
	// Offsets are the committed offsets per topic and partition: the
	// offset of the next record the group has to process.
	Offsets map[string]map[int]uint64 `json:"offsets,omitempty"`

	// counted is the group's usage of the limits, nil until counted
	// after a change (usage, forget).
	counted *groupUsage
}

// GroupMember is one member of a ConsumerGroup.
type GroupMember struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"`
	// Topics it subscribes to, sorted.
	Topics         []string      `json:"topics"`
	SessionTimeout time.Duration `json:"session_timeout"`
	// Acked is the generation the member acknowledged last.
	Acked uint64 `json:"acked"`
	// Target are the partitions the group's generation assigns it, per
	// topic, sorted.
	Target map[string][]int `json:"target,omitempty"`
}

// GroupJoin is what OpJoinGroup carries.
type GroupJoin struct {
	// MemberID is the member's ID, chosen by the proposer for a new member.
	MemberID string   `json:"member_id"`
	ClientID string   `json:"client_id,omitempty"`
	Topics   []string `json:"topics"`
	// SessionTimeout is the member's (the proposer applies the default).
	SessionTimeout time.Duration `json:"session_timeout"`
	// New: the member joins (refused if MemberID is a member: the
	// proposer's random ID collided); else it must be a member, whose
	// subscription, client ID and session timeout are replaced.
	New bool `json:"new,omitempty"`
	// MaxMembers is the proposer's limit of members per group.
	MaxMembers int `json:"max_members"`
	// MaxGroups is the proposer's limit of groups; 0 is none.
	MaxGroups int `json:"max_groups,omitempty"`
}

// GroupOffset is one committed position of a GroupCommit.
type GroupOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    uint64 `json:"offset"`
}

// GroupCommit is one member's commit of OpCommitOffsets.
type GroupCommit struct {
	Group      string        `json:"group"`
	MemberID   string        `json:"member_id"`
	Generation uint64        `json:"generation"`
	Offsets    []GroupOffset `json:"offsets"`
}

// CommitsError is the error of an OpCommitOffsets command of which at
// least one commit was refused: Errs[i] is the error of Commits[i], nil
// for those applied. Each commit applies all of its offsets or none.
type CommitsError struct{ Errs []error }

func (e *CommitsError) Error() string {
	n := 0
	var first error
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("metadata: %d of %d commits refused, the first: %v", n, len(e.Errs), first)
}

func (s *State) joinGroup(c Command) error {
	j := c.Join
	if j == nil || j.MemberID == "" || j.MaxMembers < 1 {
		return fmt.Errorf("%w: join_group needs a member ID and a member limit", ErrBadEncoding)
	}
	if err := commitlog.ValidateGroupName(c.Group); err != nil {
		return err
	}
	topics := slices.Sorted(slices.Values(j.Topics))
	topics = slices.Compact(topics)
	if len(topics) == 0 || len(topics) > commitlog.MaxGroupTopics {
		return fmt.Errorf("%w: %d topics, want 1 to %d", commitlog.ErrInvalidGroup, len(topics), commitlog.MaxGroupTopics)
	}
	if j.SessionTimeout < commitlog.MinSessionTimeout || j.SessionTimeout > commitlog.MaxSessionTimeout {
		return fmt.Errorf("%w: session timeout %v, want %v to %v", commitlog.ErrInvalidGroup, j.SessionTimeout, commitlog.MinSessionTimeout, commitlog.MaxSessionTimeout)
	}
	if len(j.ClientID) > commitlog.MaxClientIDLen || !IsText(j.ClientID) {
		return fmt.Errorf("%w: client id must be at most %d bytes of UTF-8 without control characters", commitlog.ErrInvalidGroup, commitlog.MaxClientIDLen)
	}
	if len(j.MemberID) > MaxMemberIDLen || ValidateTopicName(j.MemberID) != nil {
		return fmt.Errorf("%w: member ID %q: want 1 to %d of [a-zA-Z0-9._-]", ErrBadEncoding, j.MemberID, MaxMemberIDLen)
	}
	for _, t := range topics {
		if s.Topics[t] == nil {
			return fmt.Errorf("%w: %q", ErrUnknownTopic, t)
		}
	}
	g := s.Groups[c.Group]
	m := (*GroupMember)(nil)
	if g != nil {
		m = g.Members[j.MemberID]
	}
	switch {
	case j.New && m != nil:
		return fmt.Errorf("%w: group %q: member %q exists", ErrBadEncoding, c.Group, j.MemberID)
	case !j.New && m == nil:
		return fmt.Errorf("%w: group %q member %q", commitlog.ErrUnknownMember, c.Group, j.MemberID)
	case j.New && g != nil && len(g.Members) >= j.MaxMembers:
		return &commitlog.TooManyMembersError{Group: c.Group, Limit: j.MaxMembers}
	case g == nil && j.MaxGroups > 0 && len(s.Groups) >= j.MaxGroups:
		return fmt.Errorf("%w: %w", ErrTooManyGroups, &commitlog.LimitError{Group: c.Group, Resource: "consumer groups", Limit: j.MaxGroups})
	}
	if err := s.checkGroupLimits(c.Group, g, j.MemberID, topics); err != nil {
		return err
	}
	if g == nil {
		g = &ConsumerGroup{}
		if s.Groups == nil {
			s.Groups = map[string]*ConsumerGroup{}
		}
		s.Groups[c.Group] = g
	}
	g.forget()
	if g.Members == nil {
		g.Members = map[string]*GroupMember{}
	}
	if m == nil {
		m = &GroupMember{ID: j.MemberID}
		g.Members[m.ID] = m
	}
	m.ClientID, m.SessionTimeout = j.ClientID, j.SessionTimeout
	if j.New || !slices.Equal(m.Topics, topics) {
		m.Topics = topics
		g.newGeneration(s)
		if j.New {
			// It owns nothing: there is nothing for it to acknowledge.
			m.Acked = g.Generation
		}
	}
	return nil
}

// leaveGroup removes c.Members from c.Group; those that are not members
// are ignored (they left already).
func (s *State) leaveGroup(c Command) error {
	g := s.Groups[c.Group]
	if g == nil {
		return nil
	}
	g.forget()
	removed := false
	for _, id := range c.Members {
		if g.Members[id] != nil {
			delete(g.Members, id)
			removed = true
		}
	}
	if removed {
		g.newGeneration(s)
	}
	s.dropIfEmpty(c.Group)
	return nil
}

// ackGroup records that c.MemberID follows c.Generation; for the group's
// current generation its partitions no longer targeted are released to
// their targets.
func (s *State) ackGroup(c Command) error {
	g, m, err := s.member(c.Group, c.MemberID)
	if err != nil {
		return err
	}
	if c.Generation < m.Acked || c.Generation > g.Generation {
		return &commitlog.StaleGenerationError{Group: c.Group, MemberID: c.MemberID, Generation: c.Generation, Current: g.Generation}
	}
	m.Acked = c.Generation
	if c.Generation != g.Generation {
		return nil
	}
	g.forget()
	for topic, owners := range g.Owners {
		for p, o := range owners {
			if o == m.ID && !slices.Contains(m.Target[topic], p) {
				delete(owners, p)
			}
		}
	}
	g.settle()
	return nil
}

// commitOffsets applies each commit of c on its own.
func (s *State) commitOffsets(c Command) error {
	var errs []error
	for i, gc := range c.Commits {
		if err := s.commit(gc); err != nil {
			if errs == nil {
				errs = make([]error, len(c.Commits))
			}
			errs[i] = err
		}
	}
	if errs != nil {
		return &CommitsError{Errs: errs}
	}
	return nil
}

// CheckCommit returns the error OpCommitOffsets would refuse gc with in
// this state, nil if it would apply it. The refusals are final (members
// do not come back, generations and acknowledgements only grow, and a
// member learns what it owns only from a state that has it), so the
// coordinator refuses such a commit without proposing it.
func (s *State) CheckCommit(gc GroupCommit) error {
	_, err := s.checkCommit(gc)
	return err
}

func (s *State) checkCommit(gc GroupCommit) (*ConsumerGroup, error) {
	if len(gc.Offsets) == 0 || len(gc.Offsets) > commitlog.MaxCommitOffsets {
		return nil, fmt.Errorf("%w: %d offsets, want 1 to %d", commitlog.ErrInvalidGroup, len(gc.Offsets), commitlog.MaxCommitOffsets)
	}
	g, m, err := s.member(gc.Group, gc.MemberID)
	if err != nil {
		return nil, err
	}
	if gc.Generation < m.Acked || gc.Generation > g.Generation {
		return nil, &commitlog.StaleGenerationError{Group: gc.Group, MemberID: gc.MemberID, Generation: gc.Generation, Current: g.Generation}
	}
	for _, o := range gc.Offsets {
		if g.Owners[o.Topic][o.Partition] != m.ID {
			return nil, &commitlog.NotOwnerError{Group: gc.Group, MemberID: gc.MemberID, TopicPartition: commitlog.TopicPartition{Topic: o.Topic, Partition: o.Partition}}
		}
	}
	return g, nil
}

func (s *State) commit(gc GroupCommit) error {
	g, err := s.checkCommit(gc)
	if err != nil {
		return err
	}
	// No count changes (no forget): the partitions are owned, so counted.
	if g.Offsets == nil {
		g.Offsets = map[string]map[int]uint64{}
	}
	for _, o := range gc.Offsets {
		if g.Offsets[o.Topic] == nil {
			g.Offsets[o.Topic] = map[int]uint64{}
		}
		g.Offsets[o.Topic][o.Partition] = o.Offset
	}
	return nil
}

// dropTopicFromGroups removes topic from every group: subscriptions
// (a new generation for the groups that had it), owners and offsets.
func (s *State) dropTopicFromGroups(topic string) {
	for _, name := range slices.Sorted(maps.Keys(s.Groups)) {
		g := s.Groups[name]
		g.forget()
		changed := false
		for _, m := range g.Members {
			if i := slices.Index(m.Topics, topic); i >= 0 {
				m.Topics = slices.Delete(m.Topics, i, i+1)
				changed = true
			}
		}
		delete(g.Owners, topic)
		delete(g.Offsets, topic)
		if changed {
			g.newGeneration(s)
		}
		s.dropIfEmpty(name)
	}
}

// member returns the group's member id, or ErrUnknownMember.
func (s *State) member(group, id string) (*ConsumerGroup, *GroupMember, error) {
	if g := s.Groups[group]; g != nil {
		if m := g.Members[id]; m != nil {
			return g, m, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: group %q member %q", commitlog.ErrUnknownMember, group, id)
}

// dropIfEmpty forgets a group with no members and no offsets.
func (s *State) dropIfEmpty(name string) {
	if g := s.Groups[name]; g != nil && len(g.Members) == 0 && len(g.Offsets) == 0 {
		delete(s.Groups, name)
	}
}

// newGeneration starts the group's next generation: new targets (assign)
// and the partitions nobody owns handed to their targets (settle).
func (g *ConsumerGroup) newGeneration(s *State) {
	g.Generation++
	g.assign(s)
	g.settle()
}

// assign computes every member's target (see "Assignment" in the package
// documentation): per topic, the subscribers in ID order, balanced and
// sticky.
func (g *ConsumerGroup) assign(s *State) {
	ids := slices.Sorted(maps.Keys(g.Members))
	subs := map[string][]string{} // topic -> subscribers, by ID
	for _, id := range ids {
		for _, t := range g.Members[id].Topics {
			subs[t] = append(subs[t], id)
		}
	}
	target := make(map[string]map[string][]int, len(ids))
	for _, topic := range slices.Sorted(maps.Keys(subs)) {
		n := len(s.Topics[topic].Partitions)
		ms := subs[topic]
		for id, ps := range assignTopic(n, ms, func(id string) []int { return g.Members[id].Target[topic] }) {
			if target[id] == nil {
				target[id] = map[string][]int{}
			}
			target[id][topic] = ps
		}
	}
	for _, id := range ids {
		g.Members[id].Target = target[id]
	}
}

// assignTopic assigns partitions 0 to n-1 to members (sorted by ID), each
// having current (its previous target): every member gets n/len(members)
// or one more, the members keeping the most get the extra ones (ties by
// ID), each keeps the lowest of its current partitions up to its count,
// and the partitions left go, lowest first, to the members below their
// count in ID order. It returns the members that got partitions.
func assignTopic(n int, members []string, current func(string) []int) map[string][]int {
	k := len(members)
	keep := make(map[string][]int, k)
	for _, id := range members {
		for _, p := range current(id) {
			if p < n {
				keep[id] = append(keep[id], p)
			}
		}
		slices.Sort(keep[id])
	}
	order := slices.Clone(members)
	sort.SliceStable(order, func(i, j int) bool { return len(keep[order[i]]) > len(keep[order[j]]) })
	quota := make(map[string]int, k)
	for i, id := range order {
		quota[id] = n / k
		if i < n%k {
			quota[id]++
		}
	}
	taken := make([]bool, n)
	out := make(map[string][]int, k)
	for _, id := range members {
		for _, p := range keep[id] {
			if len(out[id]) < quota[id] && !taken[p] {
				taken[p] = true
				out[id] = append(out[id], p)
			}
		}
	}
	next := 0
	for _, id := range members {
		for len(out[id]) < quota[id] {
			for taken[next] {
				next++
			}
			taken[next] = true
			out[id] = append(out[id], next)
		}
		slices.Sort(out[id])
		if len(out[id]) == 0 {
			delete(out, id)
		}
	}
	return out
}

// settle drops the owners that are no longer members and gives every
// partition nobody owns to its target.
func (g *ConsumerGroup) settle() {
	for _, owners := range g.Owners {
		for p, o := range owners {
			if g.Members[o] == nil {
				delete(owners, p)
			}
		}
	}
	for id, m := range g.Members {
		for topic, ps := range m.Target {
			for _, p := range ps {
				if _, ok := g.Owners[topic][p]; ok {
					continue
				}
				if g.Owners == nil {
					g.Owners = map[string]map[int]string{}
				}
				if g.Owners[topic] == nil {
					g.Owners[topic] = map[int]string{}
				}
				g.Owners[topic][p] = id
			}
		}
	}
	for topic, owners := range g.Owners {
		if len(owners) == 0 {
			delete(g.Owners, topic)
		}
	}
	if len(g.Owners) == 0 {
		g.Owners = nil
	}
}

// Queries of the groups, in go/commitlog's terms.

// GroupAssignment returns what member id of group owns and may read now:
// the partitions it owns that its target still holds, with the committed
// offsets. HeartbeatInterval is a third of its session timeout.
func (s *State) GroupAssignment(group, id string) (commitlog.Assignment, error) {
	g, m, err := s.member(group, id)
	if err != nil {
		return commitlog.Assignment{}, err
	}
	a := commitlog.Assignment{MemberID: id, Generation: g.Generation, HeartbeatInterval: m.SessionTimeout / 3}
	for _, tp := range targets(m) {
		if g.Owners[tp.Topic][tp.Partition] == id {
			a.Partitions = append(a.Partitions, g.offset(tp))
		}
	}
	return a, nil
}

// GroupNames returns the groups' names, sorted.
func (s *State) GroupNames() []string { return slices.Sorted(maps.Keys(s.Groups)) }

// GroupSummaries returns every group, ordered by name.
func (s *State) GroupSummaries() []commitlog.GroupSummary {
	out := make([]commitlog.GroupSummary, 0, len(s.Groups))
	for _, name := range s.GroupNames() {
		g := s.Groups[name]
		out = append(out, commitlog.GroupSummary{Group: name, Generation: g.Generation, Members: len(g.Members)})
	}
	return out
}

// DescribeGroup returns group's members, ownership and committed offsets,
// or commitlog.ErrUnknownGroup.
func (s *State) DescribeGroup(group string) (commitlog.GroupInfo, error) {
	g := s.Groups[group]
	if g == nil {
		return commitlog.GroupInfo{}, fmt.Errorf("%w: %q", commitlog.ErrUnknownGroup, group)
	}
	info := commitlog.GroupInfo{Group: group, Generation: g.Generation, Offsets: g.committed()}
	owned := map[string][]commitlog.TopicPartition{}
	for _, topic := range slices.Sorted(maps.Keys(g.Owners)) {
		for _, p := range slices.Sorted(maps.Keys(g.Owners[topic])) {
			o := g.Owners[topic][p]
			owned[o] = append(owned[o], commitlog.TopicPartition{Topic: topic, Partition: p})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(g.Members)) {
		m := g.Members[id]
		info.Members = append(info.Members, commitlog.GroupMember{
			MemberID: id, ClientID: m.ClientID, Topics: slices.Clone(m.Topics), SessionTimeout: m.SessionTimeout,
			Generation: m.Acked, Owned: owned[id], Target: targets(m),
		})
	}
	return info, nil
}

// FetchOffsets returns group's committed offsets of partitions (those not
// committed with Committed false), or of every committed partition when
// partitions is empty, ordered by topic and partition; or
// commitlog.ErrUnknownGroup.
func (s *State) FetchOffsets(group string, partitions []commitlog.TopicPartition) ([]commitlog.PartitionOffset, error) {
	g := s.Groups[group]
	if g == nil {
		return nil, fmt.Errorf("%w: %q", commitlog.ErrUnknownGroup, group)
	}
	if len(partitions) == 0 {
		return g.committed(), nil
	}
	out := make([]commitlog.PartitionOffset, len(partitions))
	for i, tp := range partitions {
		out[i] = g.offset(tp)
	}
	slices.SortFunc(out, func(a, b commitlog.PartitionOffset) int { return cmpTP(a.TopicPartition, b.TopicPartition) })
	return out, nil
}

// GroupSessions calls fn with every member of every group and its session
// timeout, groups and members in order.
func (s *State) GroupSessions(fn func(group, member string, timeout time.Duration)) {
	for _, name := range s.GroupNames() {
		g := s.Groups[name]
		for _, id := range slices.Sorted(maps.Keys(g.Members)) {
			fn(name, id, g.Members[id].SessionTimeout)
		}
	}
}

func (g *ConsumerGroup) offset(tp commitlog.TopicPartition) commitlog.PartitionOffset {
	off, ok := g.Offsets[tp.Topic][tp.Partition]
	return commitlog.PartitionOffset{TopicPartition: tp, Offset: off, Committed: ok}
}

func (g *ConsumerGroup) committed() []commitlog.PartitionOffset {
	var out []commitlog.PartitionOffset
	for _, topic := range slices.Sorted(maps.Keys(g.Offsets)) {
		for _, p := range slices.Sorted(maps.Keys(g.Offsets[topic])) {
			out = append(out, commitlog.PartitionOffset{TopicPartition: commitlog.TopicPartition{Topic: topic, Partition: p}, Offset: g.Offsets[topic][p], Committed: true})
		}
	}
	return out
}

// targets returns m's target partitions ordered by topic and partition.
func targets(m *GroupMember) []commitlog.TopicPartition {
	var out []commitlog.TopicPartition
	for _, topic := range slices.Sorted(maps.Keys(m.Target)) {
		for _, p := range m.Target[topic] {
			out = append(out, commitlog.TopicPartition{Topic: topic, Partition: p})
		}
	}
	return out
}

func cmpTP(a, b commitlog.TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return a.Partition - b.Partition
}
