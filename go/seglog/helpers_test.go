package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

// testConfig returns a configuration with small segments (so tests roll
// over often) and SyncNever (so tests that do not check durability are
// fast).
func testConfig() Config {
	c := DefaultConfig()
	c.Segment.MaxStoreBytes = 2048
	c.Segment.MaxIndexBytes = segment.FileHeaderSize + 32*segment.IndexEntryWidth
	c.MaxRecordBytes = 1024
	c.Sync = SyncNever
	return c
}

// payload returns the deterministic content of the record at offset off.
func payload(off uint64) []byte {
	n := int(off*37%200) + 1
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(off + uint64(i)*13)
	}
	return append([]byte(fmt.Sprintf("%d:", off)), b...)
}

func openLog(t testing.TB, dir string, c Config) *Log {
	t.Helper()
	l, err := Open(dir, c)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendN appends payload(off) for n offsets, one Append each.
func appendN(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		want := l.NextOffset()
		off, err := l.Append(payload(want))
		if err != nil || off != want {
			t.Fatalf("Append = %d, %v; want %d", off, err, want)
		}
	}
}

// checkLog asserts the log holds payload(off) for every off in
// [lowest, next) and nothing else.
func checkLog(t testing.TB, l *Log, lowest, next uint64) {
	t.Helper()
	if l.LowestOffset() != lowest || l.NextOffset() != next {
		t.Fatalf("log spans [%d, %d), want [%d, %d)", l.LowestOffset(), l.NextOffset(), lowest, next)
	}
	for off := lowest; off < next; off++ {
		got, err := l.Read(off)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if !bytes.Equal(got, payload(off)) {
			t.Fatalf("Read(%d) = %q, want %q", off, got, payload(off))
		}
	}
	for _, off := range []uint64{lowest - 1, next} {
		if off == lowest-1 && lowest == 0 {
			continue
		}
		if _, err := l.Read(off); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("Read(%d) outside [%d, %d): %v, want ErrOffsetOutOfRange", off, lowest, next, err)
		}
	}
}

// crash abandons l as a killed process would: no fsync, no clean close of
// the index (it stays dirty and preallocated), lock released. What is in
// the page cache stays, as it does when a process dies.
func crash(t testing.TB, l *Log) {
	t.Helper()
	l.stopSyncer()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.closeNotifier()
	for _, s := range l.segments {
		s.Abort()
	}
	l.lock.release()
}

// copyDir copies the log files in src to a new temporary directory, as an
// image of the disk at this moment (including unsynced page-cache data).
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == lockFileName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// segmentBases lists the base offsets of the store files in dir.
func segmentBases(t testing.TB, dir string) []uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range entries {
		if base, isStore, ok := segment.ParseName(e.Name()); ok && isStore {
			out = append(out, base)
		}
	}
	return out
}

func asCorruption(t testing.TB, err error) *CorruptionError {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v (%T) is not a *CorruptionError", err, err)
	}
	return ce
}

// readAll drains r.
func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading snapshot: %v", err)
	}
	return b
}
