package powerloss

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

// script creates "a" (written, fsynced, then written again without fsync)
// and fsyncs the directory, then creates "b" (written and fsynced, but the
// directory is not fsynced again). It stops at the first error.
func script(fs *FS, dir string) error {
	a, err := fs.OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644) // step 1
	if err != nil {
		return err
	}
	defer a.Close()
	steps := []func() error{
		func() error { _, err := a.WriteAt([]byte("durable"), 0); return err }, // 2
		a.Sync, // 3
		func() error { // 4
			d, err := fs.OpenFile(dir, os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer d.Close()
			return d.Sync()
		},
		func() error { _, err := a.WriteAt([]byte("-volatile"), 7); return err }, // 5
		func() error { // 6, 7, 8
			b, err := fs.OpenFile(filepath.Join(dir, "b"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			defer b.Close()
			if _, err := b.WriteAt([]byte("b data"), 0); err != nil {
				return err
			}
			return b.Sync()
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func run(t *testing.T, seed uint64, crashAt int) (files map[string]string, scriptErr error) {
	t.Helper()
	dir := t.TempDir()
	fs := New(seed, crashAt)
	if err := fs.Track(dir); err != nil {
		t.Fatal(err)
	}
	scriptErr = script(fs, dir)
	if err := fs.Restore(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	files = map[string]string{}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		files[e.Name()] = string(b)
	}
	return files, scriptErr
}

func TestStepsAndCrash(t *testing.T) {
	fs := New(1, 0)
	dir := t.TempDir()
	fs.Track(dir)
	if err := script(fs, dir); err != nil {
		t.Fatal(err)
	}
	if fs.Steps() != 8 || fs.Crashed() {
		t.Fatalf("dry run: %d steps, crashed %v; want 8, false", fs.Steps(), fs.Crashed())
	}
	for k := 1; k <= 8; k++ {
		fs := New(1, k)
		dir := t.TempDir()
		fs.Track(dir)
		err := script(fs, dir)
		if fs.Steps() != k || !fs.Crashed() {
			t.Fatalf("crash at %d: %d steps, crashed %v", k, fs.Steps(), fs.Crashed())
		}
		if (k < 8) != errors.Is(err, ErrPowerLoss) {
			t.Fatalf("crash at %d: script error %v", k, err)
		}
	}
}

func TestWhatSurvives(t *testing.T) {
	seen := map[string]bool{}
	for seed := range uint64(200) {
		files, err := run(t, seed, 0) // cut after the script
		if err != nil {
			t.Fatal(err)
		}
		a, ok := files["a"]
		if !ok || !bytes.HasPrefix([]byte(a), []byte("durable")) {
			t.Fatalf("seed %d: fsynced data of a file with a durable entry lost: %q", seed, files)
		}
		if vol := a[len("durable"):]; len(vol) > len("-volatile") || !bytes.HasPrefix([]byte("-volatile"), bytes.TrimRight([]byte(vol), "\x00")) {
			t.Fatalf("seed %d: a holds %q, not a prefix of what was written (or zeros)", seed, a)
		}
		b, bOK := files["b"]
		if bOK && b != "b data" {
			t.Fatalf("seed %d: b holds %q", seed, b)
		}
		seen["a="+a] = true
		seen["b present="+map[bool]string{true: "yes", false: "no"}[bOK]] = true
	}
	// Unsynced writes are lost, kept or torn; an entry the directory fsync
	// did not cover may vanish.
	for _, want := range []string{"a=durable", "a=durable-volatile", "b present=yes", "b present=no"} {
		if !seen[want] {
			t.Errorf("no seed gave %q; got %v", want, seen)
		}
	}
	if len(seen) < 6 {
		t.Errorf("no torn write drawn: %v", seen)
	}
}

func TestDeterministic(t *testing.T) {
	for k := 1; k <= 8; k++ {
		x, _ := run(t, 42, k)
		y, _ := run(t, 42, k)
		if len(x) != len(y) {
			t.Fatalf("crash at %d: %q then %q", k, x, y)
		}
		for n := range x {
			if x[n] != y[n] {
				t.Fatalf("crash at %d: %q then %q", k, x, y)
			}
		}
	}
}

// Allocate (the index's fallocate reservation) reaches the real file and
// is modelled as zeros past the end: lost in part or whole by a cut unless
// fsynced, like any other size change.
func TestAllocateModelled(t *testing.T) {
	sizes := map[int]bool{}
	for seed := range uint64(50) {
		for _, synced := range []bool{false, true} {
			dir := t.TempDir()
			fs := New(seed, 0)
			if err := fs.Track(dir); err != nil {
				t.Fatal(err)
			}
			f, err := fs.OpenFile(filepath.Join(dir, "index"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("entry"), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			d, err := fs.OpenFile(dir, os.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			d.Close()
			a, ok := f.(segment.Allocator)
			if !ok {
				t.Fatalf("a file of the model is not a segment.Allocator: the index's reservation would not be modelled as one")
			}
			before := fs.Steps()
			if err := a.Allocate(0, 4096); err != nil {
				if errors.Is(err, errors.ErrUnsupported) {
					t.Skip("the file system cannot fallocate")
				}
				t.Fatal(err)
			}
			if fs.Steps() != before+1 {
				t.Errorf("Allocate took %d steps, want 1", fs.Steps()-before)
			}
			if fi, err := os.Stat(filepath.Join(dir, "index")); err != nil || fi.Size() != 4096 {
				t.Fatalf("after Allocate the real file is %v bytes (%v), want 4096", fi.Size(), err)
			}
			if synced {
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if err := fs.Restore(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "index"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("entry")) || len(bytes.Trim(b[5:], "\x00")) != 0 {
				t.Fatalf("seed %d: after the cut the file is %q..., want \"entry\" then zeros", seed, b[:min(len(b), 8)])
			}
			if synced && len(b) != 4096 {
				t.Fatalf("seed %d: fsynced reservation cut to %d bytes", seed, len(b))
			}
			if !synced {
				sizes[len(b)] = true
			}
		}
	}
	if !sizes[5] || !sizes[4096] {
		t.Errorf("unsynced reservations: sizes after cuts %v, want both lost (5) and kept (4096) among them", sizes)
	}
}
