//go:build !linux

package testutil

import "testing"

// InTmpfs needs Linux mount namespaces; elsewhere it skips the test.
func InTmpfs(t *testing.T, size int64, fn func(dir string)) {
	t.Skip("InTmpfs needs Linux (mount namespaces and tmpfs)")
}

// FillDisk is only used with InTmpfs, which skips outside Linux.
func FillDisk(t testing.TB, path string) int64 {
	t.Fatal("FillDisk needs Linux")
	return 0
}
