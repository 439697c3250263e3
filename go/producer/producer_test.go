package producer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func mustAppend(t *testing.T, tb *Table, id, seq, n, off uint64) {
	t.Helper()
	if _, dup, err := tb.Check(id, seq, n, Sum{}); err != nil || dup {
		t.Fatalf("Check(%x, %d, %d) = dup %v, %v; want append", id, seq, n, dup, err)
	}
	tb.Record(id, seq, n, Sum{}, off)
}

func TestDecisions(t *testing.T) {
	tb := New(DefaultConfig())
	tb.Advance(t0)
	var se *SequenceError
	if _, _, err := tb.Check(7, 3, 1, Sum{}); !errors.Is(err, ErrUnknownProducer) || !errors.As(err, &se) || se.Sequence != 3 || se.ProducerID != 7 {
		t.Fatalf("unknown producer at sequence 3: %v", err)
	}
	mustAppend(t, tb, 7, 0, 2, 100)
	mustAppend(t, tb, 7, 2, 3, 110)
	if off, dup, err := tb.Check(7, 0, 2, Sum{}); err != nil || !dup || off != 100 {
		t.Fatalf("retry of the first batch = %d, %v, %v; want duplicate at 100", off, dup, err)
	}
	if off, dup, err := tb.Check(7, 2, 3, Sum{}); err != nil || !dup || off != 110 {
		t.Fatalf("retry of the last batch = %d, %v, %v; want duplicate at 110", off, dup, err)
	}
	for _, c := range []struct{ seq, n uint64 }{{6, 1}, {2, 2}, {1, 1}} {
		_, _, err := tb.Check(7, c.seq, c.n, Sum{})
		if !errors.Is(err, ErrOutOfOrderSequence) || !errors.As(err, &se) || se.Expected != 5 {
			t.Fatalf("Check(seq %d, n %d) = %v; want out of order, expected 5", c.seq, c.n, err)
		}
	}
	// Only the BatchesKept most recent batches are recognised.
	for i := range uint64(BatchesKept) {
		mustAppend(t, tb, 7, 5+i, 1, 200+i)
	}
	if _, _, err := tb.Check(7, 2, 3, Sum{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("retry of a batch no longer kept = %v; want out of order", err)
	}
	if off, dup, _ := tb.Check(7, 5, 1, Sum{}); !dup || off != 200 {
		t.Fatalf("oldest kept batch = %d, %v", off, dup)
	}
}

func TestExpiryByAdvanceOnly(t *testing.T) {
	cfg := Config{Expiry: time.Hour, MaxProducers: 10, EvictAfter: time.Minute}
	tb := New(cfg)
	tb.Advance(t0)
	mustAppend(t, tb, 1, 0, 1, 0)
	tb.Advance(t0.Add(30 * time.Minute))
	mustAppend(t, tb, 2, 0, 1, 1)
	tb.Advance(t0.Add(-time.Hour)) // a clock going back changes nothing
	tb.Advance(t0.Add(time.Hour))  // exactly the expiry: still kept
	if tb.Len() != 2 {
		t.Fatalf("%d producers at the expiry, want 2", tb.Len())
	}
	tb.Advance(t0.Add(time.Hour + 1))
	if _, _, err := tb.Check(1, 1, 1, Sum{}); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("producer idle past the expiry: %v, want unknown", err)
	}
	if _, _, err := tb.Check(2, 1, 1, Sum{}); err != nil {
		t.Fatalf("producer 2 should be kept: %v", err)
	}
	// A duplicate is activity.
	tb.Advance(t0.Add(80 * time.Minute))
	if _, dup, _ := tb.Check(2, 0, 1, Sum{}); !dup {
		t.Fatal("want a duplicate")
	}
	tb.Advance(t0.Add(2*time.Hour + time.Minute))
	if tb.Len() != 1 {
		t.Fatalf("producer 2 active at 80m expired at 121m")
	}
}

