package seglog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/proglog/proglog/go/segment"
)

// Test hooks, taken by the sync goroutine at Open: beforeBackgroundSync
// runs just before each background fsync, without the write lock;
// backgroundSyncTicks, when not nil, replaces the interval's ticker (each
// value received is one interval).
var (
	beforeBackgroundSync func()
	backgroundSyncTicks  chan time.Time
)

// startSyncer starts the background fsync goroutine under SyncInterval.
func (l *Log) startSyncer() {
	if l.config.Sync != SyncInterval {
		return
	}
	l.stopSync = make(chan struct{})
	l.syncDone = make(chan struct{})
	go l.syncLoop(l.config.SyncInterval, backgroundSyncTicks, l.stopSync, l.syncDone, beforeBackgroundSync)
}

// stopSyncer stops the background goroutine and waits for it to exit.
func (l *Log) stopSyncer() {
	l.wmu.Lock()
	stop, done := l.stopSync, l.syncDone
	l.stopSync = nil
	l.wmu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// syncLoop fsyncs the active store every interval if anything was appended
// since the last sync. The fsync runs without the write lock, through a
// descriptor of its own: appends go on meanwhile. (Under the lock, every
// append waited for the fsync of up to an interval's writes: 16-40 ms
// stalls once a second on the benchmark machine, in every replicated
// node's data log.) Appends made during the fsync mark the log dirty again
// for the next one. A failed fsync puts the Log in the failed state.
func (l *Log) syncLoop(interval time.Duration, ticks <-chan time.Time, stop <-chan struct{}, done chan<- struct{}, hook func()) {
	defer close(done)
	if ticks == nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-ticks:
			l.wmu.Lock()
			if !l.dirty || l.failed != nil {
				l.wmu.Unlock()
				continue
			}
			path := l.active().StorePath()
			l.dirty = false
			l.wmu.Unlock()
			if hook != nil {
				hook()
			}
			if err := l.syncStoreFile(path); err != nil {
				l.wmu.Lock()
				l.fail(fmt.Errorf("seglog: background sync: %w", err))
				l.wmu.Unlock()
			}
		}
	}
}

// Sync makes every record appended so far durable, whatever the sync
// policy: it fsyncs the active segment's store (sealed segments were
// fsynced when they were sealed; indexes are rebuilt from stores). Like the
// background sync, it runs the fsync without the write lock. An fsync
// failure is returned, not recorded: the caller decides.
func (l *Log) Sync() error {
	l.wmu.Lock()
	if err := l.check(); err != nil {
		l.wmu.Unlock()
		return err
	}
	path := l.active().StorePath()
	l.wmu.Unlock()
	if err := l.syncStoreFile(path); err != nil {
		return fmt.Errorf("seglog: sync %s: %w", path, err)
	}
	return nil
}

// syncStoreFile fsyncs the store file at path through a new descriptor
// (fsync flushes the file's data whichever descriptor wrote it). A store
// removed meanwhile (retention, truncation) needs no sync: a store is
// fsynced when it is sealed, and removed data need not be durable.
func (l *Log) syncStoreFile(path string) error {
	open := l.segCfg.OpenFile
	if open == nil {
		open = segment.OpenOSFile
	}
	f, err := open(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
