package seglog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

func TestOpenSealedSegmentRecovery(t *testing.T) {
	// A crash while sealing leaves a non-last segment with a dirty index:
	// it is rebuilt (and sealed) on Open.
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	bases := fillSegments(t, l, 3)
	next := l.NextOffset()
	l.Close()
	ip := segment.IndexPath(dir, bases[0])
	b, _ := os.ReadFile(ip)
	b[11] &^= segment.FlagClean // clear FlagClean (the header checksum then fails too)
	os.WriteFile(ip, b, 0o644)
	l = openLog(t, dir, testConfig())
	checkLog(t, l, 0, next)
	if r := l.Recovery(); len(r) != 1 || r[0].BaseOffset != bases[0] || !r[0].IndexRebuilt {
		t.Fatalf("Recovery = %+v", r)
	}
	if got := fileSize(t, ip); got != int64(segment.FileHeaderSize+(bases[1]-bases[0])*segment.IndexEntryWidth) {
		t.Fatalf("rebuilt sealed index is %d bytes, not trimmed", got)
	}
}

func TestOpenMissingStoreIsCorruption(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	bases := fillSegments(t, l, 2)
	l.Close()
	os.Remove(segment.StorePath(dir, bases[1]))
	_, err := Open(dir, testConfig())
	if ce := asCorruption(t, err); ce.Path != segment.StorePath(dir, bases[1]) {
		t.Fatalf("corruption reported for %s", ce.Path)
	}
	// A failed Open releases the directory lock.
	os.Remove(segment.IndexPath(dir, bases[1]))
	l = openLog(t, dir, testConfig())
	checkLog(t, l, 0, bases[1])
}

func TestOpenNotADirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Open(f, testConfig()); err == nil {
		t.Fatal("Open of a regular file succeeded")
	}
	if _, err := Open(filepath.Join(f, "sub"), testConfig()); err == nil {
		t.Fatal("Open below a regular file succeeded")
	}
	var pe *os.PathError
	_, err := Open(filepath.Join(f, "sub"), testConfig())
	if !errors.As(err, &pe) {
		t.Fatalf("error %v does not carry the path", err)
	}
}

// FuzzOpen writes arbitrary bytes as the store and index of a log's only
// segment and opens the log: errors are fine, panics and unbounded
// allocations are not. A log that opens must be readable (records may
// report corruption), appendable and closable.
func FuzzOpen(f *testing.F) {
	image := func(clean bool, n int) (store, index []byte) {
		dir := f.TempDir()
		l, err := Open(dir, testConfig())
		if err != nil {
			f.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if _, err := l.Append(payload(uint64(i))); err != nil {
				f.Fatal(err)
			}
		}
		if clean {
			l.Close()
			store, _ = os.ReadFile(segment.StorePath(dir, 0))
			index, _ = os.ReadFile(segment.IndexPath(dir, 0))
		} else {
			store, _ = os.ReadFile(segment.StorePath(dir, 0))
			index, _ = os.ReadFile(segment.IndexPath(dir, 0))
			l.Close()
		}
		return store, index
	}
	s, x := image(true, 4)
	f.Add(s, x)
	f.Add(s[:len(s)-1], x)
	f.Add(s, x[:len(x)-1])
	f.Add(s, []byte{})
	ds, dx := image(false, 3)
	f.Add(ds, dx)
	es, ex := image(true, 0)
	f.Add(es, ex)
	f.Add(es[:10], []byte{})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, store, index []byte) {
		dir := t.TempDir()
		os.WriteFile(segment.StorePath(dir, 0), store, 0o644)
		os.WriteFile(segment.IndexPath(dir, 0), index, 0o644)
		l, err := Open(dir, testConfig())
		if err != nil {
			return
		}
		defer l.Close()
		if l.LowestOffset() != 0 || l.NextOffset() > uint64(len(store)) {
			t.Fatalf("opened log spans [%d, %d) from a %d-byte store", l.LowestOffset(), l.NextOffset(), len(store))
		}
		for off := l.LowestOffset(); off < l.NextOffset(); off++ {
			if _, err := l.Read(off); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read(%d): %v", off, err)
			}
		}
		next := l.NextOffset()
		off, err := l.Append([]byte("fuzz"))
		if err != nil || off != next {
			t.Fatalf("Append after a successful Open = %d, %v; want %d", off, err, next)
		}
		if got, err := l.Read(off); err != nil || string(got) != "fuzz" {
			t.Fatalf("Read back %q, %v", got, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
