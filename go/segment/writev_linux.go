//go:build linux

package segment

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"
)

type iovec = syscall.Iovec

// iovMax is Linux's IOV_MAX: the most buffers one pwritev accepts.
const iovMax = 1024

// WritevAt implements VectorWriter with pwritev(2), looping over short
// writes and batches of iovMax buffers.
func (f *osFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	total := 0
	for len(bufs) > 0 {
		iov := f.iovecs[:0]
		for _, b := range bufs {
			if len(iov) == iovMax {
				break
			}
			if len(b) == 0 {
				continue
			}
			v := iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		f.iovecs = iov[:0]
		if len(iov) == 0 {
			return total, nil
		}
		n, err := pwritev(int(f.Fd()), iov, off)
		runtime.KeepAlive(f.File)
		if err != nil {
			return total, fmt.Errorf("pwritev %s at %d: %w", f.Name(), off, err)
		}
		if n == 0 {
			return total, fmt.Errorf("pwritev %s at %d: wrote nothing", f.Name(), off)
		}
		total += n
		off += int64(n)
		// Drop what was written.
		for n > 0 && len(bufs) > 0 {
			if len(bufs[0]) <= n {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
				n = 0
			}
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return total, nil
}

func pwritev(fd int, iov []iovec, off int64) (int, error) {
	for {
		n, _, errno := syscall.Syscall6(syscall.SYS_PWRITEV, uintptr(fd),
			uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)),
			uintptr(off), uintptr(uint64(off)>>32), 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return int(n), errno
		}
		return int(n), nil
	}
}
