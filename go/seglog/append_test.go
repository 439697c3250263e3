package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

func TestAppendBatch(t *testing.T) {
	c := testConfig() // 2048-byte stores, 1024-byte records, 32 entries
	recsOf := func(sizes ...int) [][]byte {
		var out [][]byte
		for i, n := range sizes {
			out = append(out, bytes.Repeat([]byte{byte(i + 1)}, n))
		}
		return out
	}
	many := func(n, size int) [][]byte {
		var sizes []int
		for i := 0; i < n; i++ {
			sizes = append(sizes, size)
		}
		return recsOf(sizes...)
	}
	tests := []struct {
		name      string
		before    int // records appended first
		batch     [][]byte
		wantErr   error
		wantSegs  int // segments afterwards
		wantFirst uint64
	}{
		{"empty batch", 0, nil, nil, 1, 0},
		{"empty batch on a non-empty log", 3, [][]byte{}, nil, 1, 3},
		{"one record", 0, recsOf(10), nil, 1, 0},
		{"empty record", 0, recsOf(0), nil, 1, 0},
		{"record of exactly MaxRecordBytes", 0, recsOf(1024), nil, 1, 0},
		{"too large: nothing written", 2, recsOf(5, 1025, 5), ErrRecordTooLarge, 1, 0},
		{"fits the active segment", 1, recsOf(100, 100, 100), nil, 1, 1},
		{"does not fit: rolls over first, one segment write", 5, recsOf(1000, 1000), nil, 2, 5},
		{"larger than a segment: split", 0, many(5, 1000), nil, 3, 0},
		{"more records than an index holds: split", 0, many(70, 0), nil, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, c)
			var want [][]byte
			for i := 0; i < tt.before; i++ {
				r := []byte(fmt.Sprint("before", i))
				if _, err := l.Append(r); err != nil {
					t.Fatal(err)
				}
				want = append(want, r)
			}
			size, _ := l.Size()
			first, err := l.AppendBatch(tt.batch)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("AppendBatch = %v, want %v", err, tt.wantErr)
				}
				if s, _ := l.Size(); s != size || l.NextOffset() != uint64(tt.before) {
					t.Fatal("a rejected batch changed the log")
				}
			} else {
				if err != nil || first != tt.wantFirst {
					t.Fatalf("AppendBatch = %d, %v; want %d", first, err, tt.wantFirst)
				}
				want = append(want, tt.batch...)
			}
			if _, segs := l.Size(); segs != tt.wantSegs {
				t.Fatalf("%d segments, want %d", segs, tt.wantSegs)
			}
			for reopen := 0; reopen < 2; reopen++ {
				if l.NextOffset() != uint64(len(want)) {
					t.Fatalf("NextOffset = %d, want %d", l.NextOffset(), len(want))
				}
				for i, w := range want {
					got, err := l.Read(uint64(i))
					if err != nil || !bytes.Equal(got, w) {
						t.Fatalf("Read(%d) = %d bytes, %v; want %d bytes", i, len(got), err, len(w))
					}
				}
				l.Close()
				l = openLog(t, dir, c)
			}
		})
	}
}

func TestRolloverSealsSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	appendN(t, l, 100)
	bases := segmentBases(t, dir)
	if len(bases) < 3 || bases[0] != 0 {
		t.Fatalf("segments %v", bases)
	}
	for i, b := range bases[:len(bases)-1] {
		// Sealed: index trimmed to its entries, store within bounds.
		entries := bases[i+1] - b
		fi, _ := os.Stat(segment.IndexPath(dir, b))
		if want := int64(segment.FileHeaderSize + entries*segment.IndexEntryWidth); fi.Size() != want {
			t.Fatalf("sealed index %d is %d bytes, want %d", b, fi.Size(), want)
		}
		si, _ := os.Stat(segment.StorePath(dir, b))
		if si.Size() > int64(testConfig().Segment.MaxStoreBytes) {
			t.Fatalf("store %d is %d bytes, above MaxStoreBytes", b, si.Size())
		}
	}
	last := bases[len(bases)-1]
	fi, _ := os.Stat(segment.IndexPath(dir, last))
	if fi.Size() != int64(testConfig().Segment.MaxIndexBytes) {
		t.Fatalf("active index is %d bytes, want preallocated %d", fi.Size(), testConfig().Segment.MaxIndexBytes)
	}
}

// opRecorder is an OpenFileFunc whose files record mutating operations.
type opRecorder struct {
	mu       sync.Mutex
	ops      []string
	failSync error // returned by Sync of store files when set
}

// recordingFile wraps the production File (with vectored writes).
type recordingFile struct {
	segment.File
	r *opRecorder
}

func (r *opRecorder) open(name string, flag int, perm os.FileMode) (segment.File, error) {
	f, err := segment.OpenOSFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &recordingFile{File: f, r: r}, nil
}

func (r *opRecorder) log(op, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op+" "+filepath.Ext(name))
}

