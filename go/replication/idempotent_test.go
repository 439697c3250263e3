package replication

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/producer"
)

var epoch = time.Unix(1_700_000_000, 0)

// idem is an idempotent append command of producer id at seq, appended by
// the leader at epoch+at.
func idem(index, id, seq uint64, at time.Duration, recs ...string) *raft.Log {
	bs := make([][]byte, len(recs))
	for i, r := range recs {
		bs[i] = []byte(r)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, AppendedAt: epoch.Add(at), Data: encodeAppendAs(Producer{ID: id, Sequence: seq}, bs)}
}

func wantResult(t *testing.T, what string, got any, want applyResult) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: response %v, want %+v", what, got, want)
	}
}

func wantRefused(t *testing.T, what string, got any, sentinel error) *producer.SequenceError {
	t.Helper()
	err, _ := got.(error)
	var se *producer.SequenceError
	if !errors.Is(err, sentinel) || !errors.As(err, &se) {
		t.Fatalf("%s: response %v, want %v", what, got, sentinel)
	}
	return se
}

// The same idempotent command applied twice (two Raft entries: a retry
// after the first committed) writes once; the second gets the original
// offsets. Gaps, bad retries and unknown producers write nothing.
func TestFSMIdempotentAppend(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	r := f.ApplyBatch([]*raft.Log{
		idem(1, 7, 0, 0, "a", "b"),
		cmd(2, "plain"),
		idem(3, 7, 0, 0, "a", "b"), // the retry, in the same batch
	})
	wantResult(t, "first", r[0], applyResult{first: 0})
	wantResult(t, "plain", r[1], applyResult{first: 2})
	wantResult(t, "retry", r[2], applyResult{first: 0, duplicate: true})
	r = f.ApplyBatch([]*raft.Log{
		idem(4, 7, 0, 0, "a", "b"), // the retry, in a later batch
		idem(5, 7, 2, 0, "c"),
		idem(6, 7, 2, 0, "c"),
		idem(7, 7, 9, 0, "gap"),
		idem(8, 7, 0, 0, "a"), // a retry with other records
		idem(9, 8, 1, 0, "new producer not at 0"),
	})
	wantResult(t, "retry later", r[0], applyResult{first: 0, duplicate: true})
	wantResult(t, "next", r[1], applyResult{first: 3})
	wantResult(t, "retry of next", r[2], applyResult{first: 3, duplicate: true})
	if se := wantRefused(t, "gap", r[3], producer.ErrOutOfOrderSequence); se.Expected != 3 || se.Sequence != 9 || se.ProducerID != 7 {
		t.Fatalf("gap: %+v", se)
	}
	wantRefused(t, "mismatched retry", r[4], producer.ErrOutOfOrderSequence)
	wantRefused(t, "unknown", r[5], producer.ErrUnknownProducer)
	equal(t, dataOf(t, f), "a", "b", "plain", "c")
	if f.producerCount.Load() != 1 {
		t.Fatalf("%d producers counted, want 1", f.producerCount.Load())
	}
}

// Expiry follows the entries' AppendedAt (the leader's clock), eviction
// the limit: replicas applying the same entries, however Raft batches
// them, and a replica replaying them after a restart, hold the same table.
func TestFSMProducerExpiryAndEvictionAreDeterministic(t *testing.T) {
	cfg := producer.Config{Expiry: time.Minute, MaxProducers: 2}
	entries := []*raft.Log{
		idem(1, 1, 0, 0, "p1"),
		idem(2, 2, 0, time.Second, "p2"),
		idem(3, 1, 1, 2*time.Second, "p1 again"),
		idem(4, 3, 0, 3*time.Second, "p3 evicts p2"),
		idem(5, 2, 1, 4*time.Second, "p2 is gone"),
		cmd(6, "plain"),
		idem(7, 3, 1, 62500*time.Millisecond, "p1 expired, p3 kept"),
		idem(8, 1, 2, 62500*time.Millisecond, "p1 is gone"),
		idem(9, 1, 1, 10*time.Second, "a clock going back expires nothing more"),
	}
	open := func(dir string) *fsm {
		f := openTestFSM(t, dir)
		f.setProducers(cfg, nil)
		return f
	}
	dir := t.TempDir()
	a := open(dir)
	ra := a.ApplyBatch(entries)
	wantResult(t, "p3 evicts p2", ra[3], applyResult{first: 3})
	wantRefused(t, "evicted", ra[4], producer.ErrUnknownProducer)
	wantRefused(t, "expired", ra[7], producer.ErrUnknownProducer)
	wantRefused(t, "expired, clock back", ra[8], producer.ErrUnknownProducer)
	equal(t, dataOf(t, a), "p1", "p2", "p1 again", "p3 evicts p2", "plain", "p1 expired, p3 kept")

	b := open(t.TempDir())
	var rb []any
	for _, e := range entries { // one entry per batch
		rb = append(rb, b.ApplyBatch([]*raft.Log{e})...)
	}
	sameTables(t, a, b)
	for i := range ra {
		if errors.Is(asErr(ra[i]), producer.ErrUnknownProducer) != errors.Is(asErr(rb[i]), producer.ErrUnknownProducer) || (asErr(ra[i]) == nil && ra[i] != rb[i]) {
			t.Fatalf("entry %d: %v on one replica, %v on the other", i+1, ra[i], rb[i])
		}
	}

	// A restart: the data log kept everything, the table starts empty
	// (no snapshot) and Raft replays every entry.
	c := reopenTestFSM(t, a, dir)
	c.setProducers(cfg, nil)
	for _, r := range c.ApplyBatch(entries) {
		if ar, ok := r.(applyResult); ok && !ar.skipped {
			t.Fatalf("replay applied %+v", ar)
		}
	}
	sameTables(t, b, c)
}

