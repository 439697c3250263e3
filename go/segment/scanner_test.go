package segment

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestScanner(t *testing.T) {
	recs := records(5, 40)
	recs[7] = rec(12, 3*scannerChunk) // larger than the read chunk
	s := mustCreate(t, t.TempDir(), 5, Config{MaxStoreBytes: 1 << 22, MaxIndexBytes: 4096})
	defer s.Close()
	mustAppend(t, s, recs)
	tests := []struct{ from, to uint64 }{{5, 45}, {5, 5}, {6, 13}, {12, 13}, {44, 45}, {20, 45}}
	for _, tt := range tests {
		sc, err := s.NewScanner(tt.from, tt.to)
		if err != nil {
			t.Fatal(err)
		}
		for off := tt.from; off < tt.to; off++ {
			got, framed, err := sc.Next()
			if err != nil || got != off {
				t.Fatalf("[%d,%d): Next = %d, %v; want %d", tt.from, tt.to, got, err, off)
			}
			want := recs[off-5]
			if n := enc.Uint32(framed); int(n) != len(want) || !bytes.Equal(framed[RecordHeaderSize:], want) {
				t.Fatalf("[%d,%d): record %d differs", tt.from, tt.to, off)
			}
			if enc.Uint32(framed[4:]) != RecordCRC(want) {
				t.Fatalf("framed CRC of %d wrong", off)
			}
		}
		if _, _, err := sc.Next(); err != io.EOF {
			t.Fatalf("[%d,%d): Next at end = %v, want io.EOF", tt.from, tt.to, err)
		}
	}
	for _, bad := range []struct{ from, to uint64 }{{4, 10}, {10, 9}, {5, 46}} {
		if _, err := s.NewScanner(bad.from, bad.to); !errors.Is(err, ErrNotFound) {
			t.Errorf("NewScanner(%d, %d) = %v, want ErrNotFound", bad.from, bad.to, err)
		}
	}
}

func TestScannerCorruption(t *testing.T) {
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, testConfig())
	defer s.Close()
	recs := records(0, 5)
	mustAppend(t, s, recs)
	pos := positions(recs)
	flipBit(t, s.StorePath(), pos[2]+RecordHeaderSize)
	sc, err := s.NewScanner(0, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, _, err := sc.Next(); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = sc.Next()
	if ce := asCorruption(t, err); ce.Position != pos[2] {
		t.Fatalf("corruption at %d, want %d", ce.Position, pos[2])
	}
}
