package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/mux"
	"github.com/proglog/proglog/go/seglog"
)

// testLogger sends logs to the test log (warnings and up unless -v) and
// drops what goroutines log after the test ended.
func testLogger(t *testing.T, name string) hclog.Logger {
	w := testutil.LogWriter(t)
	level := hclog.Warn
	if testing.Verbose() {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: w})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// node is one replica with its own mux on a loopback port.
type node struct {
	t      *testing.T
	id     string
	dir    string
	addr   string
	port   *testutil.HeldPort // held for the test: a restart gets the same address
	mod    func(*Config)
	muxMod func(*mux.Config)
	mux    *mux.Mux
	*Log
}

// fastConfig has timings for loopback clusters under the race detector.
func fastConfig(t *testing.T, id, dir string, sl raft.StreamLayer) Config {
	c := DefaultConfig()
	c.DataDir = dir
	c.LocalID = id
	c.StreamLayer = sl
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.ApplyTimeout = 10 * time.Second
	c.Logger = testLogger(t, id)
	return c
}

func newNode(t *testing.T, id string, bootstrap bool, mod func(*Config)) *node {
	n := &node{t: t, id: id, dir: filepath.Join(t.TempDir(), id), mod: func(c *Config) {
		c.Bootstrap = bootstrap
		if mod != nil {
			mod(c)
		}
	}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	if err := n.startErr(); err != nil {
		n.t.Fatalf("New(%s): %v", n.id, err)
	}
}

// startErr is start returning New's error.
func (n *node) startErr() error {
	t := n.t
	t.Helper()
	if n.port == nil {
		n.port = testutil.HoldPort(t)
	}
	ln := n.port.Listener()
	n.addr = ln.Addr().String()
	mc := mux.DefaultConfig()
	mc.InsecurePlaintext = true
	mc.Logger = testLogger(t, n.id+".mux")
	if n.muxMod != nil {
		n.muxMod(&mc)
	}
	m, err := mux.New(ln, mc)
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve()
	cfg := fastConfig(t, n.id, n.dir, muxGroup(t, m))
	n.mod(&cfg)
	l, err := New(cfg)
	if err != nil {
		m.Close()
		return err
	}
	n.mux, n.Log = m, l
	return nil
}

func (n *node) stop() {
	if n.Log == nil {
		return
	}
	if err := n.Log.Close(); err != nil {
		n.t.Errorf("Close(%s): %v", n.id, err)
	}
	n.mux.Close()
	n.Log = nil
}

func (n *node) restart() {
	n.stop()
	n.start()
}

// cluster starts n nodes, the first bootstrapping, the others joined by it.
func cluster(t *testing.T, count int, mod func(*Config)) []*node {
	t.Helper()
	nodes := []*node{newNode(t, "n0", true, mod)}
	waitLeader(t, nodes[0])
	for i := 1; i < count; i++ {
		n := newNode(t, fmt.Sprintf("n%d", i), false, mod)
		if err := nodes[0].Join(n.id, n.Addr(), true); err != nil {
			t.Fatalf("Join(%s): %v", n.id, err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		testutil.Eventually(t, n.id+" to know the leader", 20*time.Second, func() bool { id, _ := n.Leader(); return id != "" })
	}
	return nodes
}

func waitLeader(t *testing.T, n *node) {
	t.Helper()
	if _, _, err := n.WaitForLeader(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// leaderOf returns the node that is leader, polling until one is.
func leaderOf(t *testing.T, nodes []*node) *node {
	t.Helper()
	var l *node
	testutil.Eventually(t, "a leader", 20*time.Second, func() bool {
		for _, n := range nodes {
			if n.Log != nil && n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// appendRecs appends rec(0) to rec(count-1) through n, one by one.
func appendRecs(t *testing.T, ctx context.Context, n *node, count int) {
	t.Helper()
	for i := range count {
		if _, err := n.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%03d", i)) }

// waitData waits until n's data log holds next records and returns them.
func waitData(t *testing.T, n *node, next uint64) [][]byte {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%s to apply %d records", n.id, next), 30*time.Second, func() bool { return n.NextOffset() >= next })
	if got := n.NextOffset(); got != next {
		t.Fatalf("%s has %d records, want %d (duplicates?)", n.id, got, next)
	}
	var out [][]byte
	for off := n.LowestOffset(); off < next; off++ {
		b, err := n.Read(context.Background(), off, ReadFollower)
		if err != nil {
			t.Fatalf("%s Read(%d): %v", n.id, off, err)
		}
		out = append(out, b)
	}
	return out
}

func sameData(t *testing.T, a, b *node, next uint64) {
	t.Helper()
	da, db := waitData(t, a, next), waitData(t, b, next)
	if len(da) != len(db) {
		t.Fatalf("%s has %d records, %s %d", a.id, len(da), b.id, len(db))
	}
	for i := range da {
		if !bytes.Equal(da[i], db[i]) {
			t.Fatalf("record %d: %s has %q, %s %q", i, a.id, da[i], b.id, db[i])
		}
	}
}

func TestClusterReplicates(t *testing.T) {
	nodes := cluster(t, 3, nil)
	leader := nodes[0]
	ctx := ctxT(t)
	for i := range 10 {
		off, err := leader.Append(ctx, rec(i))
		if err != nil {
			t.Fatal(err)
		}
		if off != uint64(i) {
			t.Fatalf("Append %d got offset %d", i, off)
		}
	}
	batch := [][]byte{rec(10), rec(11), rec(12), rec(13), rec(14)}
	first, err := leader.AppendBatch(ctx, batch)
	if err != nil || first != 10 {
		t.Fatalf("AppendBatch = %d, %v; want 10", first, err)
	}
	if next, err := leader.AppendBatch(ctx, nil); err != nil || next != 15 {
		t.Fatalf("empty AppendBatch = %d, %v", next, err)
	}
	for _, n := range nodes {
		data := waitData(t, n, 15)
		for i, b := range data {
			if !bytes.Equal(b, rec(i)) {
				t.Fatalf("%s offset %d = %q, want %q", n.id, i, b, rec(i))
			}
		}
	}
	servers, err := nodes[2].GetServers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 {
		t.Fatalf("servers: %+v", servers)
	}
	leaders := 0
	for _, s := range servers {
		if s.IsLeader {
			leaders++
			if s.ID != leader.id || s.RPCAddr != leader.addr {
				t.Errorf("leader listed as %+v", s)
			}
		}
		if !s.Voter {
			t.Errorf("%s is not a voter", s.ID)
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in %+v", leaders, servers)
	}
	// Out of range reads report the bounds.
	var oor *seglog.OffsetOutOfRangeError
	if _, err := nodes[1].Read(ctx, 15, ReadFollower); !errors.As(err, &oor) || oor.Next != 15 {
		t.Fatalf("read past the end: %v", err)
	}
}

func TestFollowerRefusesWrites(t *testing.T) {
	nodes := cluster(t, 3, nil)
	leader, follower := nodes[0], nodes[1]
	ctx := ctxT(t)
	check := func(what string, err error) {
		t.Helper()
		var nl *commitlog.NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("%s on a follower: %v, want *commitlog.NotLeaderError", what, err)
		}
		if nl.LeaderID != leader.id || nl.LeaderAddr != leader.addr {
			t.Fatalf("%s: leader reported as %s at %s, want %s at %s", what, nl.LeaderID, nl.LeaderAddr, leader.id, leader.addr)
		}
		if !nl.NotLeader() || !strings.Contains(nl.Error(), leader.addr) {
			t.Fatalf("error %q", nl.Error())
		}
	}
	_, err := follower.Append(ctx, rec(0))
	check("Append", err)
	_, err = follower.AppendBatch(ctx, [][]byte{rec(0), rec(1)})
	check("AppendBatch", err)
	_, err = follower.Read(ctx, 0, ReadLinearizable)
	check("linearizable Read", err)
	_, _, err = follower.Bounds(ctx, ReadLinearizable)
	check("linearizable Bounds", err)
	check("Join", follower.Join("x", "127.0.0.1:1", true))
	check("Leave", follower.Leave(nodes[2].id))
	if follower.NextOffset() != 0 {
		t.Fatal("a refused append reached the data log")
	}
}

func TestLinearizableReadAfterProduce(t *testing.T) {
	nodes := cluster(t, 3, nil)
	leader := nodes[0]
	ctx := ctxT(t)
	var last uint64
	for i := range 30 {
		off, err := leader.Append(ctx, rec(i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := leader.Read(ctx, off, ReadLinearizable)
		if err != nil || !bytes.Equal(b, rec(i)) {
			t.Fatalf("linearizable read of %d right after its append: %q, %v", off, b, err)
		}
		if lo, next, err := leader.Bounds(ctx, ReadLinearizable); err != nil || lo != 0 || next != off+1 {
			t.Fatalf("linearizable bounds right after appending %d: [%d, %d), %v", off, lo, next, err)
		}
		last = off
	}
	// After a leader change the new leader serves every acknowledged record.
	leader.stop()
	rest := []*node{nodes[1], nodes[2]}
	nl := leaderOf(t, rest)
	testutil.Eventually(t, "a linearizable read on the new leader", 20*time.Second, func() bool {
		b, err := nl.Read(ctx, last, ReadLinearizable)
		if err != nil {
			if !errors.Is(err, ErrNotLeader) {
				t.Fatalf("read on the new leader: %v", err)
			}
			return false // leadership still settling
		}
		if !bytes.Equal(b, rec(int(last))) {
			t.Fatalf("new leader read %q", b)
		}
		if _, next, err := nl.Bounds(ctx, ReadLinearizable); err != nil || next != last+1 {
			t.Fatalf("new leader's linearizable bounds: next %d, %v; want %d", next, err, last+1)
		}
		return true
	})
	// Linearizable reads of records appended concurrently by others.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				off, err := nl.Append(ctx, []byte(fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				if b, err := nl.Read(ctx, off, ReadLinearizable); err != nil || string(b) != fmt.Sprintf("w%d-%d", w, i) {
					t.Errorf("read %d: %q, %v", off, b, err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestLeaveRemovesServer(t *testing.T) {
	nodes := cluster(t, 3, nil)
	leader := nodes[0]
	// Join is idempotent.
	if err := leader.Join(nodes[1].id, nodes[1].addr, true); err != nil {
		t.Fatal(err)
	}
	if err := leader.Leave(nodes[2].id); err != nil {
		t.Fatal(err)
	}
	if err := leader.Leave(nodes[2].id); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	servers, err := leader.GetServers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 {
		t.Fatalf("servers after Leave: %+v", servers)
	}
	for _, s := range servers {
		if s.ID == nodes[2].id {
			t.Fatalf("%s still in %+v", s.ID, servers)
		}
	}
	// The removed node no longer receives records.
	if _, err := leader.Append(ctxT(t), rec(0)); err != nil {
		t.Fatal(err)
	}
	waitData(t, nodes[1], 1)
	if nodes[2].NextOffset() != 0 {
		t.Fatal("a removed server still receives records")
	}
	// A non-voter, then promoted, then demoted.
	if err := leader.Join(nodes[2].id, nodes[2].addr, false); err != nil {
		t.Fatal(err)
	}
	voter := func(id string) bool {
		servers, _ := leader.GetServers()
		for _, s := range servers {
			if s.ID == id {
				return s.Voter
			}
		}
		t.Fatalf("%s not in %+v", id, servers)
		return false
	}
	if voter(nodes[2].id) {
		t.Fatal("joined as a voter")
	}
	waitData(t, nodes[2], 1)
	if err := leader.Join(nodes[2].id, nodes[2].addr, true); err != nil || !voter(nodes[2].id) {
		t.Fatalf("promote: %v", err)
	}
	if err := leader.Join(nodes[2].id, nodes[2].addr, false); err != nil || voter(nodes[2].id) {
		t.Fatalf("demote: %v", err)
	}
}

func TestRestartedNodeCatchesUp(t *testing.T) {
	nodes := cluster(t, 3, nil)
	leader, lagging := nodes[0], nodes[2]
	ctx := ctxT(t)
	appendRecs(t, ctx, leader, 5)
	waitData(t, lagging, 5)
	lagging.stop()
	for i := 5; i < 20; i++ {
		if _, err := leader.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	lagging.start()
	sameData(t, leader, lagging, 20)
	// Idempotent restart: replay adds nothing.
	lagging.restart()
	waitLeader(t, lagging)
	if _, err := leader.Append(ctx, rec(20)); err != nil {
		t.Fatal(err)
	}
	sameData(t, leader, lagging, 21)
}

// A follower too far behind the leader's log — retention raised the lowest
// offset and compaction removed the entries below it — is restored by
// InstallSnapshot: the small state and the entries from the lowest offset
// on, after which it reads every record from the lowest offset as the
// leader does, and keeps replicating.
func TestCatchUpFromSnapshot(t *testing.T) {
	compact := func(c *Config) {
		c.TrailingLogs = 2
		c.SnapshotInterval = time.Hour // snapshots only when forced
		c.RetentionInterval = time.Hour
		c.MaxRecordBytes = 100
		c.RaftLog.MaxRecordBytes = 400
		c.RaftLog.Segment.MaxStoreBytes = 1024
		c.Retention.MaxBytes = 2048
	}
	nodes := cluster(t, 3, compact)
	leader, lagging := nodes[0], nodes[2]
	ctx := ctxT(t)
	if _, err := leader.Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	waitData(t, lagging, 1)
	lagging.stop()
	appendRecs(t, ctx, leader, 60) // rec(k-1) at offset k
	lowest, err := leader.ApplyRetention(ctx)
	if err != nil || lowest < 10 {
		t.Fatalf("retention: lowest %d, %v", lowest, err)
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, _ := leader.store.FirstIndex()
	if first < 10 {
		t.Fatalf("leader's raft log not compacted: first index %d", first)
	}
	lagging.start()
	checkFrom := func(n *node, next uint64) {
		t.Helper()
		got := waitData(t, n, next)
		if n.LowestOffset() != lowest {
			t.Fatalf("%s: lowest offset %d, want %d", n.id, n.LowestOffset(), lowest)
		}
		for i, b := range got {
			if want := rec(int(lowest) + i - 1); !bytes.Equal(b, want) {
				t.Fatalf("%s: offset %d holds %q, want %q", n.id, lowest+uint64(i), b, want)
			}
		}
	}
	checkFrom(lagging, 61)
	// Raft records the installed snapshot just after the FSM restored it.
	testutil.Eventually(t, "the lagging node to record an installed snapshot", 10*time.Second, func() bool {
		s := lagging.Stats()["last_snapshot_index"]
		return s != "0" && s != ""
	})
	// A brand-new server catches up from the snapshot too.
	fresh := newNode(t, "n3", false, compact)
	if err := leader.Join(fresh.id, fresh.addr, false); err != nil {
		t.Fatal(err)
	}
	checkFrom(fresh, 61)
	// And both keep replicating after it.
	if _, err := leader.Append(ctx, rec(60)); err != nil {
		t.Fatal(err)
	}
	sameData(t, leader, lagging, 62)
	sameData(t, leader, fresh, 62)
	// A restart after installing a snapshot neither loses nor duplicates.
	lagging.restart()
	sameData(t, leader, lagging, 62)
}

func TestSingleNodeRestartIsIdempotent(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) { c.SnapshotInterval = time.Hour; c.TrailingLogs = 1 })
	waitLeader(t, n)
	ctx := ctxT(t)
	appendRecs(t, ctx, n, 10)
	check := func(next uint64) {
		t.Helper()
		waitLeader(t, n)
		// Linearizable: the replay after restart must be applied first.
		for off := range next {
			b, err := n.Read(ctx, off, ReadLinearizable)
			if err != nil || !bytes.Equal(b, rec(int(off))) {
				t.Fatalf("offset %d after restart: %q, %v", off, b, err)
			}
		}
		if got := n.NextOffset(); got != next {
			t.Fatalf("NextOffset %d, want %d", got, next)
		}
	}
	n.restart()
	check(10)
	// Close took a snapshot: nothing new since.
	if err := n.Snapshot(); !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatalf("snapshot right after a restart: %v", err)
	}
	if off, err := n.Append(ctx, rec(10)); err != nil || off != 10 {
		t.Fatalf("append after restart: %d, %v", off, err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 11; i < 15; i++ {
		if off, err := n.Append(ctx, rec(i)); err != nil || off != uint64(i) {
			t.Fatalf("append after restart: %d, %v", off, err)
		}
	}
	n.restart()
	check(15)
}

// A node that lost its data directory, started again empty, gets the log
// from the leader.
func TestLostDataDirRecoversByRejoining(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) { c.SnapshotInterval = time.Hour; c.TrailingLogs = 1 })
	leader := leaderOf(t, nodes)
	var lost *node
	for _, n := range nodes {
		if n != leader {
			lost = n
		}
	}
	// Through whichever node leads (on a loaded machine the first leader
	// may lose its lease), as one producer's batches: a retry after a
	// leadership change is a duplicate.
	var first [][]byte
	for i := range 20 {
		first = append(first, rec(i))
	}
	appendAtLeader(t, nodes, asProducer(1, 0, first), first)
	waitData(t, lost, 20)
	if err := lost.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	lost.stop()
	if err := os.RemoveAll(lost.dir); err != nil {
		t.Fatal(err)
	}
	lost.start()
	sameData(t, leader, lost, 20)
	appendAtLeader(t, nodes, asProducer(1, 20, [][]byte{rec(20)}), [][]byte{rec(20)})
	sameData(t, leader, lost, 21)
}

// A crash after Raft stored a snapshot received from the leader but before
// its entries were installed in the Raft log: the next start installs them
// from the stored snapshot, and every record is there.
func TestInterruptedSnapshotInstallIsFinished(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) { c.SnapshotInterval = time.Hour; c.TrailingLogs = 1 })
	waitLeader(t, n)
	ctx := ctxT(t)
	appendRecs(t, ctx, n, 8)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n.stop()
	// The stream the leader sends (made here from this node's snapshot
	// and log), stored as InstallSnapshot stores it before restoring it.
	raftDir := filepath.Join(n.dir, "raft")
	fss, err := raft.NewFileSnapshotStoreWithLogger(raftDir, DefaultSnapshotRetain, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	f := openTestFSM(t, filepath.Join(raftDir, "log"))
	s := &snapshotStore{FileSnapshotStore: fss, fsm: f.fsm, store: f.store, stale: func() {}}
	metas, err := s.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("snapshots %v, %v", metas, err)
	}
	meta, rc, err := s.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	sink, err := fss.Create(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(sink, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	f.close()
	// The crash: the Raft log is not installed yet (here: empty).
	if err := os.RemoveAll(filepath.Join(raftDir, "log")); err != nil {
		t.Fatal(err)
	}
	n.start()
	waitLeader(t, n)
	for off := range uint64(8) {
		b, err := n.Read(ctx, off, ReadLinearizable)
		if err != nil || !bytes.Equal(b, rec(int(off))) {
			t.Fatalf("offset %d: %q, %v", off, b, err)
		}
	}
	if off, err := n.Append(ctx, rec(8)); err != nil || off != 8 {
		t.Fatalf("append after the install: %d, %v", off, err)
	}
}

func TestAppendValidation(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) {
		c.MaxRecordBytes = 100
		c.RaftLog.MaxRecordBytes = 1024
	})
	waitLeader(t, n)
	ctx := ctxT(t)
	if _, err := n.Append(ctx, make([]byte, 101)); !errors.Is(err, seglog.ErrRecordTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	if _, err := n.Append(ctx, make([]byte, 100)); err != nil {
		t.Fatalf("record at the limit: %v", err)
	}
	big := make([][]byte, 20)
	for i := range big {
		big[i] = make([]byte, 100)
	}
	if _, err := n.AppendBatch(ctx, big); !errors.Is(err, seglog.ErrRecordTooLarge) {
		t.Fatalf("batch larger than a raft entry: %v", err)
	}
	if n.NextOffset() != 1 {
		t.Fatalf("rejected appends wrote records: next %d", n.NextOffset())
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Append(canceled, rec(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
	if _, err := n.Read(canceled, 0, ReadFollower); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled read: %v", err)
	}
	if _, err := n.Read(ctx, 0, Consistency(9)); err == nil {
		t.Fatal("unknown consistency accepted")
	}
}

func TestWaitAndClose(t *testing.T) {
	n := newNode(t, "solo", true, nil)
	waitLeader(t, n)
	ctx := ctxT(t)
	waited := make(chan error, 1)
	go func() { waited <- n.Wait(ctx, 0) }()
	if _, err := n.Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := n.Wait(short, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait for a missing record: %v", err)
	}
	l := n.Log
	go func() { waited <- l.Wait(ctx, 5) }()
	n.stop()
	if err := <-waited; !errors.Is(err, seglog.ErrClosed) {
		t.Fatalf("Wait across Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(ctx, rec(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(ctx, 0, ReadFollower); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := l.Join("x", "y:1", true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close: %v", err)
	}
	if _, _, err := l.WaitForLeader(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitForLeader after Close: %v", err)
	}
}

func TestLeadershipCallbackAndTransferOnClose(t *testing.T) {
	var mu sync.Mutex
	events := map[string][]bool{}
	nodes := cluster(t, 3, func(c *Config) {
		id := c.LocalID
		c.OnLeadershipChange = func(b bool) { mu.Lock(); events[id] = append(events[id], b); mu.Unlock() }
	})
	mu.Lock()
	if got := events["n0"]; len(got) != 1 || !got[0] {
		t.Fatalf("n0 leadership events %v, want [true]", got)
	}
	mu.Unlock()
	start := time.Now()
	nodes[0].stop() // hands leadership over
	nl := leaderOf(t, nodes[1:])
	t.Logf("new leader %s after %v", nl.id, time.Since(start))
	testutil.Eventually(t, "the new leader's callback", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		got := events[nl.id]
		return len(got) > 0 && got[len(got)-1]
	})
	mu.Lock()
	if got := events["n0"]; len(got) < 1 || !got[0] {
		t.Fatalf("n0 events %v", got)
	}
	mu.Unlock()
}
