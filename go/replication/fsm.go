package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

// applyResult is the response of an applied records command: the offset
// of its first record.
type applyResult struct {
	first uint64
}

// retentionResult is the response of an applied retention command.
type retentionResult struct{}

// errStaleProposal is the response of a records command proposed in
// another term than the one it was appended in (see proposer.go): every
// replica refuses it, nothing is written.
var errStaleProposal = errors.New("proposed in an earlier leadership; not written")

// fsm is the state machine of a partition replica: small state only (see
// the package documentation, "State machine"). The records stay in the
// Raft log (LogStore), which reads go through.
//
// Apply, ApplyBatch, Snapshot and Restore run on Raft's FSM goroutine, one
// at a time; the producer table is also read by the proposer (under mu).
type fsm struct {
	lg    hclog.Logger
	store *LogStore

	mu        sync.Mutex
	producers *producer.Table
	// producerCount is the table's size, for metrics.
	producerCount atomic.Int64

	// next is the offset the next record gets (the applied end); lowest
	// the agreed lowest offset (retention); removed counts the records
	// retention removed since start.
	next, lowest, removed atomic.Uint64

	applied   atomic.Uint64 // last raft index applied (or restored)
	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced when applied advances

	failed atomic.Pointer[error]
	// done is closed when the node shuts down (Wait returns).
	done <-chan struct{}

	beforeApply  func() // Config.beforeApply
	afterRestore func() // Config.afterRestore
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func newFSM(store *LogStore, lg hclog.Logger, done <-chan struct{}) *fsm {
	f := &fsm{lg: lg, store: store, appliedCh: make(chan struct{}), done: done}
	f.setProducers(producer.New(producer.DefaultConfig()))
	store.keep = f.lowest.Load
	return f
}

// setProducers makes t the producer table. Callers hold mu, or Raft has
// not started.
func (f *fsm) setProducers(t *producer.Table) {
	f.producers = t
	f.producerCount.Store(int64(t.Len()))
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM. A records command's response is
// an applyResult, a retention command's a retentionResult, other entry
// types (configuration) get nil; a command that is refused (the same way
// on every replica: it cannot be decoded, or it is a stale proposal) gets
// its error. A records command whose first offset is not this node's
// applied end stops the state machine (ErrDiverged).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	if f.beforeApply != nil {
		f.beforeApply()
	}
	resps := make([]any, len(logs))
	if errp := f.failed.Load(); errp != nil {
		for i := range resps {
			resps[i] = *errp
		}
		return resps
	}
	f.mu.Lock()
	next, lowest := f.next.Load(), f.lowest.Load()
	prevLowest := lowest
	for i, e := range logs {
		if e.Type != raft.LogCommand {
			continue
		}
		switch {
		case isRecords(e.Data):
			c, _, err := decodeCommandHeader(e.Data)
			switch {
			case err != nil:
				resps[i] = fmt.Errorf("raft entry %d: %w", e.Index, err)
				continue
			case c.term != e.Term:
				resps[i] = fmt.Errorf("raft entry %d (term %d, proposed in %d): %w", e.Index, e.Term, c.term, errStaleProposal)
				continue
			case c.first != next:
				f.next.Store(next)
				f.mu.Unlock()
				return f.stop(resps, fmt.Errorf("%w: %w: raft entry %d (term %d) puts its records at offset %d, but this node's records end at %d",
					ErrFailed, ErrDiverged, e.Index, e.Term, c.first, next))
			}
			if c.p.ID != 0 {
				// The leader's limits, in the entry: never this node's own.
				f.producers.SetLimits(c.lim)
			}
			// The leader's time of the entry, the same on every replica.
			f.producers.Advance(e.AppendedAt)
			if c.p.ID != 0 {
				// The proposer decided; the replicas record its decision.
				f.producers.Record(c.p.ID, c.p.Sequence, c.count, producer.Sum{Value: c.p.Checksum, Known: true}, next)
			}
			resps[i] = applyResult{first: next}
			next += c.count
		case isRetain(e.Data):
			f.producers.Advance(e.AppendedAt)
			v, err := decodeRetain(e.Data)
			switch {
			case err != nil:
				resps[i] = fmt.Errorf("raft entry %d: %w", e.Index, err)
			case v > next:
				// The proposer never proposes past its applied end.
				resps[i] = fmt.Errorf("raft entry %d: retention to offset %d, but the records end at %d", e.Index, v, next)
			default:
				lowest = max(lowest, v)
				resps[i] = retentionResult{}
			}
		default:
			resps[i] = fmt.Errorf("raft entry %d: %w: command type %d", e.Index, ErrBadEncoding, e.Data[0])
		}
	}
	f.producerCount.Store(int64(f.producers.Len()))
	f.next.Store(next)
	f.lowest.Store(lowest)
	f.mu.Unlock()
	if lowest > prevLowest {
		f.removed.Add(lowest - prevLowest)
		if err := f.store.retain(); err != nil {
			// Reads below lowest are refused already; the files go at
			// the next retention or compaction.
			f.lg.Warn("removing the segments below the agreed lowest offset failed; retrying at the next retention", "lowest", lowest, "error", err)
		}
	}
	f.setApplied(logs[len(logs)-1].Index)
	return resps
}

