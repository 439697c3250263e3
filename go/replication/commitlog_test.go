package replication

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

func TestCommitLogOverACluster(t *testing.T) {
	nodes := cluster(t, 2, nil)
	leader, follower := NewCommitLog(nodes[0].Log), NewCommitLog(nodes[1].Log)
	ctx := ctxT(t)
	off, err := leader.Append(ctx, [][]byte{[]byte("v")})
	if err != nil || off != 0 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	first, err := leader.Append(ctx, [][]byte{[]byte("b1"), []byte("b2")})
	if err != nil || first != 1 {
		t.Fatalf("Append of 2 = %d, %v", first, err)
	}
	got, err := leader.Read(ctx, 0, commitlog.ConsistencyLinearizable)
	if err != nil || string(got) != "v" {
		t.Fatalf("Read = %q, %v", got, err)
	}
	if err := follower.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if follower.NextOffset() != 3 || follower.LowestOffset() != 0 {
		t.Fatalf("follower offsets %d-%d", follower.LowestOffset(), follower.NextOffset())
	}
	// Follower: linearizable is refused with the leader's address; a
	// follower read is served.
	_, err = follower.Read(ctx, 2, commitlog.ConsistencyLinearizable)
	var nl *commitlog.NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) || nl.LeaderAddr != nodes[0].addr || nl.LeaderID != "n0" {
		t.Fatalf("follower linearizable read: %v, want *commitlog.NotLeaderError naming n0 at %s", err, nodes[0].addr)
	}
	got, err = follower.Read(ctx, 2, commitlog.ConsistencyFollower)
	if err != nil || string(got) != "b2" {
		t.Fatalf("follower read = %q, %v", got, err)
	}
	if _, err := follower.Read(ctx, 2, commitlog.Consistency(9)); err == nil {
		t.Fatal("unknown consistency accepted")
	}
	if _, err := follower.Append(ctx, [][]byte{[]byte("v")}); !errors.As(err, &nl) || nl.LeaderAddr != nodes[0].addr {
		t.Fatalf("follower append: %v, want *commitlog.NotLeaderError", err)
	}
	// Out of range stays a go/seglog error for the server's own mapping.
	var oor *seglog.OffsetOutOfRangeError
	if _, err := leader.Read(ctx, 3, commitlog.ConsistencyLinearizable); !errors.As(err, &oor) {
		t.Fatalf("out of range: %v", err)
	}
	servers, err := follower.Servers(ctx)
	if err != nil || len(servers) != 2 {
		t.Fatalf("Servers = %v, %v", servers, err)
	}
	for _, s := range servers {
		if s.IsLeader != (s.ID == "n0") || s.Addr == "" {
			t.Fatalf("server %v", s)
		}
	}
	// Idempotent appends: a repeat is a duplicate at the original offset; a
	// refusal stays a *producer.SequenceError for the server's mapping.
	p := commitlog.Producer{ID: 42}
	for i, wantDup := range []bool{false, true} {
		a, err := leader.AppendIdempotent(ctx, p, [][]byte{[]byte("i")})
		if err != nil || a.First != 3 || a.Duplicate != wantDup {
			t.Fatalf("AppendIdempotent #%d = %+v, %v", i, a, err)
		}
	}
	var se *producer.SequenceError
	if _, err := leader.AppendIdempotent(ctx, commitlog.Producer{ID: 42, Sequence: 5}, [][]byte{{}}); !errors.As(err, &se) || se.Expected != 1 {
		t.Fatalf("out of order: %v", err)
	}
	// Stored as given.
	raw, err := nodes[1].Read(ctx, 1, ReadFollower)
	if err != nil || string(raw) != "b1" {
		t.Fatalf("stored bytes %q, %v", raw, err)
	}
}

func TestPortError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		port error
	}{
		{&commitlog.NotLeaderError{LeaderID: "n1", LeaderAddr: "a:1"}, commitlog.ErrNotLeader},
		{fmt.Errorf("x: %w", &commitlog.NotLeaderError{}), commitlog.ErrNotLeader},
		{fmt.Errorf("%w (raft)", ErrLeadershipLost), commitlog.ErrLeadershipLost},
		{ErrTimeout, commitlog.ErrUnavailable},
		{ErrClosed, commitlog.ErrUnavailable},
		{fmt.Errorf("%w: disk", ErrFailed), commitlog.ErrUnavailable},
		{ErrDiverged, commitlog.ErrUnavailable},
		{ErrNotCaughtUp, commitlog.ErrUnavailable},
		{fmt.Errorf("%w: offset 3", ErrRecordGone), commitlog.ErrUnavailable},
	} {
		err := portError(tc.err)
		if !errors.Is(err, tc.port) || !errors.Is(err, tc.err) || err.Error() != tc.err.Error() {
			t.Errorf("portError(%v) = %v, want it also %v", tc.err, err, tc.port)
		}
	}
	if portError(nil) != nil {
		t.Error("portError(nil)")
	}
	for _, plain := range []error{seglog.ErrRecordTooLarge, context.Canceled, &producer.SequenceError{Err: producer.ErrUnknownProducer}} {
		if portError(plain) != plain {
			t.Errorf("%v must pass through unchanged", plain)
		}
	}
}
