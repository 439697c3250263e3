package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/proglog/proglog/go/commitlog"
)

// groupCluster is a cluster of 3 nodes with topics a (4 partitions) and
// b (3 partitions).
func groupCluster(t *testing.T) *State {
	t.Helper()
	s := cluster(t, 3, 0)
	create(t, s, "a", TopicConfig{Partitions: 4, ReplicationFactor: 1})
	create(t, s, "b", TopicConfig{Partitions: 3, ReplicationFactor: 1})
	return s
}

func joinCmd(group, id string, topics ...string) Command {
	return Command{Op: OpJoinGroup, Group: group, Join: &GroupJoin{MemberID: id, Topics: topics, SessionTimeout: 10 * time.Second, New: true, MaxMembers: 3}}
}

func ackCmd(group, id string, gen uint64) Command {
	return Command{Op: OpAckGroup, Group: group, MemberID: id, Generation: gen}
}

func commitCmd(group, id string, gen uint64, offs ...GroupOffset) Command {
	return Command{Op: OpCommitOffsets, Commits: []GroupCommit{{Group: group, MemberID: id, Generation: gen, Offsets: offs}}}
}

// owned returns what id may read now (GroupAssignment) as "topic/p".
func owned(t *testing.T, s *State, group, id string) []string {
	t.Helper()
	a, err := s.GroupAssignment(group, id)
	if err != nil {
		t.Fatalf("assignment of %s: %v", id, err)
	}
	var out []string
	for _, p := range a.Partitions {
		out = append(out, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
	}
	return out
}

// TestGroupHandOver: a partition moving from A to B stays A's (A may
// still commit it, B may not) until A acknowledges the generation that
// moved it; A's answer stops listing it at once; after the ack B gets it
// with A's committed offset. A's removal hands its partitions over at
// once.
func TestGroupHandOver(t *testing.T) {
	s := groupCluster(t)
	mustApply(t, s, joinCmd("g", "A", "a"))
	if got := owned(t, s, "g", "A"); !slices.Equal(got, []string{"a/0", "a/1", "a/2", "a/3"}) {
		t.Fatalf("A alone owns %v", got)
	}
	mustApply(t, s, commitCmd("g", "A", 1, GroupOffset{"a", 2, 7}, GroupOffset{"a", 3, 9}))
	mustApply(t, s, joinCmd("g", "B", "a"))
	g := s.Groups["g"]
	if g.Generation != 2 || !slices.Equal(g.Members["A"].Target["a"], []int{0, 1}) || !slices.Equal(g.Members["B"].Target["a"], []int{2, 3}) {
		t.Fatalf("generation %d, targets A %v B %v; want 2, [0 1], [2 3]", g.Generation, g.Members["A"].Target, g.Members["B"].Target)
	}
	if got := owned(t, s, "g", "A"); !slices.Equal(got, []string{"a/0", "a/1"}) {
		t.Fatalf("A may read %v, want a/0 a/1", got)
	}
	if got := owned(t, s, "g", "B"); len(got) != 0 {
		t.Fatalf("B may read %v before A's ack", got)
	}
	var ce *CommitsError
	if err := s.Apply(s.Applied+1, commitCmd("g", "B", 2, GroupOffset{"a", 2, 1})); !errors.As(err, &ce) || !errors.Is(ce.Errs[0], commitlog.ErrNotOwner) {
		t.Fatalf("B commits a/2 before the ack: %v, want NOT_OWNER", err)
	}
	mustApply(t, s, commitCmd("g", "A", 2, GroupOffset{"a", 2, 8}))
	// An ack of an older generation releases nothing.
	mustApply(t, s, ackCmd("g", "A", 1))
	if got := owned(t, s, "g", "B"); len(got) != 0 {
		t.Fatalf("B may read %v after A acked generation 1", got)
	}
	mustApply(t, s, ackCmd("g", "A", 2))
	a, err := s.GroupAssignment("g", "B")
	if err != nil {
		t.Fatal(err)
	}
	want := []commitlog.PartitionOffset{
		{TopicPartition: commitlog.TopicPartition{Topic: "a", Partition: 2}, Offset: 8, Committed: true},
		{TopicPartition: commitlog.TopicPartition{Topic: "a", Partition: 3}, Offset: 9, Committed: true},
	}
	if !slices.Equal(a.Partitions, want) || a.Generation != 2 || a.HeartbeatInterval != 10*time.Second/3 {
		t.Fatalf("B after A's ack: %+v, want %+v at generation 2", a, want)
	}
	if err := s.Apply(s.Applied+1, commitCmd("g", "A", 2, GroupOffset{"a", 2, 10})); !errors.As(err, &ce) || !errors.Is(ce.Errs[0], commitlog.ErrNotOwner) {
		t.Fatalf("A commits a/2 after its ack: %v, want NOT_OWNER", err)
	}
	// C joins: a/3 moves from B to C. A leaves: its partitions go to B
	// and C at once, while a/3 stays B's until B acknowledges.
	mustApply(t, s, joinCmd("g", "C", "a"))
	if got := owned(t, s, "g", "C"); len(got) != 0 {
		t.Fatalf("C may read %v before B's ack", got)
	}
	mustApply(t, s, Command{Op: OpLeaveGroup, Group: "g", Members: []string{"A", "Z"}})
	describe := func() string {
		info, err := s.DescribeGroup("g")
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("generation %d", info.Generation)
		for _, m := range info.Members {
			out += fmt.Sprintf("; %s owns %v targets %v", m.MemberID, m.Owned, m.Target)
		}
		return out
	}
	if got, want := describe(), "generation 4; B owns [{a 0} {a 2} {a 3}] targets [{a 0} {a 2}]; C owns [{a 1}] targets [{a 1} {a 3}]"; got != want {
		t.Fatalf("after A left:\n%s\nwant\n%s", got, want)
	}
	mustApply(t, s, ackCmd("g", "B", 4))
	if got, want := describe(), "generation 4; B owns [{a 0} {a 2}] targets [{a 0} {a 2}]; C owns [{a 1} {a 3}] targets [{a 1} {a 3}]"; got != want {
		t.Fatalf("after B's ack:\n%s\nwant\n%s", got, want)
	}
}

// TestGroupFencing: commits of an unknown member, of a partition the
// member does not own, and naming a generation older than the member
// acknowledged or newer than the group's are refused with commitlog's
// errors and write nothing, not even the commit's other offsets; in a
// batch, the other commits apply.
func TestGroupFencing(t *testing.T) {
	s := groupCluster(t)
	mustApply(t, s, joinCmd("g", "A", "a"))
	mustApply(t, s, joinCmd("g", "B", "b"))
	mustApply(t, s, ackCmd("g", "A", 2))
	ok := GroupCommit{Group: "g", MemberID: "B", Generation: 2, Offsets: []GroupOffset{{"b", 0, 5}}}
	bad := []struct {
		name string
		c    GroupCommit
		want error
	}{
		{"unknown member", GroupCommit{Group: "g", MemberID: "Z", Generation: 2, Offsets: []GroupOffset{{"a", 0, 1}}}, commitlog.ErrUnknownMember},
		{"unknown group", GroupCommit{Group: "h", MemberID: "A", Generation: 2, Offsets: []GroupOffset{{"a", 0, 1}}}, commitlog.ErrUnknownMember},
		{"not owner", GroupCommit{Group: "g", MemberID: "A", Generation: 2, Offsets: []GroupOffset{{"a", 0, 1}, {"b", 0, 1}}}, commitlog.ErrNotOwner},
		{"no such partition", GroupCommit{Group: "g", MemberID: "A", Generation: 2, Offsets: []GroupOffset{{"a", 4, 1}}}, commitlog.ErrNotOwner},
		{"older than acked", GroupCommit{Group: "g", MemberID: "A", Generation: 1, Offsets: []GroupOffset{{"a", 0, 1}}}, commitlog.ErrStaleGeneration},
		{"newer than the group's", GroupCommit{Group: "g", MemberID: "A", Generation: 3, Offsets: []GroupOffset{{"a", 0, 1}}}, commitlog.ErrStaleGeneration},
		{"no offsets", GroupCommit{Group: "g", MemberID: "A", Generation: 2}, commitlog.ErrInvalidGroup},
		{"too many offsets", GroupCommit{Group: "g", MemberID: "A", Generation: 2, Offsets: make([]GroupOffset, commitlog.MaxCommitOffsets+1)}, commitlog.ErrInvalidGroup},
	}
	for _, tc := range bad {
		before, _ := s.Encode()
		err := s.Apply(s.Applied+1, Command{Op: OpCommitOffsets, Commits: []GroupCommit{tc.c}})
		var ce *CommitsError
		if !errors.As(err, &ce) || len(ce.Errs) != 1 || !errors.Is(ce.Errs[0], tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		s.Applied--
		if after, _ := s.Encode(); !bytes.Equal(before, after) {
			t.Errorf("%s: refused, yet the state changed", tc.name)
		}
		// In a batch, the good commit applies and the bad one does not.
		err = s.Apply(s.Applied+1, Command{Op: OpCommitOffsets, Commits: []GroupCommit{tc.c, ok}})
		if !errors.As(err, &ce) || len(ce.Errs) != 2 || !errors.Is(ce.Errs[0], tc.want) || ce.Errs[1] != nil {
			t.Errorf("%s in a batch: %v", tc.name, err)
		}
		ok.Offsets[0].Offset++
		if off, _ := s.FetchOffsets("g", nil); len(off) != 1 || off[0].Offset != ok.Offsets[0].Offset-1 {
			t.Errorf("%s in a batch: offsets %+v", tc.name, off)
		}
	}
	var stale *commitlog.StaleGenerationError
	err := s.Apply(s.Applied+1, ackCmd("g", "A", 1))
	if !errors.As(err, &stale) || stale.Current != 2 || stale.Generation != 1 {
		t.Fatalf("ack of generation 1 after 2: %v", err)
	}
	if err := s.Apply(s.Applied+1, ackCmd("g", "Z", 2)); !errors.Is(err, commitlog.ErrUnknownMember) {
		t.Fatalf("ack of an unknown member: %v", err)
	}
}

// TestGroupJoinRules: a join of unknown topics, of too many members or
// groups, of
// an unknown member's renewal, and out-of-range fields is refused without
// change; a renewal with the same topics keeps the generation; a
// changed subscription starts one; a group with neither members nor
// offsets disappears, one with offsets stays.
func TestGroupJoinRules(t *testing.T) {
	s := groupCluster(t)
	for _, id := range []string{"A", "B", "C"} {
		mustApply(t, s, joinCmd("g", id, "a"))
	}
	renew := joinCmd("g", "A", "a")
	renew.Join.New = false
	bad := []struct {
		name string
		c    Command
		want error
	}{
		{"unknown topic", joinCmd("h", "X", "a", "zz"), commitlog.ErrUnknownTopic},
		{"too many members", joinCmd("g", "D", "a"), commitlog.ErrTooManyMembers},
		{"unknown member", func() Command { c := joinCmd("g", "Z", "a"); c.Join.New = false; return c }(), commitlog.ErrUnknownMember},
		{"no topics", joinCmd("h", "X"), commitlog.ErrInvalidGroup},
		{"bad group", joinCmd("a/b", "X", "a"), commitlog.ErrInvalidGroup},
		{"short session", func() Command { c := joinCmd("h", "X", "a"); c.Join.SessionTimeout = time.Millisecond; return c }(), commitlog.ErrInvalidGroup},
		{"member ID taken", joinCmd("g", "A", "a"), ErrBadEncoding},
	}
	for _, tc := range bad {
		before, _ := s.Encode()
		if err := s.Apply(s.Applied+1, tc.c); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		s.Applied--
		if after, _ := s.Encode(); !bytes.Equal(before, after) {
			t.Errorf("%s: refused, yet the state changed", tc.name)
		}
	}
	more := joinCmd("h", "X", "a")
	more.Join.MaxGroups = 1
	if err := s.Apply(s.Applied+1, more); !errors.Is(err, ErrTooManyGroups) || !errors.Is(err, commitlog.ErrTooManyMembers) {
		t.Fatalf("a second group beyond a limit of 1: %v, want ErrTooManyGroups", err)
	}
	if s.Groups["h"] != nil {
		t.Fatal("the refused group exists")
	}
	var tm *commitlog.TooManyMembersError
	if err := s.Apply(s.Applied+1, joinCmd("g", "D", "a")); !errors.As(err, &tm) || tm.Limit != 3 {
		t.Fatalf("fourth member: %v", err)
	}
	mustApply(t, s, renew)
	if g := s.Groups["g"].Generation; g != 3 {
		t.Fatalf("a renewal with the same topics: generation %d, want 3", g)
	}
	renew.Join.Topics = []string{"b", "a"}
	mustApply(t, s, renew)
	if g := s.Groups["g"]; g.Generation != 4 || !slices.Equal(g.Members["A"].Topics, []string{"a", "b"}) || len(g.Members["A"].Target["b"]) != 3 {
		t.Fatalf("after A subscribed to b too: %+v", g.Members["A"])
	}
	mustApply(t, s, joinCmd("h", "X", "b"))
	mustApply(t, s, Command{Op: OpLeaveGroup, Group: "h", Members: []string{"X"}})
	if _, err := s.DescribeGroup("h"); !errors.Is(err, commitlog.ErrUnknownGroup) {
		t.Fatalf("a group without members and offsets: %v, want ErrUnknownGroup", err)
	}
	mustApply(t, s, commitCmd("g", "A", 4, GroupOffset{"b", 0, 3}))
	mustApply(t, s, Command{Op: OpLeaveGroup, Group: "g", Members: []string{"A", "B", "C"}})
	if got := s.GroupSummaries(); len(got) != 1 || got[0] != (commitlog.GroupSummary{Group: "g", Generation: 5}) {
		t.Fatalf("a group with offsets and no members: %+v", got)
	}
}

// TestGroupTopicDeleted: deleting a topic drops it from subscriptions
// (a new generation), targets, owners and offsets; a member subscribed
// only to it stays, owning nothing.
func TestGroupTopicDeleted(t *testing.T) {
	s := groupCluster(t)
	mustApply(t, s, joinCmd("g", "A", "a", "b"))
	mustApply(t, s, joinCmd("g", "B", "b"))
	mustApply(t, s, commitCmd("g", "A", 2, GroupOffset{"a", 1, 4}, GroupOffset{"b", 0, 2}))
	mustApply(t, s, Command{Op: OpDeleteTopic, Topic: "b"})
	info, err := s.DescribeGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	if info.Generation != 3 || len(info.Members) != 2 || len(info.Offsets) != 1 || info.Offsets[0].Topic != "a" {
		t.Fatalf("after b was deleted: %+v", info)
	}
	for _, m := range info.Members {
		for _, tp := range append(slices.Clone(m.Owned), m.Target...) {
			if tp.Topic == "b" {
				t.Fatalf("%s still has %v", m.MemberID, tp)
			}
		}
	}
	if b := info.Members[1]; b.MemberID != "B" || len(b.Topics) != 0 || len(b.Owned) != 0 {
		t.Fatalf("B subscribed only to b: %+v", b)
	}
	// A topic created again under the name starts without offsets.
	create(t, s, "b", TopicConfig{Partitions: 1, ReplicationFactor: 1})
	if off, _ := s.FetchOffsets("g", []commitlog.TopicPartition{{Topic: "b", Partition: 0}}); off[0].Committed {
		t.Fatalf("b created again has offsets: %+v", off)
	}
}

// TestGroupsProperty applies random joins, subscription changes, leaves,
// acks and commits to two states (one restored from the other's snapshot
// half-way) and checks after every command: at most one owner per
// partition and only members own; every subscribed partition is targeted
// exactly once and only to a subscriber, with members' counts per topic
// differing by at most one; a partition changes owner only by its owner's
// ack or removal; both states encode to equal bytes.
func TestGroupsProperty(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := groupCluster(t)
		create(t, s, "c", TopicConfig{Partitions: 7, ReplicationFactor: 1})
		b, _ := s.Encode()
		twin, _ := DecodeState(b)
		topics := []string{"a", "b", "c"}
		next := 0
		for step := range 300 {
			var ids []string
			if g := s.Groups["g"]; g != nil {
				ids = slices.Sorted(maps.Keys(g.Members))
			}
			pick := func() string {
				if len(ids) == 0 || rng.IntN(10) == 0 {
					return "nobody"
				}
				return ids[rng.IntN(len(ids))]
			}
			var subs []string
			for _, tp := range topics {
				if rng.IntN(2) == 0 {
					subs = append(subs, tp)
				}
			}
			if len(subs) == 0 {
				subs = topics[:1]
			}
			gen := uint64(0)
			if g := s.Groups["g"]; g != nil {
				gen = g.Generation - uint64(rng.IntN(2))
			}
			var c Command
			switch k := rng.IntN(10); {
			case k < 2:
				next++
				c = joinCmd("g", fmt.Sprintf("m%03d", next), subs...)
				c.Join.MaxMembers = 6
			case k < 3:
				c = joinCmd("g", pick(), subs...)
				c.Join.New = false
				c.Join.MaxMembers = 6
			case k < 4:
				c = Command{Op: OpLeaveGroup, Group: "g", Members: []string{pick(), pick()}}
			case k < 8:
				c = ackCmd("g", pick(), gen)
			default:
				c = commitCmd("g", pick(), gen, GroupOffset{topics[rng.IntN(3)], rng.IntN(7), uint64(step)})
			}
			before := ownersOf(s)
			err := s.Apply(s.Applied+1, c)
			if err2 := twin.Apply(twin.Applied+1, c); fmt.Sprint(err) != fmt.Sprint(err2) {
				t.Fatalf("seed %d step %d: %v here, %v on the twin", seed, step, err, err2)
			}
			checkGroupInvariants(t, s, fmt.Sprintf("seed %d step %d (%s)", seed, step, c.Op))
			after := ownersOf(s)
			for tp, o := range before {
				if n, ok := after[tp]; ok && n != o && s.Groups["g"].Members[o] != nil && !(err == nil && c.Op == OpAckGroup && c.MemberID == o) {
					t.Fatalf("seed %d step %d: %s moved from %s to %s by %s", seed, step, tp, o, n, c.Op)
				}
				if _, ok := after[tp]; !ok && s.Groups["g"] != nil && s.Groups["g"].Members[o] != nil && !(c.Op == OpAckGroup && c.MemberID == o) {
					t.Fatalf("seed %d step %d: %s released by %s without %s's ack", seed, step, tp, c.Op, o)
				}
			}
			if step == 150 {
				b, _ := twin.Encode()
				twin, _ = DecodeState(b)
			}
			x, _ := s.Encode()
			y, _ := twin.Encode()
			if !bytes.Equal(x, y) {
				t.Fatalf("seed %d step %d: the states differ:\n%s\n%s", seed, step, x, y)
			}
		}
	}
}

func ownersOf(s *State) map[string]string {
	out := map[string]string{}
	if g := s.Groups["g"]; g != nil {
		for topic, owners := range g.Owners {
			for p, o := range owners {
				out[fmt.Sprintf("%s/%d", topic, p)] = o
			}
		}
	}
	return out
}

func checkGroupInvariants(t *testing.T, s *State, at string) {
	t.Helper()
	g := s.Groups["g"]
	if g == nil {
		return
	}
	// Every change drops the group's counted usage (forget): counted
	// after the previous step, it must still be the fresh count.
	if g.counted != nil && *g.counted != g.usageWith(s, "", nil) {
		t.Fatalf("%s: counted usage %+v, fresh %+v", at, *g.counted, g.usageWith(s, "", nil))
	}
	g.usage(s)
	for topic, owners := range g.Owners {
		for p, o := range owners {
			if g.Members[o] == nil {
				t.Fatalf("%s: %s/%d owned by %s, not a member", at, topic, p, o)
			}
		}
	}
	for _, topic := range s.TopicNames() {
		n := len(s.Topics[topic].Partitions)
		targeted := make([]int, n)
		var counts []int
		subscribed := false
		for _, m := range g.Members {
			if !slices.Contains(m.Topics, topic) {
				if len(m.Target[topic]) > 0 {
					t.Fatalf("%s: %s targets %s without subscribing", at, m.ID, topic)
				}
				continue
			}
			subscribed = true
			counts = append(counts, len(m.Target[topic]))
			for _, p := range m.Target[topic] {
				targeted[p]++
			}
		}
		for p, k := range targeted {
			if subscribed && k != 1 || !subscribed && k != 0 {
				t.Fatalf("%s: %s/%d targeted %d times (subscribed %v)", at, topic, p, k, subscribed)
			}
		}
		if len(counts) > 0 && slices.Max(counts)-slices.Min(counts) > 1 {
			t.Fatalf("%s: %s unbalanced: %v", at, topic, counts)
		}
	}
}

// TestGroupSticky: a member joining takes partitions only from those
// above the new balance; the others keep theirs.
func TestGroupSticky(t *testing.T) {
	got := assignTopic(7, []string{"A", "B", "C"}, func(id string) []int {
		return map[string][]int{"A": {0, 1, 2, 3}, "C": {4, 5, 6}}[id]
	})
	want := map[string][]int{"A": {0, 1, 2}, "B": {3, 6}, "C": {4, 5}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("assignTopic: %v, want %v", got, want)
	}
}

// TestGroupSnapshotRoundTrip: a state with groups survives the FSM's
// snapshot and restore with equal encoding and equal answers.
func TestGroupSnapshotRoundTrip(t *testing.T) {
	s := groupCluster(t)
	mustApply(t, s, joinCmd("g", "A", "a", "b"))
	mustApply(t, s, joinCmd("g", "B", "a"))
	mustApply(t, s, commitCmd("g", "A", 2, GroupOffset{"a", 0, 11}, GroupOffset{"b", 2, 12}))
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := r.Encode()
	if !bytes.Equal(b, again) {
		t.Fatalf("round trip changed the encoding:\n%s\n%s", b, again)
	}
	x, _ := s.DescribeGroup("g")
	y, _ := r.DescribeGroup("g")
	if fmt.Sprint(x) != fmt.Sprint(y) {
		t.Fatalf("described differently:\n%+v\n%+v", x, y)
	}
}