func asErr(r any) error { err, _ := r.(error); return err }

func sameTables(t *testing.T, a, b *fsm) {
	t.Helper()
	if ea, eb := a.producers.Encode(), b.producers.Encode(); !bytes.Equal(ea, eb) {
		t.Fatalf("producer tables differ:\n%x\n%x", ea, eb)
	}
}

// Replayed entries the data log already has (a restart) rebuild the table
// exactly, so a retry after the restart is still a duplicate at the
// original offsets; and a snapshot carries the table to a follower.
func TestFSMProducerTableSurvivesReplayAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	entries := []*raft.Log{
		cmd(1, "x"),
		idem(2, 5, 0, 0, "a", "b"),
		idem(3, 5, 0, 0, "a", "b"),
		idem(4, 5, 7, 0, "gap"),
		idem(5, 6, 0, 0, "c"),
		idem(6, 5, 2, 0, "d"),
	}
	f.ApplyBatch(entries)
	equal(t, dataOf(t, f), "x", "a", "b", "c", "d")
	full := fullSnapshot(t, f)

	g := reopenTestFSM(t, f, dir)
	g.ApplyBatch(entries) // Raft's replay: all skipped
	wantResult(t, "retry after the restart", g.Apply(idem(7, 5, 0, 0, "a", "b")), applyResult{first: 1, duplicate: true})
	wantResult(t, "retry of the last", g.Apply(idem(8, 5, 2, 0, "d")), applyResult{first: 4, duplicate: true})
	wantResult(t, "next after the restart", g.Apply(idem(9, 5, 3, 0, "e")), applyResult{first: 5})

	// A follower restored from the full snapshot (taken before 7-9).
	h := openTestFSM(t, t.TempDir())
	if err := h.Restore(io.NopCloser(bytes.NewReader(full))); err != nil {
		t.Fatal(err)
	}
	r := h.ApplyBatch([]*raft.Log{idem(7, 5, 0, 0, "a", "b"), idem(8, 5, 2, 0, "d"), idem(9, 5, 3, 0, "e")})
	wantResult(t, "retry on the restored follower", r[0], applyResult{first: 1, duplicate: true})
	wantResult(t, "next on the restored follower", r[2], applyResult{first: 5})
	sameTables(t, g, h)
	equal(t, dataOf(t, h), "x", "a", "b", "c", "d", "e")
}

