package log

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/proglog/proglog/go/segment"
)

// beforeBackgroundSync, when set (by tests) before Open, runs in the sync
// goroutine just before each background fsync, without the write lock.
var beforeBackgroundSync func()

// startSyncer starts the background fsync goroutine under SyncInterval.
func (l *Log) startSyncer() {
	if l.config.Sync != SyncInterval {
		return
	}
	l.stopSync = make(chan struct{})
	l.syncDone = make(chan struct{})
	go l.syncLoop(l.config.SyncInterval, l.stopSync, l.syncDone, beforeBackgroundSync)
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
func (l *Log) syncLoop(interval time.Duration, stop <-chan struct{}, done chan<- struct{}, hook func()) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
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
				l.fail(fmt.Errorf("log: background sync: %w", err))
				l.wmu.Unlock()
			}
		}
	}
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
