package server_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// fakeGroups is a commitlog.Groups that answers what the test sets and
// records what it was asked. It keeps the port's contract where the server
// depends on it: FetchOffsets of named partitions answers each, committed
// or not; with none, every committed one; an unknown group is
// ErrUnknownGroup.
type fakeGroups struct {
	mu sync.Mutex
	// calls counts the calls that reached the port, by method.
	calls map[string]int
	// The last request of each kind.
	join       commitlog.JoinRequest
	member     [2]string // group and member of the last Heartbeat, LeaveGroup or CommitOffsets
	generation uint64
	committed  []commitlog.PartitionOffset
	fetched    []commitlog.TopicPartition
	// err, if set, is every method's answer.
	err error
	// What the methods answer.
	assignment commitlog.Assignment
	summaries  []commitlog.GroupSummary
	offsets    map[string][]commitlog.PartitionOffset // committed offsets by group
	info       commitlog.GroupInfo
}

var _ commitlog.Groups = (*fakeGroups)(nil)

func newFakeGroups() *fakeGroups {
	return &fakeGroups{calls: map[string]int{}, offsets: map[string][]commitlog.PartitionOffset{}}
}

// called records a call of method and returns the error to answer.
func (g *fakeGroups) called(method string) error {
	g.calls[method]++
	return g.err
}

// total is the number of calls that reached the port.
func (g *fakeGroups) total() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c
	}
	return n
}

func (g *fakeGroups) failWith(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
}

func (g *fakeGroups) JoinGroup(_ context.Context, req commitlog.JoinRequest) (commitlog.Assignment, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.join = req
	return g.assignment, g.called("JoinGroup")
}

func (g *fakeGroups) Heartbeat(_ context.Context, group, memberID string, generation uint64) (commitlog.Assignment, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.member, g.generation = [2]string{group, memberID}, generation
	return g.assignment, g.called("Heartbeat")
}

func (g *fakeGroups) LeaveGroup(_ context.Context, group, memberID string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.member = [2]string{group, memberID}
	return g.called("LeaveGroup")
}

func (g *fakeGroups) CommitOffsets(_ context.Context, group, memberID string, generation uint64, offsets []commitlog.PartitionOffset) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.member, g.generation, g.committed = [2]string{group, memberID}, generation, offsets
	return g.called("CommitOffsets")
}

func (g *fakeGroups) FetchOffsets(_ context.Context, group string, partitions []commitlog.TopicPartition) ([]commitlog.PartitionOffset, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fetched = partitions
	if err := g.called("FetchOffsets"); err != nil {
		return nil, err
	}
	committed, ok := g.offsets[group]
	if !ok {
		return nil, fmt.Errorf("fake: group %q: %w", group, commitlog.ErrUnknownGroup)
	}
	if len(partitions) == 0 {
		return committed, nil
	}
	out := make([]commitlog.PartitionOffset, len(partitions))
	for i, tp := range partitions {
		out[i] = commitlog.PartitionOffset{TopicPartition: tp}
		for _, o := range committed {
			if o.TopicPartition == tp {
				out[i] = o
			}
		}
	}
	return out, nil
}

func (g *fakeGroups) ListGroups(context.Context) ([]commitlog.GroupSummary, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.summaries, g.called("ListGroups")
}

func (g *fakeGroups) DescribeGroup(_ context.Context, group string) (commitlog.GroupInfo, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.info, g.called("DescribeGroup")
}

// groupFixture is a fixture serving groups with fake.
func groupFixture(t *testing.T, fake *fakeGroups, opts fixtureOpts) *fixture {
	t.Helper()
	configure := opts.server
	opts.server = func(c *server.Config) {
		c.Groups = fake
		if configure != nil {
			configure(c)
		}
	}
	return newFixture(t, opts)
}

