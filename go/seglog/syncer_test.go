package seglog

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// useSyncTicks makes the background sync of Logs opened from now on tick
// when the test sends on the returned channel. The channel is unbuffered
// and the sync goroutine handles one tick at a time, so a send returns only
// once the previous tick's work is done.
func useSyncTicks(t *testing.T) chan<- time.Time {
	ticks := make(chan time.Time)
	backgroundSyncTicks = ticks
	t.Cleanup(func() { backgroundSyncTicks = nil })
	return ticks
}

func TestSyncIntervalSyncsInBackground(t *testing.T) {
	tests := []struct {
		name      string
		appends   bool
		wantSyncs bool
	}{
		{"after appends", true, true},
		{"idle: no sync", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticks := useSyncTicks(t)
			rec := &opRecorder{}
			c := DefaultConfig()
			c.Sync = SyncInterval
			l, err := open(t.TempDir(), c, rec.open)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			rec.take()
			if tt.appends {
				appendN(t, l, 10)
				// Appends themselves never sync under this policy.
				if ops := strings.Join(rec.take(), ","); strings.Contains(ops, "sync") {
					t.Fatalf("append ops %q include a sync", ops)
				}
			}
			ticks <- time.Time{}
			ticks <- time.Time{} // the first tick's work is done
			synced := strings.Contains(strings.Join(rec.take(), ","), "sync .store")
			if synced != tt.wantSyncs {
				t.Fatalf("background store sync = %v, want %v", synced, tt.wantSyncs)
			}
			// After a sync with nothing new appended, the loop stays quiet.
			ticks <- time.Time{} // the second tick's work is done
			if ops := rec.take(); len(ops) != 0 {
				t.Fatalf("idle log still syncing: %q", ops)
			}
		})
	}
}

// SyncNever starts no background sync at all.
func TestSyncNeverHasNoSyncer(t *testing.T) {
	c := testConfig()
	c.Sync = SyncNever
	l := openLog(t, t.TempDir(), c)
	if l.syncDone != nil {
		t.Fatal("a sync goroutine runs under SyncNever")
	}
}

// Sync fsyncs the active store whatever the policy, and fails on a closed
// log.
func TestSync(t *testing.T) {
	rec := &opRecorder{}
	c := testConfig()
	c.Sync = SyncNever
	l, err := open(t.TempDir(), c, rec.open)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	rec.take()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if ops := strings.Join(rec.take(), ","); ops != "sync .store" {
		t.Errorf("Sync did %q, want one store fsync", ops)
	}
	rec.failSync = errors.New("disk gone")
	if err := l.Sync(); !errors.Is(err, rec.failSync) {
		t.Errorf("Sync with a failing fsync: %v", err)
	}
	rec.failSync = nil
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
}

func TestSyncerStopsOnClose(t *testing.T) {
	c := testConfig()
	c.Sync = SyncInterval
	c.SyncInterval = time.Millisecond
	l := openLog(t, t.TempDir(), c)
	appendN(t, l, 5)
	done := l.syncDone
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("sync goroutine still running after Close")
	}
}

// The background fsync does not hold the write lock: appends and reads go
// on while it runs.
func TestBackgroundSyncDoesNotBlockAppends(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	beforeBackgroundSync = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	c := testConfig()
	c.Sync = SyncInterval
	c.SyncInterval = time.Millisecond
	l := openLog(t, t.TempDir(), c)
	beforeBackgroundSync = nil // the sync goroutine took its copy at Open
	defer close(release)
	appendN(t, l, 1)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no background sync")
	}
	done := make(chan error, 1)
	go func() {
		off, err := l.Append([]byte("during the sync"))
		if err == nil {
			_, err = l.Read(off)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append blocked while the background sync ran")
	}
}
