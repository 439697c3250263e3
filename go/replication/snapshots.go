package replication

import (
	"bytes"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotStore is a raft.FileSnapshotStore whose Open, used by Raft to
// send a snapshot to a follower that lags behind the leader's log, adds
// the Raft entries holding the records from the agreed lowest offset on to
// the small state this node stored (see the package documentation,
// Snapshots). Create and List are the file store's; New restores the
// latest snapshot through the file store itself (restoreLatest).
type snapshotStore struct {
	*raft.FileSnapshotStore
	fsm   *fsm
	store *LogStore
	// stale is called when a snapshot can no longer be served (retention
	// removed entries it needs): a new snapshot should be taken.
	stale func()
}

// Open implements raft.SnapshotStore. A snapshot received from a leader
// (its header names the term of its last entry) is opened as stored,
// entries included: Raft opens it to restore it, and may send it on.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, snapshotHeaderSize)
	var h snapshotHeader
	var table []byte
	if _, err = io.ReadFull(rc, head); err == nil {
		if h, err = decodeSnapshotHeader(head); err == nil && h.appliedTerm != 0 {
			return meta, readCloser{io.MultiReader(bytes.NewReader(head), rc), rc}, nil
		}
	}
	if err == nil {
		table, err = readTableSection(rc)
	}
	_ = rc.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	h.lowest = min(max(h.lowest, s.fsm.lowest.Load()), h.next)
	h.appliedTerm = meta.Term
	var data io.ReadCloser = io.NopCloser(bytes.NewReader(nil))
	var n int64
	from, held, err := s.store.records.holding(h.lowest)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	switch {
	case h.lowest < h.next && held && from <= h.applied:
		h.firstEntry = from
		l, _, _ := s.store.bounds()
		if data, n, err = l.ReaderRange(from, h.applied+1); err != nil {
			s.stale()
			return nil, nil, fmt.Errorf("replication: snapshot %s needs raft entries [%d, %d], no longer all there: %w", id, from, h.applied, err)
		}
	case h.lowest < h.next:
		s.stale()
		return nil, nil, fmt.Errorf("replication: snapshot %s needs the records from offset %d, no longer held", id, h.lowest)
	case s.store.first.Load() > h.applied+1:
		// No record to send, but the follower could not continue after
		// the snapshot: the entries after it are gone too.
		s.stale()
		return nil, nil, fmt.Errorf("replication: snapshot %s ends at raft entry %d, the log now starts at %d", id, h.applied, s.store.first.Load())
	}
	full := *meta
	head = encodeSnapshot(h, table)
	full.Size = int64(len(head)) + n
	return &full, readCloser{io.MultiReader(bytes.NewReader(head), data), data}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// restoreLatest installs the latest stored snapshot into the state
// machine before Raft starts (Raft does not: NoSnapshotRestoreOnStart),
// so that Raft replays only the entries after it. It returns false if
// there is none.
func (s *snapshotStore) restoreLatest() (bool, error) {
	metas, err := s.List()
	if err != nil {
		return false, fmt.Errorf("replication: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return false, nil
	}
	_, rc, err := s.FileSnapshotStore.Open(metas[0].ID)
	if err != nil {
		return false, fmt.Errorf("replication: open snapshot %s: %w", metas[0].ID, err)
	}
	if err := s.fsm.Restore(rc); err != nil {
		return false, fmt.Errorf("snapshot %s: %w", metas[0].ID, err)
	}
	return true, nil
}
