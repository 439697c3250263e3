package segment

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// build creates a segment in a new directory holding recs and leaves it
// closed cleanly (clean=true) or as a crash would (Abort: index dirty and
// still at its preallocated size).
func build(t *testing.T, base uint64, recs [][]byte, clean bool) (dir string) {
	t.Helper()
	dir = t.TempDir()
	s := mustCreate(t, dir, base, testConfig())
	mustAppend(t, s, recs)
	var err error
	if clean {
		err = s.Close()
	} else {
		err = s.Abort()
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenRecovery(t *testing.T) {
	const base = 50
	recs := records(base, 8)
	pos := positions(recs)
	storeEnd := pos[7] + RecordHeaderSize + int64(len(recs[7]))
	truncate := func(n int64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.Truncate(StorePath(dir, base), n); err != nil {
				t.Fatal(err)
			}
		}
	}
	flip := func(p int64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { flipBit(t, StorePath(dir, base), p) }
	}
	tests := []struct {
		name        string
		clean       bool
		damage      func(t *testing.T, dir string)
		writable    bool
		wantRecs    int    // records after Open (if no error)
		wantRebuilt string // "" = index trusted
		wantTrunc   int64  // torn bytes cut off
		wantCorrupt int64  // position of the reported corruption, -1 = none
		readCorrupt int    // record whose Read must fail with ErrCorrupt, -1 = none
	}{
		{"clean", true, nil, true, 8, "", 0, -1, -1},
		{"clean, sealed", true, nil, false, 8, "", 0, -1, -1},
		{"crash: index dirty and preallocated", false, nil, true, 8, "not cleanly closed", 0, -1, -1},
		{"crash, sealed", false, nil, false, 8, "not cleanly closed", 0, -1, -1},
		{"index missing", true, func(t *testing.T, dir string) { os.Remove(IndexPath(dir, base)) }, true, 8, "index file missing", 0, -1, -1},
		{"index header damaged", true, func(t *testing.T, dir string) { flipBit(t, IndexPath(dir, base), 3) }, true, 8, "index header", 0, -1, -1},
		// A clean index proves its records were fsynced: a store that lost
		// or damaged any of them is corrupt, never torn, and nothing is cut.
		{"clean index points past the store end", true, truncate(pos[6]), true, 0, "", 0, pos[6], -1},
		{"clean index, store cut inside the last record", true, truncate(storeEnd - 3), true, 0, "", 0, pos[7], -1},
		{"clean index, store has extra records", true, func(t *testing.T, dir string) {
			f, _ := os.OpenFile(StorePath(dir, base), os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			var h [RecordHeaderSize]byte
			enc.PutUint32(h[:], 3)
			enc.PutUint32(h[4:], RecordCRC([]byte("new")))
			f.Write(append(h[:], "new"...))
		}, true, 8, "last indexed record ends at", 0, -1, -1},
		{"crash, torn last record", false, truncate(storeEnd - 3), true, 7, "not cleanly closed", storeEnd - 3 - pos[7], -1, -1},
		{"crash, torn record header", false, truncate(pos[7] + 5), true, 7, "not cleanly closed", 5, -1, -1},
		{"crash, torn in a sealed segment", false, truncate(storeEnd - 3), false, 0, "", 0, pos[7], -1},
		{"crash, bad checksum mid-segment", false, flip(pos[3] + RecordHeaderSize + 2), true, 0, "", 0, pos[3], -1},
		{"crash, bad length mid-segment", false, flip(pos[3] + 3), true, 0, "", 0, pos[3], -1},
		{"crash, bad length mid-segment (huge)", false, flip(pos[3]), true, 0, "", 0, pos[3], -1},
		{"crash, bad crc field mid-segment", false, flip(pos[3] + 5), true, 0, "", 0, pos[3], -1},
		{"crash, bad checksum in the last record = torn", false, flip(pos[7] + 9), true, 7, "not cleanly closed", storeEnd - pos[7], -1, -1},
		{"clean, bad checksum in the last record = corrupt", true, flip(pos[7] + 9), true, 0, "", 0, pos[7], -1},
		{"clean, zero-filled tail = corrupt", true, func(t *testing.T, dir string) {
			f, _ := os.OpenFile(StorePath(dir, base), os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			f.Write(make([]byte, 4096))
		}, true, 0, "", 0, storeEnd, -1},
		{"clean, bad checksum mid-segment: found by Read", true, flip(pos[3] + 9), true, 8, "", 0, -1, 3},
		{"clean sealed, bad checksum in the last record: found by Read", true, flip(pos[7] + 9), false, 8, "", 0, -1, 7},
		{"clean sealed, bad length in the last record", true, flip(pos[7] + 3), false, 0, "", 0, pos[7], -1},
		{"store header damaged", true, flip(2), true, 0, "", 0, 0, -1},
		{"store zero-filled tail after crash", false, func(t *testing.T, dir string) {
			f, _ := os.OpenFile(StorePath(dir, base), os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			f.Write(make([]byte, 4096))
		}, true, 8, "not cleanly closed", 4096, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := build(t, base, recs, tt.clean)
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			before, _ := os.ReadFile(StorePath(dir, base))
			s, err := Open(dir, base, testConfig(), tt.writable)
			if tt.wantCorrupt >= 0 {
				// Reported, and again by the next Open: the failed Open
				// changed nothing (a clean index stays clean, nothing cut).
				for range 2 {
					ce := asCorruption(t, err)
					if ce.Path != StorePath(dir, base) || ce.Position != tt.wantCorrupt {
						t.Fatalf("corruption at %s:%d, want %s:%d (%v)", ce.Path, ce.Position, StorePath(dir, base), tt.wantCorrupt, err)
					}
					if after, _ := os.ReadFile(StorePath(dir, base)); !bytes.Equal(after, before) {
						t.Fatalf("failed Open changed the store")
					}
					_, err = Open(dir, base, testConfig(), tt.writable)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			r := s.Recovery()
			if !strings.Contains(r.IndexReason, tt.wantRebuilt) || r.IndexRebuilt != (tt.wantRebuilt != "") {
				t.Fatalf("Recovery = %+v, want index reason %q", r, tt.wantRebuilt)
			}
			if r.TruncatedBytes != tt.wantTrunc {
				t.Fatalf("TruncatedBytes = %d, want %d (%+v)", r.TruncatedBytes, tt.wantTrunc, r)
			}
			checkTornFile(t, r, before)
			want := append([][]byte{}, recs[:tt.wantRecs]...)
			if tt.name == "clean index, store has extra records" {
				want = append(want, []byte("new"))
			}
			if tt.readCorrupt >= 0 {
				_, err := s.Read(base + uint64(tt.readCorrupt))
				if ce := asCorruption(t, err); ce.Position != pos[tt.readCorrupt] {
					t.Fatalf("Read corruption at %d, want %d", ce.Position, pos[tt.readCorrupt])
				}
				want = append(want[:tt.readCorrupt:tt.readCorrupt], want[tt.readCorrupt+1:]...)
				if s.Len() != uint64(tt.wantRecs) {
					t.Fatalf("Len = %d, want %d", s.Len(), tt.wantRecs)
				}
				return
			}
			checkRecords(t, s, want)
			if tt.writable {
				// Appending works after recovery and survives a reopen.
				mustAppend(t, s, [][]byte{[]byte("after recovery")})
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2 := mustOpen(t, dir, base, testConfig(), true)
				defer s2.Close()
				if s2.Recovery().IndexRebuilt {
					t.Fatalf("index rebuilt again after a clean close: %+v", s2.Recovery())
				}
				checkRecords(t, s2, append(want, []byte("after recovery")))
			}
		})
	}
}

// checkTornFile checks that the bytes recovery cut off a store whose
// content was before are kept in r.TornPath, next to the store.
func checkTornFile(t *testing.T, r Recovery, before []byte) {
	t.Helper()
	if r.TruncatedBytes == 0 {
		if r.TornPath != "" {
			t.Fatalf("TornPath %q without a cut", r.TornPath)
		}
		return
	}
	if !IsTornName(filepath.Base(r.TornPath)) {
		t.Fatalf("TornPath %q is not a torn-tail file name", r.TornPath)
	}
	got, err := os.ReadFile(r.TornPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := before[int64(len(before))-r.TruncatedBytes:]; !bytes.Equal(got, want) {
		t.Fatalf("torn file holds %d bytes %x, want the %d cut bytes %x", len(got), got, len(want), want)
	}
}

func TestOpenMissingStore(t *testing.T) {
	dir := build(t, 0, records(0, 2), true)
	os.Remove(StorePath(dir, 0))
	_, err := Open(dir, 0, testConfig(), true)
	if ce := asCorruption(t, err); !strings.Contains(ce.Reason, "store file missing") {
		t.Fatalf("reason %q", ce.Reason)
	}
	os.Remove(IndexPath(dir, 0))
	if _, err := Open(dir, 0, testConfig(), true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open without files: %v, want ErrNotExist", err)
	}
}

func TestOpenRebuildGrowsIndex(t *testing.T) {
	// The store holds more records than the configured index capacity (the
	// configuration shrank): rebuilding must not lose records.
	dir := t.TempDir()
	big := testConfig()
	big.MaxIndexBytes = FileHeaderSize + 1000*IndexEntryWidth
	s := mustCreate(t, dir, 0, big)
	recs := records(0, 300)
	mustAppend(t, s, recs)
	s.Abort()
	small := testConfig()
	small.MaxIndexBytes = FileHeaderSize + 10*IndexEntryWidth
	s = mustOpen(t, dir, 0, small, true)
	checkRecords(t, s, recs)
	if s.Fits([][]byte{{}}) != 0 || !s.IsMaxed() {
		t.Fatal("segment over its index capacity accepts appends")
	}
	s.Close()
	s = mustOpen(t, dir, 0, small, false)
	defer s.Close()
	checkRecords(t, s, recs)
}

func TestOpenRecoveryAtEveryCut(t *testing.T) {
	// Cut the store at every byte of its last record: the record is gone,
	// the others are intact, and appending works.
	recs := records(0, 4)
	pos := positions(recs)
	end := pos[3] + RecordHeaderSize + int64(len(recs[3]))
	src := build(t, 0, recs, false)
	store, _ := os.ReadFile(StorePath(src, 0))
	index, _ := os.ReadFile(IndexPath(src, 0))
	for cut := pos[3]; cut < end; cut++ {
		dir := t.TempDir()
		os.WriteFile(StorePath(dir, 0), store[:cut], 0o644)
		os.WriteFile(IndexPath(dir, 0), index, 0o644)
		s, err := Open(dir, 0, testConfig(), true)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		checkRecords(t, s, recs[:3])
		if got := s.Recovery().TruncatedBytes; got != cut-pos[3] {
			t.Fatalf("cut at %d: truncated %d bytes, want %d", cut, got, cut-pos[3])
		}
		checkTornFile(t, s.Recovery(), store[:cut])
		mustAppend(t, s, [][]byte{[]byte("x")})
		checkRecords(t, s, append(recs[:3:3], []byte("x")))
		s.Close()
	}
}

func FuzzOpen(f *testing.F) {
	valid := func(clean bool) ([]byte, []byte) {
		dir := f.TempDir()
		s, err := Create(dir, 0, testConfig())
		if err != nil {
			f.Fatal(err)
		}
		for i, r := range records(0, 5) {
			if _, err := s.Append([][]byte{r}, i%2 == 0); err != nil {
				f.Fatal(err)
			}
		}
		if clean {
			s.Close()
		} else {
			s.Abort()
		}
		st, _ := os.ReadFile(StorePath(dir, 0))
		ix, _ := os.ReadFile(IndexPath(dir, 0))
		return st, ix
	}
	st, ix := valid(true)
	f.Add(st, ix, true)
	f.Add(st, ix, false)
	f.Add(st[:len(st)-3], ix, true)
	dst, dix := valid(false)
	f.Add(dst, dix, true)
	f.Add(dst, dix[:100], false)
	f.Add(st[:FileHeaderSize], []byte{}, true)
	f.Add([]byte{}, []byte{}, true)
	f.Fuzz(func(t *testing.T, store, index []byte, writable bool) {
		dir := t.TempDir()
		os.WriteFile(StorePath(dir, 0), store, 0o644)
		os.WriteFile(IndexPath(dir, 0), index, 0o644)
		s, err := Open(dir, 0, testConfig(), writable)
		if err != nil {
			return
		}
		defer s.Close()
		for off := s.BaseOffset(); off < s.NextOffset(); off++ {
			s.Read(off) // may report corruption, must not panic
		}
		if writable {
			if _, err := s.Append([][]byte{[]byte("fuzz")}, false); err != nil && !errors.Is(err, ErrFull) {
				t.Fatalf("Append after a successful Open: %v", err)
			}
			got, err := s.Read(s.NextOffset() - 1)
			if err == nil && !bytes.Equal(got, []byte("fuzz")) && s.Fits([][]byte{{}}) > 0 {
				t.Fatalf("read back %q", got)
			}
		}
	})
}
