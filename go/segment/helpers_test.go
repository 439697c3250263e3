package segment

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// testConfig returns a small segment configuration.
func testConfig() Config {
	return Config{MaxStoreBytes: 1 << 16, MaxIndexBytes: FileHeaderSize + 64*IndexEntryWidth, MaxRecordBytes: 4096}
}

// rec returns deterministic test data for offset off with length n.
func rec(off uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(off*31 + uint64(i)*7 + 1)
	}
	return b
}

// records returns n records of varying lengths for offsets from base on.
func records(base uint64, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = rec(base+uint64(i), 10+i%7*13)
	}
	return out
}

func mustCreate(t *testing.T, dir string, base uint64, c Config) *Segment {
	t.Helper()
	s, err := Create(dir, base, c)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

func mustOpen(t *testing.T, dir string, base uint64, c Config, writable bool) *Segment {
	t.Helper()
	s, err := Open(dir, base, c, writable)
	if err != nil {
		t.Fatalf("Open(writable=%v): %v", writable, err)
	}
	return s
}

// mustAppend appends recs one call at a time (sync off) and checks offsets.
func mustAppend(t *testing.T, s *Segment, recs [][]byte) {
	t.Helper()
	for _, r := range recs {
		want := s.NextOffset()
		off, err := s.Append([][]byte{r}, false)
		if err != nil || off != want {
			t.Fatalf("Append = %d, %v; want %d", off, err, want)
		}
	}
}

// checkRecords asserts the segment holds exactly want, from its base on.
func checkRecords(t *testing.T, s *Segment, want [][]byte) {
	t.Helper()
	if got := s.Len(); got != uint64(len(want)) {
		t.Fatalf("Len = %d, want %d", got, len(want))
	}
	for i, w := range want {
		got, err := s.Read(s.BaseOffset() + uint64(i))
		if err != nil {
			t.Fatalf("Read(%d): %v", s.BaseOffset()+uint64(i), err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("Read(%d) = %x, want %x", s.BaseOffset()+uint64(i), got, w)
		}
	}
}

// asCorruption asserts err is a *CorruptionError and returns it.
func asCorruption(t *testing.T, err error) *CorruptionError {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v (%T) is not a *CorruptionError", err, err)
	}
	return ce
}

// flipBit flips bit 0 of the byte at pos in the file at path.
func flipBit(t *testing.T, path string, pos int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pos >= int64(len(b)) {
		t.Fatalf("flipBit: position %d beyond %d-byte %s", pos, len(b), path)
	}
	b[pos] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// positions returns the store position of each record in recs.
func positions(recs [][]byte) []int64 {
	out := make([]int64, len(recs))
	pos := int64(FileHeaderSize)
	for i, r := range recs {
		out[i] = pos
		pos += RecordHeaderSize + int64(len(r))
	}
	return out
}
