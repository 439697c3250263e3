package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ApplyRetention applies Config.Retention to the group now (the leader
// also does it every RetentionInterval and whenever its Raft log gains a
// segment): it computes, from this node's Raft log, the lowest offset
// retention allows at segment granularity — the first record of the
// oldest segment kept, or the end of the records the proposer has
// proposed if they are all in older segments — and, if that is above the
// current lowest offset, proposes it through Raft; every replica then refuses reads below it and
// drops the segments below it once Raft compacted them (see the package
// documentation, "Retention and compaction"). It returns this node's
// lowest offset once the command is applied. Only the leader can do it
// (*commitlog.NotLeaderError elsewhere).
func (l *Log) ApplyRetention(ctx context.Context) (lowest uint64, err error) {
	if l.closed() {
		return 0, ErrClosed
	}
	if l.raft.State() != raft.Leader {
		return 0, l.notLeader()
	}
	sl, _, _ := l.store.bounds()
	index, err := sl.RetentionOffset(l.cfg.Retention, time.Now())
	if err != nil {
		return 0, fmt.Errorf("replication: retention: %w", err)
	}
	cut, ok, err := l.store.records.firstFrom(index)
	if err != nil {
		return 0, fmt.Errorf("replication: retention: %w", err)
	}
	if !ok {
		cut = ^uint64(0) // no record in the segments kept: the proposer caps it
	}
	if cut <= l.LowestOffset() {
		return l.LowestOffset(), nil
	}
	r := l.propose(ctx, &proposal{retain: true, lowest: cut})
	if _, err := l.awaitProposed(ctx, r); err != nil {
		return 0, err
	}
	return l.LowestOffset(), nil
}

// RetentionRemoved is how many records retention commands have removed on
// this node since it started (for metrics).
func (l *Log) RetentionRemoved() uint64 { return l.fsm.removed.Load() }

// retentionLoop runs ApplyRetention while this node is the leader, every
// RetentionInterval and whenever its Raft log gains a segment.
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
		// Until the segments stop changing meanwhile: a segment rolled
		// while the last retention was in flight (its own entry, too)
		// wakes nobody if nothing else is appended.
		for l.IsLeader() {
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.ApplyTimeout)
			_, err := l.ApplyRetention(ctx)
			cancel()
			if err != nil {
				if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrLeadershipLost) {
					l.lg.Warn("applying retention failed; retrying later", "error", err)
				}
				break
			}
			_, n := l.DataSize()
			if n == segments {
				break
			}
			segments = n
		}
	}
}