// groupCalls makes one call of each group RPC with valid arguments for
// group as member m1, returning each one's error by method.
func groupCalls(ctx context.Context, c logv1.LogClient, group string) map[string]error {
	errs := map[string]error{}
	_, errs["JoinGroup"] = c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: group, Topics: []string{"orders"}})
	_, errs["Heartbeat"] = c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: group, MemberId: "m1", Generation: 1})
	_, errs["LeaveGroup"] = c.LeaveGroup(ctx, &logv1.LeaveGroupRequest{Group: group, MemberId: "m1"})
	_, errs["CommitOffsets"] = c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: group, MemberId: "m1", Generation: 1,
		Offsets: []*logv1.PartitionOffset{{Topic: "orders", Partition: 0, Offset: 1}}})
	_, errs["FetchOffsets"] = c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: group})
	_, errs["ListGroups"] = c.ListGroups(ctx, &logv1.ListGroupsRequest{})
	_, errs["DescribeGroup"] = c.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: group})
	return errs
}

// Without a coordinator (Config.Groups nil) every group RPC is
// UNIMPLEMENTED, with a message that says why.
func TestGroupRPCsUnimplementedWithoutCoordinator(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for method, err := range groupCalls(ctxT(t), f.client("root"), "g") {
		if !strings.Contains(fmt.Sprint(err), "no group coordinator") {
			t.Errorf("%s: %v", method, err)
		}
		wantStatus(t, err, codes.Unimplemented, "consumer groups are not served")
	}
}

