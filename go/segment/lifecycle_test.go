package segment

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestSealUnseal(t *testing.T) {
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, testConfig())
	defer s.Close()
	recs := records(0, 5)
	mustAppend(t, s, recs)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if s.Writable() || !s.IsMaxed() || s.Fits([][]byte{{}}) != 0 {
		t.Fatal("sealed segment still writable")
	}
	if got, want := fileSize(t, s.IndexPath()), indexFileSize(5); got != want {
		t.Fatalf("sealed index is %d bytes, want trimmed %d", got, want)
	}
	if _, err := s.Append([][]byte{{}}, false); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append to a sealed segment: %v, want ErrReadOnly", err)
	}
	if err := s.TruncateAfter(2); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("TruncateAfter on a sealed segment: %v, want ErrReadOnly", err)
	}
	checkRecords(t, s, recs)
	// A sealed segment reopens without rebuilding.
	s2 := mustOpen(t, dir, 0, testConfig(), false)
	if s2.Recovery().IndexRebuilt {
		t.Fatalf("sealed segment's index rebuilt: %+v", s2.Recovery())
	}
	s2.Close()

	if err := s.Unseal(); err != nil {
		t.Fatal(err)
	}
	if !s.Writable() {
		t.Fatal("Unseal left the segment read-only")
	}
	mustAppend(t, s, [][]byte{[]byte("more")})
	checkRecords(t, s, append(recs, []byte("more")))
}

func TestTruncateAfter(t *testing.T) {
	recs := records(10, 6)
	pos := positions(recs)
	tests := []struct {
		name   string
		offset uint64
		keep   int
	}{
		{"keep all (last offset)", 15, 6},
		{"keep all (beyond)", 100, 6},
		{"keep some", 12, 3},
		{"keep first", 10, 1},
		{"keep none", 9, 0},
		{"keep none (far below)", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustCreate(t, dir, 10, testConfig())
			mustAppend(t, s, recs)
			if err := s.TruncateAfter(tt.offset); err != nil {
				t.Fatal(err)
			}
			checkRecords(t, s, recs[:tt.keep])
			wantSize := int64(FileHeaderSize)
			if tt.keep > 0 {
				wantSize = pos[tt.keep-1] + RecordHeaderSize + int64(len(recs[tt.keep-1]))
			}
			if got := fileSize(t, s.StorePath()); got != wantSize {
				t.Fatalf("store is %d bytes, want %d", got, wantSize)
			}
			// New appends take the freed offsets, also after a crash.
			mustAppend(t, s, [][]byte{[]byte("new")})
			if s.NextOffset() != 10+uint64(tt.keep)+1 {
				t.Fatalf("NextOffset = %d", s.NextOffset())
			}
			s.Abort()
			s = mustOpen(t, dir, 10, testConfig(), true)
			defer s.Close()
			checkRecords(t, s, append(recs[:tt.keep:tt.keep], []byte("new")))
		})
	}
}

func TestCloseRemoveAbortUnlink(t *testing.T) {
	tests := []struct {
		name string
		op   func(s *Segment) error
		gone bool // files removed
	}{
		{"Close", (*Segment).Close, false},
		{"Abort", (*Segment).Abort, false},
		{"Remove", (*Segment).Remove, true},
		{"Remove after Close", func(s *Segment) error { s.Close(); return s.Remove() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustCreate(t, dir, 0, testConfig())
			mustAppend(t, s, records(0, 3))
			if err := tt.op(s); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := s.Append([][]byte{{}}, false); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after %s: %v, want ErrClosed", tt.name, err)
			}
			for _, p := range []string{StorePath(dir, 0), IndexPath(dir, 0)} {
				_, err := os.Stat(p)
				if gone := errors.Is(err, fs.ErrNotExist); gone != tt.gone {
					t.Fatalf("%s exists = %v after %s", p, !gone, tt.name)
				}
			}
		})
	}
}

func TestUnlinkKeepsReadsWorking(t *testing.T) {
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, testConfig())
	recs := records(0, 3)
	mustAppend(t, s, recs)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.StorePath()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("store still exists")
	}
	checkRecords(t, s, recs)
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
}
