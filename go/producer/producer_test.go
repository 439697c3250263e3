package producer

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func mustAppend(t *testing.T, tb *Table, id, seq, n, off uint64) {
	t.Helper()
	if _, dup, err := tb.Check(id, seq, n); err != nil || dup {
		t.Fatalf("Check(%x, %d, %d) = dup %v, %v; want append", id, seq, n, dup, err)
	}
	tb.Record(id, seq, n, off)
}

func TestDecisions(t *testing.T) {
	tb := New(DefaultConfig())
	tb.Advance(t0)
	var se *SequenceError
	if _, _, err := tb.Check(7, 3, 1); !errors.Is(err, ErrUnknownProducer) || !errors.As(err, &se) || se.Sequence != 3 || se.ProducerID != 7 {
		t.Fatalf("unknown producer at sequence 3: %v", err)
	}
	mustAppend(t, tb, 7, 0, 2, 100)
	mustAppend(t, tb, 7, 2, 3, 110)
	if off, dup, err := tb.Check(7, 0, 2); err != nil || !dup || off != 100 {
		t.Fatalf("retry of the first batch = %d, %v, %v; want duplicate at 100", off, dup, err)
	}
	if off, dup, err := tb.Check(7, 2, 3); err != nil || !dup || off != 110 {
		t.Fatalf("retry of the last batch = %d, %v, %v; want duplicate at 110", off, dup, err)
	}
	for _, c := range []struct{ seq, n uint64 }{{6, 1}, {2, 2}, {1, 1}} {
		_, _, err := tb.Check(7, c.seq, c.n)
		if !errors.Is(err, ErrOutOfOrderSequence) || !errors.As(err, &se) || se.Expected != 5 {
			t.Fatalf("Check(seq %d, n %d) = %v; want out of order, expected 5", c.seq, c.n, err)
		}
	}
	// Only the BatchesKept most recent batches are recognised.
	for i := range uint64(BatchesKept) {
		mustAppend(t, tb, 7, 5+i, 1, 200+i)
	}
	if _, _, err := tb.Check(7, 2, 3); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("retry of a batch no longer kept = %v; want out of order", err)
	}
	if off, dup, _ := tb.Check(7, 5, 1); !dup || off != 200 {
		t.Fatalf("oldest kept batch = %d, %v", off, dup)
	}
}

func TestExpiryByAdvanceOnly(t *testing.T) {
	cfg := Config{Expiry: time.Hour, MaxProducers: 10}
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
	if _, _, err := tb.Check(1, 1, 1); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("producer idle past the expiry: %v, want unknown", err)
	}
	if _, _, err := tb.Check(2, 1, 1); err != nil {
		t.Fatalf("producer 2 should be kept: %v", err)
	}
	// A duplicate is activity.
	tb.Advance(t0.Add(80 * time.Minute))
	if _, dup, _ := tb.Check(2, 0, 1); !dup {
		t.Fatal("want a duplicate")
	}
	tb.Advance(t0.Add(2*time.Hour + time.Minute))
	if tb.Len() != 1 {
		t.Fatalf("producer 2 active at 80m expired at 121m")
	}
}

func TestEvictionLongestIdleThenSmallestID(t *testing.T) {
	tb := New(Config{Expiry: time.Hour, MaxProducers: 3})
	tb.Advance(t0)
	mustAppend(t, tb, 9, 0, 1, 0)
	mustAppend(t, tb, 5, 0, 1, 1) // same time as 9: 5 goes first
	tb.Advance(t0.Add(time.Second))
	mustAppend(t, tb, 1, 0, 1, 2)
	mustAppend(t, tb, 2, 0, 1, 3)
	if _, _, err := tb.Check(5, 1, 1); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("producer 5 should have been evicted: %v", err)
	}
	mustAppend(t, tb, 3, 0, 1, 4)
	if _, _, err := tb.Check(9, 1, 1); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("producer 9 should have been evicted: %v", err)
	}
	if tb.Len() != 3 {
		t.Fatalf("Len %d, want 3", tb.Len())
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	cfg := Config{Expiry: time.Hour, MaxProducers: 100}
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
	got, err := Decode(cfg, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), enc) {
		t.Fatal("decode-encode differs")
	}
	// Decoding into a smaller limit evicts the longest idle.
	small, err := Decode(Config{Expiry: time.Hour, MaxProducers: 5}, enc)
	if err != nil || small.Len() != 5 {
		t.Fatalf("Decode with MaxProducers 5: %d producers, %v", small.Len(), err)
	}
	if _, _, err := small.Check(1, 1, 1); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("oldest producer kept: %v", err)
	}
	for _, b := range [][]byte{nil, enc[:HeaderSize-1], enc[:len(enc)-1], append(enc[:len(enc):len(enc)], 0), append([]byte{2}, enc[1:]...)} {
		if _, err := Decode(cfg, b); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("Decode(%d bytes) = %v, want ErrBadEncoding", len(b), err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	tb := New(DefaultConfig())
	tb.Advance(t0)
	tb.Record(1, 0, 3, 10)
	tb.Record(1, 3, 1, 20)
	tb.Record(2, 0, 1, 30)
	f.Add(tb.Encode())
	f.Add(New(DefaultConfig()).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(DefaultConfig(), b)
		if err != nil {
			return
		}
		again, err := Decode(DefaultConfig(), got.Encode())
		if err != nil || !bytes.Equal(again.Encode(), got.Encode()) {
			t.Fatalf("re-encoding a decoded table: %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{{Expiry: 0, MaxProducers: 1}, {Expiry: time.Second}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}
