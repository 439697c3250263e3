package replication

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

var (
	_ server.CommitLog    = (*CommitLog)(nil)
	_ server.ServerLister = (*CommitLog)(nil)
)

func TestCommitLogOverACluster(t *testing.T) {
	nodes := cluster(t, 2, nil)
	leader, follower := NewCommitLog(nodes[0].Log), NewCommitLog(nodes[1].Log)
	ctx := ctxT(t)
	in := &logv1.Record{Value: []byte("v"), Key: []byte("k"), Offset: 99}
	off, err := leader.Append(ctx, in)
	if err != nil || off != 0 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	first, err := leader.AppendBatch(ctx, []*logv1.Record{{Value: []byte("b1")}, {Value: []byte("b2")}})
	if err != nil || first != 1 {
		t.Fatalf("AppendBatch = %d, %v", first, err)
	}
	got, err := leader.Read(ctx, 0, server.ConsistencyLinearizable)
	if err != nil || string(got.Value) != "v" || string(got.Key) != "k" || got.Offset != 0 {
		t.Fatalf("Read = %v, %v", got, err)
	}
	if err := follower.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if follower.NextOffset() != 3 || follower.LowestOffset() != 0 {
		t.Fatalf("follower offsets %d-%d", follower.LowestOffset(), follower.NextOffset())
	}
	// Follower: linearizable is refused with the leader's address; a
	// follower read is served.
	_, err = follower.Read(ctx, 2, server.ConsistencyLinearizable)
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower linearizable read: %v", err)
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.Reason != "NOT_LEADER" || info.Metadata["leader_addr"] != nodes[0].addr || info.Metadata["leader_id"] != "n0" {
		t.Fatalf("details %v", st.Details())
	}
	got, err = follower.Read(ctx, 2, server.ConsistencyFollower)
	if err != nil || string(got.Value) != "b2" || got.Offset != 2 {
		t.Fatalf("follower read = %v, %v", got, err)
	}
	if _, err := follower.Read(ctx, 2, server.Consistency(9)); err == nil {
		t.Fatal("unknown consistency accepted")
	}
	if _, err := follower.Append(ctx, in); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("follower append: %v", err)
	}
	// Out of range stays a go/seglog error for the server's own mapping.
	var oor *seglog.OffsetOutOfRangeError
	if _, err := leader.Read(ctx, 3, server.ConsistencyLinearizable); !errors.As(err, &oor) {
		t.Fatalf("out of range: %v", err)
	}
	servers, err := follower.GetServers(ctx)
	if err != nil || len(servers) != 2 {
		t.Fatalf("GetServers = %v, %v", servers, err)
	}
	for _, s := range servers {
		if s.IsLeader != (s.Id == "n0") || s.RpcAddr == "" {
			t.Fatalf("server %v", s)
		}
	}
	// Idempotent appends: a repeat is a duplicate at the original offset; a
	// refusal stays a *producer.SequenceError for the server's mapping.
	p := server.Producer{ID: 42}
	for i, wantDup := range []bool{false, true} {
		a, err := leader.AppendIdempotent(ctx, p, []*logv1.Record{{Value: []byte("i")}})
		if err != nil || a.First != 3 || a.Duplicate != wantDup {
			t.Fatalf("AppendIdempotent #%d = %+v, %v", i, a, err)
		}
	}
	var se *producer.SequenceError
	if _, err := leader.AppendIdempotent(ctx, server.Producer{ID: 42, Sequence: 5}, []*logv1.Record{{}}); !errors.As(err, &se) || se.Expected != 1 {
		t.Fatalf("out of order: %v", err)
	}
	// Stored as the record's protobuf encoding, like go/server's StorageLog.
	raw, err := nodes[1].Read(ctx, 0, ReadFollower)
	if err != nil {
		t.Fatal(err)
	}
	var dec logv1.Record
	if err := proto.Unmarshal(raw, &dec); err != nil || string(dec.Value) != "v" {
		t.Fatalf("stored bytes: %v", err)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{&NotLeaderError{LeaderID: "n1", LeaderAddr: "a:1"}, codes.FailedPrecondition},
		{fmt.Errorf("x: %w", &NotLeaderError{}), codes.Unavailable},
		{fmt.Errorf("%w (raft)", ErrLeadershipLost), codes.Unavailable},
		{ErrTimeout, codes.Unavailable},
		{ErrClosed, codes.Unavailable},
		{fmt.Errorf("%w: disk", ErrFailed), codes.Unavailable},
	} {
		err := statusOf(tc.err)
		if status.Code(err) != tc.code || !errors.Is(err, tc.err) || err.Error() != tc.err.Error() {
			t.Errorf("statusOf(%v) = %v (%v)", tc.err, err, status.Code(err))
		}
	}
	if statusOf(nil) != nil {
		t.Error("statusOf(nil)")
	}
	plain := seglog.ErrRecordTooLarge
	if statusOf(plain) != plain {
		t.Error("go/seglog errors must pass through unchanged")
	}
	if statusOf(context.Canceled) != context.Canceled {
		t.Error("context errors must pass through unchanged")
	}
}
