package replication

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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
	out, err := decodeCommand(encodeAppend(in))
	if err != nil {
		t.Fatal(err)
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
	} {
		if _, err := decodeCommand(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
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
	h := snapshotHeader{applied: 99, lastCommand: 97}
	b := encodeSnapshotHeader(h)
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
}
