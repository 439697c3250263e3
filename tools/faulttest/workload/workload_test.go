package workload

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
	logv1 "github.com/proglog/proglog/proto/log/v1"
	"github.com/proglog/proglog/tools/faulttest/history"
)

// A produce refused for a full disk (RESOURCE_EXHAUSTED, LOW_DISK_SPACE)
// proves nothing was written: refused, not ambiguous. Other failures
// without such proof stay ambiguous.
func TestClassifyLowDiskSpace(t *testing.T) {
	lowDisk, err := status.New(codes.ResourceExhausted, "the server's disk is nearly full").
		WithDetails(&errdetails.ErrorInfo{Reason: "LOW_DISK_SPACE", Domain: "proglog"})
	if err != nil {
		t.Fatal(err)
	}
	w := &Workload{}
	for _, tc := range []struct {
		name string
		err  error
		want history.Outcome
	}{
		{"low disk space", lowDisk.Err(), history.Failed},
		{"resource exhausted without a reason", status.Error(codes.ResourceExhausted, "busy"), history.Unknown},
		{"internal", status.Error(codes.Internal, "internal error"), history.Unknown},
		{"not a status", errors.New("connection reset"), history.Unknown},
	} {
		if got, _ := w.classify(tc.err, nil); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func refusal(t *testing.T, code codes.Code, reason string) error {
	t.Helper()
	st, err := status.New(code, strings.ToLower(reason)).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "proglog"})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// resolve resends an append that failed ambiguously, with the same
// producer and sequence, until it is acknowledged; the history gets one
// operation. Refusals that prove nothing was written end it at once.
func TestResolveResendsAmbiguousAppends(t *testing.T) {
	unavailable := attempt{node: "n1", err: status.Error(codes.Unavailable, "leadership lost"), outcome: history.Unknown}
	notLeader := attempt{node: "n2", err: refusal(t, codes.FailedPrecondition, "NOT_LEADER"), outcome: history.Failed}
	unknownProducer := attempt{node: "n3", err: refusal(t, codes.FailedPrecondition, reasonUnknownProducer), outcome: history.Failed}
	outOfOrder := attempt{node: "n3", err: refusal(t, codes.FailedPrecondition, reasonOutOfOrder), outcome: history.Failed}
	acked := attempt{node: "n3", first: 7, duplicate: true}
	for _, tc := range []struct {
		name     string
		mode     ProduceMode
		attempts []attempt
		runEnds  bool // backoff reports the end of the run

		want        history.Outcome
		sends       int
		newProducer bool   // the producer was restarted
		sequences   []int  // the sequence each attempt carried (-1: no producer)
		next        uint64 // the producer's next sequence after (from 5, or 0 if restarted)
	}{
		{"resent until acknowledged", Idempotent, []attempt{unavailable, notLeader, acked}, false, history.OK, 3, false, []int{5, 5, 5}, 7},
		{"refused at once: nothing written", Idempotent, []attempt{notLeader}, false, history.Failed, 1, false, []int{5}, 5},
		{"run ends while resending", Idempotent, []attempt{unavailable}, true, history.Unknown, 1, false, []int{5}, 5},
		{"forgotten producer, never written: a new one sends", Idempotent, []attempt{unknownProducer, acked}, false, history.OK, 2, true, []int{5, 0}, 2},
		{"forgotten producer after an ambiguous attempt", Idempotent, []attempt{unavailable, unknownProducer}, false, history.Unknown, 2, true, []int{5, 5}, 0},
		{"out of order", Idempotent, []attempt{outOfOrder}, false, history.Failed, 1, true, []int{5}, 0},
		{"once: never resent", Once, []attempt{unavailable}, false, history.Unknown, 1, false, []int{-1}, 5},
		{"retry without producer ID", RetryWithoutID, []attempt{unavailable, acked}, false, history.OK, 2, false, []int{-1, -1}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Workload{cfg: Config{Mode: tc.mode}}
			rng := rand.New(rand.NewPCG(1, 2))
			p := &producer{id: 42, next: 5}
			op := history.Op{Kind: history.Append, Values: []string{"a", "b"}}
			var sequences []int
			ids := map[uint64]bool{}
			w.resolve(&op, p, rng, func(pr *logv1.Producer) attempt {
				if pr == nil {
					sequences = append(sequences, -1)
				} else {
					sequences = append(sequences, int(pr.Sequence))
					ids[pr.Id] = true
				}
				a := tc.attempts[0]
				tc.attempts = tc.attempts[1:]
				return a
			}, func() bool { return !tc.runEnds })
			if op.Outcome != tc.want || op.Attempts != tc.sends || fmt.Sprint(sequences) != fmt.Sprint(tc.sequences) {
				t.Errorf("outcome %v after %d sends with sequences %v, want %v after %d with %v (err %q)",
					op.Outcome, op.Attempts, sequences, tc.want, tc.sends, tc.sequences, op.Err)
			}
			if restarted := p.id != 42; restarted != tc.newProducer || p.next != tc.next || p.id == 0 {
				t.Errorf("producer id %d next %d, want restarted %v next %d", p.id, p.next, tc.newProducer, tc.next)
			}
			if ids[0] {
				t.Error("producer ID 0 sent (means not idempotent)")
			}
			if tc.want == history.OK && (op.Offset != 7 || !op.Duplicate || op.Err != "") {
				t.Errorf("acknowledged op: offset %d duplicate %v err %q, want 7, true, none", op.Offset, op.Duplicate, op.Err)
			}
		})
	}
}

func TestGroupConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		change func(*GroupConfig)
		want   string
	}{
		{func(*GroupConfig) {}, ""},
		{func(c *GroupConfig) { c.Topic = "" }, "workload: a group needs a Group and a Topic name"},
		{func(c *GroupConfig) { c.Partitions = 0 }, "workload: group topic of 0 partitions, want at least 1"},
		{func(c *GroupConfig) { c.Members = 0 }, "workload: group of 0 members, want at least 1"},
		{func(c *GroupConfig) { c.SessionTimeout = 500 * time.Millisecond }, "workload: group SessionTimeout 500ms, want 1s to 5m0s"},
		{func(c *GroupConfig) { c.AutoCommit = 0 }, "workload: group AutoCommit 0s, want > 0"},
		{func(c *GroupConfig) { c.ChurnInterval = -time.Second }, "workload: group ChurnInterval -1s, must not be negative"},
	} {
		c := DefaultGroupConfig()
		tc.change(&c)
		if err := c.Validate(); fmt.Sprint(err) != tc.want && !(err == nil && tc.want == "") {
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		}
	}
}

// The group is drained when every partition of its topic is committed at
// its end: not before, and not by another topic's offsets.
func TestGroupDrained(t *testing.T) {
	tp := func(topic string, p uint32, off uint64) client.PartitionOffset {
		return client.PartitionOffset{TopicPartition: client.TopicPartition{Topic: topic, Partition: p}, Offset: off, Committed: true}
	}
	ends := []uint64{5, 7}
	for _, tc := range []struct {
		offs []client.PartitionOffset
		want bool
	}{
		{[]client.PartitionOffset{tp("g", 0, 5), tp("g", 1, 7)}, true},
		{[]client.PartitionOffset{tp("g", 0, 5), tp("g", 1, 6)}, false},
		{[]client.PartitionOffset{tp("g", 0, 5), tp("h", 1, 7)}, false},
		{[]client.PartitionOffset{tp("g", 0, 5)}, false},
		{[]client.PartitionOffset{tp("g", 0, 5), {TopicPartition: client.TopicPartition{Topic: "g", Partition: 1}, Offset: 7}}, false},
	} {
		if got := drained(tc.offs, "g", ends); got != tc.want {
			t.Errorf("drained(%v) = %v, want %v", tc.offs, got, tc.want)
		}
	}
}
