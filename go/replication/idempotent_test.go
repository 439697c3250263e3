package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/producer"
)

// latestTable takes a snapshot of n and returns the producer table it holds.
func latestTable(t *testing.T, n *node) []byte {
	t.Helper()
	if err := n.Snapshot(); err != nil {
		t.Fatalf("%s: snapshot: %v", n.id, err)
	}
	fss, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(n.dir, "raft"), DefaultSnapshotRetain, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	metas, err := fss.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("%s: snapshots: %v (%d)", n.id, err, len(metas))
	}
	_, rc, err := fss.Open(metas[0].ID)
	if err != nil {
		t.Fatalf("%s: latest snapshot: %v", n.id, err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, snapshotHeaderSize)); err != nil {
		t.Fatal(err)
	}
	table, err := readTableSection(rc)
	if err != nil {
		t.Fatalf("%s: latest snapshot: %v", n.id, err)
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

// The proposer decides a sequence against the batches it proposed that
// are not applied yet: with the state machine held back, a producer's
// next batch is accepted, a retry of the pending one is a duplicate
// answered once it is applied, and a gap is refused without a Raft entry.
func TestProposerDecidesAgainstPendingBatches(t *testing.T) {
	gate := make(chan struct{})
	var held atomic.Bool
	n := newNode(t, "solo", true, func(c *Config) {
		c.beforeApply = func() {
			if held.Load() {
				<-gate
			}
		}
	})
	waitLeader(t, n)
	appendAs(t, n, 1, 0, "a") // the proposer's state is synced
	ctx := ctxT(t)
	held.Store(true)
	type result struct {
		first uint64
		dup   bool
		err   error
	}
	run := func(seq uint64, rs ...string) chan result {
		ch := make(chan result, 1)
		bs := strs(rs)
		go func() {
			first, dup, err := n.AppendIdempotent(ctx, asProducer(1, seq, bs), bs)
			ch <- result{first, dup, err}
		}()
		return ch
	}
	b := run(1, "b")
	testutil.Eventually(t, "b to be proposed", 10*time.Second, func() bool { return n.raft.LastIndex() > n.fsm.applied.Load() })
	last := n.raft.LastIndex()
	c := run(2, "c") // follows the pending b
	testutil.Eventually(t, "c to be proposed", 10*time.Second, func() bool { return n.raft.LastIndex() > last })
	last = n.raft.LastIndex()
	retry := run(1, "b") // b again, still pending
	_, _, err := n.AppendIdempotent(ctx, asProducer(1, 7, strs([]string{"gap"})), strs([]string{"gap"}))
	if !errors.Is(err, producer.ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	if n.raft.LastIndex() != last {
		t.Fatalf("refused and duplicate appends made raft entries: last index %d, was %d", n.raft.LastIndex(), last)
	}
	held.Store(false)
	close(gate)
	for name, want := range map[string]result{"b": {1, false, nil}, "c": {2, false, nil}, "retry": {1, true, nil}} {
		ch := map[string]chan result{"b": b, "c": c, "retry": retry}[name]
		if got := <-ch; got != want {
			t.Fatalf("%s: %+v, want %+v", name, got, want)
		}
	}
	equal(t, toStrings(waitData(t, n, 3)), "a", "b", "c")
}