// Each group RPC hands the port its request, checked and in the port's
// types (topics sorted and de-duplicated, commits marked committed,
// fetched partitions flattened), and answers the port's result on the
// wire, ordered as log.proto says.
func TestGroupRPCsPassRequestsAndAnswers(t *testing.T) {
	fake := newFakeGroups()
	f := groupFixture(t, fake, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	tp := func(topic string, p int) commitlog.TopicPartition {
		return commitlog.TopicPartition{Topic: topic, Partition: p}
	}
	fake.assignment = commitlog.Assignment{MemberID: "m1", Generation: 3, HeartbeatInterval: 10 * time.Second, Partitions: []commitlog.PartitionOffset{
		{TopicPartition: tp("orders", 1), Offset: 5, Committed: true}, {TopicPartition: tp("billing", 0)},
	}}
	wantAssignment := &logv1.Assignment{MemberId: "m1", Generation: 3, HeartbeatInterval: durationpb.New(10 * time.Second), Partitions: []*logv1.PartitionOffset{
		{Topic: "billing", Partition: 0}, {Topic: "orders", Partition: 1, Offset: 5, Committed: true},
	}}

	join, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "g", Topics: []string{"orders", "billing", "orders"},
		SessionTimeout: durationpb.New(30 * time.Second), ClientId: "host/42"})
	if err != nil || !proto.Equal(join.Assignment, wantAssignment) {
		t.Fatalf("JoinGroup: %v %v", join, err)
	}
	if want := (commitlog.JoinRequest{Group: "g", Topics: []string{"billing", "orders"}, SessionTimeout: 30 * time.Second, ClientID: "host/42"}); !reflect.DeepEqual(fake.join, want) {
		t.Fatalf("the port got %+v, want %+v", fake.join, want)
	}
	// No session timeout: the port's default (0).
	if _, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "g", MemberId: "m1", Topics: []string{"orders"}}); err != nil || fake.join.SessionTimeout != 0 || fake.join.MemberID != "m1" {
		t.Fatalf("JoinGroup again: %v, the port got %+v", err, fake.join)
	}

	hb, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g", MemberId: "m1", Generation: 3})
	if err != nil || !proto.Equal(hb.Assignment, wantAssignment) || fake.member != [2]string{"g", "m1"} || fake.generation != 3 {
		t.Fatalf("Heartbeat: %v %v, the port got %v generation %d", hb, err, fake.member, fake.generation)
	}
	if _, err := c.LeaveGroup(ctx, &logv1.LeaveGroupRequest{Group: "g", MemberId: "m2"}); err != nil || fake.member != [2]string{"g", "m2"} {
		t.Fatalf("LeaveGroup: %v, the port got %v", err, fake.member)
	}

	if _, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: "m1", Generation: 4, Offsets: []*logv1.PartitionOffset{
		{Topic: "orders", Partition: 2, Offset: 7}, {Topic: "billing", Partition: 0, Offset: 1, Committed: true},
	}}); err != nil {
		t.Fatalf("CommitOffsets: %v", err)
	}
	wantCommit := []commitlog.PartitionOffset{{TopicPartition: tp("orders", 2), Offset: 7, Committed: true}, {TopicPartition: tp("billing", 0), Offset: 1, Committed: true}}
	if !reflect.DeepEqual(fake.committed, wantCommit) || fake.generation != 4 {
		t.Fatalf("the port committed %+v at generation %d, want %+v at 4", fake.committed, fake.generation, wantCommit)
	}

	fake.offsets["g"] = []commitlog.PartitionOffset{{TopicPartition: tp("orders", 2), Offset: 7, Committed: true}}
	fetched, err := c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g", Partitions: []*logv1.TopicPartitions{
		{Topic: "orders", Partitions: []uint32{2, 0, 2}}, {Topic: "billing", Partitions: []uint32{0}},
	}})
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	if want := []commitlog.TopicPartition{tp("billing", 0), tp("orders", 0), tp("orders", 2)}; !reflect.DeepEqual(fake.fetched, want) {
		t.Fatalf("the port fetched %v, want %v", fake.fetched, want)
	}
	wantFetched := []*logv1.PartitionOffset{{Topic: "billing"}, {Topic: "orders"}, {Topic: "orders", Partition: 2, Offset: 7, Committed: true}}
	if !equalProtos(fetched.Offsets, wantFetched) {
		t.Fatalf("FetchOffsets answered %v, want %v", fetched.Offsets, wantFetched)
	}
	if all, err := c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"}); err != nil || len(fake.fetched) != 0 || len(all.Offsets) != 1 || all.Offsets[0].Offset != 7 {
		t.Fatalf("FetchOffsets of every committed offset: %v %v (the port was asked for %v)", all, err, fake.fetched)
	}

	fake.summaries = []commitlog.GroupSummary{{Group: "z", Generation: 1, Members: 2}, {Group: "a", Generation: 9}}
	list, err := c.ListGroups(ctx, &logv1.ListGroupsRequest{})
	if want := []*logv1.GroupSummary{{Group: "a", Generation: 9}, {Group: "z", Generation: 1, Members: 2}}; err != nil || !equalProtos(list.Groups, want) {
		t.Fatalf("ListGroups: %v %v", list, err)
	}

	fake.info = commitlog.GroupInfo{Group: "g", Generation: 5,
		Members: []commitlog.GroupMember{
			{MemberID: "m2", ClientID: "b", Topics: []string{"orders"}, SessionTimeout: 10 * time.Second, Generation: 4,
				Target: []commitlog.TopicPartition{tp("orders", 1)}},
			{MemberID: "m1", ClientID: "a", Topics: []string{"billing", "orders"}, SessionTimeout: 20 * time.Second, Generation: 5,
				Owned:  []commitlog.TopicPartition{tp("orders", 2), tp("billing", 0), tp("orders", 0)},
				Target: []commitlog.TopicPartition{tp("orders", 0), tp("billing", 0)}},
		},
		Offsets: []commitlog.PartitionOffset{{TopicPartition: tp("orders", 2), Offset: 7, Committed: true}},
	}
	desc, err := c.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
	if err != nil {
		t.Fatalf("DescribeGroup: %v", err)
	}
	want := &logv1.DescribeGroupResponse{Group: "g", Generation: 5,
		Members: []*logv1.GroupMember{
			{MemberId: "m1", ClientId: "a", Topics: []string{"billing", "orders"}, SessionTimeout: durationpb.New(20 * time.Second), Generation: 5,
				Owned:  []*logv1.TopicPartitions{{Topic: "billing", Partitions: []uint32{0}}, {Topic: "orders", Partitions: []uint32{0, 2}}},
				Target: []*logv1.TopicPartitions{{Topic: "billing", Partitions: []uint32{0}}, {Topic: "orders", Partitions: []uint32{0}}}},
			{MemberId: "m2", ClientId: "b", Topics: []string{"orders"}, SessionTimeout: durationpb.New(10 * time.Second), Generation: 4,
				Target: []*logv1.TopicPartitions{{Topic: "orders", Partitions: []uint32{1}}}},
		},
		Offsets: []*logv1.PartitionOffset{{Topic: "orders", Partition: 2, Offset: 7, Committed: true}},
	}
	if !proto.Equal(desc, want) {
		t.Fatalf("DescribeGroup answered\n%v\nwant\n%v", desc, want)
	}
}

