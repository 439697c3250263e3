package replication

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/log"
)

// cmdT is cmd in term term.
func cmdT(index, term uint64, recs ...string) *raft.Log {
	e := cmd(index, recs...)
	e.Term = term
	return e
}

// reopenTestFSM closes f and opens the data log in dir again, as a restart.
func reopenTestFSM(t *testing.T, f *fsm, dir string) *fsm {
	t.Helper()
	f.close()
	return openTestFSM(t, dir)
}

// failedWith checks that resp is an error wrapping ErrFailed and ErrDiverged,
// and that the FSM stopped with it.
func failedWith(t *testing.T, f *fsm, resp any) {
	t.Helper()
	err, ok := resp.(error)
	if !ok || !errors.Is(err, ErrFailed) || !errors.Is(err, ErrDiverged) {
		t.Fatalf("response %v, want ErrFailed and ErrDiverged", resp)
	}
	if p := f.failed.Load(); p == nil || !errors.Is(*p, ErrDiverged) {
		t.Fatalf("the state machine did not stop: failed = %v", p)
	}
	if r := f.ApplyBatch([]*raft.Log{cmdT(100, 9, "z")})[0]; !errors.Is(r.(error), ErrFailed) {
		t.Fatalf("apply after divergence: %v", r)
	}
}

// The data log is ahead of the Raft log (which lost entries 3-4): Raft
// replays 3 and 4 with other commands from a later term. Skipping them
// would drop them while their appends are acknowledged.
func TestFSMReplayOfAnotherTermDiverges(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), cmdT(2, 1, "b", "c"), cmdT(3, 1, "d"), cmdT(4, 1, "e")})
	f = reopenTestFSM(t, f, dir)

	resps := f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), cmdT(2, 1, "b", "c"), cmdT(3, 2, "new")})
	failedWith(t, f, resps[2])
	for i, r := range resps[:2] {
		if _, ok := r.(error); !ok {
			t.Fatalf("response %d = %v: the batch's other entries must fail with it", i, r)
		}
	}
	if !strings.Contains(resps[2].(error).Error(), "raft entry 3 is from term 2") {
		t.Fatalf("error does not say what diverged: %v", resps[2])
	}
	if f.current().NextOffset() != 5 || f.applied.Load() != 4 {
		t.Fatalf("data log changed: next %d, applied %d", f.current().NextOffset(), f.applied.Load())
	}
}

// The last entry of the data log, a partial batch, is checked too.
func TestFSMReplayOfAnotherTermDivergesAtTheLastEntry(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), cmdT(2, 1, "b", "c")})
	f = reopenTestFSM(t, f, dir)
	failedWith(t, f, f.ApplyBatch([]*raft.Log{cmdT(2, 3, "x", "y")})[0])
}

// A command the data log lacks although it holds entries on both sides.
func TestFSMReplayOfAMissingCommandDiverges(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	big := strings.Repeat("x", 300) // rejected: MaxRecordBytes 200
	f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), {Index: 2, Term: 1, Type: raft.LogConfiguration}, cmdT(3, 1, big), cmdT(4, 1, "b")})
	f = reopenTestFSM(t, f, dir)

	// Replaying what was applied is fine, the rejected command included.
	for i, r := range f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), {Index: 2, Term: 1, Type: raft.LogConfiguration}, cmdT(3, 1, big)}) {
		if _, ok := r.(error); ok {
			t.Fatalf("replayed entry %d: %v", i+1, r)
		}
	}
	f = reopenTestFSM(t, f, dir)
	failedWith(t, f, f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), cmdT(2, 2, "new")})[1])
}

// Replays match by (index, term), found from any starting point.
func TestFSMReplayOfTheSameEntriesIsSkipped(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	var entries []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		entries = append(entries, cmdT(i, 1+i/10, "r", "s"))
	}
	f.ApplyBatch(entries)
	for _, from := range []int{0, 17, 38} { // after snapshots at various indexes
		f = reopenTestFSM(t, f, dir)
		for i, r := range f.ApplyBatch(entries[from:]) {
			if r != (applyResult{skipped: true}) {
				t.Fatalf("replay from %d: entry %d: %v", from+1, from+i+1, r)
			}
		}
	}
	if f.failed.Load() != nil || f.nextOffset() != 80 {
		t.Fatalf("failed %v, next %d", f.failed.Load(), f.nextOffset())
	}
}

