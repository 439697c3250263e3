package replication

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/seglog"
)

// smallLog makes segments of a few entries, so compaction removes some.
func smallLog() seglog.Config {
	c := seglog.DefaultConfig()
	c.MaxRecordBytes = 128
	c.Segment.MaxStoreBytes = 24 + 8 + 128 // about 4 entries of ~30 bytes
	return c
}

func openStore(t *testing.T, dir string) *LogStore {
	t.Helper()
	s, err := OpenLogStore(dir, smallLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d", i)), AppendedAt: time.Unix(0, int64(i))}
}

func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i))
	}
	return out
}

func checkRange(t *testing.T, s *LogStore, first, last uint64) {
	t.Helper()
	if f, err := s.FirstIndex(); err != nil || f != first {
		t.Fatalf("FirstIndex = %d, %v; want %d", f, err, first)
	}
	if l, err := s.LastIndex(); err != nil || l != last {
		t.Fatalf("LastIndex = %d, %v; want %d", l, err, last)
	}
	var e raft.Log
	if first != 0 {
		for i := first; i <= last; i++ {
			if err := s.GetLog(i, &e); err != nil {
				t.Fatalf("GetLog(%d): %v", i, err)
			}
			want := entry(i)
			if e.Index != i || e.Term != want.Term || string(e.Data) != string(want.Data) || !e.AppendedAt.Equal(want.AppendedAt) {
				t.Fatalf("GetLog(%d) = %+v", i, e)
			}
		}
		if err := s.GetLog(first-1, &e); !errors.Is(err, raft.ErrLogNotFound) && first > 0 {
			t.Fatalf("GetLog below first: %v", err)
		}
	}
	if err := s.GetLog(last+1, &e); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog above last: %v", err)
	}
	if err := s.GetLog(0, &e); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(0): %v", err)
	}
}

func TestLogStoreEmpty(t *testing.T) {
	s := openStore(t, t.TempDir())
	checkRange(t, s, 0, 0)
	if _, ok := any(s).(raft.MonotonicLogStore); ok {
		t.Fatal("LogStore claims to be monotonic: hashicorp/raft would then delete entries newer than a stale installed snapshot")
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on empty: %v", err)
	}
	checkRange(t, s, 0, 0)
}

func TestLogStoreStore(t *testing.T) {
	s := openStore(t, t.TempDir())
	if err := s.StoreLog(entry(1)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 1)
	if err := s.StoreLogs(entries(2, 20)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 20)
	for name, batch := range map[string][]*raft.Log{
		"overlap":      entries(20, 21),
		"rewrite":      entries(5, 6),
		"not in order": {entry(21), entry(23)},
	} {
		if err := s.StoreLogs(batch); !errors.Is(err, ErrNonContiguous) {
			t.Errorf("%s: %v, want ErrNonContiguous", name, err)
		}
	}
	checkRange(t, s, 1, 20)
}

// After Raft installs a snapshot past the last stored entry, it appends from
// the snapshot on: the entries before the gap are dropped, and the store
// continues from the new ones, also across a reopen.
func TestLogStoreGapAfterSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.StoreLogs(entries(1, 20)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(31, 40)); err != nil {
		t.Fatalf("entries after a snapshot's gap: %v", err)
	}
	checkRange(t, s, 31, 40)
	var e raft.Log
	if err := s.GetLog(20, &e); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry before the gap: %v, want ErrLogNotFound", err)
	}
	if err := s.StoreLogs(entries(41, 42)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkRange(t, s, 31, 42)
}

// The Raft log syncs always by default; a relaxed policy is kept, and the
// entries are readable and survive a reopen (a process restart) all the same.
func TestLogStoreSyncPolicy(t *testing.T) {
	for _, p := range []seglog.SyncPolicy{seglog.SyncAlways, seglog.SyncInterval, seglog.SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := smallLog()
			cfg.Sync = p
			s, err := OpenLogStore(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.l.Config().Sync; got != p {
				t.Fatalf("raft log Sync = %v, want %v", got, p)
			}
			if err := s.StoreLogs(entries(1, 10)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 1, 10)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = OpenLogStore(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkRange(t, s, 1, 10)
		})
	}
	if s := openStore(t, t.TempDir()); s.l.Config().Sync != seglog.SyncAlways {
		t.Fatalf("default raft log Sync = %v, want SyncAlways", s.l.Config().Sync)
	}
}

func TestLogStoreDeleteSuffix(t *testing.T) {
	s := openStore(t, t.TempDir())
	s.StoreLogs(entries(1, 20))
	// Raft deletes conflicting entries from the first conflict to the end.
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 14)
	// max beyond the end is still a suffix.
	if err := s.DeleteRange(11, 100); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 10)
	// The new leader's entries follow.
	if err := s.StoreLogs(entries(11, 12)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 12)
}