// stop makes err (wrapping ErrFailed) the state machine's failure: it
// applies nothing more until the node restarts. The batch's responses
// that were to report success report err.
func (f *fsm) stop(resps []any, err error) []any {
	f.lg.Error("applying committed entries failed; this node stops applying until restarted", "error", err)
	f.failed.Store(&err)
	for i := range resps {
		switch resps[i].(type) {
		case applyResult, retentionResult, nil:
			resps[i] = err
		}
	}
	return resps
}

func (f *fsm) setApplied(index uint64) {
	f.appliedMu.Lock()
	f.applied.Store(index)
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
}

// appliedChanged returns a channel closed when the applied index changes.
func (f *fsm) appliedChanged() <-chan struct{} {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.appliedCh
}

// Snapshot implements raft.FSM: the small state as of the applied index.
// It fsyncs the Raft log first (already durable under SyncAlways): once Raft has
// the snapshot, a restart replays only the entries after it, so the
// entries holding the records it counts must be durable, whatever
// RaftLog.Sync says.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if errp := f.failed.Load(); errp != nil {
		return nil, *errp
	}
	if err := f.store.sync(); err != nil {
		return nil, fmt.Errorf("replication: snapshot: %w", err)
	}
	f.mu.Lock()
	table := f.producers.Encode()
	f.mu.Unlock()
	h := snapshotHeader{applied: f.applied.Load(), next: f.next.Load(), lowest: f.lowest.Load()}
	return fsmSnapshot(encodeSnapshot(h, table)), nil
}

// fsmSnapshot is an encoded snapshot.
type fsmSnapshot []byte

// Persist implements raft.FSMSnapshot.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("replication: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (fsmSnapshot) Release() {}

// Restore implements raft.FSM: it installs a snapshot's small state and,
// if the stream carries Raft entries (a snapshot sent by the leader, see
// snapshots.go), writes them into the LogStore first.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	hb := make([]byte, snapshotHeaderSize)
	if _, err := io.ReadFull(rc, hb); err != nil {
		return fmt.Errorf("replication: restore: read header: %w", err)
	}
	h, err := decodeSnapshotHeader(hb)
	if err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	table, err := readTableSection(rc)
	if err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	producers, err := producer.Decode(table)
	if err != nil {
		return fmt.Errorf("replication: restore: %w: %w", ErrBadEncoding, err)
	}
	if err := f.store.install(rc, h); err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	f.mu.Lock()
	f.setProducers(producers)
	f.next.Store(h.next)
	f.lowest.Store(h.lowest)
	f.mu.Unlock()
	f.setApplied(h.applied)
	if f.afterRestore != nil {
		f.afterRestore()
	}
	return nil
}

// read returns the record at offset if applied and at or above the
// agreed lowest offset (*seglog.OffsetOutOfRangeError otherwise).
func (f *fsm) read(offset uint64) ([]byte, error) {
	if errp := f.failed.Load(); errp != nil {
		return nil, *errp
	}
	if err := f.inRange(offset); err != nil {
		return nil, err
	}
	b, err := f.store.readRecord(offset)
	if errors.Is(err, ErrRecordGone) {
		if rerr := f.inRange(offset); rerr != nil {
			return nil, rerr // retention removed it meanwhile
		}
	}
	return b, err
}

func (f *fsm) inRange(offset uint64) error {
	lowest, next := f.lowest.Load(), f.next.Load()
	if offset < lowest || offset >= next {
		return &seglog.OffsetOutOfRangeError{Offset: offset, Lowest: lowest, Next: next}
	}
	return nil
}

// wait blocks until the record at offset is applied (nil), ctx is done
// (ctx.Err()) or the node shuts down (seglog.ErrClosed).
func (f *fsm) wait(ctx context.Context, offset uint64) error {
	for {
		changed := f.appliedChanged()
		if f.next.Load() > offset {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.done:
			return seglog.ErrClosed
		}
	}
}

// clonePending returns a copy of the producer table and the applied end,
// for the proposer's pending state.
func (f *fsm) clonePending() (*producer.Table, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := producer.Decode(f.producers.Encode())
	if err != nil {
		return nil, 0, fmt.Errorf("replication: copy the producer table: %w", err)
	}
	return t, f.next.Load(), nil
}
