package client

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// doneWatcher closes waiting when Done is first called: when acquire
// starts waiting for room.
type doneWatcher struct {
	context.Context
	waiting chan struct{}
	once    sync.Once
}

func (w *doneWatcher) Done() <-chan struct{} {
	w.once.Do(func() { close(w.waiting) })
	return w.Context.Done()
}

// A caller waiting for room gets it when bytes are released; one over the
// bound waits until the queue is empty, and fails with its context's
// error or ErrClosed.
func TestQueueBoundWaits(t *testing.T) {
	q := newQueueBound(10)
	stop := make(chan struct{})
	if err := q.acquire(t.Context(), stop, 8); err != nil {
		t.Fatal(err)
	}
	ctx := &doneWatcher{Context: t.Context(), waiting: make(chan struct{})}
	got := make(chan error, 1)
	go func() { got <- q.acquire(ctx, stop, 5) }()
	<-ctx.waiting
	select {
	case err := <-got:
		t.Fatalf("acquire of 5 bytes with 8 of 10 taken returned %v", err)
	default:
	}
	q.release(8)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if n := q.bytes.Load(); n != 5 {
		t.Fatalf("%d bytes counted, want 5", n)
	}

	// Larger than the bound: alone once the queue is empty.
	ctx = &doneWatcher{Context: t.Context(), waiting: make(chan struct{})}
	go func() { got <- q.acquire(ctx, stop, 20) }()
	<-ctx.waiting
	q.release(5)
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := q.acquire(cctx, stop, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled context on a full queue: %v", err)
	}
	close(stop)
	if err := q.acquire(t.Context(), stop, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("acquire after stop on a full queue: %v", err)
	}
	if q.waiters != 0 {
		t.Fatalf("%d waiters left", q.waiters)
	}
}

// A release racing with a caller that has started waiting for room wakes
// it: the waiter either sees the released bytes or is woken (a missed
// release would leave it waiting until the guard's timeout).
func TestQueueBoundReleaseRace(t *testing.T) {
	const bound = 100
	q := newQueueBound(bound)
	stop := make(chan struct{})
	for range 5000 {
		if err := q.acquire(t.Context(), stop, bound); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a hang guard
			defer cancel()
			got <- q.acquire(ctx, stop, 1)
		}()
		for waiting := false; !waiting; runtime.Gosched() { // release once it waits
			q.mu.Lock()
			waiting = q.waiters > 0
			q.mu.Unlock()
		}
		q.release(bound)
		if err := <-got; err != nil {
			t.Fatalf("a waiter missed a release: %v", err)
		}
		q.release(1)
	}
}

// Concurrent acquires and releases never count more than the bound.
func TestQueueBoundConcurrent(t *testing.T) {
	const bound, size, callers, rounds = 100, 30, 8, 2000
	q := newQueueBound(bound)
	stop := make(chan struct{})
	var over atomic.Bool
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range rounds {
				if err := q.acquire(t.Context(), stop, size); err != nil {
					t.Error(err)
					return
				}
				if q.bytes.Load() > bound {
					over.Store(true)
				}
				q.release(size)
			}
		})
	}
	wg.Wait()
	if over.Load() {
		t.Fatalf("more than %d bytes counted at once", bound)
	}
	if n := q.bytes.Load(); n != 0 {
		t.Fatalf("%d bytes counted after every release", n)
	}
}
