package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

// testFSM is a state machine over a record store in a directory, as New
// wires them, without Raft: apply stores entries, then applies them.
type testFSM struct {
	*fsm
	t     *testing.T
	dir   string
	store *LogStore
	done  chan struct{}
}

func openTestFSM(t *testing.T, dir string) *testFSM {
	t.Helper()
	s, err := openRecordStore(dir, seglog.Config{Sync: seglog.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFSM{t: t, dir: dir, store: s, done: make(chan struct{})}
	tf.fsm = newFSM(s, hclog.NewNullLogger(), tf.done)
	t.Cleanup(tf.close)
	return tf
}

func (tf *testFSM) close() {
	select {
	case <-tf.done:
	default:
		close(tf.done)
		if err := tf.store.Close(); err != nil {
			tf.t.Error(err)
		}
	}
}

// reopen closes tf and opens its directory again: a restart, before Raft
// replays anything.
func (tf *testFSM) reopen() *testFSM {
	tf.close()
	return openTestFSM(tf.t, tf.dir)
}

// apply stores entries (each batch one StoreLogs, as a follower does) and
// applies them in one batch.
func (tf *testFSM) apply(entries ...*raft.Log) []any {
	tf.t.Helper()
	if err := tf.store.StoreLogs(entries); err != nil {
		tf.t.Fatal(err)
	}
	return tf.ApplyBatch(entries)
}

// recs is a records command at index (term 1, proposed in term 1) with
// its records from offset first.
func recs(index, first uint64, rs ...string) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeRecords(first, 1, Producer{}, producer.Config{}, strs(rs))}
}

func strs(recs []string) [][]byte {
	bs := make([][]byte, len(recs))
	for i, r := range recs {
		bs[i] = []byte(r)
	}
	return bs
}

func dataOf(t *testing.T, f *fsm) []string {
	t.Helper()
	var out []string
	for off := f.lowest.Load(); off < f.next.Load(); off++ {
		b, err := f.read(off)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		out = append(out, string(b))
	}
	return out
}

func equal(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("data %q, want %q", got, want)
	}
}

func TestFSMApplyBatchResponses(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	resps := f.apply(
		recs(1, 0, "a"),
		&raft.Log{Index: 2, Term: 1, Type: raft.LogConfiguration},
		recs(3, 1, "b", "c", "d"),
		&raft.Log{Index: 4, Term: 1, Type: raft.LogCommand, Data: []byte{1, 1, 0}}, // a command of the single-log layout
		recs(5, 4, "e"),
	)
	if resps[0] != (applyResult{first: 0}) || resps[1] != nil || resps[2] != (applyResult{first: 1}) || resps[4] != (applyResult{first: 4}) {
		t.Fatalf("responses %v", resps)
	}
	if err, ok := resps[3].(error); !ok || !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("bad command response %v", resps[3])
	}
	equal(t, dataOf(t, f.fsm), "a", "b", "c", "d", "e")
	if f.applied.Load() != 5 {
		t.Fatalf("applied %d", f.applied.Load())
	}
	// Single Apply too.
	e := recs(6, 5, "f")
	if err := f.store.StoreLogs([]*raft.Log{e}); err != nil {
		t.Fatal(err)
	}
	if r := f.Apply(e); r != (applyResult{first: 5}) {
		t.Fatalf("Apply = %v", r)
	}
	// Applied records only: an entry stored but not applied is not read.
	if err := f.store.StoreLogs([]*raft.Log{recs(7, 6, "g")}); err != nil {
		t.Fatal(err)
	}
	var oor *seglog.OffsetOutOfRangeError
	if _, err := f.read(6); !errors.As(err, &oor) || oor.Next != 6 {
		t.Fatalf("read of a stored, unapplied record: %v", err)
	}
}

