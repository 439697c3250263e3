package server_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

func errorInfo(t *testing.T, err error, code codes.Code) *errdetails.ErrorInfo {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("err = %v, want %v", err, code)
	}
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			return i
		}
	}
	t.Fatalf("no ErrorInfo in %v", err)
	return nil
}

// A retried idempotent produce is answered with the original offsets and
// duplicate set, and writes nothing; refused sequences are
// FAILED_PRECONDITION with the ErrorInfo log.proto documents.
func TestIdempotentProduce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	prod := func(seq uint64) *logv1.Producer { return &logv1.Producer{Id: 0xabc, Sequence: seq} }
	batch := &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("a"), rec("b")}, Producer: prod(0)}
	for i, wantDup := range []bool{false, true, true} {
		r, err := c.ProduceBatch(ctx, batch)
		if err != nil || r.FirstOffset != 0 || r.Count != 2 || r.Duplicate != wantDup {
			t.Fatalf("ProduceBatch #%d = %v, %v; want offset 0, duplicate %v", i, r, err, wantDup)
		}
	}
	for i, wantDup := range []bool{false, true} {
		r, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("c"), Producer: prod(2)})
		if err != nil || r.Offset != 2 || r.Duplicate != wantDup {
			t.Fatalf("Produce #%d = %v, %v; want offset 2, duplicate %v", i, r, err, wantDup)
		}
	}
	if f.storage.NextOffset() != 3 {
		t.Fatalf("%d records written, want 3", f.storage.NextOffset())
	}
	if n := counter(t, f.reg, "proglog_produce_duplicates_total", map[string]string{"what": "records"}); n != 5 {
		t.Fatalf("%v duplicate records counted, want 5", n)
	}

	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("gap"), Producer: prod(7)})
	info := errorInfo(t, err, codes.FailedPrecondition)
	if info.Reason != "OUT_OF_ORDER_SEQUENCE" || info.Domain != server.ErrorDomain ||
		info.Metadata["producer_id"] != "2748" || info.Metadata["sequence"] != "7" || info.Metadata["expected"] != "3" {
		t.Fatalf("out of order: ErrorInfo %v", info)
	}
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("x")}, Producer: &logv1.Producer{Id: 5, Sequence: 4}})
	info = errorInfo(t, err, codes.FailedPrecondition)
	if info.Reason != "UNKNOWN_PRODUCER" || info.Metadata["producer_id"] != "5" || info.Metadata["sequence"] != "4" {
		t.Fatalf("unknown producer: ErrorInfo %v", info)
	}
	if f.storage.NextOffset() != 3 {
		t.Fatalf("a refused produce wrote: next offset %d", f.storage.NextOffset())
	}
	for reason, want := range map[string]float64{"OUT_OF_ORDER_SEQUENCE": 1, "UNKNOWN_PRODUCER": 1} {
		if n := counter(t, f.reg, "proglog_produce_sequence_refused_total", map[string]string{"reason": reason}); n != want {
			t.Fatalf("%s counted %v times, want %v", reason, n, want)
		}
	}

	// A sequence without a producer ID, or one that overflows, is invalid.
	for _, p := range []*logv1.Producer{{Sequence: 3}, {Id: 9, Sequence: ^uint64(0)}} {
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("x"), rec("y")}, Producer: p}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("producer %v: %v, want InvalidArgument", p, err)
		}
	}
	// A producer of ID 0 and sequence 0 is a plain produce.
	if r, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("plain"), Producer: &logv1.Producer{}}); err != nil || r.Offset != 3 || r.Duplicate {
		t.Fatalf("plain produce = %v, %v", r, err)
	}
}

// ProduceStream passes each message's producer and sequence through:
// messages resent on a new stream after their acknowledgements were lost
// get the original offsets, marked duplicate; a gap ends the stream with
// OUT_OF_ORDER_SEQUENCE.
func TestIdempotentProduceStream(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	st, err := c.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// One at a time, so that each message is its own batch.
	roundTrip := func(seq, wantOffset uint64, wantDup bool) {
		t.Helper()
		if err := st.Send(&logv1.ProduceRequest{Record: rec("r"), Producer: &logv1.Producer{Id: 77, Sequence: seq}}); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil || r.Offset != wantOffset || r.Duplicate != wantDup {
			t.Fatalf("sequence %d: %v, %v; want offset %d, duplicate %v", seq, r, err, wantOffset, wantDup)
		}
	}
	for s := range uint64(3) {
		roundTrip(s, s, false)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	if st, err = c.ProduceStream(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	roundTrip(1, 1, true)
	roundTrip(2, 2, true)
	roundTrip(3, 3, false)
	if err := st.Send(&logv1.ProduceRequest{Record: rec("gap"), Producer: &logv1.Producer{Id: 77, Sequence: 9}}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if info := errorInfo(t, err, codes.FailedPrecondition); info.Reason != "OUT_OF_ORDER_SEQUENCE" || info.Metadata["expected"] != "4" {
		t.Fatalf("gap: ErrorInfo %v", info)
	}
	if f.storage.NextOffset() != 4 {
		t.Fatalf("%d records written, want 4", f.storage.NextOffset())
	}
}

// A retry at a sequence already written with other records is refused as
// OUT_OF_ORDER_SEQUENCE, its records not dropped behind duplicate=true;
// the true retry, timestamps stamped by the server each time, still is a
// duplicate.
func TestIdempotentRetryWithOtherRecords(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	req := func(v string) *logv1.ProduceRequest {
		return &logv1.ProduceRequest{Record: rec(v), Producer: &logv1.Producer{Id: 42, Sequence: 0}}
	}
	if r, err := c.Produce(ctx, req("a")); err != nil || r.Duplicate {
		t.Fatalf("first = %v, %v", r, err)
	}
	_, err := c.Produce(ctx, req("b"))
	info := errorInfo(t, err, codes.FailedPrecondition)
	if info.Reason != "OUT_OF_ORDER_SEQUENCE" || info.Metadata["sequence"] != "0" || !strings.Contains(err.Error(), "does not match the batch written at this sequence") {
		t.Fatalf("retry with other records: %v, ErrorInfo %v", err, info)
	}
	if r, err := c.Produce(ctx, req("a")); err != nil || !r.Duplicate || r.Offset != 0 {
		t.Fatalf("true retry = %v, %v; want a duplicate at 0", r, err)
	}
	if f.storage.NextOffset() != 1 {
		t.Fatalf("next offset %d, want 1", f.storage.NextOffset())
	}
}

// A new producer refused because the table is full of active ones is
// RESOURCE_EXHAUSTED with ErrorInfo TOO_MANY_PRODUCERS and the limit.
func TestTooManyProducersIsResourceExhausted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	fail := func() error {
		return fmt.Errorf("append: %w", &producer.SequenceError{Err: producer.ErrTooManyProducers, ProducerID: 5, Limit: 3})
	}
	f.clog.fail.Store(&fail) // the fixture's hook fails plain appends: the mapping is the same
	_, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("x")})
	info := errorInfo(t, err, codes.ResourceExhausted)
	if info.Reason != "TOO_MANY_PRODUCERS" || info.Domain != server.ErrorDomain || info.Metadata["limit"] != "3" || info.Metadata["producer_id"] != "5" {
		t.Fatalf("ErrorInfo %v", info)
	}
}