func equalProtos[M proto.Message](got, want []M) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			return false
		}
	}
	return true
}

// Every error of the port gets the status and ErrorInfo log.proto
// documents: the typed errors' figures, the request's group and member
// for the bare sentinels, NOT_LEADER as for CreateTopic.
func TestGroupErrorsMapToStatuses(t *testing.T) {
	fake := newFakeGroups()
	f := groupFixture(t, fake, fixtureOpts{})
	f.cluster.create("orders", 3)
	c := f.client("root")
	ctx := ctxT(t)
	commit := func() error {
		_, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: "m1", Generation: 3,
			Offsets: []*logv1.PartitionOffset{{Topic: "orders", Partition: 2, Offset: 1}}})
		return err
	}
	join := func() error {
		_, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "g", Topics: []string{"orders", "nope"}})
		return err
	}
	cases := []struct {
		name   string
		err    error
		call   func() error
		code   codes.Code
		reason string
		md     map[string]string
	}{
		{"invalid", fmt.Errorf("coordinator: %w: too many topics", commitlog.ErrInvalidGroup), commit,
			codes.InvalidArgument, "INVALID_GROUP", map[string]string{"group": "g"}},
		{"unknown group", fmt.Errorf("coordinator: %w", commitlog.ErrUnknownGroup), commit,
			codes.NotFound, "UNKNOWN_GROUP", map[string]string{"group": "g"}},
		{"unknown member", fmt.Errorf("coordinator: %w", commitlog.ErrUnknownMember), commit,
			codes.NotFound, "UNKNOWN_MEMBER", map[string]string{"group": "g", "member_id": "m1"}},
		{"not owner", fmt.Errorf("coordinator: %w", &commitlog.NotOwnerError{Group: "g", MemberID: "m1", TopicPartition: commitlog.TopicPartition{Topic: "orders", Partition: 2}}), commit,
			codes.FailedPrecondition, "NOT_OWNER", map[string]string{"group": "g", "member_id": "m1", "topic": "orders", "partition": "2"}},
		{"not owner, bare", commitlog.ErrNotOwner, commit,
			codes.FailedPrecondition, "NOT_OWNER", map[string]string{"group": "g", "member_id": "m1"}},
		{"stale generation", fmt.Errorf("coordinator: %w", &commitlog.StaleGenerationError{Group: "g", MemberID: "m1", Generation: 3, Current: 5}), commit,
			codes.FailedPrecondition, "STALE_GENERATION", map[string]string{"group": "g", "member_id": "m1", "generation": "3", "current": "5"}},
		{"stale generation, bare", commitlog.ErrStaleGeneration, commit,
			codes.FailedPrecondition, "STALE_GENERATION", map[string]string{"group": "g", "member_id": "m1"}},
		{"too many members", fmt.Errorf("coordinator: %w", &commitlog.TooManyMembersError{Group: "g", Limit: 100}), join,
			codes.ResourceExhausted, "TOO_MANY_MEMBERS", map[string]string{"group": "g", "limit": "100"}},
		{"cluster limit", fmt.Errorf("coordinator: %w", &commitlog.LimitError{Group: "g", Resource: "consumer groups", Limit: 10000}), join,
			codes.ResourceExhausted, "TOO_MANY_MEMBERS", map[string]string{"group": "g", "limit": "10000", "resource": "consumer groups"}},
		{"too many members, bare", commitlog.ErrTooManyMembers, join,
			codes.ResourceExhausted, "TOO_MANY_MEMBERS", map[string]string{"group": "g"}},
		{"unknown topic", fmt.Errorf("coordinator: %w", commitlog.ErrUnknownTopic), join,
			codes.NotFound, "UNKNOWN_TOPIC", map[string]string{"topic": "nope"}},
		{"not the leader", fmt.Errorf("coordinator: %w", &commitlog.NotLeaderError{LeaderID: "n2", LeaderAddr: "10.0.0.2:8400"}), commit,
			codes.FailedPrecondition, "NOT_LEADER", map[string]string{"leader_id": "n2", "leader_addr": "10.0.0.2:8400"}},
	}
	for _, tc := range cases {
		fake.failWith(tc.err)
		info := errorInfo(t, tc.call(), tc.code)
		if info.Reason != tc.reason || info.Domain != server.ErrorDomain || !maps.Equal(info.Metadata, tc.md) {
			t.Errorf("%s: ErrorInfo %v, want reason %s metadata %v", tc.name, info, tc.reason, tc.md)
		}
	}
	// No leader, or the coordinator unavailable: UNAVAILABLE, for the
	// member calls and the reads alike.
	for _, err := range []error{&commitlog.NotLeaderError{}, fmt.Errorf("metadata: %w", commitlog.ErrUnavailable)} {
		fake.failWith(err)
		for method, err := range groupCalls(ctx, c, "g") {
			if !strings.Contains(fmt.Sprint(err), "no leader elected yet") && !strings.Contains(fmt.Sprint(err), "retry later") {
				t.Errorf("%s: %v", method, err)
			}
			wantStatus(t, err, codes.Unavailable, "")
		}
	}
	fake.failWith(nil)
}

