package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// snapshotStore is a raft.FileSnapshotStore whose Open turns a reference
// snapshot into a full one, streamed from the live data log (see the
// package documentation, Snapshots). Create and List are the file store's.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir string // the file store's directory
	fsm *fsm
	// stale is called when a reference can no longer be served (retention
	// removed its records): a new snapshot should be taken.
	stale func()
}

// Open implements raft.SnapshotStore.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, snapshotHeaderSize)
	if _, err := io.ReadFull(rc, head); err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	if !isRefSnapshot(head) {
		return meta, readCloser{io.MultiReader(bytes.NewReader(head), rc), rc}, nil
	}
	rest := make([]byte, refSnapshotSize-snapshotHeaderSize)
	_, err = io.ReadFull(rc, rest)
	_ = rc.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	h, err := decodeRefSnapshot(append(head, rest...))
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	first := max(h.lowest, s.fsm.lowest.Load())
	data, n, err := s.fsm.current().ReaderRange(first, h.next)
	if err != nil {
		s.stale()
		return nil, nil, fmt.Errorf("replication: snapshot %s references data log records [%d, %d), no longer all there: %w", id, first, h.next, err)
	}
	full := *meta
	full.Size = snapshotHeaderSize + n
	hb := encodeSnapshotHeader(snapshotHeader{applied: h.applied, lastCommand: h.lastCommand})
	return &full, readCloser{io.MultiReader(bytes.NewReader(hb), data), data}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// latest returns the header of the newest snapshot and whether it is a
// reference; ok is false if there is none. It reads the header from the
// file store's state file directly (the store's Open would checksum the
// whole snapshot).
func (s *snapshotStore) latest() (h snapshotHeader, ref, ok bool, err error) {
	metas, err := s.List()
	if err != nil {
		return h, false, false, fmt.Errorf("replication: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return h, false, false, nil
	}
	id := metas[0].ID
	fh, err := os.Open(filepath.Join(s.dir, "snapshots", id, "state.bin"))
	if err != nil {
		return h, false, false, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	defer fh.Close()
	b := make([]byte, refSnapshotSize)
	n, err := io.ReadFull(fh, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) || n < snapshotHeaderSize {
		return h, false, false, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	if isRefSnapshot(b) {
		h, err = decodeRefSnapshot(b[:n])
		ref = true
	} else {
		h, err = decodeSnapshotHeader(b[:snapshotHeaderSize])
	}
	if err != nil {
		return h, false, false, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	return h, ref, true, nil
}
