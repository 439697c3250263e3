package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
)

// catchUpPoll is how often a read waiting for this node to learn a commit
// index of the current term checks Raft's commit index. hashicorp/raft
// (v1.8) reports no commit index change: no observation carries it, and
// committed no-op and barrier entries are never handed to the FSM. A
// commit index advance that covers commands or configuration entries is
// followed by their application, which wakes the read at once
// (fsm.appliedChanged); the poll only catches an advance over no-ops and
// barriers alone (a new leader's first entry, right after a snapshot of
// every earlier one).
const catchUpPoll = 10 * time.Millisecond

// readCaughtUp reads offset from this node's applied records
// (ReadFollower). A record it holds is committed and returned at once. An offset at or past
// its end is answered as such only once this node has caught up (caughtUp);
// until then the read waits, at most until ctx ends or Config.ApplyTimeout
// if ctx has no deadline, and then fails with ErrNotCaughtUp. Right after a
// restart, or an election, a node's applied end can lag behind records
// whose appends were acknowledged; "past the end" would tell a client they do
// not exist.
func (l *Log) readCaughtUp(ctx context.Context, offset uint64) ([]byte, error) {
	b, err := l.fsm.read(offset)
	var oor *seglog.OffsetOutOfRangeError
	if !errors.As(err, &oor) || offset < oor.Next {
		return b, err
	}
	if err := l.caughtUp(ctx); err != nil {
		return nil, err
	}
	return l.fsm.read(offset)
}

// caughtUp waits until this node knows the cluster's commit index and its
// FSM has applied every command up to it. Knowing the commit index means:
// Raft's commit index (learnt from the leader's append RPCs, or computed by
// the leader) covers an entry of the current term. A node learns no commit
// index after a restart until a leader tells it one; a new leader's commit
// index covers the entries of earlier terms only once the first entry of
// its own term (the no-op) is committed. It fails with ErrNotCaughtUp when
// it has waited Config.ApplyTimeout (or until ctx's deadline), with
// ctx.Err() if ctx ends otherwise. It checks again whenever the FSM applies
// an entry, and every catchUpPoll (see there why).
func (l *Log) caughtUp(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, l.timeout(ctx))
	defer cancel()
	var tick *time.Ticker
	for {
		applied := l.fsm.appliedChanged()
		if commit, ok := l.knownCommit(); ok {
			err := l.waitApplied(wctx, commit, nil)
			if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("%w: applied index %d, commit index %d", ErrNotCaughtUp, l.fsm.applied.Load(), commit)
		}
		if tick == nil {
			tick = time.NewTicker(cmp.Or(l.cfg.catchUpPoll, catchUpPoll))
			defer tick.Stop()
		}
		select {
		case <-applied:
		case <-tick.C:
		case <-l.done:
			return ErrClosed
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%w: no commit index of term %d known yet", ErrNotCaughtUp, l.raft.CurrentTerm())
		}
	}
}

// knownCommit returns Raft's commit index if it covers an entry of the
// current term (see caughtUp).
func (l *Log) knownCommit() (uint64, bool) {
	term := l.raft.CurrentTerm()
	commit := l.raft.CommitIndex()
	if commit == 0 {
		return 0, false
	}
	if l.readyTerm.Load() == term {
		return commit, true
	}
	var e raft.Log
	switch err := l.store.GetLog(commit, &e); {
	case errors.Is(err, raft.ErrLogNotFound):
		// Compacted: a snapshot covers it, so the FSM applied it; a
		// term's first entry is never compacted before it is committed.
		return commit, true
	case err != nil || e.Term != term:
		return 0, false
	}
	l.readyTerm.Store(term)
	return commit, true
}
