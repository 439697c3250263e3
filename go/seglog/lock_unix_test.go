//go:build unix

package seglog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	if _, err := Open(dir, testConfig()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	l.Close()
	l2, err := Open(dir, testConfig())
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	l2.Close()
}

func TestFailedOpenReleasesLock(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, segment.StoreName(0))
	os.WriteFile(store, []byte("not a store file, not a header prefix"), 0o644)
	if _, err := Open(dir, testConfig()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a garbage store = %v, want ErrCorrupt", err)
	}
	os.Remove(store)
	l := openLog(t, dir, testConfig())
	l.Close()
}
