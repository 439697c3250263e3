package clienttest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// The consumer groups of the double follow log.proto's protocol: every
// change of members or subscriptions is a new generation with a balanced
// and sticky target; a partition leaving member A stays A's (and is not
// in B's answers) until A acknowledges a generation at or after the one
// that moved it, or A is removed; commits are fenced (UNKNOWN_MEMBER,
// STALE_GENERATION, NOT_OWNER). Sessions never expire on their own: the
// test removes a member with ExpireMember, so that a consumer's tests
// decide when a member is gone.

// tp names one partition of a topic.
type tp struct {
	topic     string
	partition uint32
}

func (k tp) less(o tp) int {
	return cmp.Or(cmp.Compare(k.topic, o.topic), cmp.Compare(k.partition, o.partition))
}

type group struct {
	generation uint64
	members    map[string]*member
	offsets    map[tp]uint64
	nextID     int
}

type member struct {
	id, clientID string
	topics       []string
	session      time.Duration
	acked        uint64
	owned        map[tp]bool
	target       map[tp]bool
	// revokedAt is the generation at which each owned partition left the
	// member's target: it is released once the member acknowledges it.
	revokedAt map[tp]uint64
}

// groupLocked returns group name, made when create. c.mu is held.
func (c *Cluster) groupLocked(name string, create bool) *group {
	g := c.groups[name]
	if g == nil && create {
		g = &group{members: map[string]*member{}, offsets: map[tp]uint64{}}
		c.groups[name] = g
	}
	return g
}

// rebalanceLocked starts a new generation of g: new targets (per topic,
// the members subscribed get counts differing by at most one, keeping
// what they have where the counts allow), then settles ownership.
func (c *Cluster) rebalanceLocked(g *group) {
	g.generation++
	ids := slices.Sorted(maps.Keys(g.members))
	old := map[string]map[tp]bool{}
	for _, id := range ids {
		m := g.members[id]
		old[id] = m.target
		m.target = map[tp]bool{}
	}
	topics := map[string]bool{}
	for _, m := range g.members {
		for _, t := range m.topics {
			topics[t] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		t := c.topics[name]
		if t == nil {
			continue
		}
		var subs []string
		for _, id := range ids {
			if slices.Contains(g.members[id].topics, name) {
				subs = append(subs, id)
			}
		}
		n := len(t.partitions)
		// Members holding more of the topic get the larger quotas first.
		held := func(id string) int {
			k := 0
			for p := range old[id] {
				if p.topic == name {
					k++
				}
			}
			return k
		}
		order := slices.Clone(subs)
		slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(held(b), held(a)) })
		quota := map[string]int{}
		for i, id := range order {
			quota[id] = n / len(subs)
			if i < n%len(subs) {
				quota[id]++
			}
		}
		var free []tp
		for p := range n {
			k := tp{name, uint32(p)}
			kept := false
			for _, id := range subs {
				if old[id][k] && len(g.members[id].targetOf(name)) < quota[id] {
					g.members[id].target[k] = true
					kept = true
					break
				}
			}
			if !kept {
				free = append(free, k)
			}
		}
		for _, k := range free {
			for _, id := range subs {
				if len(g.members[id].targetOf(name)) < quota[id] {
					g.members[id].target[k] = true
					break
				}
			}
		}
	}
	for _, m := range g.members {
		for k := range m.owned {
			if !m.target[k] {
				if _, ok := m.revokedAt[k]; !ok {
					m.revokedAt[k] = g.generation
				}
			} else {
				delete(m.revokedAt, k)
			}
		}
	}
	c.settleLocked(g)
}

func (m *member) targetOf(topic string) []tp {
	var out []tp
	for k := range m.target {
		if k.topic == topic {
			out = append(out, k)
		}
	}
	return out
}

// settleLocked releases the partitions their owners acknowledged giving
// up and gives every unowned partition to the member whose target has it.
func (c *Cluster) settleLocked(g *group) {
	owner := map[tp]string{}
	for id, m := range g.members {
		for k := range m.owned {
			if at, ok := m.revokedAt[k]; ok && m.acked >= at {
				delete(m.owned, k)
				delete(m.revokedAt, k)
				continue
			}
			owner[k] = id
		}
	}
	for id, m := range g.members {
		for k := range m.target {
			if _, ok := owner[k]; !ok {
				m.owned[k] = true
				owner[k] = id
			}
		}
	}
	c.groupsChanged()
}

// groupsChanged wakes WaitGroup. c.mu is held.
func (c *Cluster) groupsChanged() {
	close(c.groupChange)
	c.groupChange = make(chan struct{})
}

