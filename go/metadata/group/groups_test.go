package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
)

// partitionsOfT is the partitions of topic t of groupsCluster.
const partitionsOfT = 4

// groupsCluster is a joined cluster of n nodes with topic t of
// partitionsOfT partitions; it returns the leader.
func groupsCluster(t testing.TB, n int, mod ...func(*Config)) (*cluster, *node) {
	t.Helper()
	c := newCluster(t, n, func(cfg *Config) {
		for _, m := range mod {
			m(cfg)
		}
	})
	c.joinAll()
	l := c.leader()
	if _, err := l.CreateTopic(ctxT(t), "t", commitlogConfig(partitionsOfT, 1)); err != nil {
		t.Fatal(err)
	}
	l.waitState("log on every node", func(s *metadata.State) bool { return len(replicas(s, "log", 0)) == n })
	l.settle() // the controller has nothing left to do: only the test proposes
	return c, l
}

// checkSessions returns once nd's coordinator has finished a session
// check: the second tick is taken only when the first one's removals are
// applied.
func (nd *node) checkSessions() {
	nd.sessionTick <- time.Time{}
	nd.sessionTick <- time.Time{}
}

func partitions(a commitlog.Assignment) string {
	var out []string
	for _, p := range a.Partitions {
		s := fmt.Sprintf("%s/%d", p.Topic, p.Partition)
		if p.Committed {
			s += fmt.Sprintf("@%d", p.Offset)
		}
		out = append(out, s)
	}
	return fmt.Sprint(out)
}

func po(topic string, p int, off uint64) commitlog.PartitionOffset {
	return commitlog.PartitionOffset{TopicPartition: commitlog.TopicPartition{Topic: topic, Partition: p}, Offset: off}
}

