package replication

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
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
	if _, err = io.ReadFull(rc, rest); err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	h, err := decodeRefSnapshot(append(head, rest...))
	var table []byte
	if err == nil && h.table {
		table, err = readTableSection(rc)
	}
	_ = rc.Close()
	if err == nil && table == nil {
		table = producer.New(producer.DefaultConfig()).Encode() // a version 2 reference: no producers
	}
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
	hb := encodeSnapshotHeader(snapshotHeader{applied: h.applied, lastCommand: h.lastCommand}, table)
	full.Size = int64(len(hb)) + n
	return &full, readCloser{io.MultiReader(bytes.NewReader(hb), data), data}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// latest returns the header of the newest snapshot, whether it is a
// reference, and its producer table (nil if it has none, a version 1 or 2
// snapshot); ok is false if there is none. It reads the snapshot's head
// from the file store's state file directly (the store's Open would
// checksum the whole snapshot).
func (s *snapshotStore) latest() (h snapshotHeader, ref, ok bool, table []byte, err error) {
	metas, err := s.List()
	if err != nil {
		return h, false, false, nil, fmt.Errorf("replication: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return h, false, false, nil, nil
	}
	id := metas[0].ID
	fh, err := os.Open(filepath.Join(s.dir, "snapshots", id, "state.bin"))
	if err != nil {
		return h, false, false, nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	defer fh.Close()
	r := bufio.NewReader(fh)
	b := make([]byte, snapshotHeaderSize, refSnapshotSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, false, false, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	if ref = isRefSnapshot(b); ref {
		b = b[:refSnapshotSize]
		if _, err = io.ReadFull(r, b[snapshotHeaderSize:]); err == nil {
			h, err = decodeRefSnapshot(b)
		}
	} else {
		h, err = decodeSnapshotHeader(b)
	}
	if err == nil && h.table {
		table, err = readTableSection(r)
	}
	if err != nil {
		return h, false, false, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	return h, ref, true, table, nil
}