// A data log written with version 1 envelopes (no term) still opens and
// serves; its entries are matched by index only, new ones get the term.
func TestFSMReadsVersion1Envelopes(t *testing.T) {
	dir := t.TempDir()
	l, err := log.Open(filepath.Join(dir, dataDir), log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]byte{{envelopeV1, 1, 0, 1, 'a'}, {envelopeV1, 2, 0, 2, 'b'}, {envelopeV1, 2, 1, 2, 'c'}} {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	f := openTestFSM(t, dir)
	if f.last != (envelope{index: 2, pos: 1, count: 2}) || f.applied.Load() != 2 {
		t.Fatalf("last %+v applied %d", f.last, f.applied.Load())
	}
	resps := f.ApplyBatch([]*raft.Log{cmdT(1, 5, "a"), cmdT(2, 5, "b", "c"), cmdT(3, 5, "d")})
	if resps[0] != (applyResult{skipped: true}) || resps[1] != (applyResult{skipped: true}) || resps[2] != (applyResult{first: 3}) {
		t.Fatalf("responses %v", resps)
	}
	equal(t, dataOf(t, f), "a", "b", "c", "d")
	if f.last != (envelope{index: 3, term: 5, pos: 0, count: 1}) {
		t.Fatalf("new entry's envelope %+v", f.last)
	}
}

// openRaftState returns a Raft log store holding entries 1..last (entry i
// from term terms(i)) and an empty snapshot store.
func openRaftState(t *testing.T, last uint64, terms func(uint64) uint64) (*LogStore, raft.SnapshotStore) {
	t.Helper()
	s := openStore(t, t.TempDir())
	for i := uint64(1); i <= last; i++ {
		if err := s.StoreLog(&raft.Log{Index: i, Term: terms(i), Type: raft.LogNoop}); err != nil {
			t.Fatal(err)
		}
	}
	return s, raft.NewInmemSnapshotStore()
}

func TestCheckedFSMSetsAsideADataLogRaftDoesNotHold(t *testing.T) {
	one := func(uint64) uint64 { return 1 }
	for _, tc := range []struct {
		name      string
		raftLast  uint64
		terms     func(uint64) uint64
		snapshot  uint64 // index of a snapshot, 0 for none
		setAside  bool
		wantError string
	}{
		{name: "raft log holds it", raftLast: 5, terms: one},
		{name: "snapshot holds it", raftLast: 0, terms: one, snapshot: 3},
		{name: "ahead of the raft log", raftLast: 2, terms: one, setAside: true},
		{name: "ahead of raft log and snapshot", raftLast: 2, terms: one, snapshot: 2, setAside: true},
		{name: "another term", raftLast: 5, terms: func(i uint64) uint64 { return 1 + i/3 }, setAside: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := openTestFSM(t, dir)
			f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), cmdT(2, 1, "b"), cmdT(3, 1, "c")})
			f.close()
			store, snaps := openRaftState(t, tc.raftLast, tc.terms)
			if tc.snapshot != 0 {
				sink, err := snaps.Create(raft.SnapshotVersionMax, tc.snapshot, 1, raft.Configuration{}, 1, nil)
				if err != nil {
					t.Fatal(err)
				}
				sink.Write([]byte("snapshot"))
				sink.Close()
			}
			g, lost, err := checkedFSM(dir, log.Config{}, hclog.NewNullLogger(), store, snaps)
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			aside, _ := filepath.Glob(filepath.Join(dir, dataDivergedDir+".*"))
			if tc.setAside {
				if !lost || g.nextOffset() != 0 || g.applied.Load() != 0 || len(aside) != 1 {
					t.Fatalf("not set aside: lost %v, next %d, applied %d, aside %v", lost, g.nextOffset(), g.applied.Load(), aside)
				}
				kept, err := log.Open(aside[0], log.Config{})
				if err != nil {
					t.Fatal(err)
				}
				defer kept.Close()
				if kept.NextOffset() != 3 {
					t.Fatalf("set-aside data log holds %d records, want 3", kept.NextOffset())
				}
				return
			}
			if lost || len(aside) != 0 {
				t.Fatalf("set aside although raft holds it: lost %v, aside %v", lost, aside)
			}
			equal(t, dataOf(t, g), "a", "b", "c")
		})
	}
}

// A node whose Raft log lost its tail (relaxed sync, power loss) while its
// data log kept the records: appends at the reused indexes must be written
// and acknowledged at their real offsets, never acknowledged and dropped.
func TestRestartWithDataLogAheadOfRaftLog(t *testing.T) {
	n := newNode(t, "solo", true, nil)
	waitLeader(t, n)
	ctx := ctxT(t)
	for i := range 10 {
		if _, err := n.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	last, err := n.store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	n.stop()
	// The Raft log loses its last 6 entries (records 4-9).
	s, err := OpenLogStore(filepath.Join(n.dir, "raft", "log"), DefaultConfig().RaftLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(last-5, last); err != nil {
		t.Fatal(err)
	}
	s.Close()

	n.start()
	waitLeader(t, n)
	for i := 100; i < 110; i++ {
		off, err := n.Append(ctx, rec(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		b, err := n.Read(ctx, off, ReadLinearizable)
		if err != nil || !bytes.Equal(b, rec(i)) {
			t.Fatalf("append of %q acknowledged at offset %d, which holds %q (%v)", rec(i), off, b, err)
		}
	}
	if err := n.Failed(); err != nil {
		t.Fatalf("Failed() = %v", err)
	}
	if aside, _ := filepath.Glob(filepath.Join(n.dir, dataDivergedDir+".*")); len(aside) != 1 {
		t.Fatalf("diverged data log not kept aside: %v", aside)
	}
	// The rebuilt data log holds what the Raft log holds, then the new records.
	for off := range uint64(14) {
		want := rec(int(off))
		if off >= 4 {
			want = rec(100 + int(off) - 4)
		}
		b, err := n.Read(context.Background(), off, ReadFollower)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("offset %d: %q, %v; want %q", off, b, err, want)
		}
	}
}

func TestAppendResponseNeverAcknowledgesASkip(t *testing.T) {
	if off, err := appendResponse(applyResult{skipped: true}, 7); err == nil || !errors.Is(err, ErrDiverged) {
		t.Fatalf("skipped command acknowledged: %d, %v", off, err)
	}
	if off, err := appendResponse(applyResult{first: 3}, 7); err != nil || off != 3 {
		t.Fatalf("applied command: %d, %v", off, err)
	}
	if _, err := appendResponse(log.ErrRecordTooLarge, 7); !errors.Is(err, log.ErrRecordTooLarge) {
		t.Fatalf("error response: %v", err)
	}
	if _, err := appendResponse(nil, 7); err == nil {
		t.Fatal("nil response acknowledged")
	}
}
