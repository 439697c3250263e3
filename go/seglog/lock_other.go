//go:build !unix

package seglog

// lockFileName is reserved; directory locking is only implemented on Unix.
const lockFileName = "LOCK"

type dirLock struct{}

func (d *dirLock) acquire(dir string) error { return nil }
func (d *dirLock) release() error           { return nil }