// TestGroupsOnLeader: members join, heartbeat and commit on the metadata
// leader through a 3-node group; a partition moves only after its owner's
// acknowledging heartbeat, with its committed offset; fencing errors are
// commitlog's; a heartbeat that acknowledges nothing new adds no Raft
// entry; on a follower the member calls name the leader and the reads
// answer from its copy.
func TestGroupsOnLeader(t *testing.T) {
	c, l := groupsCluster(t, 3)
	ctx, co := ctxT(t), l.Groups()
	a, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}, SessionTimeout: 3 * time.Second, ClientID: "host/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.MemberID) != 32 || a.Generation != 1 || partitions(a) != "[t/0 t/1 t/2 t/3]" || a.HeartbeatInterval != time.Second {
		t.Fatalf("first member: %+v", a)
	}
	A := a.MemberID
	b, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	B := b.MemberID
	if b.Generation != 2 || len(b.Partitions) != 0 {
		t.Fatalf("second member before the first one's ack: %+v", b)
	}
	// A client ID the state refuses (not text) is refused before Raft.
	last := l.raft.LastIndex()
	if _, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}, ClientID: "host\x00"}); !errors.Is(err, commitlog.ErrInvalidGroup) || l.raft.LastIndex() != last {
		t.Fatalf("a client ID with a NUL: %v (log %d, was %d), want ErrInvalidGroup and no entry", err, l.raft.LastIndex(), last)
	}
	if a, err = co.Heartbeat(ctx, "g", A, 1); err != nil || a.Generation != 2 || len(a.Partitions) != 2 {
		t.Fatalf("A's heartbeat of generation 1: %+v %v, want 2 partitions of generation 2", a, err)
	}
	kept := a.Partitions
	var moved []commitlog.PartitionOffset
	for p := range 4 {
		if !slices.ContainsFunc(kept, func(o commitlog.PartitionOffset) bool { return o.Partition == p }) {
			moved = append(moved, po("t", p, uint64(10+p)))
		}
	}
	if err := co.CommitOffsets(ctx, "g", B, 2, moved[:1]); !errors.Is(err, commitlog.ErrNotOwner) {
		t.Fatalf("B commits before A's ack: %v, want ErrNotOwner", err)
	}
	if err := co.CommitOffsets(ctx, "g", A, 2, moved); err != nil {
		t.Fatal(err)
	}
	if b, err = co.Heartbeat(ctx, "g", B, 2); err != nil || len(b.Partitions) != 0 {
		t.Fatalf("B's heartbeat before A's ack: %+v %v", b, err)
	}
	if _, err := co.Heartbeat(ctx, "g", A, 2); err != nil {
		t.Fatal(err)
	}
	b, err = co.Heartbeat(ctx, "g", B, 2)
	want := fmt.Sprintf("[t/%d@%d t/%d@%d]", moved[0].Partition, moved[0].Offset, moved[1].Partition, moved[1].Offset)
	if err != nil || partitions(b) != want {
		t.Fatalf("B after A's ack: %s %v, want %s", partitions(b), err, want)
	}
	last = l.raft.LastIndex()
	for range 3 {
		if _, err := co.Heartbeat(ctx, "g", A, 2); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.raft.LastIndex(); got != last {
		t.Fatalf("heartbeats that acknowledge nothing new went through Raft (index %d to %d)", last, got)
	}
	var stale *commitlog.StaleGenerationError
	if _, err := co.Heartbeat(ctx, "g", A, 3); !errors.As(err, &stale) || stale.Current != 2 {
		t.Fatalf("heartbeat of a future generation: %v", err)
	}
	if err := co.CommitOffsets(ctx, "g", A, 1, kept); !errors.Is(err, commitlog.ErrStaleGeneration) {
		t.Fatalf("commit of generation 1 after A acked 2: %v", err)
	}
	if _, err := co.Heartbeat(ctx, "g", "nobody", 2); !errors.Is(err, commitlog.ErrUnknownMember) {
		t.Fatalf("heartbeat of an unknown member: %v", err)
	}
	if _, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"nope"}}); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Fatalf("join of an unknown topic: %v", err)
	}
	for name, req := range map[string]commitlog.JoinRequest{
		"no topics":     {Group: "g"},
		"bad group":     {Group: "a/b", Topics: []string{"t"}},
		"short session": {Group: "g", Topics: []string{"t"}, SessionTimeout: time.Millisecond},
	} {
		if _, err := co.JoinGroup(ctx, req); !errors.Is(err, commitlog.ErrInvalidGroup) {
			t.Errorf("%s: %v, want ErrInvalidGroup", name, err)
		}
	}
	if err := co.CommitOffsets(ctx, "g", A, 2, []commitlog.PartitionOffset{kept[0], kept[0]}); !errors.Is(err, commitlog.ErrInvalidGroup) {
		t.Fatalf("a commit naming a partition twice: %v", err)
	}
	// A renewal with the same subscription changes nothing.
	last = l.raft.LastIndex()
	if a, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", MemberID: A, Topics: []string{"t"}, SessionTimeout: 3 * time.Second, ClientID: "host/1"}); err != nil || a.Generation != 2 || l.raft.LastIndex() != last {
		t.Fatalf("renewal: %+v %v (index %d, was %d)", a, err, l.raft.LastIndex(), last)
	}
	// Followers: the member calls name the leader; the reads answer.
	for _, nd := range c.nodes {
		if nd == l {
			continue
		}
		f := nd.Groups()
		_, jerr := f.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}})
		_, herr := f.Heartbeat(ctx, "g", A, 2)
		for name, err := range map[string]error{
			"join": jerr, "heartbeat": herr,
			"commit": f.CommitOffsets(ctx, "g", A, 2, kept), "leave": f.LeaveGroup(ctx, "g", A),
		} {
			var nl *commitlog.NotLeaderError
			if !errors.As(err, &nl) || nl.LeaderID != l.id || nl.LeaderAddr != l.port.Addr() {
				t.Fatalf("%s on %s: %v, want NotLeaderError naming %s", name, nd.id, err, l.id)
			}
		}
		nd.waitState("the commit", func(s *metadata.State) bool { return s.Groups["g"] != nil && len(s.Groups["g"].Offsets["t"]) == 2 })
		off, err := f.FetchOffsets(ctx, "g", []commitlog.TopicPartition{moved[0].TopicPartition, kept[0].TopicPartition})
		if err != nil || len(off) != 2 {
			t.Fatalf("fetch on %s: %+v %v", nd.id, off, err)
		}
		for _, o := range off {
			if o.Committed != (o.TopicPartition == moved[0].TopicPartition) {
				t.Fatalf("fetch on %s: %+v", nd.id, off)
			}
		}
		groups, err := f.ListGroups(ctx)
		if err != nil || len(groups) != 1 || groups[0] != (commitlog.GroupSummary{Group: "g", Generation: 2, Members: 2}) {
			t.Fatalf("list on %s: %+v %v", nd.id, groups, err)
		}
		info, err := f.DescribeGroup(ctx, "g")
		if err != nil || len(info.Members) != 2 || len(info.Offsets) != 2 {
			t.Fatalf("describe on %s: %+v %v", nd.id, info, err)
		}
		if _, err := f.DescribeGroup(ctx, "h"); !errors.Is(err, commitlog.ErrUnknownGroup) {
			t.Fatalf("describe an unknown group: %v", err)
		}
	}
	if err := co.LeaveGroup(ctx, "g", B); err != nil {
		t.Fatal(err)
	}
	if err := co.LeaveGroup(ctx, "g", B); err != nil {
		t.Fatalf("leaving twice: %v", err)
	}
	if a, err := co.Heartbeat(ctx, "g", A, 2); err != nil || a.Generation != 3 || len(a.Partitions) != 4 {
		t.Fatalf("A after B left: %+v %v", a, err)
	}
}

