package testutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The directory is a tmpfs of the asked size, which fills up, and the
// mount is never visible outside the child process.
func TestInTmpfs(t *testing.T) {
	ran := false
	InTmpfs(t, 1<<20, func(dir string) {
		ran = true
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		const tmpfsMagic = 0x01021994
		if st.Type != tmpfsMagic || uint64(st.Blocks)*uint64(st.Bsize) != 1<<20 {
			t.Fatalf("%s: type %#x, %d blocks of %d bytes; want a 1 MiB tmpfs", dir, st.Type, st.Blocks, st.Bsize)
		}
		if n := FillDisk(t, filepath.Join(dir, "filler")); n > 1<<20 || n < 1<<20-64<<10 {
			t.Fatalf("FillDisk wrote %d bytes on a 1 MiB tmpfs", n)
		}
		if err := os.WriteFile(filepath.Join(dir, "more"), []byte("x"), 0o600); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write after FillDisk: %v, want ENOSPC", err)
		}
	})
	if ran {
		return // the child
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), t.Name()) {
		t.Fatalf("a mount of the child is visible in the parent:\n%s", mounts)
	}
}