func TestLogStoreDeletePrefix(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.StoreLogs(entries(1, 40))
	_, segsBefore := s.l.Size()
	if err := s.DeleteRange(1, 25); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 26, 40)
	if _, segs := s.l.Size(); segs >= segsBefore {
		t.Fatalf("compaction removed no segment: %d -> %d", segsBefore, segs)
	}
	if low := s.l.LowestOffset(); low > 26 {
		t.Fatalf("physical lowest %d above the logical first 26", low)
	}
	// min below first is still a prefix; no-ops outside the entries.
	if err := s.DeleteRange(1, 27); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 28, 40)
	for _, r := range [][2]uint64{{1, 5}, {41, 50}, {30, 29}} {
		if err := s.DeleteRange(r[0], r[1]); err != nil {
			t.Fatalf("no-op DeleteRange%v: %v", r, err)
		}
	}
	checkRange(t, s, 28, 40)
	if err := s.DeleteRange(30, 35); !errors.Is(err, ErrDeleteRange) {
		t.Fatalf("middle range: %v", err)
	}
	checkRange(t, s, 28, 40)
	if err := s.StoreLogs(entries(41, 45)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 28, 45)
}

func TestLogStoreDeleteEverything(t *testing.T) {
	for _, next := range []uint64{21, 500, 5} {
		t.Run(fmt.Sprint("then store at ", next), func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			s.StoreLogs(entries(1, 20))
			s.DeleteRange(1, 5)
			// Raft after installing a snapshot (monotonic store), or a
			// conflict at the first entry.
			if err := s.DeleteRange(6, 20); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 0, 0)
			if err := s.StoreLogs(entries(next, next+2)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, next, next+2)
			s.Close()
			s = openStore(t, dir)
			checkRange(t, s, next, next+2)
		})
	}
}

func TestLogStoreReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.StoreLogs(entries(1, 30))
	s.DeleteRange(1, 10)
	s.DeleteRange(25, 30)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkRange(t, s, 11, 24) // logical first index survives
	if err := s.StoreLogs(entries(25, 26)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 11, 26)
}

// copyDir copies the files of a directory tree, as a crash would leave
// them (the store is fsynced on every StoreLogs).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if fi.Name() == "LOCK" {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLogStoreCrashReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.StoreLogs(entries(1, 30))
	s.DeleteRange(1, 12)
	s.StoreLogs(entries(31, 33))
	// Reopen a copy taken while s is still open: dirty indexes, no Close.
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, dir, crashed)
	c := openStore(t, crashed)
	checkRange(t, c, 13, 33)
	if err := c.StoreLogs(entries(34, 35)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, c, 13, 35)
}

func TestLogStoreFinishesInterruptedCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.StoreLogs(entries(1, 40))
	s.Close()
	// A crash after first_index was written but before segments were removed.
	s2 := &LogStore{dir: dir}
	if err := s2.setFirst(30); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkRange(t, s, 30, 40)
	if low := s.l.LowestOffset(); low == 1 {
		t.Fatal("segments below the first index were not removed on open")
	}
}

func TestLogStoreDamagedFirstIndex(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.StoreLogs(entries(1, 5))
	s.DeleteRange(1, 2)
	s.Close()
	p := filepath.Join(dir, firstIndexFile)
	b, _ := os.ReadFile(p)
	b[0] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, err := OpenLogStore(dir, smallLog()); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("damaged first_index: %v", err)
	}
}

func TestLogStoreUnderRaft(t *testing.T) {
	// Raft's own store checks: an entry bigger than MaxRecordBytes fails.
	s := openStore(t, t.TempDir())
	big := &raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: make([]byte, 2048)}
	if err := s.StoreLog(big); !errors.Is(err, seglog.ErrRecordTooLarge) {
		t.Fatalf("oversized entry: %v", err)
	}
	checkRange(t, s, 0, 0)
}

// corruptFile flips a byte of a file.
func corruptFile(t *testing.T, path string, at int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// Below the free-space reserve StoreLogs refuses entries without writing
// anything, so the log does not enter its failed state and takes them once
// space returns (Raft retries).
func TestLogStoreRefusesEntriesBelowTheReserve(t *testing.T) {
	s := openStore(t, t.TempDir())
	var free atomic.Uint64
	free.Store(1000)
	dc := diskspace.DefaultConfig()
	dc.Dir, dc.MinFreeBytes, dc.RefreshInterval = "/data", 1000, time.Nanosecond
	dc.Statfs = func(string) (uint64, error) { return free.Load(), nil }
	g, err := diskspace.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	s.disk = g
	if err := s.StoreLogs(entries(1, 3)); err != nil {
		t.Fatal(err)
	}
	free.Store(499) // below the reserve, half the watermark
	if err := s.StoreLogs(entries(4, 5)); !errors.Is(err, diskspace.ErrLowSpace) {
		t.Fatalf("StoreLogs below the reserve = %v, want ErrLowSpace", err)
	}
	checkRange(t, s, 1, 3)
	free.Store(500) // below the watermark but not the reserve: accepted
	if err := s.StoreLogs(entries(4, 5)); err != nil {
		t.Fatalf("StoreLogs once space returned: %v", err)
	}
	checkRange(t, s, 1, 5)
}
