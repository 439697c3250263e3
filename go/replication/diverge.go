package replication

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/log"
	"github.com/proglog/proglog/go/segment"
)

// The data log must hold only entries of this node's Raft history. Raft's
// Log Matching property makes an (index, term) pair name one entry, so the
// FSM checks both, where the Raft log can lose entries the data log kept
// (relaxed sync and a power loss):
//
//   - at start (checkedFSM), the data log's last entry must not be beyond
//     the Raft log and the latest snapshot, and must have the term of the
//     Raft log's (or the snapshot's) entry at its index. Otherwise the data
//     log is set aside (DataDir/data.diverged.<unix nanoseconds>, kept for
//     the operator) and rebuilt from the snapshot and the Raft log;
//   - when Raft replays an entry at or below the data log's last one
//     (checkSkip), the data log must hold that entry's records with its
//     term. Otherwise the state machine stops (ErrFailed wrapping
//     ErrDiverged) rather than skip, hence lose, a committed entry.
//
// Records of version 1 envelopes carry no term: only their index is checked.

// checkedFSM opens the data log (openFSM) and sets it aside if this node's
// Raft log and latest snapshot do not hold its last entry; lost is then true
// and Raft must rebuild the data log.
func checkedFSM(dir string, cfg log.Config, lg hclog.Logger, store raft.LogStore, snaps raft.SnapshotStore) (*fsm, bool, error) {
	f, lost, err := openFSM(dir, cfg, lg)
	if err != nil {
		return nil, false, err
	}
	why, err := f.notInRaft(store, snaps)
	if err == nil && why == "" {
		return f, lost, nil
	}
	if cerr := f.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	aside, err := setAsideDataLog(dir, dataDivergedDir)
	if err != nil {
		return nil, false, fmt.Errorf("replication: set aside diverged data log: %w", err)
	}
	lg.Error("the data log holds raft entries this node's raft log and snapshot do not (raft log entries lost by a power loss with relaxed sync?); "+
		"set it aside, rebuilding it from the snapshot and the raft log; records only it holds stay in the set-aside directory",
		"reason", why, "moved_to", aside)
	return openFSM(dir, cfg, lg)
}

// notInRaft explains why the data log's last entry is not the entry the
// Raft log or the latest snapshot has at its index, "" if it is (or cannot
// be checked: a version 1 envelope, or an index compacted from the Raft log
// and not the snapshot's last).
func (f *fsm) notInRaft(store raft.LogStore, snaps raft.SnapshotStore) (string, error) {
	if f.last.index == 0 {
		return "", nil
	}
	last, err := store.LastIndex()
	if err != nil {
		return "", fmt.Errorf("replication: raft log last index: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return "", fmt.Errorf("replication: list snapshots: %w", err)
	}
	var snap raft.SnapshotMeta
	if len(metas) > 0 {
		snap = *metas[0]
	}
	if f.last.index > max(last, snap.Index) {
		return fmt.Sprintf("the data log's last record is of raft entry %d, the raft log ends at %d and the latest snapshot at %d",
			f.last.index, last, snap.Index), nil
	}
	if f.last.term == 0 {
		return "", nil
	}
	var e raft.Log
	switch err := store.GetLog(f.last.index, &e); {
	case err == nil:
	case errors.Is(err, raft.ErrLogNotFound) && snap.Index == f.last.index:
		e.Term = snap.Term
	case errors.Is(err, raft.ErrLogNotFound):
		return "", nil
	default:
		return "", fmt.Errorf("replication: raft entry %d: %w", f.last.index, err)
	}
	if e.Term != f.last.term {
		return fmt.Sprintf("the data log's last record is of raft entry %d from term %d, the raft log's entry %d is from term %d",
			f.last.index, f.last.term, f.last.index, e.Term), nil
	}
	return "", nil
}

// checkSkip checks that command e, at or below the data log's last entry,
// is the entry whose records the data log holds at its index: Raft replays
// it, and it is skipped. It returns an ErrDiverged error if the records
// there are of another term, or if there are none although the data log
// reaches below e and the command has records that fit. A record it cannot
// read makes an ErrFailed error. Called on Raft's FSM goroutine only.
func (f *fsm) checkSkip(l *log.Log, e *raft.Log, recs [][]byte) error {
	off, env, err := f.findEntry(l, e.Index)
	if err != nil {
		return fmt.Errorf("check raft entry %d against the data log: %w", e.Index, err)
	}
	const restart = "; restarting the node sets the data log aside and rebuilds it"
	switch {
	case env.index == e.Index && env.term != 0 && env.term != e.Term:
		return fmt.Errorf("%w: raft entry %d is from term %d, the data log's records of entry %d (from offset %d) are from term %d%s",
			ErrDiverged, e.Index, e.Term, e.Index, off-env.pos, env.term, restart)
	case env.index == e.Index:
		f.scan = off + env.count - env.pos
		return nil
	case off == l.LowestOffset():
		return nil // older than the data log's first record: nothing to compare
	case !f.fits(e, recs):
		return nil // rejected when it was applied, and again now
	default:
		return fmt.Errorf("%w: raft entry %d (term %d) has no records in the data log, which holds entries before and after it%s",
			ErrDiverged, e.Index, e.Term, restart)
	}
}

// findEntry returns the first data record of the first entry at or above
// index and its envelope (zero at the end of the log), searching from
// f.scan: Raft replays entries in order, so the next one is usually there.
func (f *fsm) findEntry(l *log.Log, index uint64) (uint64, envelope, error) {
	var err error
	at := func(off uint64) envelope {
		if err != nil {
			return envelope{}
		}
		var b []byte
		var e envelope
		if b, err = l.Read(off); err == nil {
			e, _, err = decodeEnvelope(b)
		}
		if err != nil {
			err = fmt.Errorf("data record %d: %w", off, err)
		}
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

// setAsideDataLog renames DataDir/data to <prefix>.<unix nanoseconds> and
// returns the new path.
func setAsideDataLog(dir, prefix string) (string, error) {
	aside := fmt.Sprintf("%s.%d", filepath.Join(dir, prefix), time.Now().UnixNano())
	if err := os.Rename(filepath.Join(dir, dataDir), aside); err != nil {
		return "", err
	}
	return aside, segment.SyncDir(dir)
}

// appendResponse is AppendBatch's result for the FSM's response to its
// command, Raft entry index. A skipped command is never acknowledged: Raft
// hands a leader's new entry to the FSM once, in a term the leader won in
// this process, so a data log that already had a record at its index holds
// another entry (one the FSM could not check: a version 1 envelope).
func appendResponse(resp any, index uint64) (uint64, error) {
	switch r := resp.(type) {
	case applyResult:
		if r.skipped {
			return 0, fmt.Errorf("%w: raft entry %d was committed, but this node's data log already held an entry at its index, so it was not applied here", ErrDiverged, index)
		}
		return r.first, nil
	case error:
		return 0, r
	default:
		return 0, fmt.Errorf("replication: unexpected apply response %T", r)
	}
}
