//go:build linux

package segment

import (
	"errors"
	"fmt"
	"syscall"
)

// Allocate implements Allocator with fallocate(2) mode 0. EOPNOTSUPP (file
// systems without fallocate) is reported as errors.ErrUnsupported.
func (f *osFile) Allocate(off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fallocate %s: %w", f.Name(), err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Fallocate(int(fd), 0, off, n)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("fallocate %s: %w", f.Name(), err)
	}
	switch {
	case ferr == nil:
		return nil
	case errors.Is(ferr, syscall.EOPNOTSUPP):
		return fmt.Errorf("fallocate %s: %w: %w", f.Name(), ferr, errors.ErrUnsupported)
	default:
		return fmt.Errorf("fallocate %s: %w", f.Name(), ferr)
	}
}