// latestTable takes a snapshot of n and returns the producer table it holds.
func latestTable(t *testing.T, n *node) []byte {
	t.Helper()
	if err := n.Snapshot(); err != nil {
		t.Fatalf("%s: snapshot: %v", n.id, err)
	}
	raftDir := filepath.Join(n.dir, "raft")
	fss, err := raft.NewFileSnapshotStoreWithLogger(raftDir, DefaultSnapshotRetain, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshotStore{FileSnapshotStore: fss, dir: raftDir, fsm: n.fsm, stale: func() {}}
	_, _, ok, table, err := s.latest()
	if err != nil || !ok || table == nil {
		t.Fatalf("%s: latest snapshot: %v (found %v)", n.id, err, ok)
	}
	return table
}

func appendAs(t *testing.T, n *node, id, seq uint64, recs ...string) (uint64, bool) {
	t.Helper()
	bs := make([][]byte, len(recs))
	for i, r := range recs {
		bs[i] = []byte(r)
	}
	first, dup, err := n.AppendIdempotent(ctxT(t), Producer{ID: id, Sequence: seq}, bs)
	if err != nil {
		t.Fatalf("AppendIdempotent(%x, %d): %v", id, seq, err)
	}
	return first, dup
}

// A retry after a restart is a duplicate whether the batch it repeats is
// replayed from the Raft log or only in the latest snapshot (the Raft log
// compacted past it, so only the snapshot's table knows it).
func TestIdempotentAppendAcrossRestarts(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) { c.SnapshotInterval = time.Hour; c.TrailingLogs = 1 })
	waitLeader(t, n)
	if first, dup := appendAs(t, n, 1, 0, "a", "b"); first != 0 || dup {
		t.Fatalf("first append: %d, %v", first, dup)
	}
	if first, dup := appendAs(t, n, 1, 0, "a", "b"); first != 0 || !dup {
		t.Fatalf("retry: %d, duplicate %v; want 0, true", first, dup)
	}
	n.restart() // replayed from the Raft log
	waitLeader(t, n)
	if first, dup := appendAs(t, n, 1, 0, "a", "b"); first != 0 || !dup {
		t.Fatalf("retry after a restart: %d, duplicate %v; want 0, true", first, dup)
	}
	appendAs(t, n, 2, 0, "c")
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	appendAs(t, n, 3, 0, "d") // after the snapshot: replayed
	n.restart()
	waitLeader(t, n)
	for _, c := range []struct {
		id, seq, first uint64
		recs           []string
	}{{1, 0, 0, []string{"a", "b"}}, {2, 0, 2, []string{"c"}}, {3, 0, 3, []string{"d"}}} {
		if first, dup := appendAs(t, n, c.id, c.seq, c.recs...); first != c.first || !dup {
			t.Fatalf("producer %d: retry after a snapshot and a restart: %d, duplicate %v; want %d, true", c.id, first, dup, c.first)
		}
	}
	if first, dup := appendAs(t, n, 1, 2, "e"); first != 4 || dup {
		t.Fatalf("next batch: %d, %v", first, dup)
	}
	var se *producer.SequenceError
	if _, _, err := n.AppendIdempotent(ctxT(t), Producer{ID: 1, Sequence: 9}, [][]byte{[]byte("gap")}); !errors.As(err, &se) || se.Expected != 3 {
		t.Fatalf("gap: %v", err)
	}
	if _, _, err := n.AppendIdempotent(ctxT(t), Producer{ID: 99, Sequence: 4}, [][]byte{[]byte("?")}); !errors.Is(err, producer.ErrUnknownProducer) {
		t.Fatalf("unknown producer: %v", err)
	}
	if n.NextOffset() != 5 || n.Producers() != 3 {
		t.Fatalf("next offset %d, %d producers; want 5, 3", n.NextOffset(), n.Producers())
	}
}

// Every replica holds the same table, also one that caught up from a full
// snapshot (the leader's Raft log compacted), and that one, made leader,
// answers a retry as a duplicate. Eviction at the limit is the same on all.
func TestProducerTablesAgreeAcrossReplicas(t *testing.T) {
	compact := func(c *Config) {
		c.SnapshotInterval = time.Hour
		c.TrailingLogs = 2
		c.Producers.MaxProducers = 3
	}
	nodes := cluster(t, 3, compact)
	leader, lagging := nodes[0], nodes[2]
	appendAs(t, leader, 1, 0, "a")
	waitData(t, lagging, 1)
	lagging.stop()
	for id := uint64(2); id <= 5; id++ { // 1 and 2 evicted
		appendAs(t, leader, id, 0, "p")
		appendAs(t, leader, id, 1, "q", "r")
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // compact past the snapshot
		appendAs(t, leader, 5, uint64(3+i), "s")
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	lagging.start()
	next := waitData(t, leader, 18)
	sameData(t, leader, lagging, uint64(len(next)))
	testutil.Eventually(t, "the lagging node to install a snapshot", 10*time.Second, func() bool {
		s := lagging.Stats()["last_snapshot_index"]
		return s != "0" && s != ""
	})
	want := latestTable(t, leader)
	for _, n := range nodes[1:] {
		if got := latestTable(t, n); !bytes.Equal(got, want) {
			t.Fatalf("%s's producer table differs from the leader's:\n%x\n%x", n.id, got, want)
		}
	}
	if err := leader.raft.LeadershipTransferToServer(raft.ServerID(lagging.id), raft.ServerAddress(lagging.addr)).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, lagging)
	testutil.Eventually(t, "the lagging node to lead", 10*time.Second, lagging.IsLeader)
	if first, dup := appendAs(t, lagging, 4, 1, "q", "r"); first != 8 || !dup {
		t.Fatalf("retry on the new leader: %d, duplicate %v; want 8, true", first, dup)
	}
	if _, _, err := lagging.AppendIdempotent(context.Background(), Producer{ID: 1, Sequence: 1}, [][]byte{[]byte("x")}); !errors.Is(err, producer.ErrUnknownProducer) {
		t.Fatalf("evicted producer: %v", err)
	}
}
