package replication

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
)

// lowestFile, under Config.DataDir, holds the data log's agreed lowest
// offset (the last retention command applied), written with
// writeUint64File before any segment below it is removed.
const lowestFile = "data.lowest"

// retentionResult is the response of an applied retention command.
type retentionResult struct{}

// loadLowest reads the agreed lowest offset and finishes a retention that
// a crash interrupted (the file is written before segments are removed).
// Without the file the lowest offset is the data log's own.
func (f *fsm) loadLowest() error {
	v, ok, err := readUint64File(filepath.Join(f.dir, lowestFile))
	if err != nil {
		return fmt.Errorf("replication: lowest offset: %w", err)
	}
	l := f.l
	if !ok || v < l.LowestOffset() {
		v = l.LowestOffset()
	}
	f.lowest.Store(v)
	if v > l.LowestOffset() && v < l.NextOffset() {
		if err := l.Truncate(v); err != nil {
			return fmt.Errorf("replication: finish retention below %d: %w", v, err)
		}
	}
	return nil
}

// setLowest persists lowest as the agreed lowest offset (after a snapshot
// restore, whose data log starts there).
func (f *fsm) setLowest(lowest uint64) error {
	if err := writeUint64File(filepath.Join(f.dir, lowestFile), lowest); err != nil {
		return fmt.Errorf("replication: persist lowest offset %d: %w", lowest, err)
	}
	f.lowest.Store(lowest)
	return nil
}

// noteRetain decodes retention command e, applied when the data log's next
// offset is next (after the batch's earlier commands), and raises *lowest
// to it. The response is retentionResult or an error.
func noteRetain(e *raft.Log, next uint64, lowest *uint64) any {
	v, err := decodeRetain(e.Data)
	if err != nil {
		return fmt.Errorf("raft entry %d: %w", e.Index, err)
	}
	if v >= next {
		// The leader proposes an offset below its own next offset, and
		// every replica has the same records before this entry.
		return fmt.Errorf("raft entry %d: retention to offset %d, but the data log ends at %d", e.Index, v, next)
	}
	*lowest = max(*lowest, v)
	return retentionResult{}
}

// retain drops the records below lowest (0: nothing to do): it persists
// the new lowest offset, from which on reads below it are refused, then
// removes the whole segments below it. A segment that straddles it stays
// (segment boundaries may differ between replicas) but its records below
// lowest are never served, nor put in a snapshot. Replaying an older
// command does nothing.
func (f *fsm) retain(l *seglog.Log, lowest uint64) error {
	prev := max(f.lowest.Load(), l.LowestOffset())
	if lowest <= prev {
		return nil
	}
	if err := f.setLowest(lowest); err != nil {
		return err
	}
	if err := l.Truncate(lowest); err != nil {
		return fmt.Errorf("replication: retention below %d: %w", lowest, err)
	}
	f.removed.Add(lowest - prev)
	return nil
}

// checkLowest fails a read below the agreed lowest offset, as go/seglog does
// below its own.
func (f *fsm) checkLowest(l *seglog.Log, offset uint64) error {
	if offset < f.lowest.Load() {
		return &seglog.OffsetOutOfRangeError{Offset: offset, Lowest: f.agreedLowest(l), Next: l.NextOffset()}
	}
	return nil
}

// ApplyRetention applies Config.DataLog.Retention to the cluster now (the
// leader also does it every RetentionInterval and whenever its data log
// gains a segment): it computes, from this node's data log, the lowest
// offset retention allows at segment granularity and, if that is above the
// current lowest offset, proposes it through Raft; every replica then drops
// the records below it (see the package documentation). It returns this
// node's lowest offset once the command is applied. Only the leader can do
// it (*commitlog.NotLeaderError elsewhere).
func (l *Log) ApplyRetention(ctx context.Context) (lowest uint64, err error) {
	if l.closed() {
		return 0, ErrClosed
	}
	if l.raft.State() != raft.Leader {
		return 0, l.notLeader()
	}
	cut, err := l.fsm.current().RetentionOffset(l.cfg.DataLog.Retention, time.Now())
	if err != nil {
		return 0, fmt.Errorf("replication: retention: %w", err)
	}
	if cut <= l.LowestOffset() {
		return l.LowestOffset(), nil
	}
	f := l.raft.Apply(encodeRetain(cut), l.timeout(ctx))
	if err := await(ctx, f); err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		return 0, l.mapRaftErr(err)
	}
	if err, ok := f.Response().(error); ok {
		return 0, err
	}
	return l.LowestOffset(), nil
}

// RetentionRemoved is how many records retention commands have removed on
// this node since it started (for metrics).
func (l *Log) RetentionRemoved() uint64 { return l.fsm.removed.Load() }

// retentionLoop runs ApplyRetention while this node is the leader, every
// RetentionInterval and whenever its data log gains a segment.
func (l *Log) retentionLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.RetentionInterval)
	defer t.Stop()
	segments := 0
	for {
		applied := l.fsm.appliedChanged()
		select {
		case <-l.done:
			return
		case <-t.C:
			_, segments = l.DataSize()
		case <-applied:
			if !l.IsLeader() {
				continue
			}
			_, n := l.DataSize()
			if n == segments {
				continue
			}
			segments = n
		}
		if !l.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.ApplyTimeout)
		_, err := l.ApplyRetention(ctx)
		cancel()
		if err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrLeadershipLost) {
			l.lg.Warn("applying retention failed; retrying later", "error", err)
		}
	}
}
