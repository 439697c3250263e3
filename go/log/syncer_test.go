package log

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSyncIntervalSyncsInBackground(t *testing.T) {
	tests := []struct {
		name      string
		policy    SyncPolicy
		appends   bool
		wantSyncs bool
	}{
		{"interval, after appends", SyncInterval, true, true},
		{"interval, idle: no sync", SyncInterval, false, false},
		{"never", SyncNever, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &opRecorder{}
			c := DefaultConfig()
			c.Sync = tt.policy
			c.SyncInterval = 5 * time.Millisecond
			l, err := open(t.TempDir(), c, rec.open)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			rec.take()
			if tt.appends {
				appendN(t, l, 10)
				// Appends themselves never sync under these policies.
				if ops := strings.Join(rec.take(), ","); strings.Contains(ops, "sync") {
					t.Fatalf("append ops %q include a sync", ops)
				}
			}
			deadline := time.Now().Add(2 * time.Second)
			synced := false
			for !synced && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				synced = strings.Contains(strings.Join(rec.take(), ","), "sync .store")
				if !tt.wantSyncs && time.Now().After(deadline.Add(-1900*time.Millisecond)) {
					break // 100 ms = 20 intervals without a sync is enough
				}
			}
			if synced != tt.wantSyncs {
				t.Fatalf("background store sync = %v, want %v", synced, tt.wantSyncs)
			}
			// After a sync with nothing new appended, the loop stays quiet.
			if tt.wantSyncs {
				time.Sleep(30 * time.Millisecond)
				rec.take()
				time.Sleep(30 * time.Millisecond)
				if ops := rec.take(); len(ops) != 0 {
					t.Fatalf("idle log still syncing: %q", ops)
				}
			}
		})
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
