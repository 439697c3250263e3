package segment

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/proglog/proglog/go/internal/testutil"
)

// TestFullDiskIsAnErrorNotASignal fills a small tmpfs to the last byte
// while a segment is open and checks that its index keeps working: the
// index's preallocated space is reserved when it is created, so the first
// entry on a new page of the mapping needs no new block (without the
// reservation the store faults, SIGBUS, and kills the process, which
// InTmpfs's child process reports as a failure). It then checks that on the
// full disk a new segment fails with ENOSPC, a segment reopens (its index
// mapped with no room to spare: full, but readable) and takes appends again
// once space is freed.
func TestFullDiskIsAnErrorNotASignal(t *testing.T) {
	testutil.InTmpfs(t, 1<<20, func(dir string) {
		c := Config{MaxStoreBytes: 1 << 16, MaxIndexBytes: 256 << 10, MaxRecordBytes: 4096}
		s := mustCreate(t, dir, 0, c)
		// Entries that fit in the mapping's first page; the store keeps
		// them, 1-byte records, in its first page too.
		perPage := (os.Getpagesize() - FileHeaderSize) / IndexEntryWidth
		one := [][]byte{{7}}
		for range perPage {
			if _, err := s.Append(one, false); err != nil {
				t.Fatal(err)
			}
		}
		filler := filepath.Join(dir, "filler")
		testutil.FillDisk(t, filler)

		off, err := s.Append(one, false) // the first entry on the index's second page
		if err != nil {
			t.Fatalf("Append on a full disk, store and index space already reserved: %v", err)
		}
		if got, err := s.Read(off); err != nil || got[0] != 7 {
			t.Fatalf("Read(%d) = %v, %v", off, got, err)
		}
		if _, err := Create(dir, 1000, c); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Create on a full disk = %v, want ENOSPC", err)
		}
		noFiles := func(base uint64) {
			t.Helper()
			for _, p := range []string{StorePath(dir, base), IndexPath(dir, base)} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a failed Create left %s behind: %v", filepath.Base(p), err)
				}
			}
		}
		noFiles(1000)
		// Room for the store's header, not for the index's reserve.
		fi, err := os.Stat(filler)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filler, fi.Size()-int64(4*os.Getpagesize())); err != nil {
			t.Fatal(err)
		}
		if _, err := Create(dir, 2000, c); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Create without room for the index = %v, want ENOSPC", err)
		}
		noFiles(2000)
		if err := s.Close(); err != nil { // trims the index: frees its reserve
			t.Fatal(err)
		}
		testutil.FillDisk(t, filler+"2")

		s = mustOpen(t, dir, 0, c, true)
		if !s.IsMaxed() {
			t.Fatal("a segment reopened on a full disk has index room it could not reserve")
		}
		if got, err := s.Read(off); err != nil || got[0] != 7 {
			t.Fatalf("Read(%d) after reopening on a full disk = %v, %v", off, got, err)
		}
		if _, err := s.Append(one, false); !errors.Is(err, ErrFull) {
			t.Fatalf("Append to the reopened segment = %v, want ErrFull", err)
		}
		// Killed now, it restarts on the full disk without a rebuild (which
		// would need the index's whole reserve): an index that cannot take
		// entries stays marked clean.
		if err := s.Abort(); err != nil {
			t.Fatal(err)
		}
		s = mustOpen(t, dir, 0, c, true)
		if r := s.Recovery(); r.IndexRebuilt {
			t.Fatalf("index rebuilt after a crash on a full disk: %s", r.IndexReason)
		}
		if got, err := s.Read(off); err != nil || got[0] != 7 {
			t.Fatalf("Read(%d) after a crash on a full disk = %v, %v", off, got, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filler, filler + "2"} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		s = mustOpen(t, dir, 0, c, true)
		defer s.Close()
		if _, err := s.Append(one, true); err != nil {
			t.Fatalf("Append after space was freed: %v", err)
		}
	})
}

// Rebuilding an index (after a crash, or when it is missing) on a full
// disk is an error, not a SIGBUS while writing the rebuilt entries, and
// works once space is freed. A segment killed on a full disk keeps its
// index's reserved blocks, so its rebuild needs no new space.
func TestRebuildOnFullDiskIsAnError(t *testing.T) {
	testutil.InTmpfs(t, 1<<20, func(dir string) {
		c := Config{MaxStoreBytes: 1 << 16, MaxIndexBytes: 256 << 10, MaxRecordBytes: 4096}
		s := mustCreate(t, dir, 0, c)
		recs := records(0, 600) // index entries on two pages
		mustAppend(t, s, recs)
		filler := filepath.Join(dir, "filler")
		testutil.FillDisk(t, filler)
		if err := s.Abort(); err != nil { // a crash: the index stays dirty
			t.Fatal(err)
		}
		s = mustOpen(t, dir, 0, c, true)
		if r := s.Recovery(); !r.IndexRebuilt {
			t.Fatal("the index of a crashed segment was not rebuilt")
		}
		if err := s.Abort(); err != nil {
			t.Fatal(err)
		}

		if err := os.Remove(IndexPath(dir, 0)); err != nil {
			t.Fatal(err)
		}
		testutil.FillDisk(t, filler+"2") // takes the index's space too
		fi, err := os.Stat(filler + "2")
		if err != nil {
			t.Fatal(err)
		}
		// Room for the new index's first page (its header) only.
		if err := os.Truncate(filler+"2", fi.Size()-int64(os.Getpagesize())); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, 0, c, true); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Open rebuilding a missing index on a full disk = %v, want ENOSPC", err)
		}
		if err := os.Remove(filler + "2"); err != nil {
			t.Fatal(err)
		}
		s = mustOpen(t, dir, 0, c, true)
		defer s.Close()
		for i, want := range recs {
			if got, err := s.Read(uint64(i)); err != nil || string(got) != string(want) {
				t.Fatalf("Read(%d) after the rebuild = %v, %v", i, got, err)
			}
		}
	})
}
