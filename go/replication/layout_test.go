package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

// A data directory of the single-log layout (a data log beside the Raft
// log) is refused, with the way to move the records, and left as it is.
func TestNewRefusesTheSingleLogLayout(t *testing.T) {
	n := &node{t: t, id: "old", dir: filepath.Join(t.TempDir(), "old"), mod: func(c *Config) { c.Bootstrap = true }}
	data := filepath.Join(n.dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	err := n.startErr()
	if !errors.Is(err, ErrOldLayout) || !strings.Contains(err.Error(), "proglog consume --from 0 | proglog produce") || !strings.Contains(err.Error(), data) {
		t.Fatalf("New on the single-log layout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "raft")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New created the raft directory beside the old layout: %v", err)
	}
}

// One copy of each record per replica: the bytes a node holds after a
// produce are about the bytes produced, not twice them.
func TestOneCopyOnDisk(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) {
		c.SnapshotInterval = time.Hour
		c.RaftLog.Segment.MaxIndexBytes = segment.FileHeaderSize + 4096*segment.IndexEntryWidth
	})
	waitLeader(t, n)
	ctx := ctxT(t)
	const (
		batches  = 100
		perBatch = 10
		size     = 4096
	)
	for b := range batches {
		recs := make([][]byte, perBatch)
		for i := range recs {
			recs[i] = []byte(fmt.Sprintf("%0*d", size, b*perBatch+i))
		}
		if _, err := n.AppendBatch(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	produced := uint64(batches * perBatch * size)
	held := dirBytes(t, n.dir)
	ratio := float64(held) / float64(produced)
	t.Logf("produced %d bytes, the node holds %d: %.3f", produced, held, ratio)
	if ratio > 1.1 {
		t.Fatalf("the node holds %.2f bytes per byte produced, want about 1", ratio)
	}
	if u := n.DiskUsage(); u.RaftLog < produced || u.Snapshots > 4096 {
		t.Fatalf("disk usage %+v: the records are not in the raft log alone", u)
	}
}

// A snapshot install in progress (the restored entries beside the Raft
// log's segments, and the segments they replace) is Other in DiskUsage, as
// documented, not Raft log: the Raft log's bound (doc.go, "Disk use")
// does not cover it, and TestRetentionRunsOnEveryReplica, checking that
// bound while a follower installed a snapshot, exceeded it under load.
func TestDiskUsageCountsInstallsAsOther(t *testing.T) {
	n := newNode(t, "solo", true, nil)
	waitLeader(t, n)
	l := n.Log
	n.stop() // nothing writes meanwhile
	before := l.DiskUsage()
	const size = 1000
	for _, dir := range []string{restoreDir, oldDir} {
		d := filepath.Join(n.dir, "raft", "log", dir)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "00000000000000000001.store"), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	after := l.DiskUsage()
	if after.RaftLog != before.RaftLog || after.Other != before.Other+2*size || after.Snapshots != before.Snapshots {
		t.Fatalf("disk usage %+v, then %+v with an install's %d bytes on each side: want them in Other", before, after, size)
	}
}

// Offsets are a function of the log: they continue across leader changes
// (each new leader's proposer starts from the applied end) and every
// replica reads the same record at each offset.
func TestOffsetsAcrossLeaderChanges(t *testing.T) {
	nodes := cluster(t, 3, nil)
	ctx := ctxT(t)
	next := 0
	for round := range 3 {
		leader := leaderOf(t, nodes)
		for range 5 {
			off, err := leader.Append(ctx, rec(next))
			if err != nil {
				t.Fatal(err)
			}
			if off != uint64(next) {
				t.Fatalf("round %d: append %d got offset %d", round, next, off)
			}
			next++
		}
		var to *node
		for _, n := range nodes {
			if n != leader {
				to = n
			}
		}
		if err := leader.raft.LeadershipTransferToServer(raft.ServerID(to.id), raft.ServerAddress(to.addr)).Error(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, to.id+" to lead", 10*time.Second, to.IsLeader)
	}
	for _, n := range nodes[1:] {
		sameData(t, nodes[0], n, uint64(next))
	}
	if _, err := leaderOf(t, nodes).Read(context.Background(), uint64(next-1), ReadLinearizable); err != nil {
		t.Fatal(err)
	}
}

// Every node lost its Raft log's tail (relaxed sync and a power loss,
// before any snapshot, which would have fsynced it): the cluster starts
// again with the entries the logs hold, no state machine stops, and new
// appends get the offsets after the records the leader's log holds, the
// same on every node.
func TestClusterRestartAfterEveryRaftLogLostItsTail(t *testing.T) {
	nodes := cluster(t, 3, func(c *Config) {
		c.SnapshotInterval = time.Hour
		c.RaftLog.Sync = seglog.SyncNever
	})
	ctx := ctxT(t)
	appendRecs(t, ctx, leaderOf(t, nodes), 20)
	for _, n := range nodes {
		waitData(t, n, 20)
	}
	for _, n := range nodes {
		n.stop()
	}
	for i, n := range nodes {
		dropSnapshots(t, n)
		l, err := seglog.Open(filepath.Join(n.dir, "raft", "log", segmentsDir), seglog.Config{InitialOffset: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.TruncateAfter(l.HighestOffset() - uint64(3+2*i)); err != nil { // a different tail on each
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		n.start()
	}
	leader := leaderOf(t, nodes)
	off, err := leader.Append(ctx, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if off > 20 || off < 10 {
		t.Fatalf("first append after the loss at offset %d", off)
	}
	for _, n := range nodes {
		got := waitData(t, n, off+1)
		if string(got[off]) != "after" {
			t.Fatalf("%s: offset %d holds %q", n.id, off, got[off])
		}
		for i := range off {
			if !bytes.Equal(got[i], rec(int(i))) {
				t.Fatalf("%s: offset %d holds %q, want %q", n.id, i, got[i], rec(int(i)))
			}
		}
		if err := n.Failed(); err != nil {
			t.Fatalf("%s: Failed() = %v", n.id, err)
		}
	}
}
