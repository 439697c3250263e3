package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

// Data log directory names under Config.DataDir.
const (
	dataDir        = "data"
	dataRestoreDir = "data.restore" // a snapshot being restored
	dataOldDir     = "data.old"     // the data log a restore replaced
	dataCorruptDir = "data.corrupt" // prefix: set aside by open
	// dataDivergedDir is the prefix of the data log holding the records
	// New cut off because the Raft log and snapshot do not hold their
	// entries (see checkedFSM).
	dataDivergedDir = "data.diverged"
)

// applyResult is the response of an applied append command.
type applyResult struct {
	first   uint64 // offset of the command's first record
	skipped bool   // already in the data log (replay after a restart)
	// duplicate: an idempotent command repeating a batch its producer
	// already wrote, at first; nothing was written.
	duplicate bool
}

// fsm applies committed commands to the data log. See the package
// documentation for its idempotency and snapshot rules.
//
// Apply, ApplyBatch, Snapshot and Restore run on Raft's FSM goroutine, one
// at a time; the idempotency state (last) is only touched there (and by
// openFSM before Raft starts). Readers run concurrently: l is swapped by
// Restore under mu.
type fsm struct {
	dir string // Config.DataDir
	cfg seglog.Config
	lg  hclog.Logger

	mu sync.RWMutex
	l  *seglog.Log

	last envelope // of the last record in the data log; zero if none
	// scan is where checkSkip looks for the next replayed entry's records:
	// just past the records of the last entry it found.
	scan uint64

	applied   atomic.Uint64 // last raft index applied (or restored)
	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced when applied advances

	failed atomic.Pointer[error]

	beforeApply func() // Config.beforeApply
	// fullDisk, if set, is called each time ApplyBatch waits for space
	// (tests).
	fullDisk func()
	// quit is closed (by interrupt) when the node shuts down: an apply
	// waiting for disk space gives up.
	quit     chan struct{}
	quitOnce sync.Once

	// lowest is the agreed lowest offset (retention.go); removed counts
	// the records retention removed since start.
	lowest  atomic.Uint64
	removed atomic.Uint64

	// setAside is where openFSM moved a corrupt data log ("" if it did not).
	setAside string
	// cut is what checkedFSM cut off the data log's tail (diverge.go).
	cut DataLogCut

	// producers is the idempotent producers' table (Raft's FSM goroutine
	// only, and New before Raft starts), with the limits the log gave it;
	// producerCount its size, for metrics.
	producers     *producer.Table
	producerCount atomic.Int64

	// Scratch space of ApplyBatch (Raft's FSM goroutine only).
	envelopes arena
	recs      [][]byte
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

// openFSM opens the data log under dir, cleaning up after an interrupted
// restore. It reports lost if the data log had to be started afresh
// (missing, or corrupt and set aside), in which case Raft must restore it
// from the latest snapshot and replay the log.
func openFSM(dir string, cfg seglog.Config, lg hclog.Logger) (f *fsm, lost bool, err error) {
	data := filepath.Join(dir, dataDir)
	restore, old := filepath.Join(dir, dataRestoreDir), filepath.Join(dir, dataOldDir)
	if _, err := os.Stat(data); errors.Is(err, os.ErrNotExist) {
		lost = true
	}
	if err := errors.Join(os.RemoveAll(restore), os.RemoveAll(old)); err != nil {
		return nil, false, fmt.Errorf("replication: clean up data dirs: %w", err)
	}
	l, err := seglog.Open(data, cfg)
	var aside string
	if errors.Is(err, seglog.ErrCorrupt) {
		var rerr error
		if aside, rerr = setAsideDataLog(dir, dataCorruptDir); rerr != nil {
			return nil, false, fmt.Errorf("replication: set aside corrupt data log: %w (after %v)", rerr, err)
		}
		lg.Error("data log is corrupt; set it aside to rebuild it from a full snapshot and the raft log (a node whose snapshot only references the data log refuses to start)", "error", err, "moved_to", aside)
		lost = true
		l, err = seglog.Open(data, cfg)
	}
	if err != nil {
		return nil, false, fmt.Errorf("replication: open data log: %w", err)
	}
	f = &fsm{dir: dir, cfg: l.Config(), lg: lg, l: l, appliedCh: make(chan struct{}), setAside: aside, quit: make(chan struct{})}
	f.setProducers(producer.New(producer.DefaultConfig()))
	if err := errors.Join(f.loadState(), f.loadLowest()); err != nil {
		_ = l.Close()
		return nil, false, err
	}
	f.applied.Store(f.last.index)
	return f, lost, nil
}

// setAsideDataLog renames DataDir/data to <prefix>.<unix nanoseconds> and
// returns the new path.
func setAsideDataLog(dir, prefix string) (string, error) {
	aside := fmt.Sprintf("%s.%d", filepath.Join(dir, prefix), time.Now().UnixNano())
	if err := os.Rename(filepath.Join(dir, dataDir), aside); err != nil {
		return "", err
	}
	return aside, segment.SyncDir(dir)
}

// loadState reads the envelope of the last data record.
func (f *fsm) loadState() error {
	f.last = envelope{}
	if f.l.LowestOffset() == f.l.NextOffset() {
		return nil
	}
	e, err := envelopeAt(f.l, f.l.HighestOffset())
	if err != nil {
		return fmt.Errorf("replication: last %w", err)
	}
	f.last = e
	return nil
}

// setProducers makes t the producer table. Raft's FSM goroutine only, or
// before Raft starts.
func (f *fsm) setProducers(t *producer.Table) {
	f.producers = t
	f.producerCount.Store(int64(t.Len()))
}

// decodeProducers decodes a snapshot's producer table (nil: none, an
// empty table with go/producer's default limits).
func decodeProducers(b []byte) (*producer.Table, error) {
	if b == nil {
		return producer.New(producer.DefaultConfig()), nil
	}
	t, err := producer.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEncoding, err)
	}
	return t, nil
}

