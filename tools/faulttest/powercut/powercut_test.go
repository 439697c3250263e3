package powercut

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mount mounts a fresh powercut filesystem for the test, or skips where
// FUSE is unavailable.
func mount(t *testing.T, seed uint64) *FS {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	p, err := Mount(Config{Backing: filepath.Join(dir, "backing"), Mountpoint: filepath.Join(dir, "mnt"), Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// writeFile creates name with data, fsynced, its directory too.
func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	syncDir(t, dir)
}

func cut(t *testing.T, p *FS) Report {
	t.Helper()
	rep, err := p.Cut()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Mountpoint: "/m"}, "powercut: Backing is required"},
		{Config{Backing: "/b"}, "powercut: Mountpoint is required"},
		{Config{Backing: "/b/", Mountpoint: "/b"}, "powercut: Backing and Mountpoint are both /b/"},
	} {
		if err := tc.cfg.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// Synced data survives every cut; unsynced writes survive as a prefix, in
// order (the first one lost possibly torn), and some cuts lose them.
func TestUnsyncedWritesLostAsPrefix(t *testing.T) {
	synced := bytes.Repeat([]byte("s"), 100)
	unsynced := [][]byte{bytes.Repeat([]byte("a"), 50), bytes.Repeat([]byte("b"), 50), bytes.Repeat([]byte("c"), 50)}
	lostSome := false
	for seed := uint64(1); seed <= 8; seed++ {
		p := mount(t, seed)
		dir := p.Mountpoint()
		writeFile(t, dir, "f", synced)
		f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range unsynced {
			if _, err := f.WriteAt(b, int64(len(synced)+50*i)); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		rep := cut(t, p)
		got, err := os.ReadFile(filepath.Join(dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		want := append(append([]byte(nil), synced...), bytes.Join(unsynced, nil)...)
		if len(got) < len(synced) || !bytes.Equal(got, want[:len(got)]) {
			t.Fatalf("seed %d: after the cut the file is %q, want a prefix of %q at least %d bytes long", seed, got, want, len(synced))
		}
		if rep.Writes != 3 || rep.Files != 1 {
			t.Errorf("seed %d: report %+v, want 3 unsynced writes to 1 file", seed, rep)
		}
		lostSome = lostSome || len(got) < len(want)
	}
	if !lostSome {
		t.Error("no cut of 8 lost any unsynced write")
	}
}

// A write made durable by fsync is never lost, even when later writes
// over it are.
func TestFsyncedOverwriteSurvives(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		p := mount(t, seed)
		dir := p.Mountpoint()
		writeFile(t, dir, "f", []byte("old-old-old"))
		f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("new"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(3); err != nil { // unsynced
			t.Fatal(err)
		}
		f.Close()
		cut(t, p)
		got, _ := os.ReadFile(filepath.Join(dir, "f"))
		if string(got) != "new-old-old" && string(got) != "new" {
			t.Errorf("seed %d: %q, want %q (truncation lost) or %q", seed, got, "new-old-old", "new")
		}
	}
}

// Writes through a shared mapping are durable once msynced.
func TestMmapWriteSyncedSurvives(t *testing.T) {
	p := mount(t, 1)
	dir := p.Mountpoint()
	writeFile(t, dir, "f", make([]byte, 4096))
	f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, "mapped")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cut(t, p)
	got, _ := os.ReadFile(filepath.Join(dir, "f"))
	if !bytes.HasPrefix(got, []byte("mapped")) || len(got) != 4096 {
		t.Errorf("after the cut: %q... (%d bytes), want \"mapped\" then zeros, 4096 bytes", got[:min(len(got), 8)], len(got))
	}
}

// Creating, removing and renaming entries is durable only once the
// directory is fsynced; before, a cut keeps all of a directory's changes
// or none.
func TestEntriesDurableAfterDirSync(t *testing.T) {
	outcomes := map[bool]bool{}
	for seed := uint64(1); seed <= 8; seed++ {
		p := mount(t, seed)
		dir := p.Mountpoint()
		writeFile(t, dir, "old", []byte("old content"))
		writeFile(t, dir, "gone", []byte("removed"))
		writeFile(t, dir, "target", []byte("replaced"))
		writeFile(t, dir, "kept", []byte("kept"))
		// Unsynced entry changes (the files' data is synced).
		if err := os.WriteFile(filepath.Join(dir, "new"), []byte("created"), 0o644); err != nil {
			t.Fatal(err)
		}
		syncFile(t, filepath.Join(dir, "new"))
		if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "old"), filepath.Join(dir, "target")); err != nil {
			t.Fatal(err)
		}
		rep := cut(t, p)
		kept := rep.DirsLost == 0
		outcomes[kept] = true
		want := map[string]string{"old": "old content", "gone": "removed", "target": "replaced", "kept": "kept"}
		if kept {
			want = map[string]string{"new": "created", "target": "old content", "kept": "kept"}
		}
		for _, name := range []string{"old", "gone", "target", "kept", "new"} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if w, ok := want[name]; ok && string(got) != w {
				t.Errorf("seed %d (changes kept: %v): %s holds %q (%v), want %q", seed, kept, name, got, err, w)
			} else if !ok && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("seed %d (changes kept: %v): %s exists (%q, %v), want it gone", seed, kept, name, got, err)
			}
		}
		// Once the directory is fsynced, its entries survive any cut.
		if err := os.WriteFile(filepath.Join(dir, "late"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		syncDir(t, dir)
		if rep := cut(t, p); rep.Dirs != 0 {
			t.Errorf("seed %d: cut after the directory fsync found unsynced entries: %v", seed, rep)
		}
		if _, err := os.Stat(filepath.Join(dir, "late")); err != nil {
			t.Errorf("seed %d: entry created and fsynced in its directory is gone: %v", seed, err)
		}
	}
	if !outcomes[true] || !outcomes[false] {
		t.Errorf("8 cuts: entry changes kept in some and lost in others expected, saw %v", outcomes)
	}
}

func syncFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// Cut refuses while a process holds a file open on the mount.
func TestCutRefusedWhileInUse(t *testing.T) {
	p := mount(t, 1)
	f, err := os.Create(filepath.Join(p.Mountpoint(), "open"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cut(); err == nil {
		t.Error("Cut with a file open succeeded")
	}
	f.Close()
}
