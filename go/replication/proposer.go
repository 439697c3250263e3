package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
)

// The proposer is the leader's single goroutine that turns appends into
// Raft entries, in order (see the package documentation, "Proposer"). It
// decides everything that can refuse records before raft.Apply, against
// its pending state: the applied state plus every entry it proposed since,
// so an entry in the Raft log is never refused later and its first offset
// is the end of the previous one.
type proposer struct {
	l  *Log
	in chan *proposal
	// The pending state, valid for leadership term (0: none yet): the
	// offset the next record gets and the producer table, both including
	// every entry proposed in term.
	term  uint64
	next  uint64
	table *producer.Table
	// onPropose, if set (tests), is called with each command handed to
	// raft.Apply.
	onPropose func(cmd []byte)
}

// proposal is one append (records, from producer p) or retention (retain,
// to offset lowest, or the end of the records proposed if lower) for the
// proposer; it answers on res.
type proposal struct {
	ctx    context.Context
	p      Producer
	recs   [][]byte
	retain bool
	lowest uint64
	res    chan proposed
}

// proposed is the proposer's answer: an entry handed to Raft (f, with the
// first offset it was given), a duplicate (first and the end of the
// records it repeats, which may not be applied yet), or an error (nothing
// proposed).
type proposed struct {
	f         raft.ApplyFuture
	first     uint64
	duplicate bool
	dupEnd    uint64
	err       error
}

func newProposer(l *Log) *proposer {
	return &proposer{l: l, in: make(chan *proposal)}
}

// run serves proposals until the Log closes.
func (p *proposer) run() {
	defer p.l.wg.Done()
	for {
		select {
		case <-p.l.done:
			return
		case pr := <-p.in:
			pr.res <- p.handle(pr)
		}
	}
}

// propose hands pr to the proposer and returns its answer.
func (l *Log) propose(ctx context.Context, pr *proposal) proposed {
	pr.ctx, pr.res = ctx, make(chan proposed, 1)
	select {
	case l.prop.in <- pr:
	case <-ctx.Done():
		return proposed{err: ctx.Err()}
	case <-l.done:
		return proposed{err: ErrClosed}
	}
	select {
	case r := <-pr.res:
		return r
	case <-l.done:
		return proposed{err: ErrClosed}
	}
}

func (p *proposer) handle(pr *proposal) proposed {
	l := p.l
	if err := pr.ctx.Err(); err != nil {
		return proposed{err: err}
	}
	if l.raft.State() != raft.Leader {
		return proposed{err: l.notLeader()}
	}
	if err := p.sync(pr.ctx); err != nil {
		return proposed{err: err}
	}
	if pr.retain {
		// Every record proposed before is applied before this command:
		// the pending end is a valid lowest offset, the applied one may
		// lag behind it.
		lowest := min(pr.lowest, p.next)
		if lowest <= l.fsm.lowest.Load() {
			return proposed{}
		}
		return proposed{f: p.apply(encodeRetain(lowest))}
	}
	n := uint64(len(pr.recs))
	lim := l.cfg.Producers
	if pr.p.ID != 0 {
		sum := producer.Sum{Value: pr.p.Checksum, Known: true}
		// The entry's time is the leader's clock when Raft appends it,
		// a moment later: the table's decisions use now.
		p.table.SetLimits(lim)
		p.table.Advance(time.Now())
		at, dup, err := p.table.Check(pr.p.ID, pr.p.Sequence, n, sum)
		switch {
		case err != nil:
			return proposed{err: fmt.Errorf("replication: %w", err)}
		case dup:
			return proposed{first: at, duplicate: true, dupEnd: at + n}
		}
		p.table.Record(pr.p.ID, pr.p.Sequence, n, sum, p.next)
	}
	first := p.next
	f := p.apply(encodeRecords(first, p.term, pr.p, lim, pr.recs))
	p.next += n
	return proposed{f: f, first: first}
}

// apply hands cmd to Raft, waiting until Raft took it (no timeout: an
// entry Raft gave up enqueueing while later ones got in would leave a gap
// in the offsets). Raft answers it even if leadership is lost meanwhile.
func (p *proposer) apply(cmd []byte) raft.ApplyFuture {
	if p.onPropose != nil {
		p.onPropose(cmd)
	}
	return p.l.raft.Apply(cmd, 0)
}

// sync makes the pending state that of the current leadership term: on the
// first proposal of a term it waits for a barrier (every entry of earlier
// terms applied), then copies the applied state. A proposal of an earlier
// term that Raft appends in this one carries the old term and every
// replica refuses it (fsm.ApplyBatch), so it never shifts the offsets.
func (p *proposer) sync(ctx context.Context) error {
	l := p.l
	term := l.raft.CurrentTerm()
	if term == p.term {
		return nil
	}
	p.term, p.table = 0, nil
	if err := await(ctx, l.raft.Barrier(l.timeout(ctx))); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return l.mapRaftErr(err)
	}
	if l.raft.State() != raft.Leader || l.raft.CurrentTerm() != term {
		return fmt.Errorf("%w (during the new leadership's barrier)", ErrLeadershipLost)
	}
	t, next, err := l.fsm.clonePending()
	if err != nil {
		return err
	}
	p.term, p.next, p.table = term, next, t
	return nil
}

// awaitProposed waits for a proposed entry, and for a duplicate until the records
// it repeats are applied (or leadership is lost). It returns the first
// offset.
func (l *Log) awaitProposed(ctx context.Context, r proposed) (uint64, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.f == nil {
		if r.duplicate && r.dupEnd > l.fsm.next.Load() {
			// The batch it repeats is proposed, not yet applied.
			if err := l.waitNext(ctx, r.dupEnd); err != nil {
				return 0, err
			}
		}
		return r.first, nil
	}
	if ackBeforeCommit {
		return r.first, nil
	}
	if err := await(ctx, r.f); err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		return 0, l.mapRaftErr(err)
	}
	switch resp := r.f.Response().(type) {
	case applyResult:
		return resp.first, nil
	case retentionResult:
		return 0, nil
	case error:
		if errors.Is(resp, errStaleProposal) {
			return 0, fmt.Errorf("%w (%v)", ErrLeadershipLost, resp)
		}
		return 0, fmt.Errorf("replication: %w", resp)
	default:
		return 0, fmt.Errorf("replication: unexpected apply response %T", resp)
	}
}

// waitNext waits, while this node leads, until the records before end are
// applied.
func (l *Log) waitNext(ctx context.Context, end uint64) error {
	lost := l.leadership(ctx)
	if lost == nil {
		return l.notLeader()
	}
	for {
		changed := l.fsm.appliedChanged()
		if l.fsm.next.Load() >= end {
			return nil
		}
		select {
		case <-changed:
		case <-lost:
			return fmt.Errorf("%w (before the batch this one repeats was applied)", ErrLeadershipLost)
		case <-l.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