func (f *fsm) current() *seglog.Log {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.l
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: the records of every command in
// the batch are appended with one AppendBatch, each command's at
// consecutive offsets. The response of a command is an applyResult or an
// error; other entry types (configuration) get nil.
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
	l := f.current()
	next := l.NextOffset()
	a := &f.envelopes
	a.reset()
	defer a.reset()
	last := f.last
	maxRecord := f.cfg.MaxRecordBytes
	var retain uint64 // the highest retention command's offset
	for i, e := range logs {
		if e.Type != raft.LogCommand {
			continue
		}
		var c appendCommand
		var err error
		isRet := isRetain(e.Data)
		if !isRet {
			c, err = decodeCommandInto(f.recs, e.Data)
			if c.lim.MaxProducers != 0 {
				// The leader's limits, in the entry: never this node's own.
				f.producers.SetLimits(c.lim)
			}
		}
		// The leader's time of the entry, the same on every replica.
		f.producers.Advance(e.AppendedAt)
		if isRet {
			resps[i] = noteRetain(e, next+uint64(a.len()), &retain)
			continue
		}
		if err != nil {
			resps[i] = fmt.Errorf("raft entry %d: %w", e.Index, err)
			continue
		}
		recs, p := c.recs, c.p
		f.recs = recs
		n := uint64(len(recs))
		var dupAt uint64
		var dup bool
		var refused error
		var sum producer.Sum
		if p.ID != 0 {
			// Decided from the table and the entry alone, so every replica
			// decides the same. An old command has no checksum.
			sum = producer.Sum{Value: p.Checksum, Known: c.lim.MaxProducers != 0}
			dupAt, dup, refused = f.producers.Check(p.ID, p.Sequence, n, sum)
		}
		var from uint64 // records of this entry already in the data log
		if e.Index <= last.index {
			// Raft replays an entry the data log had before this batch
			// (this batch's own are above it): it must be the same entry.
			// What it wrote then is in the data log, which the replay
			// follows (the table is rebuilt from it, whatever the
			// decision now).
			first, held, err := f.checkSkip(l, e)
			if err == nil && held == heldNone && p.ID == 0 && f.fits(e, recs) {
				err = missingEntry(e)
			}
			if err != nil {
				resps[i] = fmt.Errorf("%w: %w", ErrFailed, err)
				return f.stop(resps, resps[i].(error))
			}
			if e.Index < last.index || last.pos+1 >= n {
				written := held == heldRecords ||
					held == heldGone && refused == nil && !dup && f.fits(e, recs)
				if written && p.ID != 0 && !dup {
					f.producers.Record(p.ID, p.Sequence, n, sum, first)
				}
				resps[i] = applyResult{skipped: true}
				continue
			}
			from = last.pos + 1 // a partial batch survived a crash
		} else if p.ID != 0 {
			switch {
			case refused != nil:
				resps[i] = fmt.Errorf("raft entry %d: %w", e.Index, refused)
				continue
			case dup:
				resps[i] = applyResult{first: dupAt, duplicate: true}
				continue
			}
		}
		tooLarge := false
		start := a.len()
		for j := from; j < n; j++ {
			a.buf = appendEnvelope(a.buf, envelope{index: e.Index, term: e.Term, pos: j, count: n}, recs[j])
			a.add()
			if uint64(a.lastSize()) > maxRecord {
				tooLarge = true
				break
			}
		}
		if tooLarge {
			// Deterministic on every node with the same configuration.
			a.truncate(start)
			resps[i] = fmt.Errorf("raft entry %d: %w", e.Index, seglog.ErrRecordTooLarge)
			continue
		}
		first := next + uint64(start) - from
		resps[i] = applyResult{first: first}
		if p.ID != 0 {
			f.producers.Record(p.ID, p.Sequence, n, sum, first)
		}
		last = envelope{index: e.Index, term: e.Term, pos: n - 1, count: n}
	}
	f.producerCount.Store(int64(f.producers.Len()))
	clear(f.recs[:cap(f.recs)]) // the records alias Raft's entries: do not keep them
	var err error
	if a.len() > 0 {
		var got uint64
		got, err = f.appendWaiting(l, a.slices())
		if err == nil && got != next {
			err = fmt.Errorf("data log appended at %d, expected %d", got, next)
		}
	}
	if err == nil {
		err = f.retain(l, retain)
	}
	if err != nil {
		return f.stop(resps, fmt.Errorf("%w: apply raft entries %d-%d: %v", ErrFailed, logs[0].Index, logs[len(logs)-1].Index, err))
	}
	f.last = last
	f.setApplied(logs[len(logs)-1].Index)
	return resps
}

