package seglog

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/segment"
)

// A roll-over that fails because the disk is full leaves the log as it was
// (the new segment's files are removed): the append fails with ENOSPC, the
// log does not enter its failed state, and appends succeed again once
// space is freed, without reopening.
func TestRollOverOnFullDiskIsRetryable(t *testing.T) {
	testutil.InTmpfs(t, 1<<20, func(dir string) {
		c := testConfig()
		c.Segment.MaxIndexBytes = segment.FileHeaderSize + 4*segment.IndexEntryWidth
		l := openLog(t, filepath.Join(dir, "log"), c)
		defer l.Close()
		for off := range uint64(4) { // fills the first segment's index
			if _, err := l.Append(payload(off)); err != nil {
				t.Fatal(err)
			}
		}
		filler := filepath.Join(dir, "filler")
		testutil.FillDisk(t, filler)
		if _, err := l.Append(payload(4)); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
			t.Fatalf("Append needing a new segment on a full disk = %v, want ENOSPC", err)
		}
		if _, err := l.Append(payload(4)); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
			t.Fatalf("second Append on a full disk = %v, want ENOSPC again, not ErrFailed", err)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		off, err := l.Append(payload(4))
		if err != nil || off != 4 {
			t.Fatalf("Append once space is freed = %d, %v; want 4", off, err)
		}
		for off := range uint64(5) {
			if got, err := l.Read(off); err != nil || string(got) != string(payload(off)) {
				t.Fatalf("Read(%d) = %q, %v", off, got, err)
			}
		}
	})
}

// A store write that fails because another file filled the disk is undone
// by the segment: the append fails with ENOSPC, the log does not enter its
// failed state, and appends succeed again once space is freed, without
// reopening.
func TestStoreWriteOnFullDiskIsRetryable(t *testing.T) {
	testutil.InTmpfs(t, 1<<20, func(dir string) {
		c := testConfig()
		c.Segment.MaxStoreBytes = 256 << 10 // room for the batch below
		l := openLog(t, filepath.Join(dir, "log"), c)
		defer l.Close()
		if _, err := l.Append(payload(0)); err != nil {
			t.Fatal(err)
		}
		filler := filepath.Join(dir, "filler")
		testutil.FillDisk(t, filler)
		batch := make([][]byte, 16) // needs new pages of the store
		for i := range batch {
			batch[i] = make([]byte, 1000)
		}
		for range 2 {
			if _, err := l.AppendBatch(batch); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
				t.Fatalf("Append on a full disk = %v, want ENOSPC, not ErrFailed", err)
			}
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		if off, err := l.Append(payload(1)); err != nil || off != 1 {
			t.Fatalf("Append once space is freed = %d, %v; want 1", off, err)
		}
		for off := range uint64(2) {
			if got, err := l.Read(off); err != nil || string(got) != string(payload(off)) {
				t.Fatalf("Read(%d) = %q, %v", off, got, err)
			}
		}
	})
}
