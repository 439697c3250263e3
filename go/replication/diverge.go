package replication

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

// The data log must hold only entries of this node's Raft history. Raft's
// Log Matching property makes an (index, term) pair name one entry, so the
// FSM checks both, where the Raft log can lose entries the data log kept
// (relaxed sync and a power loss):
//
//   - at start (checkedFSM), the data log is cut back to its last record
//     whose entry the Raft log or the latest snapshot holds (cutDiverged):
//     an entry at or below the latest snapshot's index is trusted (the FSM
//     fsyncs the data log before handing Raft a snapshot); above it, the
//     Raft log must hold the entry with the record's term. The records cut
//     off are first copied to DataDir/data.diverged.<unix nanoseconds>, a
//     data log holding exactly them at their offsets, kept for the
//     operator; Raft then applies the entries again from its log or the
//     leader's;
//   - when Raft replays an entry at or below the data log's last one
//     (checkSkip), the data log must hold that entry's records with its
//     term (a plain append that fits; an idempotent one may have written
//     none). Otherwise the state machine stops (ErrFailed wrapping
//     ErrDiverged) rather than skip, hence lose, a committed entry.
//
// Records of version 1 envelopes carry no term: only their index is checked.

// DataLogCut describes the tail New cut off the data log because this
// node's Raft log and latest snapshot do not hold its entries (see
// Recovery). Records is 0 if nothing was cut.
type DataLogCut struct {
	// From is the first offset cut: the data log's next offset afterwards.
	From uint64
	// Records is the number of records cut, [From, From+Records).
	Records uint64
	// Reason says why the first record cut is not in the Raft history.
	Reason string
	// KeptIn is the directory holding the cut records, a data log (open it
	// with seglog.Open) whose offsets are the original ones.
	KeptIn string
}

// checkedFSM opens the data log (openFSM) and cuts it back to the entries
// this node's Raft log and latest snapshot hold (cutDiverged). lost is
// openFSM's: the data log was missing or corrupt, and Raft must rebuild it.
func checkedFSM(dir string, cfg seglog.Config, lg hclog.Logger, store raft.LogStore, snaps raft.SnapshotStore) (*fsm, bool, error) {
	f, lost, err := openFSM(dir, cfg, lg)
	if err != nil {
		return nil, false, err
	}
	if err := f.cutDiverged(store, snaps); err != nil {
		_ = f.close()
		return nil, false, err
	}
	return f, lost, nil
}

// cutDiverged cuts off the data log's records from the first one whose
// entry is not in this node's Raft history (notInRaft), after copying them
// to a data.diverged directory; f.cut describes it. An agreed lowest offset
// above the cut is lowered to it: the retention command that raised it is
// among the entries cut (it was applied after every record below it).
// Called by checkedFSM only, before Raft starts.
func (f *fsm) cutDiverged(store raft.LogStore, snaps raft.SnapshotStore) error {
	if f.last.index == 0 {
		return nil
	}
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("replication: raft log last index: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("replication: list snapshots: %w", err)
	}
	var snap raft.SnapshotMeta
	if len(metas) > 0 {
		snap = *metas[0]
	}
	why, err := notInRaft(f.last, last, snap, store)
	if err != nil || why == "" {
		return err
	}
	// The records not in the Raft history are a suffix: by Log Matching,
	// an entry the Raft log holds with the same term has every earlier one.
	l := f.l
	lo, next := l.LowestOffset(), l.NextOffset()
	reason := func(off uint64) (string, error) {
		e, err := envelopeAt(l, off)
		if err != nil {
			return "", fmt.Errorf("replication: %w", err)
		}
		return notInRaft(e, last, snap, store)
	}
	var serr error
	from := lo + uint64(sort.Search(int(next-lo), func(i int) bool {
		w, err := reason(lo + uint64(i))
		if err != nil && serr == nil {
			serr = err
		}
		return err != nil || w != ""
	}))
	if serr != nil {
		return serr
	}
	if why, err = reason(from); err != nil {
		return err
	}
	aside := fmt.Sprintf("%s.%d", filepath.Join(f.dir, dataDivergedDir), time.Now().UnixNano())
	if err := f.keepRecords(aside, from, next); err != nil {
		return fmt.Errorf("replication: keep the diverged data log records [%d, %d) in %s: %w", from, next, aside, err)
	}
	if f.lowest.Load() > from {
		if err := f.setLowest(from); err != nil {
			return err
		}
	}
	if from == 0 {
		err = l.Reset()
	} else {
		err = l.TruncateAfter(from - 1)
	}
	if err != nil {
		return fmt.Errorf("replication: cut the diverged data log records [%d, %d): %w", from, next, err)
	}
	if err := f.loadState(); err != nil {
		return err
	}
	f.applied.Store(f.last.index)
	f.cut = DataLogCut{From: from, Records: next - from, Reason: why, KeptIn: aside}
	f.lg.Error("the data log held records of raft entries this node's raft log and latest snapshot do not hold "+
		"(raft log entries lost by a power loss with relaxed sync?); cut them off: raft applies its entries again, "+
		"and the cut records are kept in a side directory",
		"reason", why, "from_offset", from, "records", next-from, "next_offset", l.NextOffset(),
		"last_raft_entry", f.last.index, "kept_in", aside)
	return nil
}

