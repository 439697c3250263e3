package log

import (
	"fmt"
	"time"
)

// startSyncer starts the background fsync goroutine under SyncInterval.
func (l *Log) startSyncer() {
	if l.config.Sync != SyncInterval {
		return
	}
	l.stopSync = make(chan struct{})
	l.syncDone = make(chan struct{})
	go l.syncLoop(l.config.SyncInterval, l.stopSync, l.syncDone)
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
// since the last sync. A failed fsync puts the Log in the failed state.
func (l *Log) syncLoop(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			l.wmu.Lock()
			if l.dirty && l.failed == nil {
				if err := l.active().Sync(); err != nil {
					l.fail(fmt.Errorf("log: background sync: %w", err))
				}
				l.dirty = false
			}
			l.wmu.Unlock()
		}
	}
}