func (r *opRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

func (f *recordingFile) OSFile() *os.File {
	return f.File.(interface{ OSFile() *os.File }).OSFile()
}
func (f *recordingFile) WriteAt(b []byte, off int64) (int, error) {
	f.r.log("write", f.Name())
	return f.File.WriteAt(b, off)
}
func (f *recordingFile) WritevAt(b [][]byte, off int64) (int, error) {
	f.r.log("write", f.Name())
	return f.File.(segment.VectorWriter).WritevAt(b, off)
}
func (f *recordingFile) Sync() error {
	f.r.log("sync", f.Name())
	f.r.mu.Lock()
	err := f.r.failSync
	f.r.mu.Unlock()
	if err != nil && filepath.Ext(f.Name()) == ".store" {
		return err
	}
	return f.File.Sync()
}
func (f *recordingFile) Truncate(n int64) error {
	f.r.log("truncate", f.Name())
	return f.File.Truncate(n)
}
func (f *recordingFile) Allocate(off, n int64) error {
	f.r.log("allocate", f.Name())
	if a, ok := f.File.(segment.Allocator); ok {
		return a.Allocate(off, n)
	}
	return errors.ErrUnsupported
}

func TestSyncPolicyFileOperations(t *testing.T) {
	tests := []struct {
		policy SyncPolicy
		batch  int
		size   int    // extra bytes per record (large records take the vectored path)
		want   string // store operations of each append call
	}{
		{SyncAlways, 1, 0, "write .store,sync .store"},
		{SyncAlways, 100, 0, "write .store,sync .store"},
		{SyncAlways, 10, 10000, "write .store,sync .store"},
		{SyncNever, 1, 0, "write .store"},
		{SyncNever, 100, 0, "write .store"},
		{SyncNever, 10, 10000, "write .store"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/batch%d/size+%d", tt.policy, tt.batch, tt.size), func(t *testing.T) {
			rec := &opRecorder{}
			c := DefaultConfig() // big segments: no rollover here
			c.Sync = tt.policy
			l, err := open(t.TempDir(), c, rec.open)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			rec.take()
			for i := 0; i < 20; i++ {
				batch := make([][]byte, tt.batch)
				for j := range batch {
					batch[j] = append(payload(uint64(i*tt.batch+j)), make([]byte, tt.size)...)
				}
				if _, err := l.AppendBatch(batch); err != nil {
					t.Fatal(err)
				}
				// Recorded synchronously inside the call: by the time
				// AppendBatch returned, the store was written once and,
				// under SyncAlways, fsynced after that write.
				if got := strings.Join(rec.take(), ","); got != tt.want {
					t.Fatalf("append %d: ops %q, want %q", i, got, tt.want)
				}
			}
		})
	}
}

func TestRolloverSyncsOldStoreFirst(t *testing.T) {
	rec := &opRecorder{}
	c := testConfig() // SyncNever: only rollover syncs
	l, err := open(t.TempDir(), c, rec.open)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec.take()
	var ops []string
	for l.LowestOffset() == 0 && len(segmentBases(t, l.Dir())) < 2 {
		appendN(t, l, 1)
		ops = append(ops, rec.take()...)
	}
	got := strings.Join(ops, ",")
	// The old store is fsynced before the new store is created (and
	// fsynced, with the directory), then the old index is sealed.
	want := "sync .store,truncate .store,write .store,sync .store,sync ,write .index,truncate .index,allocate .index," +
		"sync .store,truncate .index,sync .index,write .index,sync .index"
	if !strings.Contains(got, want) {
		t.Fatalf("rollover ops %q, want them to contain %q", got, want)
	}
}

func TestAppendAfterSyncFailure(t *testing.T) {
	rec := &opRecorder{}
	dir := t.TempDir()
	c := testConfig()
	c.Sync = SyncAlways
	l, err := open(dir, c, rec.open)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	rec.mu.Lock()
	rec.failSync = errors.New("injected EIO")
	rec.mu.Unlock()
	if _, err := l.Append([]byte("lost?")); err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Append with a failing fsync = %v", err)
	}
	if l.NextOffset() != 3 {
		t.Fatalf("unacknowledged record published: NextOffset %d", l.NextOffset())
	}
	rec.mu.Lock()
	rec.failSync = nil
	rec.mu.Unlock()
	for name, op := range map[string]func() error{
		"Append":        func() error { _, err := l.Append([]byte("x")); return err },
		"TruncateAfter": func() error { return l.TruncateAfter(1) },
		"Truncate":      func() error { return l.Truncate(1) },
	} {
		if err := op(); !errors.Is(err, ErrFailed) {
			t.Fatalf("%s after a failed fsync = %v, want ErrFailed", name, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening recovers: the acknowledged records are there; the failed
	// one may or may not be, but nothing is corrupt.
	l = openLog(t, dir, c)
	switch next := l.NextOffset(); next {
	case 3:
		checkLog(t, l, 0, 3)
	case 4:
		if got, err := l.Read(3); err != nil || string(got) != "lost?" {
			t.Fatalf("Read(3) = %q, %v", got, err)
		}
	default:
		t.Fatalf("NextOffset after recovery = %d", next)
	}
	for off := uint64(0); off < 3; off++ {
		if got, err := l.Read(off); err != nil || !bytes.Equal(got, payload(off)) {
			t.Fatalf("acknowledged record %d: %q, %v", off, got, err)
		}
	}
	if _, err := l.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentReadersWhileAppending(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	const n = 1500
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	done := make(chan struct{})
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				next := l.NextOffset()
				if next == 0 {
					continue
				}
				off := rng.Uint64N(next)
				got, err := l.Read(off)
				if err != nil || !bytes.Equal(got, payload(off)) {
					errc <- fmt.Errorf("Read(%d) with next %d = %q, %v", off, next, got, err)
					return
				}
			}
		}(uint64(r))
	}
	for i := 0; i < n; i += 3 {
		if i%2 == 0 {
			appendN(t, l, 3)
		} else {
			next := l.NextOffset()
			if _, err := l.AppendBatch([][]byte{payload(next), payload(next + 1), payload(next + 2)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestAppendAllocations(t *testing.T) {
	l := openLog(t, t.TempDir(), func() Config { c := DefaultConfig(); c.Sync = SyncNever; return c }())
	rec := make([]byte, 100)
	appendN(t, l, 10) // warm up the framing buffer
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("Append allocates %.1f times per call, want 0", allocs)
	}
}
