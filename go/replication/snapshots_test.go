package replication

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

// testSnapshotStore is a snapshotStore over f in a new directory; stale
// counts the calls asking for a new snapshot.
func testSnapshotStore(t *testing.T, f *fsm) (s *snapshotStore, stale *int) {
	t.Helper()
	dir := t.TempDir()
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	stale = new(int)
	return &snapshotStore{FileSnapshotStore: fss, dir: dir, fsm: f, stale: func() { *stale++ }}, stale
}

// persist stores snap in s as Raft does and returns its ID.
func persist(t *testing.T, s *snapshotStore, snap raft.FSMSnapshot, index uint64) string {
	t.Helper()
	sink, err := s.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.ID()
}

// open opens snapshot id of s as Raft does to send or restore it, and
// returns its content, checking it is as long as announced.
func open(t *testing.T, s *snapshotStore, id string) ([]byte, error) {
	t.Helper()
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != meta.Size {
		t.Fatalf("snapshot %s announced %d bytes, streamed %d", id, meta.Size, len(b))
	}
	return b, nil
}

// fullSnapshot takes a snapshot of f and returns the full stream Raft
// would send for it.
func fullSnapshot(t *testing.T, f *fsm) []byte {
	t.Helper()
	s, _ := testSnapshotStore(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := open(t, s, persist(t, s, snap, f.applied.Load()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A snapshot stores a 48-byte reference, not the records; opening it
// streams them from the data log, as of the snapshot, with the size Raft
// announces; a full snapshot (as a follower stores one) is opened as it is.
func TestSnapshotReferencesTheDataLog(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	f.ApplyBatch([]*raft.Log{cmd(1, "a"), cmd(2, "b", "c")})
	s, stale := testSnapshotStore(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	id := persist(t, s, snap, 2)
	f.ApplyBatch([]*raft.Log{cmd(3, "d")}) // after the snapshot: not in it
	metas, err := s.List()
	want := int64(refSnapshotSize + tableSectionOverhead + producer.HeaderSize)
	if err != nil || len(metas) != 1 || metas[0].Size != want {
		t.Fatalf("stored snapshots %+v, %v; want one of %d bytes", metas, err, want)
	}
	full, err := open(t, s, id)
	if err != nil {
		t.Fatal(err)
	}
	dst := openTestFSM(t, t.TempDir())
	if err := dst.Restore(io.NopCloser(bytes.NewReader(full))); err != nil {
		t.Fatal(err)
	}
	equal(t, dataOf(t, dst), "a", "b", "c")

	// A full snapshot is opened as stored.
	sink, err := s.Create(raft.SnapshotVersionMax, 3, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(full); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if again, err := open(t, s, sink.ID()); err != nil || !bytes.Equal(again, full) {
		t.Fatalf("full snapshot opened as %d bytes, %v; want the %d stored", len(again), err, len(full))
	}
	if *stale != 0 {
		t.Fatalf("%d stale reports", *stale)
	}
}

// Once retention removed records a reference needs, opening it fails and
// asks for a new snapshot.
func TestStaleSnapshotAsksForANewOne(t *testing.T) {
	f := openSegFSM(t, t.TempDir(), 256)
	fill(t, f, 20)
	s, stale := testSnapshotStore(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	id := persist(t, s, snap, 20)
	fill2 := []*raft.Log{}
	for i := 21; i <= 40; i++ {
		fill2 = append(fill2, cmd(uint64(i), "0123456789012345678901234567890123456789"))
	}
	f.ApplyBatch(fill2)
	// Retention up to the snapshot's end still leaves it servable...
	f.ApplyBatch([]*raft.Log{retainCmd(41, 19)})
	if _, err := open(t, s, id); err != nil || *stale != 0 {
		t.Fatalf("open after retention below the snapshot's end: %v (%d stale)", err, *stale)
	}
	// ... past it, not.
	f.ApplyBatch([]*raft.Log{retainCmd(42, 25)})
	if _, err := open(t, s, id); !errors.Is(err, seglog.ErrOffsetOutOfRange) || *stale != 1 {
		t.Fatalf("open after retention past the snapshot's end: %v (%d stale)", err, *stale)
	}
}

func TestRefSnapshotEncoding(t *testing.T) {
	h := snapshotHeader{applied: 9, lastCommand: 8, lowest: 3, next: 70, table: true}
	b := encodeRefSnapshot(h, []byte("table"))
	if got, err := decodeRefSnapshot(b[:refSnapshotSize]); err != nil || got != h || !isRefSnapshot(b) {
		t.Fatalf("decodeRefSnapshot = %+v, %v", got, err)
	}
	if table, err := readTableSection(bytes.NewReader(b[refSnapshotSize:])); err != nil || string(table) != "table" {
		t.Fatalf("table section: %q, %v", table, err)
	}
	// Version 2, from before producer tables, still decodes, without one.
	v2 := encodeHeader(h, refSnapshotV2, refSnapshotSize)
	if got, err := decodeRefSnapshot(v2); err != nil || got.table || got.next != 70 || !isRefSnapshot(v2) {
		t.Fatalf("version 2: %+v, %v", got, err)
	}
	if isRefSnapshot(encodeSnapshotHeader(h, nil)) {
		t.Fatal("a full snapshot header is a reference")
	}
	b = b[:refSnapshotSize]
	bad := bytes.Clone(b)
	bad[45]++
	inverted := encodeRefSnapshot(snapshotHeader{lowest: 5, next: 4}, nil)[:refSnapshotSize]
	for name, b := range map[string][]byte{"checksum": bad, "short": b[:40], "lowest above next": inverted, "full": encodeSnapshotHeader(h, nil)[:snapshotHeaderSize]} {
		if _, err := decodeRefSnapshot(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