// A records command proposed in an earlier term than the one Raft appended
// it in is refused by every replica, and its offsets are not taken: the
// next command continues where the records end.
func TestFSMRefusesStaleProposal(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	stale := &raft.Log{Index: 2, Term: 2, Type: raft.LogCommand, Data: encodeRecords(1, 1, Producer{}, producer.Config{}, strs([]string{"stale"}))}
	next := &raft.Log{Index: 3, Term: 2, Type: raft.LogCommand, Data: encodeRecords(1, 2, Producer{}, producer.Config{}, strs([]string{"b"}))}
	resps := f.apply(recs(1, 0, "a"), stale, next)
	if err, ok := resps[1].(error); !ok || !errors.Is(err, errStaleProposal) {
		t.Fatalf("stale proposal: %v", resps[1])
	}
	if resps[2] != (applyResult{first: 1}) {
		t.Fatalf("after the stale proposal: %v", resps[2])
	}
	equal(t, dataOf(t, f.fsm), "a", "b")
	// So does the offset table rebuilt on open.
	g := f.reopen()
	if b, err := g.store.readRecord(1); err != nil || string(b) != "b" {
		t.Fatalf("record 1 after reopening: %q, %v", b, err)
	}
}

// A command whose first offset is not where this node's records end means
// its Raft log is not the cluster's: the state machine stops, applies and
// serves nothing more.
func TestFSMStopsWhenOffsetsDiverge(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	resps := f.apply(recs(1, 0, "a", "b"), recs(2, 3, "c"), recs(3, 4, "d"))
	for i, r := range resps[1:] {
		if err, ok := r.(error); !ok || !errors.Is(err, ErrDiverged) || !errors.Is(err, ErrFailed) {
			t.Fatalf("entry %d: %v, want ErrDiverged", i+2, r)
		}
	}
	if f.next.Load() != 2 {
		t.Fatalf("next %d, want 2", f.next.Load())
	}
	if _, err := f.read(0); !errors.Is(err, ErrFailed) {
		t.Fatalf("read after the stop: %v", err)
	}
	if r := f.apply(recs(4, 2, "e")); !errors.Is(asErr(r[0]), ErrFailed) {
		t.Fatalf("apply after the stop: %v", r[0])
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrFailed) {
		t.Fatalf("snapshot after the stop: %v", err)
	}
}

func asErr(r any) error { err, _ := r.(error); return err }

// The state machine never holds records: applying a batch of 100 records
// costs a few allocations whatever their size (it reads the command's
// header only).
func TestFSMApplyReadsOnlyTheHeader(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	rs := make([][]byte, 100)
	for i := range rs {
		rs[i] = bytes.Repeat([]byte{'r'}, 1000)
	}
	index, first := uint64(1), uint64(0)
	var e raft.Log
	batch := []*raft.Log{&e}
	allocs := testing.AllocsPerRun(20, func() {
		e = raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeRecords(first, 1, Producer{}, producer.Config{}, rs)}
		index++
		first += 100
		_ = f.ApplyBatch(batch)
	})
	// One for the command's encoding (the test's), a few for responses.
	if allocs > 6 {
		t.Errorf("ApplyBatch of 100 records: %.0f allocations", allocs)
	}
	if f.next.Load() != first {
		t.Fatalf("next %d, want %d", f.next.Load(), first)
	}
}

// A snapshot holds the small state only (no record), and restoring it on a
// node whose log holds the entries gives the same state and reads.
func TestFSMSnapshotRestore(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	big := string(bytes.Repeat([]byte{'x'}, 4096))
	f.apply(recs(1, 0, big, big), recs(2, 2, "c"), &raft.Log{Index: 3, Term: 1, Type: raft.LogCommand, Data: encodeRetain(1)})
	snap := snapshotOf(t, f.fsm)
	if len(snap) > snapshotHeaderSize+tableSectionOverhead+producer.HeaderSize {
		t.Fatalf("snapshot of %d bytes: holds more than the small state", len(snap))
	}
	g := f.reopen()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if g.applied.Load() != 3 || g.next.Load() != 3 || g.lowest.Load() != 1 {
		t.Fatalf("restored applied %d, next %d, lowest %d", g.applied.Load(), g.next.Load(), g.lowest.Load())
	}
	equal(t, dataOf(t, g.fsm), big, "c")
	// Raft replays the entries after the snapshot.
	if r := g.apply(recs(4, 3, "d")); r[0] != (applyResult{first: 3}) {
		t.Fatalf("after restore: %v", r[0])
	}
	bad := bytes.Clone(snap)
	bad[20] ^= 1
	if err := g.Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("restore of a damaged snapshot: %v", err)
	}
}

