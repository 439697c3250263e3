package agent_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// groupErrorInfo returns err's ErrorInfo, or fails unless err has code
// and reason.
func groupErrorInfo(t *testing.T, err error, code codes.Code, reason string) map[string]string {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("got %v, want %v %s", err, code, reason)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == reason {
			return info.Metadata
		}
	}
	t.Fatalf("%v: no ErrorInfo %s in %v", err, reason, st.Details())
	return nil
}

// owns lists the partitions of a as "p@offset" (offset "-" if none was
// committed), in order.
func owns(a *logv1.Assignment) string {
	var out []string
	for _, p := range a.Partitions {
		if p.Topic != "orders" {
			return fmt.Sprintf("unexpected topic in %v", a)
		}
		off := "-"
		if p.Committed {
			off = fmt.Sprint(p.Offset)
		}
		out = append(out, fmt.Sprintf("%d@%s", p.Partition, off))
	}
	return strings.Join(out, " ")
}

func partitionsOf(a *logv1.Assignment) []uint32 {
	var out []uint32
	for _, p := range a.Partitions {
		out = append(out, p.Partition)
	}
	return out
}

// TestConsumerGroupsOverTheCluster drives one consumer group through the
// API of a 3-node cluster with raw gRPC: the member calls need the
// metadata leader (NOT_LEADER names it); two members split a 6-partition
// topic 3/3; a third one gets a moved partition only after its previous
// owner's heartbeat acknowledged the generation; commits are fenced
// (NOT_OWNER, STALE_GENERATION, UNKNOWN_MEMBER); a follower answers the
// reads from its copy; the partition leader exports the lag; a new
// metadata leader, after the old one stopped, has the acknowledged
// commits and the members (sessions started afresh); a member that stops
// heartbeating is removed after its session timeout; a member that leaves
// hands its partitions over at once.
func TestConsumerGroupsOverTheCluster(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 3*time.Minute)
	nodes := cluster3(t, e)
	// The metadata leader may change under load (elections of a loaded
	// machine), not only when the test stops it: every member call goes
	// to the leader of the moment, again while there is none or the call
	// met NOT_LEADER (nothing was proposed), and for the calls that may
	// be repeated (all but a new member's join) while it is UNAVAILABLE.
	metaLeader := func() *node {
		t.Helper()
		var leader *node
		testutil.Eventually(t, "a metadata leader", 30*time.Second, func() bool {
			for _, n := range nodes {
				if n.a != nil && n.a.Metadata().IsLeader() {
					leader = n
					return true
				}
			}
			return false
		})
		return leader
	}
	onLeader := func(what string, repeatable bool, call func(logv1.LogClient) error) error {
		t.Helper()
		var err error
		testutil.Eventually(t, what, 30*time.Second, func() bool {
			err = call(metaLeader().log)
			st, _ := status.FromError(err)
			switch {
			case st.Code() == codes.Unavailable && (repeatable || strings.Contains(st.Message(), "no leader elected yet")):
				return false
			case st.Code() == codes.FailedPrecondition && strings.HasPrefix(st.Message(), "not the leader"):
				return false
			}
			return true
		})
		return err
	}
	join := func(req *logv1.JoinGroupRequest) *logv1.Assignment {
		t.Helper()
		var resp *logv1.JoinGroupResponse
		err := onLeader("join of "+req.ClientId, req.MemberId != "", func(c logv1.LogClient) (err error) {
			resp, err = c.JoinGroup(ctx, req)
			return err
		})
		if err != nil {
			t.Fatalf("join of %s: %v", req.ClientId, err)
		}
		return resp.Assignment
	}
	heartbeat := func(member string, gen uint64) *logv1.Assignment {
		t.Helper()
		var resp *logv1.HeartbeatResponse
		err := onLeader("heartbeat", true, func(c logv1.LogClient) (err error) {
			resp, err = c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", MemberId: member, Generation: gen})
			return err
		})
		if err != nil {
			t.Fatalf("heartbeat of %s at generation %d: %v", member, gen, err)
		}
		return resp.Assignment
	}
	heartbeatErr := func(member string, gen uint64) error {
		return onLeader("heartbeat", true, func(c logv1.LogClient) error {
			_, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", MemberId: member, Generation: gen})
			return err
		})
	}
	// commit commits offset base+p of each partition p of ps.
	commit := func(member string, gen uint64, ps []uint32, base uint64) error {
		req := &logv1.CommitOffsetsRequest{Group: "g", MemberId: member, Generation: gen}
		for _, p := range ps {
			req.Offsets = append(req.Offsets, &logv1.PartitionOffset{Topic: "orders", Partition: p, Offset: base + uint64(p)})
		}
		return onLeader("commit", true, func(c logv1.LogClient) error {
			_, err := c.CommitOffsets(ctx, req)
			return err
		})
	}
	describe := func() *logv1.DescribeGroupResponse {
		t.Helper()
		var d *logv1.DescribeGroupResponse
		if err := onLeader("describe", true, func(c logv1.LogClient) (err error) {
			d, err = c.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return d
	}

	err := onLeader("create orders", true, func(c logv1.LogClient) error {
		_, err := c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Config: &logv1.TopicConfig{Partitions: 6, ReplicationFactor: 3}})
		if status.Code(err) == codes.AlreadyExists { // a repeated call
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The member calls need the metadata leader: a follower names it.
	// (Group "probe", so that a node that became leader meanwhile adds
	// nothing to "g".)
	testutil.Eventually(t, "NOT_LEADER naming the metadata leader", 30*time.Second, func() bool {
		leader := metaLeader()
		for _, n := range nodes {
			if n == leader {
				continue
			}
			_, err := n.log.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "probe", Topics: []string{"orders"}})
			st, _ := status.FromError(err)
			if st.Code() != codes.FailedPrecondition {
				t.Logf("JoinGroup on %s: %v", n.name(), err)
				return false
			}
			if info := notLeaderInfo(t, err); info.Metadata["leader_addr"] != leader.a.Addr() {
				t.Logf("JoinGroup on %s names %s, the metadata leader was %s", n.name(), info.Metadata["leader_addr"], leader.a.Addr())
				return false
			}
			return true
		}
		return false
	})

	long := durationpb.New(time.Minute) // members that must outlive the leader change
	ja := join(&logv1.JoinGroupRequest{Group: "g", Topics: []string{"orders"}, SessionTimeout: long, ClientId: "app-a"})
	A := ja.MemberId
	if got := owns(ja); ja.Generation != 1 || got != "0@- 1@- 2@- 3@- 4@- 5@-" {
		t.Fatalf("A alone: generation %d, %s", ja.Generation, got)
	}
	jb := join(&logv1.JoinGroupRequest{Group: "g", Topics: []string{"orders"}, SessionTimeout: long, ClientId: "app-b"})
	B := jb.MemberId
	if jb.Generation != 2 || len(jb.Partitions) != 0 {
		t.Fatalf("B before A acknowledged: %v", jb)
	}
	a := heartbeat(A, 1) // not yet acknowledging 2: A reads only what it keeps
	if a.Generation != 2 || len(a.Partitions) != 3 {
		t.Fatalf("A's heartbeat at generation 1: %v, want generation 2 and 3 partitions", a)
	}
	if b := heartbeat(B, 2); len(b.Partitions) != 0 {
		t.Fatalf("B before A acknowledged generation 2: %s", owns(b))
	}
	a = heartbeat(A, 2)
	b := heartbeat(B, 2)
	if len(a.Partitions) != 3 || len(b.Partitions) != 3 || slices.ContainsFunc(partitionsOf(a), func(p uint32) bool { return slices.Contains(partitionsOf(b), p) }) {
		t.Fatalf("after A's acknowledgement: A %s, B %s, want 3 each, apart", owns(a), owns(b))
	}

	// A third member: 2 each; a partition moves to C only once its
	// owner acknowledged generation 3.
	jc := join(&logv1.JoinGroupRequest{Group: "g", Topics: []string{"orders"}, SessionTimeout: long, ClientId: "app-c"})
	C := jc.MemberId
	if jc.Generation != 3 || len(jc.Partitions) != 0 {
		t.Fatalf("C before anyone acknowledged: %v", jc)
	}
	a, b = heartbeat(A, 2), heartbeat(B, 2)
	if c := heartbeat(C, 3); len(c.Partitions) != 0 || len(a.Partitions) != 2 || len(b.Partitions) != 2 {
		t.Fatalf("generation 3 before acknowledgements: A %s, B %s, C %s", owns(a), owns(b), owns(c))
	}
	fromA := heartbeat(A, 3)
	c := heartbeat(C, 3)
	if len(c.Partitions) != 1 || slices.Contains(partitionsOf(fromA), c.Partitions[0].Partition) {
		t.Fatalf("C after A's acknowledgement only: %s (A %s), want the one A gave up", owns(c), owns(fromA))
	}
	b = heartbeat(B, 3)
	c = heartbeat(C, 3)
	if len(c.Partitions) != 2 || len(b.Partitions) != 2 {
		t.Fatalf("after both acknowledged: B %s, C %s", owns(b), owns(c))
	}
	pa, pb, pc := partitionsOf(fromA), partitionsOf(b), partitionsOf(c)

	// Commits: fenced, then accepted.
	md := groupErrorInfo(t, commit(C, 3, pa[:1], 10), codes.FailedPrecondition, "NOT_OWNER")
	if md["member_id"] != C || md["topic"] != "orders" || md["partition"] != fmt.Sprint(pa[0]) {
		t.Fatalf("NOT_OWNER metadata %v", md)
	}
	md = groupErrorInfo(t, commit(A, 1, pa, 10), codes.FailedPrecondition, "STALE_GENERATION")
	if md["member_id"] != A || md["generation"] != "1" || md["current"] != "3" {
		t.Fatalf("STALE_GENERATION metadata %v", md)
	}
	md = groupErrorInfo(t, commit("0123456789abcdef0123456789abcdef", 3, pa, 10), codes.NotFound, "UNKNOWN_MEMBER")
	if md["group"] != "g" {
		t.Fatalf("UNKNOWN_MEMBER metadata %v", md)
	}
	for member, ps := range map[string][]uint32{A: pa, B: pb, C: pc} {
		if err := commit(member, 3, ps, 100); err != nil {
			t.Fatalf("commit of %s: %v", member, err)
		}
	}
	// Partition p committed at 100+p.
	wantOffsets := "0@100 1@101 2@102 3@103 4@104 5@105"

	// The reads on a follower, from its copy.
	leader := metaLeader()
	var follower *node
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	testutil.Eventually(t, follower.name()+" has the commits", 30*time.Second, func() bool {
		resp, err := follower.log.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
		if err != nil {
			t.Fatal(err)
		}
		return owns(&logv1.Assignment{Partitions: resp.Offsets}) == wantOffsets
	})
	d, err := follower.log.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 3 || len(d.Members) != 3 || owns(&logv1.Assignment{Partitions: d.Offsets}) != wantOffsets {
		t.Fatalf("DescribeGroup on %s: %v", follower.name(), d)
	}
	for _, m := range d.Members {
		if m.Generation != 3 || len(m.Owned) != 1 || len(m.Owned[0].Partitions) != 2 || !slices.Equal(m.Owned[0].Partitions, m.Target[0].Partitions) {
			t.Fatalf("member %v on %s", m, follower.name())
		}
	}
	lg, err := follower.log.ListGroups(ctx, &logv1.ListGroupsRequest{})
	if err != nil || !slices.ContainsFunc(lg.GetGroups(), func(g *logv1.GroupSummary) bool { return g.Group == "g" && g.Members == 3 && g.Generation == 3 }) {
		t.Fatalf("ListGroups on %s: %v, %v, want g with 3 members at generation 3", follower.name(), lg, err)
	}

	// The lag, on orders/0's leader: its next offset minus the commit of
	// partition 0 (100), once it has more records than that.
	var p0 *node
	var next uint64
	testutil.Eventually(t, "orders/0 has a leader that takes 103 records", 30*time.Second, func() bool {
		for _, n := range nodes {
			if r := n.a.Broker().Replica("orders", 0); r != nil && r.IsLeader() {
				for i := int(next); next < 103; i++ {
					resp, err := n.log.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Partition: 0, Record: &logv1.Record{Value: value(i)}})
					if err != nil {
						t.Logf("produce to orders/0 on %s: %v", n.name(), err)
						return false
					}
					next = resp.Offset + 1
				}
				p0 = n
				return true
			}
		}
		return false
	})
	lag := fmt.Sprintf(`proglog_consumer_group_lag{group="g",partition="0",topic="orders"} %d`, next-100)
	testutil.Eventually(t, p0.name()+" exports "+lag, 30*time.Second, func() bool {
		return strings.Contains(p0.metrics(), lag+"\n")
	})

	// The metadata leader stops: the new one has the acknowledged
	// commits and the members, whose sessions start afresh.
	metaLeader().stop()
	want := []string{}
	for _, p := range pa {
		want = append(want, fmt.Sprintf("%d@%d", p, 100+p))
	}
	if got := heartbeat(A, 3); owns(got) != strings.Join(want, " ") || got.Generation != 3 {
		t.Fatalf("A on the new leader: generation %d, %s, want generation 3, %s", got.Generation, owns(got), strings.Join(want, " "))
	}
	for member, ps := range map[string][]uint32{B: pb, C: pc} {
		if len(heartbeat(member, 3).Partitions) != len(ps) {
			t.Fatalf("%s lost its partitions with the leader change", member)
		}
	}

	// A member that stops heartbeating is removed after its session
	// timeout; the others stay.
	D := join(&logv1.JoinGroupRequest{Group: "g", Topics: []string{"orders"}, SessionTimeout: durationpb.New(commitlog.MinSessionTimeout), ClientId: "app-d"}).MemberId
	testutil.Eventually(t, "D removed after its session timeout", 30*time.Second, func() bool {
		d := describe()
		for _, m := range d.Members {
			if m.MemberId == D {
				return false
			}
		}
		if len(d.Members) != 3 || d.Generation != 5 {
			t.Fatalf("after D's removal: generation %d, %d members, want 5 and A, B, C", d.Generation, len(d.Members))
		}
		return true
	})
	groupErrorInfo(t, heartbeatErr(D, 4), codes.NotFound, "UNKNOWN_MEMBER")
	groupErrorInfo(t, heartbeatErr(A, 99), codes.FailedPrecondition, "STALE_GENERATION")

	// C leaves: its partitions go at once to A and B, with C's commits.
	if err := onLeader("C's leave", true, func(c logv1.LogClient) error {
		_, err := c.LeaveGroup(ctx, &logv1.LeaveGroupRequest{Group: "g", MemberId: C})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a, b = heartbeat(A, 6), heartbeat(B, 6)
	all := append(partitionsOf(a), partitionsOf(b)...)
	slices.Sort(all)
	if a.Generation != 6 || len(a.Partitions) != 3 || len(b.Partitions) != 3 || !slices.Equal(all, []uint32{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("after C left: A %s, B %s at generation %d", owns(a), owns(b), a.Generation)
	}
	for _, p := range append(a.Partitions, b.Partitions...) {
		if p.Topic != "orders" || !p.Committed || p.Offset != 100+uint64(p.Partition) {
			t.Fatalf("after C left: %v, want the commit of 100+%d", p, p.Partition)
		}
	}
	groupErrorInfo(t, commit(C, 6, pc, 200), codes.NotFound, "UNKNOWN_MEMBER")
}
