package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/commitlog"
)

// Items at their largest encoding: names at their length limit, numbers
// at their widest, text fields of characters JSON escapes (IsText text
// takes at most twice its length: TestTextEscapesAtMostTwice).
func longName(n, i int) string { return strings.Repeat("x", n-5) + fmt.Sprintf("%05d", i) }
func worstText(n int) string   { return strings.Repeat(`"`, n) }

func worstNode(i int) *Node {
	return &Node{ID: longName(nodeid.MaxNameLen, i), RaftAddr: worstText(MaxNodeFieldLen), APIAddr: worstText(MaxNodeFieldLen),
		Rack: worstText(MaxNodeFieldLen), Leaving: true, LeavingSince: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -(11*3600+59*60)))}
}

func worstPartition(i int) Partition {
	p := Partition{Epoch: math.MaxUint64, Adding: []string{longName(nodeid.MaxNameLen, i)}, Leader: longName(nodeid.MaxNameLen, i), LeaderTerm: math.MaxUint64}
	for r := range MaxReplicationFactor + 1 {
		p.Replicas = append(p.Replicas, longName(nodeid.MaxNameLen, r))
	}
	return p
}

func worstTopic(i, partitions int) *Topic {
	t := &Topic{Name: longName(MaxTopicNameLen, i), Created: math.MaxUint64, Config: TopicConfig{Partitions: MaxPartitions, ReplicationFactor: MaxReplicationFactor,
		Retention: Retention{MaxBytes: math.MinInt64 + 1, MaxAge: math.MinInt64 + 1}}}
	for p := range partitions {
		t.Partitions = append(t.Partitions, worstPartition(p))
	}
	return t
}

// worstGroup is a group of members members, each subscribed to subs
// topics, holding owners and offsets of topics topics, the first of which
// has partitions partitions owned by the first member, in its target and
// committed.
func worstGroup(members, subs, topics, partitions int) *ConsumerGroup {
	g := &ConsumerGroup{Generation: math.MaxUint64, Members: map[string]*GroupMember{}, Owners: map[string]map[int]string{}, Offsets: map[string]map[int]uint64{}}
	for m := range members {
		gm := &GroupMember{ID: longName(MaxMemberIDLen, m), ClientID: worstText(commitlog.MaxClientIDLen), SessionTimeout: commitlog.MaxSessionTimeout,
			Acked: math.MaxUint64, Target: map[string][]int{}}
		for t := range subs {
			gm.Topics = append(gm.Topics, longName(MaxTopicNameLen, t))
			gm.Target[longName(MaxTopicNameLen, t)] = []int{}
		}
		g.Members[gm.ID] = gm
	}
	for t := range topics {
		g.Owners[longName(MaxTopicNameLen, t)], g.Offsets[longName(MaxTopicNameLen, t)] = map[int]string{}, map[int]uint64{}
	}
	first, topic := longName(MaxMemberIDLen, 0), longName(MaxTopicNameLen, 0)
	for p := MaxPartitions - partitions; p < MaxPartitions; p++ {
		g.Owners[topic][p], g.Offsets[topic][p] = first, math.MaxUint64
		g.Members[first].Target[topic] = append(g.Members[first].Target[topic], p)
	}
	return g
}