// Requests are checked and bounded by the server: a field out of its
// range never reaches the port.
func TestGroupRequestsCheckedBeforeThePort(t *testing.T) {
	fake := newFakeGroups()
	f := groupFixture(t, fake, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	long := strings.Repeat("x", 250)
	join := func(req *logv1.JoinGroupRequest) func() error {
		return func() error {
			if req.Group == "" {
				req.Group = "g"
			}
			if req.Topics == nil {
				req.Topics = []string{"orders"}
			}
			_, err := c.JoinGroup(ctx, req)
			return err
		}
	}
	commit := func(offsets ...*logv1.PartitionOffset) func() error {
		return func() error {
			_, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: "m1", Offsets: offsets})
			return err
		}
	}
	fetch := func(tps ...*logv1.TopicPartitions) func() error {
		return func() error {
			_, err := c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g", Partitions: tps})
			return err
		}
	}
	cases := []struct {
		name   string
		call   func() error
		reason string
		msg    string
	}{
		{"group name", join(&logv1.JoinGroupRequest{Group: "a/b"}), "INVALID_GROUP", `group "a/b": must be 1 to 249 of [a-zA-Z0-9._-]`},
		{"long group name", func() error {
			_, err := c.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: long})
			return err
		}, "INVALID_GROUP", "must be 1 to 249"},
		{"empty group name", func() error {
			_, err := c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{})
			return err
		}, "INVALID_GROUP", `group "": must be`},
		{"no topics", join(&logv1.JoinGroupRequest{Topics: []string{}}), "INVALID_GROUP", "topics is empty: subscribe to 1 to 256 topics"},
		{"empty topic", join(&logv1.JoinGroupRequest{Topics: []string{"orders", ""}}), "INVALID_TOPIC", `name "" must be 1 to 249 characters`},
		{"topic name", join(&logv1.JoinGroupRequest{Topics: []string{"a b"}}), "INVALID_TOPIC", `name "a b" has ' '`},
		{"short session", join(&logv1.JoinGroupRequest{SessionTimeout: durationpb.New(500 * time.Millisecond)}), "INVALID_GROUP", "session_timeout 500ms is out of range: 0 for the default (10s), or 1s to 5m0s"},
		{"long session", join(&logv1.JoinGroupRequest{SessionTimeout: durationpb.New(6 * time.Minute)}), "INVALID_GROUP", "session_timeout 6m0s is out of range"},
		{"negative session", join(&logv1.JoinGroupRequest{SessionTimeout: durationpb.New(-time.Second)}), "INVALID_GROUP", "session_timeout -1s is out of range"},
		{"malformed session", join(&logv1.JoinGroupRequest{SessionTimeout: &durationpb.Duration{Seconds: 1, Nanos: -1}}), "INVALID_GROUP", "session_timeout: "},
		{"client id", join(&logv1.JoinGroupRequest{ClientId: strings.Repeat("c", 256)}), "INVALID_GROUP", "client_id is 256 bytes, at most 255"},
		{"member id", join(&logv1.JoinGroupRequest{MemberId: strings.Repeat("m", server.MaxMemberIDLen+1)}), "INVALID_GROUP", "member_id is 513 bytes, at most 512"},
		{"heartbeat without member", func() error {
			_, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "g"})
			return err
		}, "INVALID_GROUP", "member_id is required"},
		{"leave without member", func() error {
			_, err := c.LeaveGroup(ctx, &logv1.LeaveGroupRequest{Group: "g"})
			return err
		}, "INVALID_GROUP", "member_id is required"},
		{"commit without member", func() error {
			_, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", Offsets: []*logv1.PartitionOffset{{Topic: "orders"}}})
			return err
		}, "INVALID_GROUP", "member_id is required"},
		{"commit of nothing", commit(), "INVALID_GROUP", "offsets is empty: commit 1 to 4096 positions"},
		{"commit twice", commit(&logv1.PartitionOffset{Topic: "orders", Partition: 1, Offset: 1}, &logv1.PartitionOffset{Topic: "orders", Partition: 1, Offset: 2}),
			"INVALID_GROUP", "offsets name orders/1 more than once"},
		{"commit of no topic", commit(&logv1.PartitionOffset{Partition: 1}), "INVALID_TOPIC", `name "" must be 1 to 249 characters`},
		{"fetch without partitions", fetch(&logv1.TopicPartitions{Topic: "orders"}), "INVALID_GROUP", `partitions of topic "orders" is empty`},
		{"fetch of no topic", fetch(&logv1.TopicPartitions{Partitions: []uint32{0}}), "INVALID_TOPIC", `name "" must be 1 to 249 characters`},
	}
	for _, tc := range cases {
		err := tc.call()
		info := errorInfo(t, err, codes.InvalidArgument)
		if info.Reason != tc.reason || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v (reason %s), want reason %s and %q", tc.name, err, info.Reason, tc.reason, tc.msg)
		}
		if tc.reason == "INVALID_GROUP" && info.Metadata["group"] == "" && !strings.HasPrefix(tc.name, "empty group") {
			t.Errorf("%s: ErrorInfo without the group: %v", tc.name, info)
		}
	}
	if n := fake.total(); n != 0 {
		t.Fatalf("%d refused requests reached the port: %v", n, fake.calls)
	}
}

