//go:build unix

package diskspace

import "syscall"

// statfs returns f_bavail × f_bsize for the file system of dir.
func statfs(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