// encodedSize is the length of s's snapshot encoding.
func encodedSize(t *testing.T, s *State) int {
	t.Helper()
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// budgetState is a state of the worst items: n of each kind, except the
// group content, which is one group of the figures of worstGroup.
type budgetCounts struct{ nodes, topics, partitions, acls, groups, members, subs, groupTopics, groupPartitions int }

func budgetState(c budgetCounts) *State {
	s := &State{Nodes: map[string]*Node{}, Topics: map[string]*Topic{}, Groups: map[string]*ConsumerGroup{}, ACLsChanged: math.MaxUint64, Applied: math.MaxUint64}
	for i := range c.nodes {
		n := worstNode(i)
		s.Nodes[n.ID] = n
	}
	for i := range c.topics {
		t := worstTopic(i, 1)
		if i == 0 {
			t = worstTopic(i, c.partitions)
		}
		s.Topics[t.Name] = t
	}
	for i := range c.acls {
		s.ACLs = append(s.ACLs, ACLRule{Subject: worstText(commitlog.MaxACLFieldLen) + fmt.Sprint(i), Object: worstText(commitlog.MaxACLFieldLen), Action: worstText(commitlog.MaxACLFieldLen)})
	}
	for i := range c.groups {
		g := &ConsumerGroup{Generation: math.MaxUint64}
		if i == 0 {
			g = worstGroup(c.members, c.subs, c.groupTopics, c.groupPartitions)
		}
		s.Groups[longName(commitlog.MaxGroupNameLen, i)] = g
	}
	return s
}

// TestStateBudget: the largest state the limits allow encodes below the
// snapshot size FSM.Restore takes, with a quarter of it to spare, so a
// node can always restore its own snapshot. The size is added up from
// the measured encoding of one more item of each kind at its largest
// (building the whole state would take minutes and gigabytes): the
// cost of one more node, topic of one partition, partition, ACL rule and
// group (its own fields), and, in a group, one more member (of one
// subscription), subscription, (group, topic) and (group, topic,
// partition) entry. Raising a limit past the budget fails
// it.
func TestStateBudget(t *testing.T) {
	one := budgetCounts{nodes: 1, topics: 1, partitions: 1, acls: 1, groups: 1, members: 1, subs: 1, groupTopics: 1, groupPartitions: 1}
	base := encodedSize(t, budgetState(one))
	more := func(f func(*budgetCounts)) int {
		c := one
		f(&c)
		return encodedSize(t, budgetState(c)) - base
	}
	empty := encodedSize(t, budgetState(budgetCounts{}))
	perNode := more(func(c *budgetCounts) { c.nodes++ })
	perTopic := more(func(c *budgetCounts) { c.topics++ })
	perPartition := more(func(c *budgetCounts) { c.partitions++ })
	perACL := more(func(c *budgetCounts) { c.acls++ })
	// A group's own: its name, generation and the containers of its
	// members, owners and offsets (their content is the other items').
	perGroup := more(func(c *budgetCounts) { c.groups++ }) + len(`,"members":{},"owners":{},"offsets":{}`)
	perMember := more(func(c *budgetCounts) { c.members++ })
	perSub := more(func(c *budgetCounts) { c.subs++ })
	perGroupTopic := more(func(c *budgetCounts) { c.groupTopics++ })
	perGroupPartition := more(func(c *budgetCounts) { c.groupPartitions++ })

	// Members are no more than subscriptions (each subscribes to a topic
	// at least), and topics no more than partitions: each costs at most
	// the larger of the two.
	items := []struct {
		what       string
		limit, per int
	}{
		{"nodes", MaxNodes, perNode},
		{"partitions (each its own topic)", MaxClusterPartitions, max(perTopic, perPartition)},
		{"ACL rules", commitlog.MaxACLRules, perACL},
		{"consumer groups", MaxConsumerGroups, perGroup},
		{"group subscriptions (each its own member)", MaxGroupSubscriptions, max(perMember, perSub)},
		{"(group, topic) entries", MaxGroupTopicEntries, perGroupTopic},
		{"(group, topic, partition) entries", MaxGroupPartitionEntries, perGroupPartition},
	}
	total := empty
	for _, it := range items {
		t.Logf("%-45s %6d × %5d bytes = %5.1f MiB", it.what, it.limit, it.per, float64(it.limit*it.per)/(1<<20))
		total += it.limit * it.per
	}
	t.Logf("worst case %.1f MiB of the %d MiB Restore takes", float64(total)/(1<<20), maxSnapshotBytes>>20)
	if total > maxSnapshotBytes*3/4 {
		t.Errorf("the largest state the limits allow encodes to %d bytes, more than three quarters of the %d a snapshot may have", total, maxSnapshotBytes)
	}

	// The sum bounds a state built of such items: a small one checks it.
	c := budgetCounts{nodes: 3, topics: 4, partitions: 5, acls: 6, groups: 3, members: 4, subs: 3, groupTopics: 5, groupPartitions: 7}
	bound := empty + c.nodes*perNode + (c.topics+c.partitions)*max(perTopic, perPartition) + c.acls*perACL + c.groups*perGroup +
		(c.members+c.subs)*max(perMember, perSub) + c.groupTopics*perGroupTopic + c.groupPartitions*perGroupPartition
	if got := encodedSize(t, budgetState(c)); got > bound {
		t.Errorf("a state of %+v encodes to %d bytes, above the %d the sum of its items bounds", c, got, bound)
	}
}

// TestTextEscapesAtMostTwice: IsText text encodes to at most twice its
// length (the budget's text fields), the worst of which is what
// worstText uses.
func TestTextEscapesAtMostTwice(t *testing.T) {
	for _, r := range []string{`"`, `\`, "<", ">", "&", "\u2028", "\u2029", "é", "\ufeff", "\U0001F600", "x"} {
		if !IsText(r) {
			t.Fatalf("%q is not text", r)
		}
		s := strings.Repeat(r, 10)
		b, err := encode(snapshotVersion, s)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(b) - 3; n > 2*len(s) || n > len(worstText(len(s)))*2 {
			t.Errorf("%q encodes to %d bytes, more than twice its %d", s, n, len(s))
		}
	}
	if b, _ := encode(snapshotVersion, worstText(10)); len(b)-3 != 20 {
		t.Errorf("worstText(10) encodes to %d bytes, want 20", len(b)-3)
	}
	for _, bad := range []string{"\x00", "a\nb", "\x7f", "\xff"} {
		if IsText(bad) {
			t.Errorf("%q is text", bad)
		}
	}
}

// refused applies c, wants it refused with want, and the state as it was.
func refused(t *testing.T, s *State, c Command, want error) error {
	t.Helper()
	before, _ := s.Encode()
	err := s.Apply(s.Applied+1, c)
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", c.Op, err, want)
	}
	s.Applied--
	if after, _ := s.Encode(); !bytes.Equal(before, after) {
		t.Fatalf("%s: refused, yet the state changed", c.Op)
	}
	return err
}

// wantLimit checks that err is the cluster limit of resource.
func wantLimit(t *testing.T, err error, resource string, limit int) {
	t.Helper()
	var le *commitlog.LimitError
	if !errors.As(err, &le) || !strings.HasPrefix(le.Resource, resource) || le.Limit != limit {
		t.Fatalf("%v, want the limit of %d %s", err, limit, resource)
	}
}

// topics creates n topics t0… of partitions partitions each and returns
// their names.
func topics(t *testing.T, s *State, prefix string, n, partitions int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		create(t, s, name, TopicConfig{Partitions: partitions, ReplicationFactor: 1})
		names = append(names, name)
	}
	return names
}

func bigJoin(group, id string, topics []string) Command {
	c := joinCmd(group, id, topics...)
	c.Join.MaxMembers = 1000
	return c
}

// TestGroupLimitSubscriptions: members of 256 topics join one group until
// one more would pass MaxGroupSubscriptions; a renewal that does not add
// subscriptions still applies.
func TestGroupLimitSubscriptions(t *testing.T) {
	s := cluster(t, 1, 0)
	ts := topics(t, s, "t", commitlog.MaxGroupTopics, 1)
	n := MaxGroupSubscriptions / len(ts)
	perGroup := commitlog.MaxGroupSubscriptions / len(ts) // members per group within its own limit
	group := func(i int) string { return fmt.Sprint("g", i/perGroup) }
	for i := range n {
		mustApply(t, s, bigJoin(group(i), fmt.Sprint("m", i), ts))
	}
	wantLimit(t, refused(t, s, bigJoin(group(n-1), "last", ts), commitlog.ErrTooManyMembers), "group subscriptions", MaxGroupSubscriptions)
	wantLimit(t, refused(t, s, bigJoin("other", "last", ts), commitlog.ErrTooManyMembers), "group subscriptions", MaxGroupSubscriptions)
	renew := bigJoin(group(0), "m0", ts[:1])
	renew.Join.New = false
	mustApply(t, s, renew)
	mustApply(t, s, bigJoin(group(n-1), "last", ts[:1]))
}

// TestOneGroupLimits: one group has at most commitlog.MaxGroupSubscriptions
// subscriptions and commitlog.MaxGroupPartitions partitions, so that its
// DescribeGroup and FetchOffsets answers fit one message, whatever room
// the cluster-wide limits leave.
func TestOneGroupLimits(t *testing.T) {
	s := cluster(t, 1, 0)
	ts := topics(t, s, "t", commitlog.MaxGroupTopics, 1)
	for i := range commitlog.MaxGroupSubscriptions / len(ts) {
		mustApply(t, s, bigJoin("g", fmt.Sprint("m", i), ts))
	}
	wantLimit(t, refused(t, s, bigJoin("g", "last", ts[:1]), commitlog.ErrTooManyMembers), "subscriptions (member, topic) of one group", commitlog.MaxGroupSubscriptions)
	mustApply(t, s, bigJoin("h", "last", ts[:1])) // another group has room

	big := topics(t, s, "big", commitlog.MaxGroupPartitions/MaxPartitions+1, MaxPartitions)
	n := commitlog.MaxGroupPartitions / MaxPartitions
	mustApply(t, s, bigJoin("p", "m0", big[:n]))
	wantLimit(t, refused(t, s, bigJoin("p", "m1", big[n:]), commitlog.ErrTooManyMembers), "partitions of one group", commitlog.MaxGroupPartitions)
	mustApply(t, s, bigJoin("p", "m1", big[:1])) // a topic the group has adds none
}

// TestGroupLimitTopics: partitions a member owned and committed count
// after it subscribes elsewhere (until it acknowledges), so (group,
// topic) entries pass MaxGroupTopicEntries before subscriptions do.
func TestGroupLimitTopics(t *testing.T) {
	s := cluster(t, 1, 0)
	a := topics(t, s, "a", commitlog.MaxGroupTopics, 1)
	b := topics(t, s, "b", commitlog.MaxGroupTopics, 1)
	offs := make([]GroupOffset, len(a))
	for i, name := range a {
		offs[i] = GroupOffset{Topic: name, Offset: 1}
	}
	per := 2 * commitlog.MaxGroupTopics
	for i := range MaxGroupTopicEntries/per + 1 {
		g := fmt.Sprint("g", i)
		mustApply(t, s, bigJoin(g, "m", a))
		mustApply(t, s, commitCmd(g, "m", 1, offs...))
		move := bigJoin(g, "m", b)
		move.Join.New = false
		if i < MaxGroupTopicEntries/per {
			mustApply(t, s, move)
			continue
		}
		wantLimit(t, refused(t, s, move, commitlog.ErrTooManyMembers), "group topics", MaxGroupTopicEntries)
		// Acknowledging releases the owned ones; the offsets still count.
		mustApply(t, s, ackCmd("g0", "m", 2))
		wantLimit(t, refused(t, s, move, commitlog.ErrTooManyMembers), "group topics", MaxGroupTopicEntries)
		// Deleting a topic frees its entries in every group.
		for _, name := range a[:20] {
			mustApply(t, s, Command{Op: OpDeleteTopic, Topic: name})
		}
		mustApply(t, s, move)
	}
}

// TestGroupLimitPartitions: groups subscribe to topics of MaxPartitions
// partitions until one more would pass MaxGroupPartitionEntries.
func TestGroupLimitPartitions(t *testing.T) {
	s := cluster(t, 1, 0)
	ts := topics(t, s, "t", MaxClusterPartitions/MaxPartitions, MaxPartitions)
	n := MaxGroupPartitionEntries / MaxPartitions
	for i := range n {
		mustApply(t, s, bigJoin(fmt.Sprint("g", i), "m", ts[i%len(ts):i%len(ts)+1]))
	}
	wantLimit(t, refused(t, s, bigJoin("last", "m", ts[:1]), commitlog.ErrTooManyMembers), "group partitions", MaxGroupPartitionEntries)
	// Another member of a topic the group has costs no partition entry.
	mustApply(t, s, bigJoin("g0", "m2", ts[:1]))
	mustApply(t, s, Command{Op: OpLeaveGroup, Group: "g1", Members: []string{"m"}})
	mustApply(t, s, bigJoin("last", "m", ts[:1]))
}

// TestGroupLimitGroups: MaxConsumerGroups applies whatever limit the
// proposer carries.
func TestGroupLimitGroups(t *testing.T) {
	s := cluster(t, 1, 0)
	create(t, s, "a", TopicConfig{Partitions: 1, ReplicationFactor: 1})
	for i := range MaxConsumerGroups {
		mustApply(t, s, joinCmd(fmt.Sprint("g", i), "m", "a"))
	}
	err := refused(t, s, joinCmd("last", "m", "a"), ErrTooManyGroups)
	wantLimit(t, err, "consumer groups", MaxConsumerGroups)
}

// TestClusterLimitPartitions: topics together have at most
// MaxClusterPartitions partitions.
func TestClusterLimitPartitions(t *testing.T) {
	s := cluster(t, 1, 0)
	topics(t, s, "t", MaxClusterPartitions/MaxPartitions, MaxPartitions)
	cfg := TopicConfig{Partitions: 1, ReplicationFactor: 1}
	err := refused(t, s, Command{Op: OpCreateTopic, Topic: "more", Config: &cfg, Assignment: [][]string{{"n0"}}}, ErrInvalidTopic)
	if !strings.Contains(err.Error(), fmt.Sprintf("at most %d", MaxClusterPartitions)) {
		t.Fatalf("%v does not name the limit", err)
	}
}

// TestNodeLimits: at most MaxNodes nodes, each of bounded fields.
func TestNodeLimits(t *testing.T) {
	s := &State{}
	node := func(id string) Command {
		return Command{Op: OpRegisterNode, Node: &Node{ID: id, RaftAddr: "10.0.0.1:8400", APIAddr: "10.0.0.1:8400"}}
	}
	for i := range MaxNodes {
		mustApply(t, s, node(fmt.Sprint("n", i)))
	}
	refused(t, s, node("more"), ErrTooManyNodes)
	mustApply(t, s, node("n0")) // registering again
	for name, n := range map[string]*Node{
		"long ID":      {ID: strings.Repeat("n", nodeid.MaxNameLen+1), RaftAddr: "a", APIAddr: "a"},
		"ID with /":    {ID: "n/1", RaftAddr: "a", APIAddr: "a"},
		"long address": {ID: "n0", RaftAddr: strings.Repeat("a", MaxNodeFieldLen+1), APIAddr: "a"},
		"control rack": {ID: "n0", RaftAddr: "a", APIAddr: "a", Rack: "r\n"},
	} {
		t.Run(name, func(t *testing.T) { refused(t, s, Command{Op: OpRegisterNode, Node: n}, ErrBadEncoding) })
	}
}

// TestJoinChecksIDs: the FSM takes member IDs of MaxMemberIDLen safe
// characters and client IDs of text only.
func TestJoinChecksIDs(t *testing.T) {
	s := groupCluster(t)
	refused(t, s, joinCmd("g", strings.Repeat("m", MaxMemberIDLen+1), "a"), ErrBadEncoding)
	refused(t, s, joinCmd("g", "m\"", "a"), ErrBadEncoding)
	c := joinCmd("g", "m", "a")
	c.Join.ClientID = "app\x00"
	refused(t, s, c, commitlog.ErrInvalidGroup)
}
