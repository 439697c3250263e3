package replication

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
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
	l, err := seglog.Open(filepath.Join(dir, dataDir), seglog.Config{})
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

// keptRecords returns the payloads of the records kept in the single
// data.diverged directory under dir, and the offset of the first.
func keptRecords(t *testing.T, dir string) (uint64, []string) {
	t.Helper()
	aside, _ := filepath.Glob(filepath.Join(dir, dataDivergedDir+".*"))
	if len(aside) != 1 {
		t.Fatalf("cut records kept in %v, want one directory", aside)
	}
	kept, err := seglog.Open(aside[0], seglog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	var out []string
	for off := kept.LowestOffset(); off < kept.NextOffset(); off++ {
		b, err := kept.Read(off)
		if err != nil {
			t.Fatal(err)
		}
		_, p, err := decodeEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(p))
	}
	return kept.LowestOffset(), out
}

func TestCheckedFSMCutsBackADataLogRaftDoesNotHold(t *testing.T) {
	one := func(uint64) uint64 { return 1 }
	for _, tc := range []struct {
		name     string
		raftLast uint64
		terms    func(uint64) uint64
		snapshot uint64 // index of a snapshot, 0 for none
		lowest   uint64 // agreed lowest offset before the start, 0 for none
		keep     []string
		cut      []string
	}{
		{name: "raft log holds it", raftLast: 5, terms: one, keep: []string{"a", "b", "c"}},
		{name: "snapshot holds it", raftLast: 0, terms: one, snapshot: 3, keep: []string{"a", "b", "c"}},
		{name: "ahead of the raft log", raftLast: 2, terms: one, keep: []string{"a", "b"}, cut: []string{"c"}},
		{name: "ahead of raft log and snapshot", raftLast: 2, terms: one, snapshot: 2, keep: []string{"a", "b"}, cut: []string{"c"}},
		{name: "no raft state", raftLast: 0, terms: one, cut: []string{"a", "b", "c"}},
		{name: "another term", raftLast: 5, terms: func(i uint64) uint64 { return 1 + i/3 }, keep: []string{"a", "b"}, cut: []string{"c"}},
		{name: "another term from entry 2", raftLast: 5, terms: func(i uint64) uint64 { return 1 + i/2 }, keep: []string{"a"}, cut: []string{"b", "c"}},
		{name: "snapshot trusted whatever the term", raftLast: 5, terms: func(uint64) uint64 { return 2 }, snapshot: 2, keep: []string{"a", "b"}, cut: []string{"c"}},
		{name: "lowest above the cut", raftLast: 1, terms: one, lowest: 2, keep: []string{"a"}, cut: []string{"b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := openTestFSM(t, dir)
			f.ApplyBatch([]*raft.Log{cmdT(1, 1, "a"), cmdT(2, 1, "b"), cmdT(3, 1, "c")})
			f.close()
			if tc.lowest != 0 {
				if err := writeUint64File(filepath.Join(dir, lowestFile), tc.lowest); err != nil {
					t.Fatal(err)
				}
			}
			store, snaps := openRaftState(t, tc.raftLast, tc.terms)
			if tc.snapshot != 0 {
				sink, err := snaps.Create(raft.SnapshotVersionMax, tc.snapshot, 1, raft.Configuration{}, 1, nil)
				if err != nil {
					t.Fatal(err)
				}
				sink.Write([]byte("snapshot"))
				sink.Close()
			}
			g, lost, err := checkedFSM(dir, seglog.Config{}, hclog.NewNullLogger(), store, snaps)
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			if lost {
				t.Fatal("lost: a data log ahead of the raft log is cut back, not rebuilt")
			}
			keep := uint64(len(tc.keep))
			if g.nextOffset() != keep || g.applied.Load() != keep || g.last.index != keep {
				t.Fatalf("after the cut: next %d, applied %d, last entry %d; want %d", g.nextOffset(), g.applied.Load(), g.last.index, keep)
			}
			if len(tc.keep) > 0 && tc.lowest == 0 {
				equal(t, dataOf(t, g), tc.keep...)
			}
			if len(tc.cut) == 0 {
				if aside, _ := filepath.Glob(filepath.Join(dir, dataDivergedDir+".*")); len(aside) != 0 || g.cut != (DataLogCut{}) {
					t.Fatalf("cut although raft holds it: %v, %+v", aside, g.cut)
				}
				return
			}
			from, kept := keptRecords(t, dir)
			if from != keep || !slices.Equal(kept, tc.cut) {
				t.Fatalf("kept records %q from offset %d, want %q from %d", kept, from, tc.cut, keep)
			}
			if g.cut.From != keep || g.cut.Records != uint64(len(tc.cut)) || g.cut.Reason == "" || !strings.HasPrefix(filepath.Base(g.cut.KeptIn), dataDivergedDir+".") {
				t.Fatalf("cut reported as %+v", g.cut)
			}
			if tc.lowest != 0 {
				v, _, err := readUint64File(filepath.Join(dir, lowestFile))
				if err != nil || v != keep || g.lowestOffset() != keep {
					t.Fatalf("agreed lowest offset %d (file %d, %v), want it lowered to the cut, %d", g.lowestOffset(), v, err, keep)
				}
			}
			// New entries are applied at the offsets after the cut.
			if r := g.ApplyBatch([]*raft.Log{cmdT(keep+1, 7, "n")})[0]; r != (applyResult{first: keep}) {
				t.Fatalf("apply after the cut: %v", r)
			}
		})
	}
}

