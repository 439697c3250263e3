package seglog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	tests := []struct {
		name   string
		offset uint64
		action func(l *Log, cancel context.CancelFunc) // run after Wait has started
		want   error
	}{
		{"already there", 2, nil, nil},
		{"woken by Append", 3, func(l *Log, _ context.CancelFunc) { l.Append([]byte("x")) }, nil},
		{"woken by AppendBatch, several records later", 6,
			func(l *Log, _ context.CancelFunc) { l.AppendBatch([][]byte{{}, {}, {}, {}, {}}) }, nil},
		{"not woken by an append below the offset, then cancelled", 10,
			func(l *Log, cancel context.CancelFunc) {
				l.Append([]byte("x"))
				time.Sleep(10 * time.Millisecond)
				cancel()
			},
			context.Canceled},
		{"log closed", 5, func(l *Log, _ context.CancelFunc) { l.Close() }, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), testConfig())
			appendN(t, l, 3)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- l.Wait(ctx, tt.offset) }()
			if tt.action != nil {
				time.Sleep(5 * time.Millisecond) // let Wait block (the result must not depend on it)
				tt.action(l, cancel)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("Wait = %v, want %v", err, tt.want)
				}
				if err == nil && l.NextOffset() <= tt.offset {
					t.Fatalf("Wait returned with NextOffset %d <= %d", l.NextOffset(), tt.offset)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not return")
			}
		})
	}
}

func TestWaitDeadline(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
}

func TestWaitBroadcastManyWaiters(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	const waiters = 50
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func(off uint64) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.Wait(ctx, off); err != nil {
				errs <- err
				return
			}
			if l.NextOffset() <= off {
				errs <- errors.New("woken too early")
			}
		}(uint64(i % 10))
	}
	// Tailing consumers: each append wakes every waiter whose record now
	// exists; the others go back to waiting.
	for i := 0; i < 10; i++ {
		time.Sleep(time.Millisecond)
		appendN(t, l, 1)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestWaitTailFollowsAppends(t *testing.T) {
	// A consumer that Waits then Reads sees every record exactly once, in
	// order, while a producer appends concurrently.
	l := openLog(t, t.TempDir(), testConfig())
	const n = 300
	done := make(chan error, 1)
	go func() {
		for off := uint64(0); off < n; off++ {
			if err := l.Wait(context.Background(), off); err != nil {
				done <- err
				return
			}
			got, err := l.Read(off)
			if err != nil || string(got) != string(payload(off)) {
				done <- errors.New("tail read mismatch")
				return
			}
		}
		done <- nil
	}()
	appendN(t, l, n)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consumer stuck")
	}
}