// The group requests' repeated fields are counted on the wire, against
// go/commitlog's limits, before the request is unmarshalled: topics of a
// JoinGroup, positions of a CommitOffsets, topics and partitions (packed
// or not) of a FetchOffsets.
func TestGroupRepeatedFieldsRefusedBeforeUnmarshal(t *testing.T) {
	fake := newFakeGroups()
	f := groupFixture(t, fake, fixtureOpts{})
	c := f.client("root")
	conn := f.conn(f.clientTLS("root"))
	ctx := ctxT(t)

	topics := make([]string, commitlog.MaxGroupTopics+1)
	for i := range topics {
		topics[i] = "t"
	}
	offsets := make([]*logv1.PartitionOffset, commitlog.MaxCommitOffsets+1)
	for i := range offsets {
		offsets[i] = &logv1.PartitionOffset{Topic: "orders", Partition: uint32(i)}
	}
	// At the limits the requests reach the port.
	if _, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "g", Topics: topics[1:]}); err != nil {
		t.Fatalf("JoinGroup of %d topics: %v", len(topics)-1, err)
	}
	if _, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: "m", Offsets: offsets[1:]}); err != nil {
		t.Fatalf("CommitOffsets of %d offsets: %v", len(offsets)-1, err)
	}
	before := server.Unmarshalled(f.srv)

	_, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "g", Topics: topics})
	wantStatus(t, err, codes.InvalidArgument, "subscribes to more than 256 topics")
	if info := errorInfo(t, err, codes.InvalidArgument); info.Reason != "INVALID_GROUP" {
		t.Fatalf("ErrorInfo %v", info)
	}
	_, err = c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: "m", Offsets: offsets})
	wantStatus(t, err, codes.InvalidArgument, "commits more than 4096 offsets")

	many := make([]uint32, commitlog.MaxCommitOffsets+1)
	_, err = c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g", Partitions: []*logv1.TopicPartitions{{Topic: "a", Partitions: many[:2000]}, {Topic: "b", Partitions: many[2000:]}}})
	wantStatus(t, err, codes.InvalidArgument, "names more than 4096 partitions")
	entries := make([]*logv1.TopicPartitions, commitlog.MaxCommitOffsets+1)
	for i := range entries {
		entries[i] = &logv1.TopicPartitions{}
	}
	_, err = c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g", Partitions: entries})
	wantStatus(t, err, codes.InvalidArgument, "names more than 4096 partitions")
	// Unpacked partition numbers (each its own field, as a proto2 encoder
	// writes them) count as well.
	var tps []byte
	for range commitlog.MaxCommitOffsets + 1 {
		tps = protowire.AppendTag(tps, 2, protowire.VarintType)
		tps = protowire.AppendVarint(tps, 0)
	}
	raw := protowire.AppendTag(nil, 2, protowire.BytesType)
	raw = protowire.AppendBytes(raw, tps)
	err = conn.Invoke(ctx, logv1.Log_FetchOffsets_FullMethodName, rawRequest(raw), new(logv1.FetchOffsetsResponse), grpc.ForceCodecV2(rawCodec{}))
	wantStatus(t, err, codes.InvalidArgument, "names more than 4096 partitions")

	if n := server.Unmarshalled(f.srv); n != before {
		t.Fatalf("%d refused requests were unmarshalled", n-before)
	}
	for reason, want := range map[string]float64{"too_many_topics": 1, "too_many_offsets": 1, "too_many_partitions": 3} {
		if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("proglog_rejected_requests_total{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// The group RPCs need "group" on the group and "consume" on every topic a
// member subscribes to or commits; ListGroups lists the groups the caller
// has "group" on; DescribeGroup and FetchOffsets need "group". A refused
// call never reaches the port.
func TestGroupACL(t *testing.T) {
	authz := writePolicy(t,
		"p, root, *, *",
		"p, nobody, billing.*, group",
		"p, nobody, billing.*, consume",
		"p, nobody, orders, consume",
	)
	fake := newFakeGroups()
	f := groupFixture(t, fake, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	c := f.client("nobody")
	ctx := ctxT(t)

	if _, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "billing.workers", Topics: []string{"billing.eu", "orders"}}); err != nil {
		t.Fatalf("join billing.workers: %v", err)
	}
	if _, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "billing.workers", MemberId: "m1",
		Offsets: []*logv1.PartitionOffset{{Topic: "orders", Offset: 1}, {Topic: "billing.eu", Offset: 2}}}); err != nil {
		t.Fatalf("commit to billing.workers: %v", err)
	}
	allowed := fake.total()

	denied := []struct {
		call func() error
		msg  string
	}{
		{func() error {
			_, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "billing.workers", Topics: []string{"orders", "payments"}})
			return err
		}, `nobody may not consume on "payments"`},
		{func() error {
			_, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "orders.workers", Topics: []string{"orders"}})
			return err
		}, `nobody may not group on "orders.workers"`},
		{func() error {
			_, err := c.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "billing.workers", MemberId: "m1",
				Offsets: []*logv1.PartitionOffset{{Topic: "orders", Offset: 1}, {Topic: "payments", Offset: 1}}})
			return err
		}, `nobody may not consume on "payments"`},
		{func() error {
			_, err := c.Heartbeat(ctx, &logv1.HeartbeatRequest{Group: "orders.workers", MemberId: "m1"})
			return err
		}, `nobody may not group on "orders.workers"`},
		{func() error {
			_, err := c.LeaveGroup(ctx, &logv1.LeaveGroupRequest{Group: "orders.workers", MemberId: "m1"})
			return err
		}, `nobody may not group on "orders.workers"`},
		{func() error {
			_, err := c.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "orders.workers"})
			return err
		}, `nobody may not group on "orders.workers"`},
		{func() error {
			_, err := c.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "orders.workers"})
			return err
		}, `nobody may not group on "orders.workers"`},
	}
	for _, d := range denied {
		wantStatus(t, d.call(), codes.PermissionDenied, d.msg)
	}
	if n := fake.total(); n != allowed {
		t.Fatalf("%d refused calls reached the port", n-allowed)
	}

	fake.summaries = []commitlog.GroupSummary{{Group: "orders.workers"}, {Group: "billing.workers", Members: 1}, {Group: "billing.audit"}}
	list, err := c.ListGroups(ctx, &logv1.ListGroupsRequest{})
	if err != nil || len(list.Groups) != 2 || list.Groups[0].Group != "billing.audit" || list.Groups[1].Group != "billing.workers" {
		t.Fatalf("ListGroups of nobody: %v %v", list, err)
	}
	if all, err := f.client("root").ListGroups(ctx, &logv1.ListGroupsRequest{}); err != nil || len(all.Groups) != 3 {
		t.Fatalf("ListGroups of root: %v %v", all, err)
	}
}