// loseRaftTail makes stopped node n's Raft log lose its entries after
// index after, as a power loss with relaxed sync can. With reterm, entries at the same
// indexes from a later term take their place (no-ops: the log another
// leader would have written), and the current term is raised to theirs.
func loseRaftTail(t *testing.T, n *node, after uint64, reterm bool) {
	t.Helper()
	s, err := OpenLogStore(filepath.Join(n.dir, "raft", "log"), DefaultConfig().RaftLog)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var e raft.Log
	if err := s.GetLog(last, &e); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(after+1, last); err != nil {
		t.Fatal(err)
	}
	if !reterm {
		return
	}
	term := e.Term + 1
	for i := after + 1; i <= last; i++ {
		if err := s.StoreLog(&raft.Log{Index: i, Term: term, Type: raft.LogNoop}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := OpenStableStore(filepath.Join(n.dir, "raft", "stable"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetUint64([]byte("CurrentTerm"), term); err != nil {
		t.Fatal(err)
	}
}

func lastIndex(t *testing.T, n *node) uint64 {
	t.Helper()
	i, err := n.store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// checkCutBack checks node n after a restart that cut its data log back
// to kept records (rec(0) ... rec(kept-1)) from total: it serves them,
// appends at the next offsets, reports the cut, and kept the cut records
// aside. It appends from rec(100+first) on, first new ones from this node.
func checkCutBack(t *testing.T, n *node, kept, total uint64) {
	t.Helper()
	c := n.Recovery().DataLogCut
	if c.From != kept || c.Records != total-kept {
		t.Fatalf("%s: recovery reports the cut %+v, want [%d, %d)", n.id, c, kept, total)
	}
	found := false
	for _, a := range n.Recovery().Actions() {
		found = found || a.Action == RecoveryDivergedTailCut
	}
	if !found {
		t.Fatalf("%s: no %s recovery action in %+v", n.id, RecoveryDivergedTailCut, n.Recovery().Actions())
	}
	from, cut := keptRecords(t, n.dir)
	var want []string
	for i := kept; i < total; i++ {
		want = append(want, string(rec(int(i))))
	}
	if from != kept || !slices.Equal(cut, want) {
		t.Fatalf("%s: kept aside %q from offset %d, want %q from %d", n.id, cut, from, want, kept)
	}
}

// A node whose Raft log lost its tail (relaxed sync, power loss) while its
// data log kept the records, with a snapshot that references the data log:
// it starts, cuts the data log back to what the Raft log holds (keeping the
// rest aside), serves those records, and writes and acknowledges new
// appends at their real offsets.
func TestRestartWithDataLogAheadOfRaftLog(t *testing.T) {
	for _, reterm := range []bool{false, true} {
		t.Run(fmt.Sprintf("reterm=%v", reterm), func(t *testing.T) {
			n := newNode(t, "solo", true, func(c *Config) { c.SnapshotInterval = time.Hour })
			waitLeader(t, n)
			ctx := ctxT(t)
			var after uint64 // the Raft index of record 13
			for i := range 20 {
				if _, err := n.Append(ctx, rec(i)); err != nil {
					t.Fatal(err)
				}
				switch i {
				case 9:
					if err := n.Snapshot(); err != nil {
						t.Fatal(err)
					}
				case 13:
					after = lastIndex(t, n)
				}
			}
			n.stop()
			loseRaftTail(t, n, after, reterm) // records 14-19
			n.start()
			checkCutBack(t, n, 14, 20)
			waitLeader(t, n)
			for i := 100; i < 110; i++ {
				off, err := n.Append(ctx, rec(i))
				if err != nil || off != uint64(i-100+14) {
					t.Fatalf("append %d: offset %d, %v; want %d", i, off, err, i-100+14)
				}
			}
			if err := n.Failed(); err != nil {
				t.Fatalf("Failed() = %v", err)
			}
			n.restart()
			waitLeader(t, n)
			for off := range uint64(24) {
				want := rec(int(off))
				if off >= 14 {
					want = rec(100 + int(off) - 14)
				}
				b, err := n.Read(ctx, off, ReadLinearizable)
				if err != nil || !bytes.Equal(b, want) {
					t.Fatalf("offset %d: %q, %v; want %q", off, b, err, want)
				}
			}
		})
	}
}

// Every node of a cluster lost its Raft log's tail (a power loss of every
// node with relaxed sync), each with a snapshot referencing its data log:
// the cluster starts again, with the records the Raft logs hold, and goes
// on at the next offsets.
func TestClusterRestartWithDataLogsAheadOfRaftLogs(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) { c.SnapshotInterval = time.Hour })
	ctx := ctxT(t)
	leader := leaderOf(t, nodes)
	var after uint64 // the Raft index of record 13
	for i := range 20 {
		if _, err := leader.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 9:
			for _, n := range nodes {
				waitData(t, n, 10)
				if err := n.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
		case 13:
			after = lastIndex(t, leader)
		}
	}
	for _, n := range nodes {
		waitData(t, n, 20)
	}
	for _, n := range nodes {
		n.stop()
	}
	for _, n := range nodes {
		loseRaftTail(t, n, after, false) // records 14-19, and the no-ops of the leaders Close made
		n.start()
	}
	for _, n := range nodes {
		checkCutBack(t, n, 14, 20)
	}
	leader = leaderOf(t, nodes)
	for i := 100; i < 105; i++ {
		off, err := leader.Append(ctx, rec(i))
		if err != nil || off != uint64(i-100+14) {
			t.Fatalf("append %d: offset %d, %v; want %d", i, off, err, i-100+14)
		}
	}
	for _, n := range nodes {
		got := waitData(t, n, 19)
		for off, b := range got {
			want := rec(off)
			if off >= 14 {
				want = rec(100 + off - 14)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("%s offset %d: %q, want %q", n.id, off, b, want)
			}
		}
		if err := n.Failed(); err != nil {
			t.Fatalf("%s: Failed() = %v", n.id, err)
		}
	}
}

func TestAppendResponseNeverAcknowledgesASkip(t *testing.T) {
	if r, err := appendResponse(applyResult{skipped: true}, 7); err == nil || !errors.Is(err, ErrDiverged) {
		t.Fatalf("skipped command acknowledged: %+v, %v", r, err)
	}
	if r, err := appendResponse(applyResult{first: 3}, 7); err != nil || r.first != 3 {
		t.Fatalf("applied command: %+v, %v", r, err)
	}
	if _, err := appendResponse(seglog.ErrRecordTooLarge, 7); !errors.Is(err, seglog.ErrRecordTooLarge) {
		t.Fatalf("error response: %v", err)
	}
	if _, err := appendResponse(nil, 7); err == nil {
		t.Fatal("nil response acknowledged")
	}
}
