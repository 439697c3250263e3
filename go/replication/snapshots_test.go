package replication

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
)

// testSnapshotStore is a snapshotStore over f in a new directory; stale
// counts the calls asking for a new snapshot.
func testSnapshotStore(t *testing.T, f *testFSM) (s *snapshotStore, stale *int) {
	t.Helper()
	dir := t.TempDir()
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	stale = new(int)
	return &snapshotStore{FileSnapshotStore: fss, fsm: f.fsm, store: f.store, stale: func() { *stale++ }}, stale
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
func fullSnapshot(t *testing.T, f *testFSM) []byte {
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

// A snapshot stores the small state; opening it to send it adds the
// entries holding the records from the agreed lowest offset on, with the
// size Raft announces, and a follower restored from that stream holds and
// reads exactly those records; a snapshot received that way opens as is.
func TestSnapshotStreamCarriesTheRecords(t *testing.T) {
	f := openSegFSM(t, t.TempDir(), 256)
	fill(t, f, 60)
	f.apply(retainCmd(61, 23))
	f.apply(recs(62, 60, "x"))
	s, stale := testSnapshotStore(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	id := persist(t, s, snap, f.applied.Load())
	stored, err := s.FileSnapshotStore.List()
	if err != nil || stored[0].Size > snapshotHeaderSize+tableSectionOverhead+producer.HeaderSize {
		t.Fatalf("stored snapshot %+v, %v: more than the small state", stored, err)
	}
	full, err := open(t, s, id)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeSnapshotHeader(full[:snapshotHeaderSize])
	if err != nil || h.firstEntry != 24 || h.applied != 62 || h.lowest != 23 || h.next != 61 || h.appliedTerm != 1 {
		t.Fatalf("header %+v, %v", h, err)
	}
	dst := openSegFSM(t, t.TempDir(), 512)
	// The follower's own, older entries are replaced.
	dst.apply(recs(1, 0, "stale"))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(full))); err != nil {
		t.Fatal(err)
	}
	checkLowest(t, dst.fsm, 23)
	if first, _ := dst.store.FirstIndex(); first != 24 {
		t.Fatalf("restored raft log starts at %d, want 24", first)
	}
	if last, _ := dst.store.LastIndex(); last != 62 {
		t.Fatalf("restored raft log ends at %d, want 62", last)
	}
	// Raft continues after the snapshot.
	if r := dst.apply(recs(63, 61, "x")); r[0] != (applyResult{first: 61}) {
		t.Fatalf("apply after restore: %v", r[0])
	}
	// Restored again (a restart), it is not installed twice.
	if err := dst.Restore(io.NopCloser(bytes.NewReader(full))); err != nil {
		t.Fatal(err)
	}
	if last, _ := dst.store.LastIndex(); last != 63 {
		t.Fatalf("a second restore changed the raft log: last index %d, want 63", last)
	}
	if *stale != 0 {
		t.Fatalf("%d stale reports", *stale)
	}
	// A received snapshot is opened as stored (Raft restores it from
	// there, and may send it on).
	rs, rstale := testSnapshotStore(t, dst)
	sink, err := rs.Create(raft.SnapshotVersionMax, 62, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(full); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := open(t, rs, sink.ID()); err != nil || !bytes.Equal(got, full) || *rstale != 0 {
		t.Fatalf("open of a received snapshot: %d bytes, %v (%d stale)", len(got), err, *rstale)
	}
}

// Once retention removed entries a snapshot needs (the records it covers
// are all below the lowest offset), opening it fails and asks for a new
// snapshot.
func TestStaleSnapshotAsksForANewOne(t *testing.T) {
	f := openSegFSM(t, t.TempDir(), 256)
	fill(t, f, 20)
	s, stale := testSnapshotStore(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	id := persist(t, s, snap, 20)
	var more []*raft.Log
	for i := 21; i <= 40; i++ {
		more = append(more, recs(uint64(i), uint64(i-1), "0123456789012345678901234567890123456789"))
	}
	f.apply(more...)
	// Retention below the snapshot's end still leaves it servable...
	f.apply(retainCmd(41, 19))
	if err := f.store.DeleteRange(1, 18); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, s, id); err != nil || *stale != 0 {
		t.Fatalf("open after retention below the snapshot's end: %v (%d stale)", err, *stale)
	}
	// ... past it, once compaction removed its entries, not.
	f.apply(retainCmd(42, 35))
	if err := f.store.DeleteRange(1, 41); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, s, id); err == nil || *stale != 1 {
		t.Fatalf("open after retention past the snapshot's end: %v (%d stale)", err, *stale)
	}
}

// A follower whose log goes on past the snapshot with entries of another
// history keeps them after the installed entries: Raft still counts them
// as stored and deletes them as conflicting when the leader's arrive.
func TestSnapshotInstallKeepsTheEntriesAfterIt(t *testing.T) {
	f := openSegFSM(t, t.TempDir(), 256)
	fill(t, f, 60)
	f.apply(retainCmd(61, 23), recs(62, 60, "x"))
	s, _ := testSnapshotStore(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	full, err := open(t, s, persist(t, s, snap, f.applied.Load()))
	if err != nil {
		t.Fatal(err)
	}
	for _, withEntries := range []bool{true, false} {
		dst := openSegFSM(t, t.TempDir(), 512)
		var other []*raft.Log // another history, of term 2, to index 70
		for i := uint64(1); i <= 70; i++ {
			other = append(other, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand,
				Data: encodeRecords(i-1, 2, Producer{}, producer.Config{}, strs([]string{"other"}))})
		}
		if err := dst.store.StoreLogs(other); err != nil {
			t.Fatal(err)
		}
		stream := full
		if !withEntries { // the records all retained away: no entries
			h, _ := decodeSnapshotHeader(full[:snapshotHeaderSize])
			h.firstEntry, h.lowest = 0, h.next
			stream = encodeSnapshot(h, producer.New(producer.DefaultConfig()).Encode())
		}
		if err := dst.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
			t.Fatal(err)
		}
		if last, _ := dst.store.LastIndex(); last != 70 {
			t.Fatalf("entries %v: last index %d after the install, want 70 (the tail kept)", withEntries, last)
		}
		var e raft.Log
		if err := dst.store.GetLog(65, &e); err != nil || e.Term != 2 {
			t.Fatalf("entries %v: entry 65 after the install: term %d, %v", withEntries, e.Term, err)
		}
		if withEntries {
			if err := dst.store.GetLog(62, &e); err != nil || e.Term != 1 {
				t.Fatalf("entry 62 after the install: term %d, %v", e.Term, err)
			}
			checkLowest(t, dst.fsm, 23)
		} else if first, _ := dst.store.FirstIndex(); first != 63 {
			t.Fatalf("first index %d after an install without entries, want 63", first)
		}
		// The leader's entries replace the conflicting tail.
		if err := dst.store.DeleteRange(63, 70); err != nil {
			t.Fatal(err)
		}
		if r := dst.apply(recs(63, 61, "y")); r[0] != (applyResult{first: 61}) {
			t.Fatalf("entries %v: apply after the install: %v", withEntries, r[0])
		}
		if b, err := dst.read(61); err != nil || string(b) != "y" {
			t.Fatalf("entries %v: read 61 = %q, %v", withEntries, b, err)
		}
	}
}
