package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
)

// compactionLoop takes the snapshots Raft does not take by itself: when
// the Raft log's store files exceed TrailingBytes + SnapshotThresholdBytes
// (Config; checked after every write to it, unless the threshold is 0),
// and when snapshotSoon asks (a snapshot that can no longer be served, or
// the disk running low: see lowOnSpace). After an attempt that left the log large
// (nothing new to snapshot, or no whole segment to remove), the next one by
// size waits until the log has grown by SnapshotThresholdBytes again.
func (l *Log) compactionLoop() {
	defer l.wg.Done()
	threshold, keep := l.cfg.SnapshotThresholdBytes, l.cfg.TrailingBytes
	trigger := keep + threshold
	for {
		select {
		case <-l.done:
			return
		case <-l.snapshotNow:
			if err := l.Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) && !errors.Is(err, ErrClosed) {
				l.lg.Warn("snapshot on request failed", "error", err)
			}
			continue
		case <-l.store.stored:
		}
		if threshold == 0 || l.store.size() <= trigger {
			continue
		}
		if err := l.compactRaftLog(); err != nil && !errors.Is(err, ErrClosed) {
			l.lg.Warn("snapshot by raft log size failed", "error", err)
		}
		trigger = max(keep+threshold, l.store.size()+threshold)
	}
}

// lowOnSpace is called when this node starts refusing appends or Raft
// entries for lack of disk space: it asks for a snapshot while the reserve
// still has room for one, so that a restart on a full disk restores the
// state machine from it and serves the records applied so far without a
// leader (a node whose disk is full cannot store the entry it needs to
// win an election).
func (l *Log) lowOnSpace() { l.snapshotSoon() }

// snapshotSoon asks compactionLoop for a snapshot, without waiting.
func (l *Log) snapshotSoon() {
	select {
	case l.snapshotNow <- struct{}{}:
	default:
	}
}

// compactRaftLog takes a snapshot and has Raft compact its log down to the
// newest whole segments within TrailingBytes (and at most TrailingLogs
// entries): Raft keeps TrailingLogs entries behind its last index, so for
// this snapshot it is lowered (ReloadConfig) to the number of entries from
// the first one to keep on, then restored.
func (l *Log) compactRaftLog() error {
	keepFrom, err := l.store.trailingFrom(l.cfg.TrailingBytes)
	if err != nil {
		return err
	}
	last, err := l.store.LastIndex()
	if err != nil {
		return err
	}
	// At least one: a compaction down to the last entry would look like a
	// conflicting suffix to the LogStore (see DeleteRange).
	trailing := max(1, min(l.cfg.TrailingLogs, last+1-min(keepFrom, last+1)))
	rc := l.raft.ReloadableConfig()
	rc.TrailingLogs = trailing
	if err := l.raft.ReloadConfig(rc); err != nil {
		return fmt.Errorf("replication: lower trailing logs to %d: %w", trailing, err)
	}
	err = l.raft.Snapshot().Error()
	rc = l.raft.ReloadableConfig()
	rc.TrailingLogs = l.cfg.TrailingLogs
	if rerr := l.raft.ReloadConfig(rc); rerr != nil {
		err = errors.Join(err, fmt.Errorf("replication: restore trailing logs: %w", rerr))
	}
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return l.mapRaftErr(err)
}

// size is the bytes of the Raft log's store files.
func (s *LogStore) size() uint64 {
	l, _, _ := s.bounds()
	b, _ := l.Size()
	return b
}

// trailingFrom returns the first index of the newest whole segments whose
// store files hold at most maxBytes (the active segment always counts).
func (s *LogStore) trailingFrom(maxBytes uint64) (uint64, error) {
	l, _, _ := s.bounds()
	i, err := l.RetentionOffset(seglog.Retention{MaxBytes: maxBytes}, time.Now())
	if err != nil {
		return 0, fmt.Errorf("replication: raft log: %w", err)
	}
	return i, nil
}
