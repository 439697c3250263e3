package seglog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proglog/proglog/go/segment"
)

func TestOpenNewLog(t *testing.T) {
	tests := []struct {
		name    string
		initial uint64
	}{
		{"from zero", 0},
		{"from an initial offset", 1000},
		{"near the top of the range", 1<<64 - 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "b") // created
			c := testConfig()
			c.InitialOffset = tt.initial
			l := openLog(t, dir, c)
			if l.LowestOffset() != tt.initial || l.NextOffset() != tt.initial || l.HighestOffset() != tt.initial-1 {
				t.Fatalf("empty log: lowest %d next %d highest %d", l.LowestOffset(), l.NextOffset(), l.HighestOffset())
			}
			if got := segmentBases(t, dir); !slices.Equal(got, []uint64{tt.initial}) {
				t.Fatalf("segments %v", got)
			}
			appendN(t, l, 5)
			if l.HighestOffset() != tt.initial+4 {
				t.Fatalf("HighestOffset = %d", l.HighestOffset())
			}
			checkLog(t, l, tt.initial, tt.initial+5)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// InitialOffset is ignored for an existing log.
			c.InitialOffset = 7
			l = openLog(t, dir, c)
			checkLog(t, l, tt.initial, tt.initial+5)
			if r := l.Recovery(); len(r) != 0 {
				t.Fatalf("Recovery after a clean close = %+v", r)
			}
		})
	}
}

func TestAppendReadReopen(t *testing.T) {
	tests := []struct {
		name string
		c    func() Config
		n    int
	}{
		{"defaults, one segment", func() Config { c := DefaultConfig(); c.Sync = SyncNever; return c }, 100},
		{"rolls over by store size", testConfig, 300},
		{"rolls over by index size", func() Config {
			c := testConfig()
			c.Segment.MaxStoreBytes = 1 << 20
			c.Segment.MaxIndexBytes = segment.FileHeaderSize + 10*segment.IndexEntryWidth
			return c
		}, 95},
		{"SyncAlways", func() Config { c := testConfig(); c.Sync = SyncAlways; return c }, 30},
		{"SyncInterval", func() Config { c := testConfig(); c.Sync = SyncInterval; c.SyncInterval = time.Millisecond; return c }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, tt.c())
			appendN(t, l, tt.n)
			checkLog(t, l, 0, uint64(tt.n))
			bytes, segs := l.Size()
			if segs != len(segmentBases(t, dir)) || bytes == 0 {
				t.Fatalf("Size = %d, %d; %d store files", bytes, segs, len(segmentBases(t, dir)))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, tt.c())
			checkLog(t, l, 0, uint64(tt.n))
			if b2, s2 := l.Size(); b2 != bytes || s2 != segs {
				t.Fatalf("Size after reopen = %d, %d; want %d, %d", b2, s2, bytes, segs)
			}
			appendN(t, l, 3)
			checkLog(t, l, 0, uint64(tt.n)+3)
		})
	}
}

func TestOpenUnknownFiles(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		dirs  []string
	}{
		{"stray file", []string{"notes.txt"}, nil},
		{"backup of a segment", []string{"00000000000000000000.store.bak"}, nil},
		{"unpadded name", []string{"5.store"}, nil},
		{"directory with a segment name", nil, []string{"00000000000000000009.index"}},
		{"several", []string{"a", "b"}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, testConfig())
			appendN(t, l, 3)
			l.Close()
			for _, f := range tt.files {
				os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
			}
			for _, d := range tt.dirs {
				os.Mkdir(filepath.Join(dir, d), 0o755)
			}
			_, err := Open(dir, testConfig())
			var ue *UnknownFilesError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnknownFiles) {
				t.Fatalf("Open = %v, want *UnknownFilesError", err)
			}
			want := append(slices.Clone(tt.files), tt.dirs...)
			slices.Sort(want)
			got := slices.Sorted(slices.Values(ue.Names))
			if !slices.Equal(got, want) || ue.Dir != dir {
				t.Fatalf("UnknownFilesError = %+v, want names %q", ue, want)
			}
			for _, n := range want {
				if !strings.Contains(err.Error(), n) {
					t.Fatalf("error %q does not name %q", err, n)
				}
			}
		})
	}
}

func TestOpenDetectsGap(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	appendN(t, l, 200)
	l.Close()
	bases := segmentBases(t, dir)
	if len(bases) < 3 {
		t.Fatalf("only %d segments", len(bases))
	}
	os.Remove(segment.StorePath(dir, bases[1]))
	os.Remove(segment.IndexPath(dir, bases[1]))
	_, err := Open(dir, testConfig())
	ce := asCorruption(t, err)
	if ce.Path != segment.StorePath(dir, bases[2]) || !strings.Contains(ce.Reason, "previous segment") {
		t.Fatalf("gap reported as %+v", ce)
	}
}

func TestClosedLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	appendN(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ops := map[string]func() error{
		"Append":         func() error { _, err := l.Append([]byte("x")); return err },
		"AppendBatch":    func() error { _, err := l.AppendBatch([][]byte{{}}); return err },
		"Read":           func() error { _, err := l.Read(0); return err },
		"Wait":           func() error { return l.Wait(context.Background(), 10) },
		"Truncate":       func() error { return l.Truncate(1) },
		"TruncateAfter":  func() error { return l.TruncateAfter(0) },
		"ApplyRetention": func() error { _, err := l.ApplyRetention(time.Now()); return err },
		"Reset":          func() error { return l.Reset() },
		"Reader":         func() error { _, err := io.ReadAll(l.Reader()); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed log = %v, want ErrClosed", name, err)
		}
	}
	// Offsets stay readable as numbers.
	if l.LowestOffset() != 0 || l.NextOffset() != 3 {
		t.Fatalf("offsets after close: %d, %d", l.LowestOffset(), l.NextOffset())
	}
}

