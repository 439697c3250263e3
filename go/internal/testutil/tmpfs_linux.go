//go:build linux

package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// Environment of the child process InTmpfs starts.
const (
	tmpfsTestEnv = "PROGLOG_TMPFS_TEST" // the test the child runs fn for
	tmpfsDirEnv  = "PROGLOG_TMPFS_DIR"  // where it mounts the tmpfs
)

// InTmpfs runs fn with the path of an empty tmpfs of size bytes, for tests
// of what happens when a disk fills up. The tmpfs is mounted in a private
// mount namespace of a child process: the test binary run again for this
// test alone (-test.run), with CLONE_NEWNS, so the mount is never visible
// outside the child and disappears with it, whatever happens (even if fn
// crashes the child). fn runs only in the child; the parent waits for it
// and fails the test with the child's output if it fails or dies (a
// signal such as SIGBUS included), and skips the test, saying why, if the
// process may not create mount namespaces or mount (not root, or a
// sandbox that forbids it). Code before the call runs in both processes;
// t must be a top-level test.
func InTmpfs(t *testing.T, size int64, fn func(dir string)) {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("InTmpfs: %s is a subtest; call it from a top-level test", t.Name())
	}
	if os.Getenv(tmpfsTestEnv) == t.Name() {
		dir := os.Getenv(tmpfsDirEnv)
		if err := privateMounts(dir); err != nil {
			t.Fatalf("make the mounts of the private mount namespace private: %v", err)
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
			if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
				t.Skipf("mounting a tmpfs is not permitted here (needs CAP_SYS_ADMIN): %v", err)
			}
			t.Fatalf("mount tmpfs on %s: %v", dir, err)
		}
		t.Cleanup(func() {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
		fn(dir)
		return
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(childEnv(), tmpfsTestEnv+"="+t.Name(), tmpfsDirEnv+"="+t.TempDir())
	// Cloneflags, not Unshareflags: with the latter Go remounts "/" private
	// in the child, which fails (EINVAL) where "/" is not a mount point,
	// as in the chroot of the offline Bazel toolchain; the child makes its
	// mounts private itself (privateMounts).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("creating a mount namespace is not permitted here (needs CAP_SYS_ADMIN): %v", err)
	}
	if err != nil {
		t.Fatalf("%s in a private mount namespace: %v; its output:\n%s", t.Name(), err, out)
	}
	t.Logf("%s in a private mount namespace:\n%s", t.Name(), out)
	if regexp.MustCompile(`(?m)^--- SKIP: `).Match(out) {
		t.Skipf("skipped in the private mount namespace:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^--- PASS: ` + regexp.QuoteMeta(t.Name()) + ` `).Match(out) {
		t.Fatalf("%s in a private mount namespace did not pass; its output:\n%s", t.Name(), out)
	}
}

// privateMounts stops mount events of this (new) mount namespace from
// propagating to the parent's: it makes every mount private or, where "/"
// is not a mount point (a chroot), turns dir into a private bind mount of
// itself, so the tmpfs mounted on it stays in this namespace.
func privateMounts(dir string) error {
	err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "")
	if !errors.Is(err, syscall.EINVAL) {
		return err
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := syscall.Mount("none", dir, "", syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// childEnv is the environment without what makes a Bazel test binary
// report to Bazel (its shard and XML report files belong to the parent).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", "TEST_SHARD_STATUS_FILE", "XML_OUTPUT_FILE", "TEST_PREMATURE_EXIT_FILE":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// FillDisk writes a file at path until the file system holding it is full
// to the last byte (ENOSPC), and returns how many bytes it wrote. Removing
// the file frees the space again.
func FillDisk(t testing.TB, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatalf("FillDisk: %v", err)
	}
	defer f.Close()
	var total int64
	buf := make([]byte, 64<<10)
	for n := len(buf); n > 0; n /= 2 {
		for {
			w, err := f.Write(buf[:n])
			total += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("FillDisk: %v", err)
			}
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("FillDisk: %v", err)
	}
	return total
}