// snapshotOf persists f's snapshot and returns its bytes.
func snapshotOf(t *testing.T, f *fsm) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := s.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// The producer table is the same on every replica whatever the batching of
// the entries, and after a snapshot and the replay of the entries after
// it: time is the entries' AppendedAt, limits the entries' own.
func TestFSMProducerTableIsDeterministic(t *testing.T) {
	lim := producer.Config{Expiry: time.Minute, MaxProducers: 2, EvictAfter: time.Second}
	epoch := time.Unix(1_700_000_000, 0)
	var entries []*raft.Log
	next := uint64(0)
	add := func(id, seq uint64, at time.Duration, rs ...string) {
		p := Producer{ID: id, Sequence: seq}
		var l producer.Config
		if id != 0 {
			l = lim
		}
		e := &raft.Log{Index: uint64(len(entries) + 1), Term: 1, Type: raft.LogCommand, AppendedAt: epoch.Add(at),
			Data: encodeRecords(next, 1, p, l, strs(rs))}
		entries = append(entries, e)
		next += uint64(len(rs))
	}
	add(1, 0, 0, "p1")
	add(2, 0, time.Second, "p2")
	add(1, 1, 2*time.Second, "p1 again")
	add(3, 0, 3*time.Second, "p3 evicts p2")
	add(0, 0, 4*time.Second, "plain")
	add(3, 1, 62500*time.Millisecond, "p1 expired, p3 kept")

	a := openTestFSM(t, t.TempDir())
	a.apply(entries...)
	b := openTestFSM(t, t.TempDir())
	for _, e := range entries {
		b.apply(e)
	}
	sameTables(t, a.fsm, b.fsm)
	if a.producers.Len() != 1 {
		t.Fatalf("%d producers, want 1 (p3)", a.producers.Len())
	}
	c := openTestFSM(t, t.TempDir())
	c.apply(entries[:3]...)
	snap := snapshotOf(t, c.fsm)
	d := c.reopen()
	if err := d.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if err := d.store.StoreLogs(entries[3:]); err != nil {
		t.Fatal(err)
	}
	d.ApplyBatch(entries[3:])
	sameTables(t, a.fsm, d.fsm)
	equal(t, dataOf(t, d.fsm), "p1", "p2", "p1 again", "p3 evicts p2", "plain", "p1 expired, p3 kept")
}

func sameTables(t *testing.T, a, b *fsm) {
	t.Helper()
	if ea, eb := a.producers.Encode(), b.producers.Encode(); !bytes.Equal(ea, eb) {
		t.Fatalf("producer tables differ:\n%x\n%x", ea, eb)
	}
}

// A divergent suffix a new leader overwrites (DeleteRange of a suffix)
// leaves the offsets of the entries that replace it where the records end
// before it, on the table rebuilt on open too.
func TestOffsetsAfterATruncatedSuffix(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	f.apply(recs(1, 0, "a"), recs(2, 1, "b", "c"))
	// Entries of a leader that lost: stored, never committed.
	if err := f.store.StoreLogs([]*raft.Log{recs(3, 3, "lost"), recs(4, 4, "lost too")}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeleteRange(3, 4); err != nil {
		t.Fatal(err)
	}
	next := &raft.Log{Index: 3, Term: 2, Type: raft.LogCommand, Data: encodeRecords(3, 2, Producer{}, producer.Config{}, strs([]string{"d", "e"}))}
	if r := f.apply(next); r[0] != (applyResult{first: 3}) {
		t.Fatalf("the new leader's entry: %v", r[0])
	}
	equal(t, dataOf(t, f.fsm), "a", "b", "c", "d", "e")
	g := f.reopen()
	if err := g.store.StoreLogs(nil); err != nil {
		t.Fatal(err)
	}
	for off, want := range []string{"a", "b", "c", "d", "e"} {
		if b, err := g.store.readRecord(uint64(off)); err != nil || string(b) != want {
			t.Fatalf("offset %d after reopening: %q, %v", off, b, err)
		}
	}
	if _, err := g.store.readRecord(5); !errors.Is(err, ErrRecordGone) {
		t.Fatalf("offset 5: %v", err)
	}
}
