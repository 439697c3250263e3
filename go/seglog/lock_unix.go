//go:build unix

package seglog

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is the lock file Open creates in the log directory.
const lockFileName = "LOCK"

// dirLock is an exclusive flock on dir/LOCK, released by release or by the
// process exiting (also when it is killed).
type dirLock struct{ f *os.File }

func (d *dirLock) acquire(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("seglog: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return fmt.Errorf("seglog: lock %s: %w", dir, err)
	}
	d.f = f
	return nil
}

func (d *dirLock) release() error {
	if d.f == nil {
		return nil
	}
	err := d.f.Close() // closing the descriptor drops the flock
	d.f = nil
	return err
}