// assignmentLocked is m's answer: the partitions it owns and still
// targets, with the committed offsets.
func (c *Cluster) assignmentLocked(g *group, m *member) *logv1.Assignment {
	a := &logv1.Assignment{MemberId: m.id, Generation: g.generation, HeartbeatInterval: durationpb.New(c.heartbeatInterval)}
	var ks []tp
	for k := range m.owned {
		if m.target[k] {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, tp.less)
	for _, k := range ks {
		off, ok := g.offsets[k]
		a.Partitions = append(a.Partitions, &logv1.PartitionOffset{Topic: k.topic, Partition: k.partition, Offset: off, Committed: ok})
	}
	return a
}

// groupErr is a group error status of reason with its metadata.
func groupErr(code codes.Code, reason string, md map[string]string) error {
	return statusWithInfo(code, fmt.Sprintf("%s %v", reason, md), reason, md)
}

func unknownMember(group, id string) error {
	return groupErr(codes.NotFound, "UNKNOWN_MEMBER", map[string]string{"group": group, "member_id": id})
}

func staleGeneration(group, id string, gen, current uint64) error {
	return groupErr(codes.FailedPrecondition, "STALE_GENERATION", map[string]string{"group": group, "member_id": id,
		"generation": strconv.FormatUint(gen, 10), "current": strconv.FormatUint(current, 10)})
}

// groupCall records a member call and answers NOT_LEADER away from the
// metadata leader, or the error FailGroupCalls queued for method. c.mu is
// held on success.
func (s *server) groupCall(method, group, memberID string, gen uint64, offsets ...*logv1.PartitionOffset) error {
	call := Call{Method: method, Group: group, MemberID: memberID, Generation: gen}
	if len(offsets) > 0 {
		call.Offsets = map[string]uint64{}
		for _, o := range offsets {
			call.Offsets[fmt.Sprintf("%s/%d", o.GetTopic(), o.GetPartition())] = o.GetOffset()
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	s.c.mu.Lock()
	if s.c.metaLeader != s.idx {
		defer s.c.mu.Unlock()
		return s.c.notLeader(s.c.metaLeader)
	}
	if errs := s.c.groupErrs[method]; len(errs) > 0 {
		s.c.groupErrs[method] = errs[1:]
		s.c.mu.Unlock()
		return errs[0]
	}
	return nil
}

func (s *server) JoinGroup(_ context.Context, req *logv1.JoinGroupRequest) (*logv1.JoinGroupResponse, error) {
	if err := s.groupCall("JoinGroup", req.GetGroup(), req.GetMemberId(), 0); err != nil {
		return nil, err
	}
	c := s.c
	defer c.mu.Unlock()
	if req.GetGroup() == "" || len(req.GetTopics()) == 0 {
		return nil, groupErr(codes.InvalidArgument, "INVALID_GROUP", map[string]string{"group": req.GetGroup()})
	}
	for _, t := range req.GetTopics() {
		if c.topics[t] == nil {
			return nil, statusWithInfo(codes.NotFound, fmt.Sprintf("topic %q does not exist", t), "UNKNOWN_TOPIC", map[string]string{"topic": t})
		}
	}
	g := c.groupLocked(req.GetGroup(), true)
	topics := slices.Sorted(slices.Values(req.GetTopics()))
	topics = slices.Compact(topics)
	var m *member
	if id := req.GetMemberId(); id != "" {
		m = g.members[id]
		if m == nil {
			return nil, unknownMember(req.GetGroup(), id)
		}
		if !slices.Equal(m.topics, topics) {
			m.topics = topics
			c.rebalanceLocked(g)
		}
	} else {
		g.nextID++
		m = &member{id: fmt.Sprintf("%s-member-%d", req.GetGroup(), g.nextID), clientID: req.GetClientId(), topics: topics,
			session: req.GetSessionTimeout().AsDuration(), owned: map[tp]bool{}, target: map[tp]bool{}, revokedAt: map[tp]uint64{}}
		g.members[m.id] = m
		c.rebalanceLocked(g)
		m.acked = g.generation
	}
	return &logv1.JoinGroupResponse{Assignment: c.assignmentLocked(g, m)}, nil
}

func (s *server) Heartbeat(_ context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	if err := s.groupCall("Heartbeat", req.GetGroup(), req.GetMemberId(), req.GetGeneration()); err != nil {
		return nil, err
	}
	c := s.c
	defer c.mu.Unlock()
	g, m, err := c.memberAtLocked(req.GetGroup(), req.GetMemberId(), req.GetGeneration())
	if err != nil {
		return nil, err
	}
	m.acked = req.GetGeneration()
	c.settleLocked(g)
	return &logv1.HeartbeatResponse{Assignment: c.assignmentLocked(g, m)}, nil
}

func (s *server) LeaveGroup(_ context.Context, req *logv1.LeaveGroupRequest) (*logv1.LeaveGroupResponse, error) {
	if err := s.groupCall("LeaveGroup", req.GetGroup(), req.GetMemberId(), 0); err != nil {
		return nil, err
	}
	defer s.c.mu.Unlock()
	s.c.removeMemberLocked(req.GetGroup(), req.GetMemberId())
	return &logv1.LeaveGroupResponse{}, nil
}

// memberAtLocked returns group name's member id if it exists and generation is
// neither below what it acknowledged nor above the group's: otherwise the
// UNKNOWN_MEMBER or STALE_GENERATION status.
func (c *Cluster) memberAtLocked(name, id string, generation uint64) (*group, *member, error) {
	g := c.groupLocked(name, false)
	var m *member
	if g != nil {
		m = g.members[id]
	}
	if m == nil {
		return nil, nil, unknownMember(name, id)
	}
	if generation < m.acked || generation > g.generation {
		return nil, nil, staleGeneration(name, m.id, generation, g.generation)
	}
	return g, m, nil
}

// removeMemberLocked removes a member (leave or expiry); its partitions
// go to the others.
func (c *Cluster) removeMemberLocked(group, id string) bool {
	g := c.groupLocked(group, false)
	if g == nil || g.members[id] == nil {
		return false
	}
	delete(g.members, id)
	c.rebalanceLocked(g)
	return true
}

func (s *server) CommitOffsets(_ context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	if err := s.groupCall("CommitOffsets", req.GetGroup(), req.GetMemberId(), req.GetGeneration(), req.GetOffsets()...); err != nil {
		return nil, err
	}
	c := s.c
	defer c.mu.Unlock()
	if len(req.GetOffsets()) == 0 {
		return nil, groupErr(codes.InvalidArgument, "INVALID_GROUP", map[string]string{"group": req.GetGroup()})
	}
	g, m, err := c.memberAtLocked(req.GetGroup(), req.GetMemberId(), req.GetGeneration())
	if err != nil {
		return nil, err
	}
	for _, o := range req.GetOffsets() {
		if !m.owned[tp{o.GetTopic(), o.GetPartition()}] {
			return nil, groupErr(codes.FailedPrecondition, "NOT_OWNER", map[string]string{"group": req.GetGroup(), "member_id": m.id,
				"topic": o.GetTopic(), "partition": strconv.FormatUint(uint64(o.GetPartition()), 10)})
		}
	}
	for _, o := range req.GetOffsets() {
		g.offsets[tp{o.GetTopic(), o.GetPartition()}] = o.GetOffset()
	}
	c.groupsChanged()
	return &logv1.CommitOffsetsResponse{}, nil
}

func (s *server) FetchOffsets(_ context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	s.record("FetchOffsets", "", 0)
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groupLocked(req.GetGroup(), false)
	if g == nil {
		return nil, groupErr(codes.NotFound, "UNKNOWN_GROUP", map[string]string{"group": req.GetGroup()})
	}
	var want []tp
	for _, tps := range req.GetPartitions() {
		for _, p := range tps.GetPartitions() {
			want = append(want, tp{tps.GetTopic(), p})
		}
	}
	if len(want) == 0 {
		want = slices.Collect(maps.Keys(g.offsets))
	}
	slices.SortFunc(want, tp.less)
	resp := &logv1.FetchOffsetsResponse{}
	for _, k := range slices.Compact(want) {
		off, ok := g.offsets[k]
		resp.Offsets = append(resp.Offsets, &logv1.PartitionOffset{Topic: k.topic, Partition: k.partition, Offset: off, Committed: ok})
	}
	return resp, nil
}

func (s *server) ListGroups(context.Context, *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	s.record("ListGroups", "", 0)
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &logv1.ListGroupsResponse{}
	for _, name := range slices.Sorted(maps.Keys(c.groups)) {
		g := c.groups[name]
		if len(g.members) == 0 && len(g.offsets) == 0 {
			continue
		}
		resp.Groups = append(resp.Groups, &logv1.GroupSummary{Group: name, Generation: g.generation, Members: uint32(len(g.members))})
	}
	return resp, nil
}

func (s *server) DescribeGroup(_ context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	s.record("DescribeGroup", "", 0)
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groupLocked(req.GetGroup(), false)
	if g == nil || (len(g.members) == 0 && len(g.offsets) == 0) {
		return nil, groupErr(codes.NotFound, "UNKNOWN_GROUP", map[string]string{"group": req.GetGroup()})
	}
	resp := &logv1.DescribeGroupResponse{Group: req.GetGroup(), Generation: g.generation}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		resp.Members = append(resp.Members, &logv1.GroupMember{MemberId: id, ClientId: m.clientID, Topics: m.topics,
			SessionTimeout: durationpb.New(m.session), Generation: m.acked, Owned: byTopic(m.owned), Target: byTopic(m.target)})
	}
	ks := slices.SortedFunc(maps.Keys(g.offsets), tp.less)
	for _, k := range ks {
		resp.Offsets = append(resp.Offsets, &logv1.PartitionOffset{Topic: k.topic, Partition: k.partition, Offset: g.offsets[k], Committed: true})
	}
	return resp, nil
}

func byTopic(set map[tp]bool) []*logv1.TopicPartitions {
	var out []*logv1.TopicPartitions
	for _, k := range slices.SortedFunc(maps.Keys(set), tp.less) {
		if n := len(out); n == 0 || out[n-1].Topic != k.topic {
			out = append(out, &logv1.TopicPartitions{Topic: k.topic})
		}
		out[len(out)-1].Partitions = append(out[len(out)-1].Partitions, k.partition)
	}
	return out
}

// dropTopicLocked drops a deleted topic from every group: subscriptions,
// targets, owners and committed offsets; a group whose subscriptions
// change starts a new generation.
func (c *Cluster) dropTopicLocked(name string) {
	for _, g := range c.groups {
		for k := range g.offsets {
			if k.topic == name {
				delete(g.offsets, k)
			}
		}
		changed := false
		for _, m := range g.members {
			for k := range m.owned {
				if k.topic == name {
					delete(m.owned, k)
					delete(m.revokedAt, k)
				}
			}
			if i := slices.Index(m.topics, name); i >= 0 {
				m.topics = slices.Delete(m.topics, i, i+1)
				changed = true
			}
		}
		if changed {
			c.rebalanceLocked(g)
		}
	}
}

// JoinMember joins a member of group subscribed to topics as a client
// that then stops (killed without leaving): it owns what the group
// assigns it and never heartbeats, so it keeps its partitions until
// ExpireMember. It returns the member ID.
func (c *Cluster) JoinMember(group string, topics ...string) (string, error) {
	c.mu.Lock()
	leader := c.servers[c.metaLeader]
	c.mu.Unlock()
	resp, err := leader.JoinGroup(context.Background(), &logv1.JoinGroupRequest{Group: group, Topics: topics, ClientId: "stopped"})
	if err != nil {
		return "", err
	}
	return resp.GetAssignment().GetMemberId(), nil
}

// ExpireMember removes a member of group as a session timeout does (the
// member's next call is answered UNKNOWN_MEMBER and its partitions go to
// the others); it reports whether the member existed.
func (c *Cluster) ExpireMember(group, memberID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removeMemberLocked(group, memberID)
}

// SetHeartbeatInterval sets the heartbeat interval the group answers
// name (default a second): tests shorten it so that members learn a new
// generation at once.
func (c *Cluster) SetHeartbeatInterval(d time.Duration) {
	c.mu.Lock()
	c.heartbeatInterval = d
	c.mu.Unlock()
}

// FailGroupCalls makes the next calls of method ("JoinGroup",
// "Heartbeat", "LeaveGroup", "CommitOffsets") on the metadata leader fail
// with errs, one each, before they change anything.
func (c *Cluster) FailGroupCalls(method string, errs ...error) {
	c.mu.Lock()
	c.groupErrs[method] = append(c.groupErrs[method], errs...)
	c.mu.Unlock()
}

// GroupMember is a member of a group as the double holds it.
type GroupMember struct {
	ID string
	// Acked is the generation it last acknowledged.
	Acked uint64
	// Owned and Target are "topic/partition" names, sorted.
	Owned, Target []string
}

// GroupState is a group as the double holds it.
type GroupState struct {
	Generation uint64
	Members    []GroupMember // by ID
	// Committed are the committed offsets by "topic/partition".
	Committed map[string]uint64
}

// Group returns the state of group (zero when it does not exist).
func (c *Cluster) Group(name string) GroupState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groupStateLocked(name)
}

func (c *Cluster) groupStateLocked(name string) GroupState {
	g := c.groupLocked(name, false)
	if g == nil {
		return GroupState{}
	}
	st := GroupState{Generation: g.generation, Committed: map[string]uint64{}}
	names := func(set map[tp]bool) []string {
		var out []string
		for _, k := range slices.SortedFunc(maps.Keys(set), tp.less) {
			out = append(out, fmt.Sprintf("%s/%d", k.topic, k.partition))
		}
		return out
	}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		st.Members = append(st.Members, GroupMember{ID: id, Acked: m.acked, Owned: names(m.owned), Target: names(m.target)})
	}
	for k, off := range g.offsets {
		st.Committed[fmt.Sprintf("%s/%d", k.topic, k.partition)] = off
	}
	return st
}

// WaitGroup waits until cond holds of group's state (checked at once and
// after every change of a group), or ctx ends.
func (c *Cluster) WaitGroup(ctx context.Context, group string, cond func(GroupState) bool) error {
	for {
		c.mu.Lock()
		st, ch := c.groupStateLocked(group), c.groupChange
		c.mu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("clienttest: group %s: %w (last state %+v)", group, ctx.Err(), st)
		case <-ch:
		}
	}
}
