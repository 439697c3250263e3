package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
// the leader at epoch+at, in the encoding without limits
// (cmdAppendIdempotent): decided with the limits the table holds.
func idem(index, id, seq uint64, at time.Duration, recs ...string) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, AppendedAt: epoch.Add(at), Data: encodeAppendV3(Producer{ID: id, Sequence: seq}, strs(recs))}
}

// idemLim is idem carrying the leader's limits lim (cmdAppendLimited).
func idemLim(lim producer.Config, index, id, seq uint64, at time.Duration, recs ...string) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, AppendedAt: epoch.Add(at), Data: encodeAppendAs(Producer{ID: id, Sequence: seq}, lim, strs(recs))}
}

func strs(recs []string) [][]byte {
	bs := make([][]byte, len(recs))
	for i, r := range recs {
		bs[i] = []byte(r)
	}
	return bs
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
	cfg := producer.Config{Expiry: time.Minute, MaxProducers: 2, EvictAfter: time.Second}
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
		f.setProducers(producer.New(cfg))
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
	c.setProducers(producer.New(cfg))
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

// asProducer is producer id at seq sending recs, with their checksum.
func asProducer(id, seq uint64, recs [][]byte) Producer {
	return Producer{ID: id, Sequence: seq, Checksum: producer.Checksum(recs)}
}

func appendAs(t *testing.T, n *node, id, seq uint64, recs ...string) (uint64, bool) {
	t.Helper()
	bs := strs(recs)
	first, dup, err := n.AppendIdempotent(ctxT(t), asProducer(id, seq, bs), bs)
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
		c.Producers.EvictAfter = time.Nanosecond // any producer idle since an earlier entry
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

// A replay follows what the data log holds, not a new decision: after a
// restart with other producer limits, an entry refused then (its producer
// evicted) is not taken as missing records (the state machine would stop),
// and one written then is recorded although the new limits would refuse it.
func TestFSMReplayFollowsTheDataLogWhenProducerLimitsChange(t *testing.T) {
	entries := []*raft.Log{
		idem(1, 1, 0, 0, "p1"),
		idem(2, 2, 0, time.Second, "p2"),
		idem(3, 3, 0, 2*time.Second, "p3"),
		idem(4, 1, 1, 3*time.Second, "p1 again"),
		idem(5, 2, 1, 4*time.Second, "p2 again"), // so that 4 is in the data log's range
	}
	open := func(dir string, maxProducers int) *fsm {
		f := openTestFSM(t, dir)
		f.setProducers(producer.New(producer.Config{Expiry: time.Hour, MaxProducers: maxProducers, EvictAfter: time.Second}))
		return f
	}
	for _, c := range []struct {
		name        string
		before, now int
		retry       applyResult
	}{
		// Producer 1 evicted before its second batch, which was refused
		// and is not recorded: sent again it is written.
		{"limit raised", 2, 10, applyResult{first: 4}},
		// Producer 1's second batch written; the new limit evicts it, the
		// data log has it: a retry is a duplicate.
		{"limit lowered", 10, 2, applyResult{first: 3, duplicate: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := open(dir, c.before)
			f.ApplyBatch(entries)
			data := dataOf(t, f)
			g := reopenTestFSM(t, f, dir)
			g.setProducers(producer.New(producer.Config{Expiry: time.Hour, MaxProducers: c.now, EvictAfter: time.Second}))
			for i, r := range g.ApplyBatch(entries) {
				if ar, ok := r.(applyResult); !ok || !ar.skipped {
					t.Fatalf("replay of entry %d: %v", i+1, r)
				}
			}
			equal(t, dataOf(t, g), data...)
			wantResult(t, "retry", g.Apply(idem(6, 1, 1, 5*time.Second, "p1 again")), c.retry)
		})
	}
}

// newClusterOf starts one node per mod, the first bootstrapping and
// leading, the others joined by it: each node with its own configuration.
func newClusterOf(t *testing.T, mods ...func(*Config)) []*node {
	t.Helper()
	nodes := []*node{newNode(t, "n0", true, mods[0])}
	waitLeader(t, nodes[0])
	for i, mod := range mods[1:] {
		n := newNode(t, fmt.Sprintf("n%d", i+1), false, mod)
		if err := nodes[0].Join(n.id, n.Addr(), true); err != nil {
			t.Fatalf("Join(%s): %v", n.id, err)
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// sameEverywhere waits until every node holds next records and checks
// that they hold the same records and the same producer table.
func sameEverywhere(t *testing.T, nodes []*node, next uint64) {
	t.Helper()
	for _, n := range nodes[1:] {
		sameData(t, nodes[0], n, next)
	}
	want := latestTable(t, nodes[0])
	for _, n := range nodes[1:] {
		if got := latestTable(t, n); !bytes.Equal(got, want) {
			t.Fatalf("%s's producer table differs from %s's:\n%x\n%x", n.id, nodes[0].id, got, want)
		}
	}
}

// Every replica decides an idempotent append with the limits in the log
// (the leader's when it appended the entry), never its own: nodes with
// other limits than the leader hold the same records and the same table,
// and a node that becomes leader makes its limits the log's.
func TestProducerLimitsComeFromTheLog(t *testing.T) {
	leaderLim := producer.Config{Expiry: 24 * time.Hour, MaxProducers: 1, EvictAfter: time.Nanosecond}
	bigLim := producer.Config{Expiry: 24 * time.Hour, MaxProducers: 10000, EvictAfter: 5 * time.Minute}
	shortLim := producer.Config{Expiry: time.Nanosecond, MaxProducers: 10000, EvictAfter: time.Nanosecond}
	with := func(lim producer.Config) func(*Config) {
		return func(c *Config) { c.Producers = lim }
	}
	nodes := newClusterOf(t, with(leaderLim), with(bigLim), with(shortLim))
	leader := nodes[0]
	ctx := ctxT(t)
	try := func(n *node, id, seq uint64, recs ...string) error {
		_, _, err := n.AppendIdempotent(ctx, asProducer(id, seq, strs(recs)), strs(recs))
		return err
	}

	// The outside tester's repro: A is evicted by B at the leader's limit
	// of 1, so A's second batch is refused; B's is written.
	appendAs(t, leader, 0xA, 0, "A0")
	appendAs(t, leader, 0xB, 0, "B0")
	if err := try(leader, 0xA, 1, "A1"); !errors.Is(err, producer.ErrUnknownProducer) {
		t.Fatalf("A after its eviction: %v; want ErrUnknownProducer", err)
	}
	appendAs(t, leader, 0xB, 1, "B1")
	// A mixed workload: producers evicted and refused on the leader,
	// retries, plain appends.
	var next uint64 = 3
	for i := range uint64(4) {
		for _, id := range []uint64{100, 101, 102} {
			if err := try(leader, id, i, fmt.Sprintf("p%d-%d", id, i)); err == nil {
				next++
			}
			_ = try(leader, id, i, fmt.Sprintf("p%d-%d", id, i)) // a retry
		}
		if _, err := leader.Append(ctx, rec(int(i))); err != nil {
			t.Fatal(err)
		}
		next++
	}
	sameEverywhere(t, nodes, next)

	// nodes[1] leads: its limits apply from its first entry on, on every node.
	newLeader := nodes[1]
	if err := leader.raft.LeadershipTransferToServer(raft.ServerID(newLeader.id), raft.ServerAddress(newLeader.addr)).Error(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "n1 to lead", 10*time.Second, newLeader.IsLeader)
	appendAs(t, newLeader, 0xC, 0, "C0")
	appendAs(t, newLeader, 0xD, 0, "D0")
	// With the old leader's limit of 1, C would have been evicted by D;
	// with nodes[2]'s expiry it would have expired.
	appendAs(t, newLeader, 0xC, 1, "C1")
	sameEverywhere(t, []*node{newLeader, nodes[0], nodes[2]}, next+3)
	for _, n := range nodes {
		if got := latestTableLimits(t, n); got != bigLim {
			t.Fatalf("%s's table has limits %+v, want the new leader's %+v", n.id, got, bigLim)
		}
	}
}

// latestTableLimits returns the limits of the producer table in n's
// latest snapshot.
func latestTableLimits(t *testing.T, n *node) producer.Config {
	t.Helper()
	tb, err := producer.Decode(latestTable(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return tb.Limits()
}

// The outside tester's repro of a first batch written twice: at a limit of
// one producer, a new producer no longer evicts one active within
// EvictAfter; it is refused, and the active one's retry of its first
// batch is still a duplicate.
func TestRecentProducerIsNotEvicted(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) { c.Producers.MaxProducers = 1 })
	leader := nodes[0]
	ctx := ctxT(t)
	appendAs(t, leader, 0xA, 0, "A0")
	b0 := strs([]string{"B0"})
	_, _, err := leader.AppendIdempotent(ctx, asProducer(0xB, 0, b0), b0)
	var se *producer.SequenceError
	if !errors.Is(err, producer.ErrTooManyProducers) || !errors.As(err, &se) || se.Limit != 1 {
		t.Fatalf("new producer B with A active: %v; want ErrTooManyProducers, limit 1", err)
	}
	if first, dup := appendAs(t, leader, 0xA, 0, "A0"); first != 0 || !dup {
		t.Fatalf("A's retry of its first batch: offset %d, duplicate %v; want 0, true", first, dup)
	}
	appendAs(t, leader, 0xA, 1, "A1")
	sameEverywhere(t, nodes, 2)
}

// A retry at a retained sequence with other records is refused as out of
// order, not answered as a duplicate with the records dropped.
func TestRetryWithOtherRecordsIsRefused(t *testing.T) {
	n := newNode(t, "solo", true, nil)
	waitLeader(t, n)
	appendAs(t, n, 7, 0, "a", "b")
	other := strs([]string{"a", "c"})
	_, dup, err := n.AppendIdempotent(ctxT(t), asProducer(7, 0, other), other)
	var se *producer.SequenceError
	if dup || !errors.Is(err, producer.ErrOutOfOrderSequence) || !errors.As(err, &se) || !se.Mismatch {
		t.Fatalf("retry with other records: duplicate %v, %v; want ErrOutOfOrderSequence (mismatch)", dup, err)
	}
	if first, dup := appendAs(t, n, 7, 0, "a", "b"); first != 0 || !dup {
		t.Fatalf("true retry: %d, %v; want 0, true", first, dup)
	}
	equal(t, toStrings(waitData(t, n, 2)), "a", "b")
}

func toStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
