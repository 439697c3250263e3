package seglog

import (
	"context"
	"sync"
	"sync/atomic"
)

// notifier broadcasts "NextOffset changed" without polling: waiters block on
// a channel that is closed (and replaced) when records are published, and
// closed for good when the Log closes. A channel is only replaced when some
// waiter has taken it, so appends without waiters do not allocate.
type notifier struct {
	nmu     sync.Mutex
	ch      chan struct{}
	taken   atomic.Bool // a waiter holds ch
	nclosed bool
}

func (n *notifier) initNotifier() { n.ch = make(chan struct{}) }

// waitChan returns the channel to wait on and whether the log is closed.
func (n *notifier) waitChan() (<-chan struct{}, bool) {
	n.nmu.Lock()
	defer n.nmu.Unlock()
	n.taken.Store(true)
	return n.ch, n.nclosed
}

// broadcast wakes every waiter. Call it after publishing a new NextOffset.
func (n *notifier) broadcast() {
	if !n.taken.Load() {
		return
	}
	n.nmu.Lock()
	defer n.nmu.Unlock()
	if n.nclosed || !n.taken.Load() {
		return
	}
	close(n.ch)
	n.ch = make(chan struct{})
	n.taken.Store(false)
}

// closeNotifier wakes every waiter for good.
func (n *notifier) closeNotifier() {
	n.nmu.Lock()
	defer n.nmu.Unlock()
	if !n.nclosed {
		n.nclosed = true
		close(n.ch)
	}
}

// Wait blocks until NextOffset() > offset (the record at offset exists), ctx
// is done (returning ctx.Err()) or the log is closed (returning ErrClosed).
// It returns nil at once if the record already exists. Waiting does not
// poll: appends broadcast by closing a channel.
func (l *Log) Wait(ctx context.Context, offset uint64) error {
	for {
		ch, closed := l.waitChan()
		if l.next.Load() > offset {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
