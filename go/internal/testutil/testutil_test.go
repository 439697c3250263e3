package testutil

import (
	"runtime"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	Eventually(t, "the third call", time.Second, func() bool {
		calls++
		return calls == 3
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestEventuallyFailsAtTheDeadline(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(ft, "never", 30*time.Millisecond, func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("Eventually returned without failing the test")
	}
}

func TestLogWriterDropsWritesAfterTheTest(t *testing.T) {
	var w interface{ Write([]byte) (int, error) }
	t.Run("inner", func(t *testing.T) {
		w = LogWriter(t)
		if n, err := w.Write([]byte("during\n")); n != 7 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	})
	// The inner test has ended: t.Log would panic, the writer must not call it.
	if n, err := w.Write([]byte("late")); n != 4 || err != nil {
		t.Fatalf("late Write = %d, %v", n, err)
	}
}

// fakeT records Fatalf instead of stopping the test's goroutine.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit() // like t.Fatalf: end the calling goroutine
}
