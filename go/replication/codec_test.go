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

// decodeCommand decodes a records command; the records alias b.
func decodeCommand(b []byte) (recordsCommand, error) {
	c, d, err := decodeCommandHeader(b)
	if err != nil {
		return c, err
	}
	c.recs = make([][]byte, c.count)
	for i := range c.recs {
		if c.recs[i] = d.bytes("record"); c.recs[i] == nil {
			c.recs[i] = []byte{}
		}
	}
	d.end("command")
	if d.err != nil {
		return recordsCommand{}, d.err
	}
	return c, nil
}

func TestCommandRoundTrip(t *testing.T) {
	in := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("z"), 300)}
	b := encodeRecords(1<<40, 7, Producer{}, producer.Config{}, in)
	if len(b) > commandSize(in) {
		t.Fatalf("%d bytes encoded, commandSize %d", len(b), commandSize(in))
	}
	c, err := decodeCommand(b)
	if err != nil || c.first != 1<<40 || c.term != 7 || c.count != 3 || c.p != (Producer{}) || c.lim != (producer.Config{}) {
		t.Fatalf("%+v, %v", c, err)
	}
	for i := range in {
		if !bytes.Equal(c.recs[i], in[i]) || c.recs[i] == nil {
			t.Errorf("record %d: %q", i, c.recs[i])
		}
		if r, err := commandRecord(b, uint64(i)); err != nil || !bytes.Equal(r, in[i]) || r == nil {
			t.Errorf("commandRecord(%d) = %q, %v", i, r, err)
		}
	}
	if _, err := commandRecord(b, 3); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("commandRecord past the batch: %v", err)
	}
	x := [][]byte{[]byte("x")}
	for name, b := range map[string][]byte{
		"empty":             {},
		"old layout":        {1, 1, 0},
		"retention":         encodeRetain(3),
		"zero records":      {cmdRecords, 0, 1, 0, 0},
		"count too big":     {cmdRecords, 0, 1, 0, 5, 0},
		"cut record":        {cmdRecords, 0, 1, 0, 1, 4, 'a'},
		"producer flag":     {cmdRecords, 0, 1, 2, 1, 0},
		"trailing":          append(encodeRecords(0, 1, Producer{}, producer.Config{}, x), 1),
		"producer 0":        {cmdRecords, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		"cut producer":      {cmdRecords, 0, 1, 1, 0, 0, 1},
		"offset overflow":   append(append([]byte{cmdRecords}, binary.AppendUvarint(nil, ^uint64(0))...), 1, 0, 1, 0),
		"sequence overflow": encodeRecords(0, 1, Producer{ID: 1, Sequence: ^uint64(0)}, producer.DefaultConfig(), x),
		"bad limits":        encodeRecords(0, 1, Producer{ID: 1}, producer.Config{Expiry: time.Second, EvictAfter: time.Minute, MaxProducers: 1}, x),
		"no limits":         encodeRecords(0, 1, Producer{ID: 1}, producer.Config{}, x),
	} {
		if _, err := decodeCommand(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestIdempotentCommandRoundTrip(t *testing.T) {
	in := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("z"), 300)}
	want := Producer{ID: 0xfedcba9876543210, Sequence: 1 << 40, Checksum: 0xdeadbeef}
	lim := producer.Config{Expiry: 2 * time.Hour, EvictAfter: 3 * time.Minute, MaxProducers: 7}
	b := encodeRecords(5, 2, want, lim, in)
	if len(b) > commandSize(in) {
		t.Fatalf("%d bytes encoded, commandSize %d", len(b), commandSize(in))
	}
	c, err := decodeCommand(b)
	if err != nil || c.p != want || c.lim != lim || c.first != 5 || c.term != 2 || len(c.recs) != len(in) {
		t.Fatalf("decodeCommand = %+v, %v", c, err)
	}
	for i := range in {
		if !bytes.Equal(c.recs[i], in[i]) {
			t.Errorf("record %d: %q", i, c.recs[i])
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodeRecords(3, 1, Producer{}, producer.Config{}, [][]byte{[]byte("a"), {}}))
	f.Add(encodeRecords(0, 9, Producer{ID: 3, Sequence: 9}, producer.DefaultConfig(), [][]byte{[]byte("a")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		again, err := decodeCommand(encodeRecords(c.first, c.term, c.p, c.lim, c.recs))
		if err != nil || again.p != c.p || again.lim != c.lim || again.first != c.first || again.term != c.term || len(again.recs) != len(c.recs) {
			t.Fatalf("re-encoding a decoded command: %+v %v", again, err)
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

func TestSnapshotHeaderRoundTrip(t *testing.T) {
	h := snapshotHeader{applied: 99, next: 1000, lowest: 10, firstEntry: 7, appliedTerm: 3}
	b := encodeSnapshot(h, []byte("table"))
	if len(b) != snapshotHeaderSize+tableSectionOverhead+len("table") {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := decodeSnapshotHeader(b[:snapshotHeaderSize])
	if err != nil || got != h {
		t.Fatalf("got %+v, %v", got, err)
	}
	hb := b[:snapshotHeaderSize]
	for i := range hb {
		bad := bytes.Clone(hb)
		bad[i] ^= 0x40
		if _, err := decodeSnapshotHeader(bad); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("flipped byte %d: %v", i, err)
		}
	}
	if _, err := decodeSnapshotHeader(hb[:10]); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("short header: %v", err)
	}
	for name, h := range map[string]snapshotHeader{
		"lowest past next":         {applied: 9, next: 1, lowest: 2},
		"first entry past applied": {applied: 9, next: 1, firstEntry: 10},
	} {
		if _, err := decodeSnapshotHeader(encodeSnapshot(h, nil)[:snapshotHeaderSize]); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