// keepRecords copies the data log's records [from, next) to a new data log
// in dir, durably (seglog.Restore fsyncs it; the parent directory is fsynced).
func (f *fsm) keepRecords(dir string, from, next uint64) error {
	rc, _, err := f.l.ReaderRange(from, next)
	if err != nil {
		return err
	}
	kept, err := seglog.Restore(dir, f.cfg, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := kept.Close(); err != nil {
		return err
	}
	return segment.SyncDir(f.dir)
}

// notInRaft explains why the entry of a data record with envelope e is not
// in this node's Raft history, "" if it is: at or below the latest
// snapshot's index snap (trusted), or held by the Raft log, whose last
// index is last, with the same term. An entry of a version 1 envelope (no
// term), or one the Raft log no longer has (compacted), is checked by
// index only.
func notInRaft(e envelope, last uint64, snap raft.SnapshotMeta, store raft.LogStore) (string, error) {
	if e.index <= snap.Index {
		return "", nil
	}
	if e.index > last {
		return fmt.Sprintf("the data log holds records of raft entry %d, the raft log ends at %d and the latest snapshot at %d",
			e.index, last, snap.Index), nil
	}
	if e.term == 0 {
		return "", nil
	}
	var r raft.Log
	switch err := store.GetLog(e.index, &r); {
	case errors.Is(err, raft.ErrLogNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("replication: raft entry %d: %w", e.index, err)
	case r.Term != e.term:
		return fmt.Sprintf("the data log holds records of raft entry %d from term %d, the raft log's entry %d is from term %d",
			e.index, e.term, e.index, r.Term), nil
	}
	return "", nil
}

// entryHeld is what the data log holds of a replayed command (checkSkip).
type entryHeld int

const (
	// heldRecords: the command's records, with its term.
	heldRecords entryHeld = iota
	// heldGone: nothing to compare: the command is older than the data
	// log's first record (retention removed its records, if it had any).
	heldGone
	// heldNone: no records of the command, though the data log holds
	// commands before and after it: it wrote none when it was applied (a
	// command too large for the data log, or an idempotent one decided as
	// a duplicate or refused), or the data log diverged.
	heldNone
)

// restartCuts ends the messages of divergence errors.
const restartCuts = "; restarting the node cuts the data log back to the raft log's entries"

// checkSkip finds the records of command e, at or below the data log's
// last entry, which Raft replays: the data log must hold them with e's term
// if it holds any. It returns what it holds and, with heldRecords, the
// offset of e's first record (heldGone: the data log's lowest offset). A
// record of another term makes an ErrDiverged error, a record it cannot
// read an ErrFailed one. Called on Raft's FSM goroutine only.
func (f *fsm) checkSkip(l *seglog.Log, e *raft.Log) (first uint64, held entryHeld, err error) {
	off, env, err := f.findEntry(l, e.Index)
	if err != nil {
		return 0, 0, fmt.Errorf("check raft entry %d against the data log: %w", e.Index, err)
	}
	switch {
	case env.index == e.Index && env.term != 0 && env.term != e.Term:
		return 0, 0, fmt.Errorf("%w: raft entry %d is from term %d, the data log's records of entry %d (from offset %d) are from term %d%s",
			ErrDiverged, e.Index, e.Term, e.Index, off-env.pos, env.term, restartCuts)
	case env.index == e.Index:
		f.scan = off + env.count - env.pos
		return off - env.pos, heldRecords, nil
	case off == l.LowestOffset():
		return off, heldGone, nil
	default:
		return 0, heldNone, nil
	}
}

// missingEntry is the ErrDiverged error of a replayed plain append command
// whose records fit but are not in the data log, which holds entries before
// and after it.
func missingEntry(e *raft.Log) error {
	return fmt.Errorf("%w: raft entry %d (term %d) has no records in the data log, which holds entries before and after it%s",
		ErrDiverged, e.Index, e.Term, restartCuts)
}

// findEntry returns the first data record of the first entry at or above
// index and its envelope (zero at the end of the log), searching from
// f.scan: Raft replays entries in order, so the next one is usually there.
func (f *fsm) findEntry(l *seglog.Log, index uint64) (uint64, envelope, error) {
	var err error
	at := func(off uint64) envelope {
		if err != nil {
			return envelope{}
		}
		var e envelope
		e, err = envelopeAt(l, off)
		return e
	}
	lo, hi := max(f.scan, l.LowestOffset()), l.NextOffset()
	if lo >= hi {
		return hi, envelope{}, nil
	}
	if e := at(lo); err != nil || e.index >= index {
		return lo, e, err
	}
	off := lo + uint64(sort.Search(int(hi-lo), func(i int) bool { return at(lo+uint64(i)).index >= index }))
	if off == hi || err != nil {
		return off, envelope{}, err
	}
	e := at(off)
	return off, e, err
}

// envelopeAt returns the envelope of data record off.
func envelopeAt(l *seglog.Log, off uint64) (envelope, error) {
	b, err := l.Read(off)
	var e envelope
	if err == nil {
		e, _, err = decodeEnvelope(b)
	}
	if err != nil {
		return envelope{}, fmt.Errorf("data record %d: %w", off, err)
	}
	return e, nil
}

// fits reports whether every record of command e fits in the data log with
// its envelope (ApplyBatch rejects the command otherwise).
func (f *fsm) fits(e *raft.Log, recs [][]byte) bool {
	var b [maxEnvelopeOverhead]byte
	n := uint64(len(recs))
	for j, r := range recs {
		env := envelope{index: e.Index, term: e.Term, pos: uint64(j), count: n}
		if uint64(len(appendEnvelope(b[:0], env, nil))+len(r)) > f.cfg.MaxRecordBytes {
			return false
		}
	}
	return true
}

// appendResponse is AppendBatch's result for the FSM's response to its
// command, Raft entry index. A skipped command is never acknowledged: Raft
// hands a leader's new entry to the FSM once, in a term the leader won in
// this process, so a data log that already had a record at its index holds
// another entry (one the FSM could not check: a version 1 envelope).
func appendResponse(resp any, index uint64) (applyResult, error) {
	switch r := resp.(type) {
	case applyResult:
		if r.skipped {
			return applyResult{}, fmt.Errorf("%w: raft entry %d was committed, but this node's data log already held an entry at its index, so it was not applied here", ErrDiverged, index)
		}
		return r, nil
	case error:
		return applyResult{}, r
	default:
		return applyResult{}, fmt.Errorf("replication: unexpected apply response %T", r)
	}
}
