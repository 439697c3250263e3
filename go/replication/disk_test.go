package replication

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/internal/testutil"
)

// fakeDisks reports a settable free space per data directory.
type fakeDisks struct {
	mu   sync.Mutex
	free map[string]uint64 // by DataDir; absent: plenty
}

func (d *fakeDisks) statfs(dir string) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f, ok := d.free[dir]; ok {
		return f, nil
	}
	return 1 << 40, nil
}

func (d *fakeDisks) set(n *node, free uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.free[n.dir] = free
}

const testMinFree = 1 << 20

func (d *fakeDisks) config(c *Config) {
	c.MinFreeBytes, c.statfs, c.diskRefresh = testMinFree, d.statfs, time.Nanosecond
}

// Below the watermark the leader refuses appends with ErrLowSpace (which
// the server answers RESOURCE_EXHAUSTED), keeps serving linearizable reads
// and its leadership, and takes appends again once space returns.
func TestLeaderRefusesAppendsBelowTheWatermark(t *testing.T) {
	disks := &fakeDisks{free: map[string]uint64{}}
	nodes := cluster(t, 3, disks.config)
	leader := nodes[0]
	ctx := ctxT(t)
	if _, err := leader.Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	disks.set(leader, testMinFree-1)
	_, err := leader.Append(ctx, rec(1))
	var le *diskspace.LowSpaceError
	if !errors.As(err, &le) || le.Free != testMinFree-1 || le.Required != testMinFree || le.Dir != leader.dir {
		t.Fatalf("Append below the watermark = %v, want *diskspace.LowSpaceError", err)
	}
	if portError(err) != err {
		t.Fatalf("CommitLog changed the low-space error; go/server maps it (RESOURCE_EXHAUSTED)")
	}
	if free, refusing := leader.DiskSpace(); free != testMinFree-1 || !refusing {
		t.Fatalf("DiskSpace = %d, %v", free, refusing)
	}
	if b, err := leader.Read(ctx, 0, ReadLinearizable); err != nil || string(b) != string(rec(0)) {
		t.Fatalf("linearizable read below the watermark = %q, %v", b, err)
	}
	if !leader.IsLeader() {
		t.Fatal("the leader lost its leadership below the watermark")
	}
	// It persists its state machine while the reserve has room: a restart
	// on a full disk restores it and serves the records without a leader.
	testutil.Eventually(t, "a snapshot at the watermark", 10*time.Second, func() bool {
		s := leader.Stats()["last_snapshot_index"]
		return s != "0" && s != ""
	})
	disks.set(leader, testMinFree)
	if off, err := leader.Append(ctx, rec(1)); err != nil || off != 1 {
		t.Fatalf("Append once space returned = %d, %v", off, err)
	}
	for _, n := range nodes {
		waitData(t, n, 2)
	}
}

// A follower below the reserve refuses Raft entries: it neither crashes
// nor fails its state machine, the others commit without it, and it
// catches up by itself once space returns.
func TestFollowerBelowTheReserveCatchesUpLater(t *testing.T) {
	disks := &fakeDisks{free: map[string]uint64{}}
	nodes := cluster(t, 3, disks.config)
	leader, low := nodes[0], nodes[1]
	ctx := ctxT(t)
	disks.set(low, testMinFree/2-1)
	for i := range 5 {
		if _, err := leader.Append(ctx, rec(i)); err != nil {
			t.Fatalf("Append %d with one follower below its reserve: %v", i, err)
		}
	}
	waitData(t, nodes[2], 5)
	if got := low.NextOffset(); got != 0 {
		t.Fatalf("the follower below its reserve applied %d records", got)
	}
	if err := low.Failed(); err != nil {
		t.Fatalf("the follower below its reserve failed: %v", err)
	}
	disks.set(low, testMinFree)
	sameData(t, leader, low, 5)
	testutil.Eventually(t, "the follower to know the leader", 10*time.Second, func() bool { id, _ := low.Leader(); return id == leader.id })
}

// A snapshot on a full disk fails with an error (Raft's own snapshots log
// it and retry later); the node stays up and serves reads, and snapshots
// work again once space is freed.
func TestSnapshotOnFullDiskIsAnError(t *testing.T) {
	testutil.InTmpfs(t, 16<<20, func(dir string) {
		n := &node{t: t, id: "n0", dir: filepath.Join(dir, "n0"), mod: func(c *Config) {
			c.Bootstrap = true
			c.MinFreeBytes = 0 // nothing refused: the disk really fills
		}}
		n.start()
		t.Cleanup(n.stop)
		waitLeader(t, n)
		ctx := ctxT(t)
		appendRecs(t, ctx, n, 20)
		filler := filepath.Join(dir, "filler")
		testutil.FillDisk(t, filler)
		if err := n.Snapshot(); err == nil {
			t.Fatal("Snapshot on a full disk succeeded")
		}
		if b, err := n.Read(ctx, 19, ReadLinearizable); err != nil || string(b) != string(rec(19)) {
			t.Fatalf("read after a failed snapshot = %q, %v", b, err)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		if err := n.Snapshot(); err != nil {
			t.Fatalf("Snapshot once space is freed: %v", err)
		}
		if _, err := n.Append(ctx, rec(20)); err != nil {
			t.Fatal(err)
		}
	})
}

// The state machine writes nothing: committed entries (stored before the
// disk filled up) are applied on a full disk at once, where the single-log
// layout had to wait for space to write its data log.
func TestApplyOnFullDisk(t *testing.T) {
	testutil.InTmpfs(t, 4<<20, func(dir string) {
		f := openTestFSM(t, filepath.Join(dir, "n0"))
		big := make([]string, 40)
		for i := range big {
			big[i] = strings.Repeat("x", 150)
		}
		entries := []*raft.Log{recs(1, 0, "a"), recs(2, 1, big...), recs(3, 41, "b")}
		if err := f.store.StoreLogs(entries); err != nil {
			t.Fatal(err)
		}
		testutil.FillDisk(t, filepath.Join(dir, "filler"))
		resps := f.ApplyBatch(entries)
		if resps[0] != (applyResult{first: 0}) || resps[1] != (applyResult{first: 1}) || resps[2] != (applyResult{first: 41}) {
			t.Fatalf("apply on a full disk = %v", resps)
		}
		if b, err := f.read(41); err != nil || string(b) != "b" {
			t.Fatalf("read on a full disk = %q, %v", b, err)
		}
	})
}