func TestRemove(t *testing.T) {
	for _, closeFirst := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "log")
		l, err := Open(dir, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 100)
		if closeFirst {
			l.Close()
		}
		if err := l.Remove(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("directory still exists after Remove (closed first: %v): %v", closeFirst, err)
		}
	}
}

func TestReset(t *testing.T) {
	dir := t.TempDir()
	c := testConfig()
	c.InitialOffset = 42
	l := openLog(t, dir, c)
	appendN(t, l, 150)
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	checkLog(t, l, 42, 42)
	if got := segmentBases(t, dir); !slices.Equal(got, []uint64{42}) {
		t.Fatalf("segments after Reset: %v", got)
	}
	appendN(t, l, 5)
	l.Close()
	l = openLog(t, dir, c)
	checkLog(t, l, 42, 47)
}

func TestRecoveryReport(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	appendN(t, l, 100)
	crash(t, l)
	l = openLog(t, dir, testConfig())
	r := l.Recovery()
	bases := segmentBases(t, dir)
	if len(r) != 1 || r[0].BaseOffset != bases[len(bases)-1] || !r[0].IndexRebuilt || r[0].TruncatedBytes != 0 {
		t.Fatalf("Recovery = %+v, want the last segment's index rebuilt", r)
	}
	checkLog(t, l, 0, 100)
}

// TestConcurrentEverything runs appends, reads, waits, snapshots,
// truncation and retention at the same time (run with -race). Readers may
// see offsets disappear below LowestOffset, but never wrong data.
func TestConcurrentEverything(t *testing.T) {
	c := testConfig()
	c.Retention.MaxBytes = 16 << 10
	l := openLog(t, t.TempDir(), c)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := f(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	appends := 0
	run(func() error { // writer; now and then it removes a suffix and rewrites it with the same content
		appends++
		if next := l.NextOffset(); appends%50 == 0 && next > l.LowestOffset()+3 {
			if err := l.TruncateAfter(next - 3); err != nil {
				return err
			}
		}
		next := l.NextOffset()
		_, err := l.AppendBatch([][]byte{payload(next), payload(next + 1)})
		return err
	})
	for i := 0; i < 2; i++ {
		run(func() error { // readers
			lo, next := l.LowestOffset(), l.NextOffset()
			if next == lo {
				return nil
			}
			off := lo + uint64(time.Now().UnixNano())%(next-lo)
			got, err := l.Read(off)
			if errors.Is(err, ErrOffsetOutOfRange) {
				return nil // truncated meanwhile
			}
			if err != nil || !bytes.Equal(got, payload(off)) {
				return fmt.Errorf("Read(%d) = %q, %v", off, got, err)
			}
			return nil
		})
	}
	run(func() error { // tailer
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer wcancel()
		if err := l.Wait(wctx, l.NextOffset()); err != nil && wctx.Err() == nil {
			return err
		}
		return nil
	})
	run(func() error { // compaction and retention
		time.Sleep(5 * time.Millisecond)
		if err := l.Truncate(l.NextOffset() / 2); err != nil {
			return err
		}
		_, err := l.ApplyRetention(time.Now())
		return err
	})

	run(func() error { // snapshots
		r := l.Reader()
		defer r.Close()
		b, err := io.ReadAll(r)
		if errors.Is(err, ErrSnapshotInvalidated) {
			return nil
		}
		if err != nil {
			return err
		}
		first, count := enc.Uint64(b[16:24]), enc.Uint64(b[24:32])
		p := snapshotHeaderSize
		for off := first; off < first+count; off++ {
			n := int(enc.Uint32(b[p+8:]))
			if enc.Uint64(b[p:]) != off || !bytes.Equal(b[p+16:p+16+n], payload(off)) {
				return fmt.Errorf("snapshot frame %d wrong", off)
			}
			p += 16 + n
		}
		return nil
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if l.NextOffset() == 0 || l.LowestOffset() == 0 {
		t.Fatalf("nothing happened: [%d, %d)", l.LowestOffset(), l.NextOffset())
	}
	if len(l.zombies) != 0 || len(l.pins) != 0 || len(l.snapshots) != 0 {
		t.Fatalf("leaked: %d zombies, %d pins, %d snapshots", len(l.zombies), len(l.pins), len(l.snapshots))
	}
}

// SegmentBases lists each segment's base offset, ascending, the first the
// lowest offset, after a truncation too.
func TestSegmentBases(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	appendN(t, l, 60)
	check := func() {
		t.Helper()
		bases := l.SegmentBases()
		_, n := l.Size()
		if len(bases) != n || n < 2 || bases[0] != l.LowestOffset() {
			t.Fatalf("bases %v for %d segments, lowest %d", bases, n, l.LowestOffset())
		}
		for i := 1; i < len(bases); i++ {
			if bases[i] <= bases[i-1] || bases[i] > l.NextOffset() {
				t.Fatalf("bases %v not ascending within [%d, %d]", bases, l.LowestOffset(), l.NextOffset())
			}
		}
	}
	check()
	if err := l.Truncate(l.SegmentBases()[1]); err != nil {
		t.Fatal(err)
	}
	check()
}
