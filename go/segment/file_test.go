package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// recorder is an OpenFileFunc whose files log every mutating operation.
type recorder struct {
	noAllocate bool // Allocate fails with errors.ErrUnsupported
	mu         sync.Mutex
	ops        []string // "write <name>", "sync <name>", "truncate <name>", "allocate <name>"
}

// recordingFile wraps the production File (with vectored writes).
type recordingFile struct {
	File
	r *recorder
}

func (r *recorder) open(name string, flag int, perm os.FileMode) (File, error) {
	f, err := OpenOSFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &recordingFile{File: f, r: r}, nil
}

func (r *recorder) log(op, name string) {
	r.mu.Lock()
	r.ops = append(r.ops, op+" "+filepath.Base(name))
	r.mu.Unlock()
}

// take returns and clears the operations recorded so far.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

func (f *recordingFile) OSFile() *os.File { return f.File.(*osFile).File }
func (f *recordingFile) WriteAt(b []byte, off int64) (int, error) {
	f.r.log("write", f.Name())
	return f.File.WriteAt(b, off)
}
func (f *recordingFile) WritevAt(b [][]byte, off int64) (int, error) {
	f.r.log("write", f.Name())
	return f.File.(VectorWriter).WritevAt(b, off)
}
func (f *recordingFile) Sync() error { f.r.log("sync", f.Name()); return f.File.Sync() }
func (f *recordingFile) Allocate(off, n int64) error {
	f.r.log("allocate", f.Name())
	if a, ok := f.File.(Allocator); ok && !f.r.noAllocate {
		return a.Allocate(off, n)
	}
	return errors.ErrUnsupported
}
func (f *recordingFile) Truncate(n int64) error {
	f.r.log("truncate", f.Name())
	return f.File.Truncate(n)
}

func TestFileOperationOrder(t *testing.T) {
	rec := &recorder{}
	c := testConfig()
	c.OpenFile = rec.open
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, c)
	store, index := StoreName(0), IndexName(0)
	if got, want := rec.take(), []string{
		"truncate " + store, "write " + store, "sync " + store, // header, durable before the index exists
		"sync " + filepath.Base(dir),                               // and so is its directory entry
		"write " + index, "truncate " + index, "allocate " + index, // dirty header, preallocation, blocks reserved
	}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Create ops = %q, want %q", got, want)
	}
	tests := []struct {
		name  string
		batch int
		sync  bool
		want  []string
	}{
		{"synced append: one write, then fsync of the store", 1, true, []string{"write " + store, "sync " + store}},
		{"synced batch: still one write and one fsync", 10, true, []string{"write " + store, "sync " + store}},
		{"unsynced append: no fsync", 1, false, []string{"write " + store}},
		{"unsynced batch", 5, false, []string{"write " + store}},
		{"synced batch of large records (vectored write)", -3, true, []string{"write " + store, "sync " + store}},
	}
	for _, tt := range tests {
		recs := records(s.NextOffset(), max(tt.batch, 1))
		if tt.batch < 0 {
			recs = [][]byte{make([]byte, 5000), make([]byte, 10), make([]byte, 6000)}
		}
		if _, err := s.Append(recs, tt.sync); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: ops %q, want %q", tt.name, got, tt.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Clean close: store durable first, then the index is trimmed and
	// synced before it is marked clean and synced again.
	want := []string{"sync " + store, "truncate " + index, "sync " + index, "write " + index, "sync " + index}
	if got := rec.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Close ops = %q, want %q", got, want)
	}
	// Reopening for writing marks the index dirty durably before anything
	// is appended.
	s = mustOpen(t, dir, 0, c, true)
	defer s.Close()
	got := strings.Join(rec.take(), ",")
	if want := "write " + index + ",sync " + index + ",truncate " + index + ",allocate " + index; !strings.HasPrefix(got, want) {
		t.Fatalf("Open ops = %q, want prefix %q", got, want)
	}
}

// Where the file system cannot allocate, the index reserves its space by
// writing zeros past its entries, never over them.
func TestIndexReserveWritesZerosWithoutAllocate(t *testing.T) {
	rec := &recorder{noAllocate: true}
	c := testConfig()
	c.OpenFile = rec.open
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, c)
	index := IndexName(0)
	got := rec.take()
	if want := []string{"truncate " + index, "allocate " + index, "write " + index}; fmt.Sprint(got[len(got)-3:]) != fmt.Sprint(want) {
		t.Fatalf("Create ops = %q, want them to end with %q", got, want)
	}
	recs := records(0, 3)
	mustAppend(t, s, recs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, 0, c, true) // reserves past the 3 entries
	defer s.Close()
	if ops := strings.Join(rec.take(), ","); !strings.HasSuffix(ops, "allocate "+index+",write "+index) {
		t.Fatalf("Open ops = %q, want zeros written after the failed allocate", ops)
	}
	if r := s.Recovery(); r.IndexRebuilt {
		t.Fatalf("index rebuilt on reopen: %s", r.IndexReason)
	}
	for i, want := range recs {
		if got, err := s.Read(uint64(i)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Read(%d) = %x, %v; want %x", i, got, err, want)
		}
	}
	mustAppend(t, s, records(3, 2))
}