// fullDiskRetry is how often an apply refused by a full disk is retried.
const fullDiskRetry = 100 * time.Millisecond

// appendWaiting appends recs to the data log. A full disk that left the
// log usable (ENOSPC, nothing written) is waited out, retrying every
// fullDiskRetry: the entries are committed and must be applied, in order,
// so the state machine pauses (Raft keeps running; applies queue up) until
// space returns or the node shuts down.
func (f *fsm) appendWaiting(l *seglog.Log, recs [][]byte) (uint64, error) {
	for waited := false; ; waited = true {
		got, err := l.AppendBatch(recs)
		if err == nil || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, seglog.ErrFailed) {
			if waited && err == nil {
				f.lg.Warn("disk space is back; applying committed entries again")
			}
			return got, err
		}
		if !waited {
			f.lg.Warn("the disk is full; committed entries wait to be applied until space is freed", "error", err)
		}
		if f.fullDisk != nil {
			f.fullDisk()
		}
		select {
		case <-f.quit:
			return 0, err
		case <-time.After(fullDiskRetry):
		}
	}
}

// interrupt makes an apply waiting for disk space give up (shutdown).
func (f *fsm) interrupt() { f.quitOnce.Do(func() { close(f.quit) }) }

// stop makes err (wrapping ErrFailed) the state machine's failure: it
// applies nothing more until the node restarts. The batch's responses that
// were to report success report err.
func (f *fsm) stop(resps []any, err error) []any {
	f.lg.Error("applying committed entries failed; this node stops applying until restarted", "error", err)
	f.failed.Store(&err)
	clear(f.recs[:cap(f.recs)])
	for i := range resps {
		switch resps[i].(type) {
		case applyResult, retentionResult:
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

// Snapshot implements raft.FSM. It fsyncs the data log first: once Raft
// has the snapshot it may remove the entries it covers, and after a
// restart (NoSnapshotRestoreOnStart) the data log is trusted to hold them.
// The snapshot is a reference to the data log's records as of now
// (snapshots.go): exactly the entries applied so far.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if errp := f.failed.Load(); errp != nil {
		return nil, *errp
	}
	l := f.current()
	// The active segment is not fsynced under SyncNever/SyncInterval.
	if err := l.Sync(); err != nil {
		return nil, fmt.Errorf("replication: snapshot: %w", err)
	}
	h := snapshotHeader{applied: f.applied.Load(), lastCommand: f.last.index, lowest: f.lowestOffset(), next: l.NextOffset()}
	// The table as of the applied index: taken here, on the FSM goroutine.
	return fsmSnapshot(encodeRefSnapshot(h, f.producers.Encode())), nil
}

// fsmSnapshot is an encoded reference snapshot.
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

// Restore implements raft.FSM: it rebuilds the data log from a snapshot
// stream in a side directory, then swaps it in (rename the old one aside,
// rename the new one in, fsync the parent, remove the old one). Readers
// blocked in Wait on the old log move to the new one.
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
	var table []byte
	if h.table {
		if table, err = readTableSection(rc); err != nil {
			return fmt.Errorf("replication: restore: %w", err)
		}
	}
	producers, err := decodeProducers(table)
	if err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	data := filepath.Join(f.dir, dataDir)
	restore, old := filepath.Join(f.dir, dataRestoreDir), filepath.Join(f.dir, dataOldDir)
	if err := errors.Join(os.RemoveAll(restore), os.RemoveAll(old)); err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	cfg := f.cfg
	nl, err := seglog.Restore(restore, cfg, rc)
	if err != nil {
		return fmt.Errorf("replication: restore data log: %w", err)
	}
	if err := nl.Close(); err != nil {
		return fmt.Errorf("replication: restore data log: %w", err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.l.Close(); err != nil {
		f.lg.Warn("closing the replaced data log", "error", err)
	}
	swap := func() error {
		if err := os.Rename(data, old); err != nil {
			return err
		}
		if err := os.Rename(restore, data); err != nil {
			return err
		}
		if err := segment.SyncDir(f.dir); err != nil {
			return err
		}
		return os.RemoveAll(old)
	}
	serr := swap()
	l, err := seglog.Open(data, cfg)
	if err != nil || serr != nil {
		err = fmt.Errorf("%w: swap in restored data log: %v", ErrFailed, errors.Join(serr, err))
		f.failed.Store(&err)
		if l != nil {
			f.l = l
		}
		return err
	}
	f.l = l
	f.scan = 0
	if err := errors.Join(f.loadState(), f.setLowest(l.LowestOffset())); err != nil {
		err = fmt.Errorf("%w: %v", ErrFailed, err)
		f.failed.Store(&err)
		return err
	}
	f.setProducers(producers)
	f.failed.Store(nil)
	f.setApplied(max(h.applied, f.last.index))
	f.lg.Info("restored data log from snapshot", "records", l.NextOffset()-l.LowestOffset(), "applied", h.applied)
	return nil
}

// withLog runs fn on the current data log, again on the new one if a
// Restore replaced it meanwhile (fn then saw ErrClosed).
func (f *fsm) withLog(fn func(*seglog.Log) error) error {
	for {
		l := f.current()
		err := fn(l)
		if errors.Is(err, seglog.ErrClosed) && f.current() != l {
			continue
		}
		return err
	}
}

// read returns the client record at offset.
func (f *fsm) read(offset uint64) ([]byte, error) {
	if errp := f.failed.Load(); errp != nil {
		return nil, *errp
	}
	var rec []byte
	err := f.withLog(func(l *seglog.Log) error {
		if err := f.checkLowest(l, offset); err != nil {
			return err
		}
		b, err := l.Read(offset)
		if oor := (*seglog.OffsetOutOfRangeError)(nil); errors.As(err, &oor) {
			// Past the end: the bounds are the agreed ones (a segment
			// straddling the agreed lowest offset keeps records below it).
			oor.Lowest = f.agreedLowest(l)
		}
		if err != nil {
			return err
		}
		_, payload, err := decodeEnvelope(b)
		if err != nil {
			return fmt.Errorf("data record %d: %w", offset, err)
		}
		rec = payload
		return nil
	})
	return rec, err
}

func (f *fsm) wait(ctx context.Context, offset uint64) error {
	return f.withLog(func(l *seglog.Log) error { return l.Wait(ctx, offset) })
}

func (f *fsm) lowestOffset() uint64 { return f.agreedLowest(f.current()) }

// agreedLowest is the lowest offset l serves: the agreed one (retention),
// or l's own if higher, and never past its end.
func (f *fsm) agreedLowest(l *seglog.Log) uint64 {
	return max(l.LowestOffset(), min(f.lowest.Load(), l.NextOffset()))
}
func (f *fsm) nextOffset() uint64 { return f.current().NextOffset() }

func (f *fsm) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.l.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
		return fmt.Errorf("replication: close data log: %w", err)
	}
	return nil
}