// A caller without "group" on any object is refused every group call when
// its headers arrive, before its message is read.
func TestGroupCallsRefusedBeforeDecodingWithoutTheActionAnywhere(t *testing.T) {
	authz := writePolicy(t, "p, root, *, *", "p, nobody, *, consume")
	fake := newFakeGroups()
	f := groupFixture(t, fake, fixtureOpts{server: func(c *serverConfig) { c.Authorizer = authz }})
	errs := groupCalls(ctxT(t), f.client("nobody"), "g")
	for method, err := range errs {
		if !strings.Contains(fmt.Sprint(err), "nobody may not group on any group") {
			t.Errorf("%s: %v", method, err)
		}
		wantStatus(t, err, codes.PermissionDenied, "")
	}
	if n := server.Unmarshalled(f.srv); n != 0 {
		t.Fatalf("the server unmarshalled %d requests of calls refused on any group", n)
	}
	if n := fake.total(); n != 0 { // before a scrape, which reads the lag
		t.Fatalf("%d refused calls reached the port", n)
	}
	if got := counter(t, f.reg, "proglog_rejected_requests_total", map[string]string{"reason": "permission_denied"}); got != float64(len(errs)) {
		t.Fatalf("proglog_rejected_requests_total{reason=permission_denied} = %v, want %d", got, len(errs))
	}
}