// TestGroupsSessionExpiry drives the leader's clock: a member without a
// heartbeat for its session timeout is removed (its commits are refused
// and its partitions go to the others), one that heartbeats stays.
func TestGroupsSessionExpiry(t *testing.T) {
	c, l := groupsCluster(t, 3)
	ctx, co := ctxT(t), l.Groups()
	join := func() string {
		a, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}, SessionTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return a.MemberID
	}
	A, B := join(), join()
	c.clock.Add(2 * time.Second)
	if _, err := co.Heartbeat(ctx, "g", A, 2); err != nil {
		t.Fatal(err)
	}
	l.checkSessions()
	if info, _ := co.DescribeGroup(ctx, "g"); len(info.Members) != 2 {
		t.Fatalf("before any timeout: %+v", info)
	}
	c.clock.Add(time.Second)
	l.checkSessions()
	info, err := co.DescribeGroup(ctx, "g")
	if err != nil || len(info.Members) != 1 || info.Members[0].MemberID != A || info.Generation != 3 {
		t.Fatalf("3 s after B's last heartbeat: %+v %v, want A alone at generation 3", info, err)
	}
	if err := co.CommitOffsets(ctx, "g", B, 2, []commitlog.PartitionOffset{po("t", 0, 1)}); !errors.Is(err, commitlog.ErrUnknownMember) {
		t.Fatalf("commit of an expired member: %v", err)
	}
	if _, err := co.Heartbeat(ctx, "g", B, 2); !errors.Is(err, commitlog.ErrUnknownMember) {
		t.Fatalf("heartbeat of an expired member: %v", err)
	}
	if a, err := co.Heartbeat(ctx, "g", A, 3); err != nil || len(a.Partitions) != 4 {
		t.Fatalf("A after B expired: %+v %v", a, err)
	}
}

// TestGroupsLeaderChange: after the metadata leader stops, the new leader
// has the members, generation and committed offsets, and starts every
// session afresh: a member whose session the old leader would have
// expired long ago stays for its timeout from the new leader's start.
func TestGroupsLeaderChange(t *testing.T) {
	c, l := groupsCluster(t, 3)
	ctx, co := ctxT(t), l.Groups()
	a, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}, SessionTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.CommitOffsets(ctx, "g", a.MemberID, 1, []commitlog.PartitionOffset{po("t", 1, 42)}); err != nil {
		t.Fatal(err)
	}
	// Acknowledged only once applied on the leader, which Raft does only
	// after a majority stored the entry: the leader's copy has it at once,
	// and so will every later leader.
	if off, err := l.view().FetchOffsets("g", nil); err != nil || len(off) != 1 || off[0].Offset != 42 {
		t.Fatalf("the leader's state when the commit was acknowledged: %+v %v", off, err)
	}
	c.clock.Add(time.Hour) // the old leader checks no session meanwhile
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	nl := c.leader()
	nco := nl.Groups()
	nl.checkSessions()
	b, err := nco.Heartbeat(ctx, "g", a.MemberID, 1)
	if err != nil || b.Generation != 1 || partitions(b) != "[t/0 t/1@42 t/2 t/3]" {
		t.Fatalf("heartbeat on the new leader: %s %+v %v", partitions(b), b, err)
	}
	c.clock.Add(3 * time.Second)
	nl.checkSessions()
	if _, err := nco.DescribeGroup(ctx, "g"); err != nil {
		t.Fatalf("the group went with its member: %v", err)
	}
	if _, err := nco.Heartbeat(ctx, "g", a.MemberID, 1); !errors.Is(err, commitlog.ErrUnknownMember) {
		t.Fatalf("heartbeat after the session expired on the new leader: %v", err)
	}
	if off, err := nco.FetchOffsets(ctx, "g", nil); err != nil || len(off) != 1 || off[0].Offset != 42 {
		t.Fatalf("offsets after the member expired: %+v %v", off, err)
	}
}

