package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
)

func TestEntryRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, in := range []raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("data"), Extensions: []byte("ext"), AppendedAt: at},
		{Index: 1 << 40, Term: 7, Type: raft.LogConfiguration},
		{Index: 3, Term: 2, Type: raft.LogNoop, Data: []byte{}},
	} {
		var out raft.Log
		if err := decodeEntry(encodeEntry(&in), &out); err != nil {
			t.Fatalf("%+v: %v", in, err)
		}
		if out.Index != in.Index || out.Term != in.Term || out.Type != in.Type ||
			!bytes.Equal(out.Data, in.Data) || !bytes.Equal(out.Extensions, in.Extensions) || !out.AppendedAt.Equal(in.AppendedAt) {
			t.Errorf("round trip: %+v -> %+v", in, out)
		}
		if in.AppendedAt.IsZero() != out.AppendedAt.IsZero() {
			t.Errorf("zero time not preserved: %v", out.AppendedAt)
		}
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := encodeEntry(&raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("hello")})
	cases := map[string][]byte{
		"empty":         {},
		"wrong version": append([]byte{9}, good[1:]...),
		"trailing":      append(bytes.Clone(good), 0),
	}
	for n := 1; n < len(good); n++ {
		cases[fmt.Sprintf("cut at %d", n)] = good[:n]
	}
	for name, b := range cases {
		var out raft.Log
		if err := decodeEntry(b, &out); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	in := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("z"), 300)}
	c, err := decodeCommand(encodeAppend(in))
	out := c.recs
	if err != nil || c.p != (Producer{}) || c.lim != (producer.Config{}) {
		t.Fatal(c.p, c.lim, err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d records, want %d", len(out), len(in))
	}
	for i := range in {
		if !bytes.Equal(out[i], in[i]) || out[i] == nil {
			t.Errorf("record %d: %q", i, out[i])
		}
	}
	for name, b := range map[string][]byte{
		"empty":         {},
		"unknown type":  {2, 1, 0},
		"zero records":  {cmdAppend, 0},
		"count too big": {cmdAppend, 5, 0},
		"cut record":    {cmdAppend, 1, 4, 'a'},
		"trailing":      append(encodeAppend([][]byte{[]byte("x")}), 1),
		"producer 0":    {cmdAppendIdempotent, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		"cut producer":  {cmdAppendIdempotent, 0, 0, 1},
		"overflow":      append([]byte{cmdAppendIdempotent, 0, 0, 0, 0, 0, 0, 0, 1}, append(binary.AppendUvarint(nil, ^uint64(0)), 1, 0)...),
		"idem trailing": append(encodeAppendAs(Producer{ID: 1}, producer.DefaultConfig(), [][]byte{[]byte("x")}), 1),
		"bad limits":    encodeAppendAs(Producer{ID: 1}, producer.Config{Expiry: time.Second, EvictAfter: time.Minute, MaxProducers: 1}, [][]byte{[]byte("x")}),
		"no limits":     encodeAppendAs(Producer{ID: 1}, producer.Config{}, [][]byte{[]byte("x")}),
		"cut limits":    {cmdAppendLimited, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
	} {
		if _, err := decodeCommand(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestIdempotentCommandRoundTrip(t *testing.T) {
	in := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("z"), 300)}
	want := Producer{ID: 0xfedcba9876543210, Sequence: 1 << 40}
	lim := producer.Config{Expiry: 2 * time.Hour, EvictAfter: 3 * time.Minute, MaxProducers: 7}
	b := encodeAppendAs(want, lim, in)
	if b[0] != cmdAppendLimited {
		t.Fatalf("command type %d", b[0])
	}
	c, err := decodeCommand(b)
	if err != nil || c.p != want || c.lim != lim || len(c.recs) != len(in) {
		t.Fatalf("decodeCommand = %d records, %+v, %+v, %v", len(c.recs), c.p, c.lim, err)
	}
	for i := range in {
		if !bytes.Equal(c.recs[i], in[i]) {
			t.Errorf("record %d: %q", i, c.recs[i])
		}
	}
	// A command written before the limits were replicated still decodes,
	// without limits.
	old, err := decodeCommand(encodeAppendV3(want, in))
	if err != nil || old.p != want || old.lim != (producer.Config{}) || len(old.recs) != len(in) {
		t.Fatalf("version 3 command = %d records, %+v, %+v, %v", len(old.recs), old.p, old.lim, err)
	}
}

// encodeAppendV3 encodes an idempotent append as written before the
// limits were replicated (cmdAppendIdempotent).
func encodeAppendV3(p Producer, records [][]byte) []byte {
	b := binary.BigEndian.AppendUint64([]byte{cmdAppendIdempotent}, p.ID)
	b = binary.AppendUvarint(b, p.Sequence)
	b = binary.AppendUvarint(b, uint64(len(records)))
	for _, r := range records {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodeAppend([][]byte{[]byte("a"), {}}))
	f.Add(encodeAppendAs(Producer{ID: 3, Sequence: 9}, producer.DefaultConfig(), [][]byte{[]byte("a")}))
	f.Add(encodeAppendV3(Producer{ID: 3, Sequence: 9}, [][]byte{[]byte("a")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		lim := c.lim
		if c.p.ID != 0 && lim == (producer.Config{}) {
			lim = producer.DefaultConfig()
		}
		again, err := decodeCommand(encodeAppendAs(c.p, lim, c.recs))
		if err != nil || again.p != c.p || len(again.recs) != len(c.recs) || (c.p.ID != 0 && again.lim != lim) {
			t.Fatalf("re-encoding a decoded command: %+v %v", again.p, err)
		}
	})
}

func TestTableSection(t *testing.T) {
	table := []byte("some table bytes")
	b := appendTableSection(nil, table)
	if len(b) != len(table)+tableSectionOverhead {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := readTableSection(bytes.NewReader(b))
	if err != nil || !bytes.Equal(got, table) {
		t.Fatalf("readTableSection = %q, %v", got, err)
	}
	// Refused from its length alone, before anything is read or allocated.
	huge := binary.BigEndian.AppendUint32(nil, producer.MaxEncodedSize+1)
	if _, err := readTableSection(bytes.NewReader(huge)); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("over the limit: %v", err)
	}
	bad := bytes.Clone(b)
	bad[6]++
	if _, err := readTableSection(bytes.NewReader(bad)); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("corrupt: %v", err)
	}
	if _, err := readTableSection(bytes.NewReader(b[:10])); err == nil {
		t.Fatal("truncated section read")
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := envelope{index: 42, term: 7, pos: 2, count: 3}
	b := encodeEnvelope(e, []byte("payload"))
	if len(b) > maxEnvelopeOverhead+len("payload") {
		t.Fatalf("envelope overhead %d > %d", len(b)-7, maxEnvelopeOverhead)
	}
	got, p, err := decodeEnvelope(b)
	if err != nil || got != e || string(p) != "payload" {
		t.Fatalf("got %+v %q %v", got, p, err)
	}
	max := envelope{index: ^uint64(0), term: ^uint64(0), pos: ^uint64(0) - 1, count: ^uint64(0)}
	if n := len(encodeEnvelope(max, nil)); n != maxEnvelopeOverhead {
		t.Fatalf("largest envelope %d bytes, maxEnvelopeOverhead %d", n, maxEnvelopeOverhead)
	}
	// Version 1, written before envelopes held the term: term unknown (0).
	got, p, err = decodeEnvelope([]byte{envelopeV1, 42, 2, 3, 'p'})
	if err != nil || got != (envelope{index: 42, pos: 2, count: 3}) || string(p) != "p" {
		t.Fatalf("version 1: got %+v %q %v", got, p, err)
	}
	for name, b := range map[string][]byte{
		"empty":         {},
		"version":       {3, 1, 0, 0, 1},
		"pos >= count":  encodeEnvelope(envelope{index: 1, pos: 3, count: 3}, nil),
		"zero count":    encodeEnvelope(envelope{index: 1}, nil),
		"cut varint":    {envelopeVersion, 0x80},
		"missing count": {envelopeVersion, 1, 1, 0},
		"v1 cut":        {envelopeV1, 1, 0},
	} {
		if _, _, err := decodeEnvelope(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestSnapshotHeaderRoundTrip(t *testing.T) {
	h := snapshotHeader{applied: 99, lastCommand: 97, table: true}
	b := encodeSnapshotHeader(h, nil)[:snapshotHeaderSize]
	got, err := decodeSnapshotHeader(b)
	if err != nil || got != h {
		t.Fatalf("got %+v, %v", got, err)
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		if _, err := decodeSnapshotHeader(bad); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("flipped byte %d: %v", i, err)
		}
	}
	if _, err := decodeSnapshotHeader(b[:10]); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("short header: %v", err)
	}
	// Version 1, from before producer tables, still decodes, without one.
	v1 := encodeHeader(h, snapshotV1, snapshotHeaderSize)
	if got, err := decodeSnapshotHeader(v1); err != nil || got.table || got.applied != 99 {
		t.Fatalf("version 1: %+v, %v", got, err)
	}
}