// TestOneGroupsAnswersFitOneMessage: with every name, id and count of a
// group at its limit (commitlog.MaxGroupSubscriptions subscriptions, here
// one topic per member, each topic's name at its longest, and
// commitlog.MaxGroupPartitions partitions with offsets), DescribeGroup and
// FetchOffsets still answer within the default send limit: there is no
// paging.
func TestOneGroupsAnswersFitOneMessage(t *testing.T) {
	name := func(i int) string { return fmt.Sprintf("%0*d", commitlog.MaxTopicNameLen, i) }
	members := commitlog.MaxGroupSubscriptions
	perMember := commitlog.MaxGroupPartitions / members
	desc := &logv1.DescribeGroupResponse{Group: name(0), Generation: 1 << 60}
	fetch := &logv1.FetchOffsetsResponse{}
	for m := range members {
		parts := make([]uint32, perMember)
		for i := range parts {
			parts[i] = uint32(commitlog.MaxPartitions - 1 - i)
		}
		tp := &logv1.TopicPartitions{Topic: name(m), Partitions: parts}
		desc.Members = append(desc.Members, &logv1.GroupMember{
			MemberId: strings.Repeat("m", server.MaxMemberIDLen), ClientId: strings.Repeat("c", commitlog.MaxClientIDLen),
			Topics: []string{name(m)}, SessionTimeout: durationpb.New(commitlog.MaxSessionTimeout), Generation: 1 << 60,
			Owned: []*logv1.TopicPartitions{tp}, Target: []*logv1.TopicPartitions{tp},
		})
		for _, p := range parts {
			off := &logv1.PartitionOffset{Topic: name(m), Partition: p, Offset: 1 << 62, Committed: true}
			desc.Offsets = append(desc.Offsets, off)
			fetch.Offsets = append(fetch.Offsets, off)
		}
	}
	for what, msg := range map[string]proto.Message{"DescribeGroup": desc, "FetchOffsets": fetch} {
		if n := proto.Size(msg); n >= server.DefaultMaxSendMsgBytes {
			t.Errorf("%s of a group at its limits is %d bytes, the send limit %d", what, n, server.DefaultMaxSendMsgBytes)
		} else {
			t.Logf("%s of a group at its limits: %d bytes", what, n)
		}
	}
}