// TestGroupsRestartKeepsOffsets: a one-node group restarted from its
// snapshot (Close takes one, covering the commit) keeps the committed
// offsets and members.
func TestGroupsRestartKeepsOffsets(t *testing.T) {
	c, l := groupsCluster(t, 1)
	ctx := ctxT(t)
	a, err := l.Groups().JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Groups().CommitOffsets(ctx, "g", a.MemberID, 1, []commitlog.PartitionOffset{po("t", 3, 7)}); err != nil {
		t.Fatal(err)
	}
	want, _ := l.view().Encode()
	applied := l.view().Applied
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(l.dir, 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := snaps.List(); err != nil || len(list) == 0 || list[0].Index < applied {
		t.Fatalf("snapshots after Close: %+v %v, want one at index %d or later", list, err, applied)
	}
	c.start(l)
	l.waitState("the state before the restart", func(s *metadata.State) bool { b, _ := s.Encode(); return string(b) == string(want) })
	off, err := l.Groups().FetchOffsets(ctx, "g", []commitlog.TopicPartition{{Topic: "t", Partition: 3}})
	if err != nil || len(off) != 1 || !off[0].Committed || off[0].Offset != 7 {
		t.Fatalf("after the restart: %+v %v", off, err)
	}
}

// TestGroupsClosed: calls after Close fail with commitlog.ErrUnavailable.
func TestGroupsClosed(t *testing.T) {
	_, l := groupsCluster(t, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Groups().CommitOffsets(context.Background(), "g", "m", 1, []commitlog.PartitionOffset{po("t", 0, 1)}); !errors.Is(err, commitlog.ErrUnavailable) {
		t.Fatalf("commit after close: %v", err)
	}
}

// TestGroupsCommitsCoalesce: commits that arrive while an entry is in
// flight go into the next entry together, and each caller gets its own
// commit's result (those of a member that left meanwhile its error, the
// others nil). A commit the leader's state refuses is refused at once.
func TestGroupsCommitsCoalesce(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	first := true // only the proposer goroutine calls the gate
	_, l := groupsCluster(t, 1, func(cfg *Config) {
		cfg.commitGate = func() {
			if first {
				first = false
				entered <- struct{}{}
				<-release
			}
		}
	})
	open := sync.OnceFunc(func() { close(release) })
	t.Cleanup(open) // before the cluster closes, should the test fail
	ctx, co := ctxT(t), l.Groups()
	join := func() string {
		a, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"t"}})
		if err != nil {
			t.Fatal(err)
		}
		return a.MemberID
	}
	A, B := join(), join()
	a, err := co.Heartbeat(ctx, "g", A, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := co.Heartbeat(ctx, "g", B, 2)
	if err != nil || len(a.Partitions) != 2 || len(b.Partitions) != 2 {
		t.Fatalf("A owns %+v, B %+v (%v)", a.Partitions, b.Partitions, err)
	}
	if err := co.CommitOffsets(ctx, "g", A, 2, []commitlog.PartitionOffset{b.Partitions[0]}); !errors.Is(err, commitlog.ErrNotOwner) || co.proposals.Load() != 0 {
		t.Fatalf("A commits B's partition: %v after %d entries, want ErrNotOwner and none", err, co.proposals.Load())
	}
	const n = 20
	errs := make([]chan error, n)
	commit := func(i int) {
		member, owns := B, b.Partitions
		if i%5 == 0 {
			member, owns = A, a.Partitions
		}
		errs[i] = make(chan error, 1)
		go func() {
			errs[i] <- co.CommitOffsets(ctx, "g", member, 2, []commitlog.PartitionOffset{po("t", owns[i%2].Partition, uint64(i))})
		}()
	}
	commit(0)
	<-entered // the first entry (A's commit) is held in flight
	for i := 1; i < n; i++ {
		commit(i)
	}
	testutil.Eventually(t, "every commit waiting", 20*time.Second, func() bool { return len(co.commits) == n-1 })
	if err := co.LeaveGroup(ctx, "g", A); err != nil {
		t.Fatal(err)
	}
	open()
	for i := range n {
		err := <-errs[i]
		if i%5 == 0 && !errors.Is(err, commitlog.ErrUnknownMember) || i%5 != 0 && err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if p, c := co.proposals.Load(), co.committed.Load(); p != 2 || c != n {
		t.Fatalf("%d commits in %d entries, want %d in 2", c, p, n)
	}
}
