package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/clients/go/clienttest"
)

// The Consumer against the clienttest double, whose group members the
// tests add, expire and fail deterministically.

// groupCluster starts the double with one server and topic t of n
// partitions; members learn a new generation within a few milliseconds.
func groupCluster(t *testing.T, servers, partitions int) (*clienttest.Cluster, *client.Client) {
	t.Helper()
	tc, cl := topicCluster(t, servers)
	tc.CreateTopic("t", partitions, 1)
	tc.SetHeartbeatInterval(5 * time.Millisecond)
	return tc, cl
}

// produceTo writes n records "p<p>-<i>" to partition p of t.
func produceTo(t *testing.T, cl *client.Client, p uint32, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := cl.Topic("t").Partition(p).Produce(ctxT(t), &client.Record{Value: fmt.Appendf(nil, "p%d-%d", p, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func consumer(t *testing.T, cl *client.Client, group string, opts ...client.ConsumerOption) *client.Consumer {
	t.Helper()
	cons, err := cl.Consumer(ctxT(t), group, []string{"t"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close(context.Background()) })
	return cons
}

// next returns the value of cons's next record, failing the test on an
// error.
func next(t *testing.T, cons *client.Consumer) client.Message {
	t.Helper()
	m, err := cons.Next(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitHeartbeats waits for n heartbeats of member from now on: after
// the second, the member has acted on the answer to the first.
func waitHeartbeats(t *testing.T, tc *clienttest.Cluster, member string, n int) {
	t.Helper()
	from := len(tc.Calls(0))
	eventually(t, fmt.Sprintf("%d heartbeats of %s", n, member), 10*time.Second, func() bool {
		k := 0
		for _, c := range tc.Calls(0)[from:] {
			if c.Method == "Heartbeat" && c.MemberID == member {
				k++
			}
		}
		return k >= n
	})
}

func waitGroup(t *testing.T, tc *clienttest.Cluster, group, what string, cond func(clienttest.GroupState) bool) {
	t.Helper()
	if err := tc.WaitGroup(ctxT(t), group, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func memberOf(st clienttest.GroupState, id string) clienttest.GroupMember {
	for _, m := range st.Members {
		if m.ID == id {
			return m
		}
	}
	return clienttest.GroupMember{}
}

// A consumer reads every partition it owns from the start, stops at the
// end with WithStopAtEnd, and Close commits the positions and leaves; a
// second consumer of the group continues where it stopped.
func TestConsumerReadsCommitsAndContinues(t *testing.T) {
	tc, cl := groupCluster(t, 1, 3)
	for p := range uint32(3) {
		produceTo(t, cl, p, 0, 2)
	}
	cons := consumer(t, cl, "g", client.WithStopAtEnd(), client.WithAutoCommit(0))
	if got := cons.Assignment(); len(got) != 3 {
		t.Fatalf("assignment %v, want the 3 partitions", got)
	}
	var got []string
	for {
		m, err := cons.Next(ctxT(t))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("p%d-%d", m.Partition, m.Offset); string(m.Record.Value) != want || m.Topic != "t" || m.Record.Offset != m.Offset {
			t.Errorf("message %+v, value %q, want %q", m, m.Record.Value, want)
		}
		got = append(got, string(m.Record.Value))
	}
	slices.Sort(got)
	if want := []string{"p0-0", "p0-1", "p1-0", "p1-1", "p2-0", "p2-1"}; !slices.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	if err := cons.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := tc.Group("g")
	if len(st.Members) != 0 || st.Committed["t/0"] != 2 || st.Committed["t/1"] != 2 || st.Committed["t/2"] != 2 {
		t.Fatalf("after Close: %+v, want no members and every partition committed at 2", st)
	}
	if _, err := cons.Next(ctxT(t)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}

	produceTo(t, cl, 1, 2, 1)
	again := consumer(t, cl, "g", client.WithStopAtEnd())
	if m := next(t, again); string(m.Record.Value) != "p1-2" {
		t.Fatalf("the second consumer read %q first, want the record after the commits, p1-2", m.Record.Value)
	}
	if _, err := again.Next(ctxT(t)); !errors.Is(err, io.EOF) {
		t.Fatalf("then %v, want io.EOF", err)
	}
}

// Without a commit, WithStartOffset(StartLatest) starts at the end.
func TestConsumerStartsAtLatest(t *testing.T) {
	tc, cl := groupCluster(t, 1, 1)
	produceTo(t, cl, 0, 0, 3)
	cons := consumer(t, cl, "g", client.WithStartOffset(client.StartLatest))
	// The reader asks for the bounds, then streams from the end it found:
	// once its stream is open, a record produced is the first it returns.
	eventually(t, "the reader's stream", 10*time.Second, func() bool { return len(callsOf(tc, 0, "ConsumeStream")) == 1 })
	produceTo(t, cl, 0, 3, 1)
	if m := next(t, cons); m.Offset != 3 {
		t.Fatalf("StartLatest returned offset %d first, want 3 (produced after it started)", m.Offset)
	}
}

// The hand-over: when a second member joins, the first stops reading the
// partitions it loses, but hands them over only once the application has
// released the record of them it holds; it commits their positions before
// the heartbeat that acknowledges the generation, and the new owner reads
// from there: across both members, every record exactly once.
func TestConsumerHandOverWaitsForHeldRecordAndCommitsFirst(t *testing.T) {
	tc, cl := groupCluster(t, 1, 4)
	produceTo(t, cl, 2, 0, 3)
	a := consumer(t, cl, "g", client.WithAutoCommit(0))
	seen := map[string]int{}
	held := next(t, a) // a record of partition 2, held: no Next yet
	if held.Partition != 2 || held.Offset != 0 {
		t.Fatalf("first record %+v", held)
	}
	seen[string(held.Record.Value)]++
	// Every reader of a has its start (its stream is open).
	eventually(t, "a's four streams", 10*time.Second, func() bool { return len(callsOf(tc, 0, "ConsumeStream")) == 4 })
	aID := a.MemberID()
	b := consumer(t, cl, "g", client.WithAutoCommit(0))
	bID := b.MemberID()

	// The double keeps t/0 and t/1 with a (the first by id) and moves t/2
	// and t/3 to b. a learns it from a heartbeat; two heartbeats of a after
	// b joined mean it acted on the first answer.
	st := tc.Group("g")
	gen := st.Generation
	if m := memberOf(st, bID); !slices.Equal(m.Target, []string{"t/2", "t/3"}) || len(m.Owned) != 0 {
		t.Fatalf("b's target %v owned %v, want t/2 t/3 and nothing yet", m.Target, m.Owned)
	}
	waitHeartbeats(t, tc, aID, 2)
	st = tc.Group("g")
	if m := memberOf(st, aID); !slices.Contains(m.Owned, "t/2") || m.Acked >= gen {
		t.Fatalf("while the application holds a record of t/2, a has %+v; want t/2 still a's and generation %d not acknowledged", m, gen)
	}

	// Releasing it (the next Next) completes the hand-over.
	done := make(chan client.Message, 8)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	go func() {
		for {
			m, err := a.Next(ctx)
			if err != nil {
				close(done)
				return
			}
			done <- m
		}
	}()
	waitGroup(t, tc, "g", "b to own t/2 and t/3", func(st clienttest.GroupState) bool {
		return slices.Equal(memberOf(st, bID).Owned, []string{"t/2", "t/3"})
	})
	var commitAt, ackAt int = -1, -1
	for i, c := range tc.Calls(0) {
		if c.MemberID != aID {
			continue
		}
		if c.Method == "CommitOffsets" && commitAt < 0 {
			commitAt = i
			// t/3, never read, at where a started it: the next owner
			// starts there too (with StartLatest, it would skip otherwise).
			if c.Offsets["t/2"] != 1 || c.Offsets["t/3"] != 0 || len(c.Offsets) != 2 {
				t.Errorf("a's hand-over committed %v, want t/2 at 1 (after the record it returned) and t/3 at 0", c.Offsets)
			}
		}
		if c.Method == "Heartbeat" && c.Generation >= gen && ackAt < 0 {
			ackAt = i
		}
	}
	if commitAt < 0 || ackAt < commitAt {
		t.Fatalf("a's commit at call %d, its heartbeat acknowledging generation %d at %d: want the commit first", commitAt, gen, ackAt)
	}
	// b continues at offset 1 of t/2: nothing skipped, nothing repeated.
	for range 2 {
		m := next(t, b)
		seen[string(m.Record.Value)]++
	}
	cancel()
	for m := range done {
		seen[string(m.Record.Value)]++
	}
	if want := map[string]int{"p2-0": 1, "p2-1": 1, "p2-2": 1}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("records read %v, want each of t/2 once", seen)
	}
}

// A member the group removed (its session expired) learns it from its
// next heartbeat, drops what it read ahead and joins again as a new
// member; it reads again from the committed offset, so the records
// returned after the last commit are delivered again (at least once).
func TestConsumerRejoinsAfterExpiry(t *testing.T) {
	tc, cl := groupCluster(t, 1, 1)
	produceTo(t, cl, 0, 0, 4)
	cons := consumer(t, cl, "g", client.WithAutoCommit(0))
	next(t, cons)
	if err := cons.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m := next(t, cons); m.Offset != 1 {
		t.Fatalf("second record at %d", m.Offset)
	}
	old := cons.MemberID()
	if !tc.ExpireMember("g", old) {
		t.Fatal("member not found")
	}
	waitGroup(t, tc, "g", "the consumer to join again", func(st clienttest.GroupState) bool {
		return len(st.Members) == 1 && st.Members[0].ID != old && slices.Equal(st.Members[0].Owned, []string{"t/0"})
	})
	// Records read ahead of the old membership are dropped: the next ones
	// come from the committed offset 1 (offset 1 again, then 2 and 3).
	var offs []uint64
	for range 3 {
		offs = append(offs, next(t, cons).Offset)
	}
	if !slices.Equal(offs, []uint64{1, 2, 3}) {
		t.Fatalf("after joining again read offsets %v, want 1 2 3 (from the committed offset)", offs)
	}
	if cons.MemberID() == old {
		t.Fatal("same member id after joining again")
	}
}

// A commit refused as NOT_OWNER or STALE_GENERATION makes the consumer
// heartbeat and commit again what it owns; UNAVAILABLE is retried.
func TestConsumerCommitRefusedHeartbeatsAndRetries(t *testing.T) {
	for _, reason := range []string{"NOT_OWNER", "STALE_GENERATION"} {
		t.Run(reason, func(t *testing.T) {
			tc, cl := groupCluster(t, 1, 1)
			produceTo(t, cl, 0, 0, 2)
			cons := consumer(t, cl, "g", client.WithAutoCommit(0))
			next(t, cons)
			next(t, cons)
			refused := statusWithReason(codes.FailedPrecondition, reason)
			tc.FailGroupCalls("CommitOffsets", refused, status.Error(codes.Unavailable, "no leader"))
			from := len(tc.Calls(0))
			if err := cons.Commit(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if got := tc.Group("g").Committed["t/0"]; got != 2 {
				t.Fatalf("committed %d, want 2", got)
			}
			var methods []string
			for _, c := range tc.Calls(0)[from:] {
				if c.Method == "CommitOffsets" || c.Method == "Heartbeat" {
					methods = append(methods, c.Method)
				}
			}
			// Heartbeats of the loop may interleave; the refused commit
			// must be followed by a heartbeat before the next commit.
			i := slices.Index(methods, "CommitOffsets")
			j := slices.Index(methods[i+1:], "CommitOffsets")
			if i < 0 || j < 0 || !slices.Contains(methods[i+1:i+1+j], "Heartbeat") {
				t.Fatalf("calls %v: want a heartbeat between the refused commit and the next", methods)
			}
		})
	}
}

// statusWithReason is a proglog status with an ErrorInfo of reason.
func statusWithReason(code codes.Code, reason string) error {
	st, err := status.New(code, strings.ToLower(reason)).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "proglog"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// Member calls go to the metadata leader, following NOT_LEADER, and are
// retried while the cluster answers UNAVAILABLE.
func TestConsumerFollowsTheMetadataLeader(t *testing.T) {
	tc, cl := groupCluster(t, 3, 2)
	tc.SetMetadataLeader(2)
	tc.FailGroupCalls("JoinGroup", status.Error(codes.Unavailable, "electing"))
	cons := consumer(t, cl, "g")
	if len(cons.Assignment()) != 2 {
		t.Fatalf("assignment %v", cons.Assignment())
	}
	if n := len(callsOf(tc, 2, "JoinGroup")); n != 2 {
		t.Fatalf("the metadata leader got %d JoinGroup calls, want 2 (UNAVAILABLE, then the join)", n)
	}
	if len(tc.Group("g").Members) != 1 {
		t.Fatalf("group %+v", tc.Group("g"))
	}
}

// A deleted topic leaves the assignment (its partitions' reads and the
// hand-over's commit of them fail: neither ends the consumer), and the
// consumer goes on reading the other topics.
func TestConsumerSurvivesATopicDeleted(t *testing.T) {
	tc, cl := groupCluster(t, 1, 1)
	tc.CreateTopic("u", 2, 1)
	cons, err := cl.Consumer(ctxT(t), "g", []string{"t", "u"}, client.WithAutoCommit(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctxT(t))
	if got := fmt.Sprint(cons.Assignment()); got != "[{t 0} {u 0} {u 1}]" {
		t.Fatalf("assignment %s", got)
	}
	// The readers of u know where they start: the hand-over commits them.
	eventually(t, "the readers' streams", 10*time.Second, func() bool { return len(callsOf(tc, 0, "ConsumeStream")) == 3 })
	if err := cl.DeleteTopic(ctxT(t), "u"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "u to leave the assignment", 10*time.Second, func() bool { return fmt.Sprint(cons.Assignment()) == "[{t 0}]" })
	produceTo(t, cl, 0, 0, 1)
	if m := next(t, cons); m.Topic != "t" || m.Offset != 0 {
		t.Fatalf("after the deletion read %+v", m)
	}
	if err := cons.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// A hand-over whose commit is refused for one partition (its topic was
// deleted meanwhile) still commits the others: the new owner of a moved
// partition continues after the records the old one processed.
func TestConsumerHandOverCommitsAroundADeletedTopic(t *testing.T) {
	tc, cl := groupCluster(t, 1, 2)
	tc.CreateTopic("u", 1, 1)
	produceTo(t, cl, 1, 0, 2)
	a, err := cl.Consumer(ctxT(t), "g", []string{"t", "u"}, client.WithAutoCommit(0))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctxT(t))
	if m := next(t, a); m.Partition != 1 || m.Offset != 0 { // held: blocks the hand-over of t/1
		t.Fatalf("first record %+v", m)
	}
	eventually(t, "a's streams", 10*time.Second, func() bool { return len(callsOf(tc, 0, "ConsumeStream")) == 3 })
	b := consumer(t, cl, "g", client.WithAutoCommit(0))
	bID := b.MemberID()
	if err := cl.DeleteTopic(ctxT(t), "u"); err != nil {
		t.Fatal(err)
	}
	waitHeartbeats(t, tc, a.MemberID(), 2) // a acted on an answer without t/1 and u/0
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	go a.Next(ctx) // releases t/1's record
	waitGroup(t, tc, "g", "b to own t/1", func(st clienttest.GroupState) bool {
		return slices.Equal(memberOf(st, bID).Owned, []string{"t/1"})
	})
	if m := next(t, b); m.Partition != 1 || m.Offset != 1 {
		t.Fatalf("b read %+v first, want t/1 at 1 (a processed offset 0)", m)
	}
}

// Errors of the group calls are typed.
func TestConsumerErrors(t *testing.T) {
	tc, cl := groupCluster(t, 1, 1)
	ctx := ctxT(t)
	if _, err := cl.Consumer(ctx, "g", []string{"nope"}); !errors.Is(err, client.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	tc.FailGroupCalls("JoinGroup", statusWithReason(codes.ResourceExhausted, "TOO_MANY_MEMBERS"),
		statusWithReason(codes.InvalidArgument, "INVALID_GROUP"))
	if _, err := cl.Consumer(ctx, "g", []string{"t"}); !errors.Is(err, client.ErrTooManyMembers) {
		t.Errorf("too many members: %v", err)
	}
	if _, err := cl.Consumer(ctx, "g", []string{"t"}); !errors.Is(err, client.ErrInvalidGroup) || !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("invalid group: %v", err)
	}
	if _, err := cl.DescribeGroup(ctx, "none"); !errors.Is(err, client.ErrUnknownGroup) {
		t.Errorf("DescribeGroup of an unknown group: %v", err)
	}
	for name, opt := range map[string]client.ConsumerOption{
		"session short": client.WithSessionTimeout(time.Millisecond),
		"session long":  client.WithSessionTimeout(time.Hour),
		"auto commit":   client.WithAutoCommit(-time.Second),
		"start":         client.WithStartOffset(7),
		"client id":     client.WithClientID(strings.Repeat("x", client.MaxClientIDLen+1)),
		"buffer":        client.WithConsumerBuffer(0),
	} {
		if _, err := cl.Consumer(ctx, "g", []string{"t"}, opt); !errors.Is(err, client.ErrInvalidGroup) {
			t.Errorf("%s: %v, want ErrInvalidGroup", name, err)
		}
	}
	if _, err := cl.Consumer(ctx, "g", nil); !errors.Is(err, client.ErrInvalidGroup) {
		t.Errorf("no topics: %v", err)
	}
}

// The automatic commit commits the records the application has processed:
// those before the one it holds, not the one it holds.
func TestConsumerAutoCommitLeavesTheHeldRecord(t *testing.T) {
	tc, cl := groupCluster(t, 1, 1)
	produceTo(t, cl, 0, 0, 3)
	cons := consumer(t, cl, "g", client.WithAutoCommit(20*time.Millisecond))
	for range 3 {
		next(t, cons)
	}
	// The automatic commits from now until the next Next carry t/0 at 2
	// (the third record is in the application's hands); one follows, as
	// nothing after offset 0 was committed yet.
	from := len(tc.Calls(0))
	waitGroup(t, tc, "g", "a commit", func(st clienttest.GroupState) bool { return st.Committed["t/0"] >= 2 })
	for _, c := range tc.Calls(0)[from:] {
		if c.Method == "CommitOffsets" && c.Offsets["t/0"] != 2 {
			t.Fatalf("automatic commit %v while the application holds offset 2, want t/0 at 2", c.Offsets)
		}
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	go cons.Next(ctx) // releases the record; waits for another
	defer cancel()
	waitGroup(t, tc, "g", "t/0 committed at 3", func(st clienttest.GroupState) bool { return st.Committed["t/0"] == 3 })
}

// Close ends every goroutine of the consumer, also one whose readers are
// blocked on a full buffer.
func TestConsumerCloseEndsItsGoroutines(t *testing.T) {
	_, cl := groupCluster(t, 1, 4)
	for p := range uint32(4) {
		produceTo(t, cl, p, 0, 5)
	}
	cons, err := cl.Consumer(ctxT(t), "g", []string{"t"}, client.WithConsumerBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	next(t, cons)
	if n := consumerGoroutines(); n == 0 {
		t.Fatal("no consumer goroutine found while it runs: the check below would prove nothing")
	}
	if err := cons.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := consumerGoroutines(); n != 0 {
		t.Fatalf("%d consumer goroutines after Close", n)
	}
	if err := cons.Close(ctxT(t)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// consumerGoroutines counts the goroutines running a Consumer method.
func consumerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "clients/go.(*Consumer).") && !strings.Contains(g, "consumerGoroutines") {
			count++
		}
	}
	return count
}

// ListGroups, DescribeGroup and FetchOffsets answer from any server.
func TestGroupQueries(t *testing.T) {
	tc, cl := groupCluster(t, 2, 2)
	produceTo(t, cl, 0, 0, 1)
	produceTo(t, cl, 1, 0, 2)
	tc.SetMetadataLeader(1)
	cons := consumer(t, cl, "g", client.WithClientID("host/1"), client.WithSessionTimeout(3*time.Second))
	for range 3 {
		next(t, cons)
	}
	if err := cons.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	groups, err := cl.ListGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Group != "g" || groups[0].Members != 1 {
		t.Fatalf("ListGroups: %+v, %v", groups, err)
	}
	info, err := cl.DescribeGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	want := []client.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}
	if len(info.Members) != 1 || info.Members[0].ClientID != "host/1" || info.Members[0].SessionTimeout != 3*time.Second ||
		!slices.Equal(info.Members[0].Owned, want) || info.Members[0].MemberID != cons.MemberID() {
		t.Fatalf("DescribeGroup members %+v", info.Members)
	}
	if len(info.Offsets) != 2 || info.Offsets[0].Offset != 1 || !info.Offsets[0].Committed || info.Offsets[1].Offset != 2 {
		t.Fatalf("DescribeGroup offsets %+v", info.Offsets)
	}
	offs, err := cl.FetchOffsets(ctx, "g", client.TopicPartition{Topic: "t", Partition: 0}, client.TopicPartition{Topic: "log", Partition: 0})
	if err != nil || len(offs) != 2 || offs[0].Topic != "log" || offs[0].Committed || offs[1].Offset != 1 || !offs[1].Committed {
		t.Fatalf("FetchOffsets: %+v, %v", offs, err)
	}
}

// heartbeatsOf counts the Heartbeat calls server i received from index
// from on (of member; a hung server records no member: any).
func heartbeatsOf(tc *clienttest.Cluster, i, from int, member string) int {
	k := 0
	for _, c := range tc.Calls(i)[from:] {
		if c.Method == "Heartbeat" && (member == "" || c.MemberID == member) {
			k++
		}
	}
	return k
}

// The metadata leader moves while the previous one stops answering (a
// quorum outage's survivor, a stopped process): the member's heartbeat to
// it ends after one heartbeat interval, the dead address is forgotten and
// another server's NOT_LEADER names the new leader, so the member's
// heartbeats reach it after at most two unanswered ones — within its
// session of many intervals — and it stays the same member.
func TestHeartbeatsFollowAMetadataLeaderThatStopsAnswering(t *testing.T) {
	tc, cl := topicCluster(t, 3)
	tc.CreateTopic("t", 1, 1)
	tc.SetHeartbeatInterval(50 * time.Millisecond)
	cons := consumer(t, cl, "g", client.WithAutoCommit(0), client.WithSessionTimeout(time.Second))
	member := cons.MemberID()
	waitHeartbeats(t, tc, member, 2)

	from0, from1 := len(tc.Calls(0)), len(tc.Calls(1))
	tc.Hang(0, true)
	t.Cleanup(func() { tc.Hang(0, false) })
	tc.SetMetadataLeader(1)
	eventually(t, "3 heartbeats on the new metadata leader", 10*time.Second, func() bool {
		return heartbeatsOf(tc, 1, from1, member) >= 3
	})
	// One heartbeat may have been answered just before the hang.
	if n := heartbeatsOf(tc, 0, from0, ""); n > 2 {
		t.Errorf("%d heartbeats went to the metadata leader that stopped answering, want at most 2", n)
	}
	if got := cons.MemberID(); got != member {
		t.Errorf("member %s joined again as %s", member, got)
	}
}