func TestEvictionLongestIdleThenSmallestID(t *testing.T) {
	tb := New(Config{Expiry: time.Hour, MaxProducers: 3, EvictAfter: time.Second / 2})
	tb.Advance(t0)
	mustAppend(t, tb, 9, 0, 1, 0)
	mustAppend(t, tb, 5, 0, 1, 1) // same time as 9: 5 goes first
	tb.Advance(t0.Add(time.Second))
	mustAppend(t, tb, 1, 0, 1, 2)
	mustAppend(t, tb, 2, 0, 1, 3)
	if _, _, err := tb.Check(5, 1, 1, Sum{}); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("producer 5 should have been evicted: %v", err)
	}
	mustAppend(t, tb, 3, 0, 1, 4)
	if _, _, err := tb.Check(9, 1, 1, Sum{}); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("producer 9 should have been evicted: %v", err)
	}
	if tb.Len() != 3 {
		t.Fatalf("Len %d, want 3", tb.Len())
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	cfg := Config{Expiry: time.Hour, MaxProducers: 100, EvictAfter: time.Minute}
	tb := New(cfg)
	for i := range uint64(20) {
		tb.Advance(t0.Add(time.Duration(i) * time.Second))
		mustAppend(t, tb, i*7+1, 0, i+1, i*100)
		for j := range i % 8 {
			mustAppend(t, tb, i*7+1, i+1+j, 1, i*100+50+j)
		}
	}
	enc := tb.Encode()
	if len(enc) > HeaderSize+tb.Len()*MaxEncodedPerProducer {
		t.Fatalf("%d bytes for %d producers, above the documented bound", len(enc), tb.Len())
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), enc) {
		t.Fatal("decode-encode differs")
	}
	if got.Limits() != cfg {
		t.Fatalf("decoded limits %+v, want %+v", got.Limits(), cfg)
	}
	badLimits := bytes.Clone(enc)
	badLimits[28] = 0 // MaxProducers 0
	for _, b := range [][]byte{nil, enc[:HeaderSize-1], enc[:len(enc)-1], append(enc[:len(enc):len(enc)], 0), append([]byte{3}, enc[1:]...), badLimits} {
		if _, err := Decode(b); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("Decode(%d bytes) = %v, want ErrBadEncoding", len(b), err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	tb := New(DefaultConfig())
	tb.Advance(t0)
	tb.Record(1, 0, 3, Sum{}, 10)
	tb.Record(1, 3, 1, Sum{}, 20)
	tb.Record(2, 0, 1, Sum{}, 30)
	f.Add(tb.Encode())
	f.Add(New(DefaultConfig()).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(got.Encode())
		if err != nil || !bytes.Equal(again.Encode(), got.Encode()) {
			t.Fatalf("re-encoding a decoded table: %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Expiry: 0, MaxProducers: 1, EvictAfter: time.Second},
		{Expiry: time.Second, EvictAfter: time.Second},
		{Expiry: time.Second, MaxProducers: MaxMaxProducers + 1, EvictAfter: time.Second},
		{Expiry: time.Second, MaxProducers: 1},
		{Expiry: time.Second, MaxProducers: 1, EvictAfter: time.Minute}, // expiry below the window
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}

// A producer active within EvictAfter is never evicted: a new producer is
// refused instead, so a retry of any of its batches, even its first,
// stays a duplicate.
func TestEvictionOnlyPastWindow(t *testing.T) {
	tb := New(Config{Expiry: time.Hour, MaxProducers: 1, EvictAfter: 5 * time.Minute})
	tb.Advance(t0)
	mustAppend(t, tb, 0xA, 0, 1, 0)
	tb.Advance(t0.Add(5 * time.Minute)) // idle exactly the window: protected
	var se *SequenceError
	if _, _, err := tb.Check(0xB, 0, 1, Sum{}); !errors.Is(err, ErrTooManyProducers) || !errors.As(err, &se) || se.Limit != 1 || se.ProducerID != 0xB {
		t.Fatalf("new producer with a full table of active ones = %v; want ErrTooManyProducers, limit 1", err)
	}
	if off, dup, err := tb.Check(0xA, 0, 1, Sum{}); err != nil || !dup || off != 0 {
		t.Fatalf("retry of A's first batch = %d, %v, %v; want a duplicate at 0", off, dup, err)
	}
	// The retry was activity: A is protected for another window.
	tb.Advance(t0.Add(10 * time.Minute))
	if _, _, err := tb.Check(0xB, 0, 1, Sum{}); !errors.Is(err, ErrTooManyProducers) {
		t.Fatalf("A was active 5m ago: %v; want ErrTooManyProducers", err)
	}
	tb.Advance(t0.Add(10*time.Minute + 1))
	mustAppend(t, tb, 0xB, 0, 1, 1)
	if tb.Len() != 1 {
		t.Fatalf("Len %d, want 1", tb.Len())
	}
	if _, _, err := tb.Check(0xA, 1, 1, Sum{}); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("A idle past the window should have been evicted: %v", err)
	}
}

// Lowering MaxProducers (SetLimits) evicts as many idle producers as
// needed, and refuses a new one while too few are idle.
func TestSetLimitsLowerMax(t *testing.T) {
	tb := New(Config{Expiry: time.Hour, MaxProducers: 3, EvictAfter: time.Minute})
	tb.Advance(t0)
	mustAppend(t, tb, 1, 0, 1, 0)
	mustAppend(t, tb, 2, 0, 1, 1)
	tb.Advance(t0.Add(2 * time.Minute))
	mustAppend(t, tb, 3, 0, 1, 2)
	lower := Config{Expiry: time.Hour, MaxProducers: 1, EvictAfter: time.Minute}
	tb.SetLimits(lower)
	if tb.Limits() != lower {
		t.Fatalf("Limits %+v, want %+v", tb.Limits(), lower)
	}
	// 1 and 2 are idle, 3 is not: 3 would remain, above the new limit.
	if _, _, err := tb.Check(4, 0, 1, Sum{}); !errors.Is(err, ErrTooManyProducers) {
		t.Fatalf("Check = %v; want ErrTooManyProducers", err)
	}
	tb.Advance(t0.Add(3*time.Minute + 1))
	mustAppend(t, tb, 4, 0, 1, 3)
	if tb.Len() != 1 {
		t.Fatalf("Len %d, want 1", tb.Len())
	}
}

// A retry with the sequence and count of a retained batch but other
// records is refused, not answered as a duplicate.
func TestRetryWithOtherRecords(t *testing.T) {
	tb := New(DefaultConfig())
	tb.Advance(t0)
	a, b := Sum{Checksum([][]byte{[]byte("a"), []byte("b")}), true}, Sum{Checksum([][]byte{[]byte("a"), []byte("c")}), true}
	if a == b || Checksum([][]byte{[]byte("ab")}) == Checksum([][]byte{[]byte("a"), []byte("b")}) {
		t.Fatal("Checksum does not tell the batches apart")
	}
	if _, dup, err := tb.Check(7, 0, 2, a); err != nil || dup {
		t.Fatalf("first batch: %v, %v", dup, err)
	}
	tb.Record(7, 0, 2, a, 100)
	var se *SequenceError
	if _, dup, err := tb.Check(7, 0, 2, b); dup || !errors.Is(err, ErrOutOfOrderSequence) || !errors.As(err, &se) || !se.Mismatch {
		t.Fatalf("retry with other records = dup %v, %v; want OUT_OF_ORDER_SEQUENCE (mismatch)", dup, err)
	}
	if !strings.Contains(se.Error(), "does not match the batch written at this sequence") {
		t.Fatalf("message %q", se.Error())
	}
	if off, dup, err := tb.Check(7, 0, 2, a); err != nil || !dup || off != 100 {
		t.Fatalf("true retry = %d, %v, %v; want duplicate at 100", off, dup, err)
	}
}

// A version 1 table (no limits, no checksums) decodes with the default
// limits, and its batches match a retry on the count alone.
func TestDecodeV1(t *testing.T) {
	b := []byte{encodingV1}
	b = binary.BigEndian.AppendUint64(b, uint64(t0.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint64(b, 7)
	b = binary.BigEndian.AppendUint64(b, uint64(t0.UnixNano()))
	b = append(b, 1)
	for _, v := range []uint64{0, 2, 100} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	tb, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Limits() != DefaultConfig() {
		t.Fatalf("limits %+v, want the defaults", tb.Limits())
	}
	if off, dup, err := tb.Check(7, 0, 2, Sum{12345, true}); err != nil || !dup || off != 100 {
		t.Fatalf("retry of a version 1 batch = %d, %v, %v; want duplicate at 100", off, dup, err)
	}
	if _, _, err := tb.Check(7, 0, 1, Sum{12345, true}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("other count: %v", err)
	}
	again, err := Decode(tb.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, dup, _ := again.Check(7, 0, 2, Sum{999, true}); !dup {
		t.Fatal("re-encoded version 1 batch lost its no-checksum mark")
	}
}
