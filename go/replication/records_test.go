package replication

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
)

// loadedPoints counts the points the table holds in memory, and its
// loaded chunks.
func loadedPoints(t *recordTable) (points, loaded int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.chunks {
		points += len(c.pts)
		if c.loaded {
			loaded++
		}
	}
	return points, loaded
}

// The offset table is sparse after open: a chunk per segment, known by its
// first records entry (the segments are self-describing), the last one
// loaded; a lookup loads only the chunk it needs, and every offset is
// found where it was written, with non-records and stale entries between.
func TestRecordTableIsSparseAndLoadsOnDemand(t *testing.T) {
	f := openSegFSM(t, t.TempDir(), 256)
	var entries []*raft.Log
	next := uint64(0)
	for i := uint64(1); i <= 120; i++ {
		var e *raft.Log
		switch {
		case i%10 == 3:
			e = &raft.Log{Index: i, Term: 1, Type: raft.LogNoop}
		case i%10 == 7: // a stale proposal: no records
			e = &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: encodeRecords(next, 0, Producer{}, producer.Config{}, strs([]string{"stale"}))}
		default:
			e = recs(i, next, fmt.Sprintf("%040d", next), fmt.Sprintf("%040d", next+1))
			next += 2
		}
		entries = append(entries, e)
	}
	f.apply(entries...)
	g := f.reopen()
	segs := len(g.store.l.SegmentBases())
	points, loaded := loadedPoints(g.store.records)
	if segs < 10 || loaded != 1 || points > segs+10 {
		t.Fatalf("after open: %d points in memory, %d chunks loaded, for %d segments", points, loaded, segs)
	}
	for off := uint64(0); off < next; off += 37 { // a few chunks
		index, pos, ok, err := g.store.records.lookup(off)
		if err != nil || !ok {
			t.Fatalf("lookup(%d) = %v, %v", off, ok, err)
		}
		var e raft.Log
		if err := g.store.GetLog(index, &e); err != nil {
			t.Fatal(err)
		}
		if r, err := commandRecord(e.Data, pos); err != nil || string(r) != fmt.Sprintf("%040d", off) {
			t.Fatalf("offset %d at entry %d position %d: %q, %v", off, index, pos, r, err)
		}
	}
	if _, now := loadedPoints(g.store.records); now <= loaded || now >= segs {
		t.Fatalf("%d chunks loaded after lookups in a few, of %d", now, segs)
	}
	if _, _, ok, _ := g.store.records.lookup(next); ok {
		t.Fatalf("lookup(%d) past the end found an entry", next)
	}
	// Cutting inside chunks not loaded yet.
	if err := g.store.records.cutFrom(100); err != nil {
		t.Fatal(err)
	}
	if err := g.store.records.cutBelow(50); err != nil {
		t.Fatal(err)
	}
	found := 0
	for off := uint64(0); off < next; off++ {
		index, _, ok, err := g.store.records.lookup(off)
		if err != nil {
			t.Fatal(err)
		}
		if ok && (index < 50 || index >= 100) {
			t.Fatalf("lookup(%d) after the cuts = entry %d", off, index)
		}
		if ok {
			found++
		}
	}
	if found != 80 { // 40 records entries of 2 in [50, 100)
		t.Fatalf("%d offsets found after the cuts, want 80", found)
	}
	if _, ok, err := g.store.records.firstFrom(101); ok || err != nil {
		t.Fatalf("firstFrom past the cut: %v, %v", ok, err)
	}
	if i, ok, err := g.store.records.holding(0); !ok || err != nil || i != 50 && i != 51 {
		t.Fatalf("holding(0) after the cuts = %d, %v, %v", i, ok, err)
	}
}
