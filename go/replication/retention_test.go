package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

func retainCmd(index, lowest uint64) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeRetain(lowest)}
}

// openSegFSM opens an FSM whose data log has segments of segBytes.
func openSegFSM(t *testing.T, dir string, segBytes uint64) *fsm {
	t.Helper()
	c := seglog.Config{MaxRecordBytes: 100}
	c.Segment.MaxStoreBytes = segBytes
	f, _, err := openFSM(dir, c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close() })
	return f
}

// fill applies commands 1..n of one 40-byte record each.
func fill(t *testing.T, f *fsm, n int) {
	t.Helper()
	var cmds []*raft.Log
	for i := 1; i <= n; i++ {
		cmds = append(cmds, cmd(uint64(i), fmt.Sprintf("%040d", i-1)))
	}
	for _, r := range f.ApplyBatch(cmds) {
		if _, ok := r.(applyResult); !ok {
			t.Fatalf("append response %v", r)
		}
	}
}

func storeFiles(t *testing.T, f *fsm) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(f.dir, dataDir, "*.store"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func checkLowest(t *testing.T, f *fsm, lowest uint64) {
	t.Helper()
	if got := f.lowestOffset(); got != lowest {
		t.Fatalf("lowest offset %d, want %d", got, lowest)
	}
	var oor *seglog.OffsetOutOfRangeError
	if _, err := f.read(lowest - 1); !errors.As(err, &oor) || oor.Lowest != lowest || oor.Next != f.nextOffset() {
		t.Fatalf("read %d below the lowest offset: %v", lowest-1, err)
	}
	if b, err := f.read(lowest); err != nil || string(b) != fmt.Sprintf("%040d", lowest) {
		t.Fatalf("read %d = %q, %v", lowest, b, err)
	}
}

// Replicas whose segment boundaries differ drop exactly the agreed prefix:
// whole segments below it go, the records below it in a segment that
// straddles it are refused, after a restart too, and snapshots start there.
func TestFSMRetentionDropsTheAgreedPrefix(t *testing.T) {
	for _, segBytes := range []uint64{256, 300, 1000} {
		t.Run(fmt.Sprint(segBytes), func(t *testing.T) {
			dir := t.TempDir()
			f := openSegFSM(t, dir, segBytes)
			fill(t, f, 60)
			files := storeFiles(t, f)
			resps := f.ApplyBatch([]*raft.Log{cmd(61, "x"), retainCmd(62, 23), cmd(63, "y")})
			if resps[1] != (retentionResult{}) {
				t.Fatalf("retention response %v", resps[1])
			}
			checkLowest(t, f, 23)
			if got := storeFiles(t, f); got >= files {
				t.Fatalf("%d store files before and %d after retention", files, got)
			}
			if f.removed.Load() != 23 {
				t.Fatalf("removed %d records, want 23", f.removed.Load())
			}

			// Replays of it and of older commands change nothing.
			f.ApplyBatch([]*raft.Log{retainCmd(62, 23), retainCmd(50, 10)})
			checkLowest(t, f, 23)

			// A retention past the end of the data log is refused.
			resps = f.ApplyBatch([]*raft.Log{retainCmd(64, 200)})
			if err, ok := resps[0].(error); !ok || !strings.Contains(err.Error(), "data log ends at") {
				t.Fatalf("retention past the end: %v", resps[0])
			}
			checkLowest(t, f, 23)

			// After a restart.
			if err := f.close(); err != nil {
				t.Fatal(err)
			}
			f = openSegFSM(t, dir, segBytes)
			checkLowest(t, f, 23)

			// A snapshot starts at the agreed lowest offset.
			dst := openSegFSM(t, t.TempDir(), 512)
			if err := dst.Restore(io.NopCloser(bytes.NewReader(fullSnapshot(t, f)))); err != nil {
				t.Fatal(err)
			}
			checkLowest(t, dst, 23)
			if dst.nextOffset() != f.nextOffset() {
				t.Fatalf("restored next %d, want %d", dst.nextOffset(), f.nextOffset())
			}
		})
	}
}

// A crash after the lowest offset was persisted but before the segments
// below it were removed: reopening finishes the removal.
func TestFSMFinishesInterruptedRetention(t *testing.T) {
	dir := t.TempDir()
	f := openSegFSM(t, dir, 256)
	fill(t, f, 60)
	files := storeFiles(t, f)
	if err := f.setLowest(30); err != nil {
		t.Fatal(err)
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	f = openSegFSM(t, dir, 256)
	checkLowest(t, f, 30)
	if got := storeFiles(t, f); got >= files {
		t.Fatalf("%d store files before and %d after reopening", files, got)
	}
}

func TestRetainCommandRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 1 << 40} {
		b := encodeRetain(v)
		if !isRetain(b) {
			t.Fatalf("isRetain(%x) false", b)
		}
		if got, err := decodeRetain(b); err != nil || got != v {
			t.Fatalf("decodeRetain = %d, %v; want %d", got, err, v)
		}
	}
	if isRetain(encodeAppend([][]byte{{1}})) || isRetain(nil) {
		t.Fatal("an append command is a retention command")
	}
	for name, b := range map[string][]byte{
		"append":    encodeAppend([][]byte{{1}}),
		"truncated": {cmdRetain},
		"trailing":  append(encodeRetain(5), 0),
	} {
		if _, err := decodeRetain(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: decodeRetain error %v", name, err)
		}
	}
}

// dirBytes is the total size of the files under dir (what du --apparent
// would say), walked independently of Log.DiskUsage.
func dirBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var n uint64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed during the walk
		}
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			n += uint64(fi.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// retentionConfig has tiny segments, retention and Raft log thresholds;
// n1's data segments differ in size from the others'.
func retentionConfig(c *Config) {
	c.DataLog.MaxRecordBytes = 512
	c.DataLog.Segment.MaxStoreBytes = 4096
	if c.LocalID == "n1" {
		c.DataLog.Segment.MaxStoreBytes = 3000
	}
	c.DataLog.Segment.MaxIndexBytes = segment.FileHeaderSize + 64*segment.IndexEntryWidth
	c.DataLog.Retention.MaxBytes = 16 << 10
	c.RetentionInterval = time.Hour // only a new data segment triggers it here
	c.RaftLog.MaxRecordBytes = 4096
	c.RaftLog.Segment.MaxStoreBytes = 8192
	c.RaftLog.Segment.MaxIndexBytes = segment.FileHeaderSize + 256*segment.IndexEntryWidth
	c.SnapshotThreshold = 1 << 20 // never by entries: by bytes only
	c.SnapshotThresholdBytes = 16 << 10
	c.TrailingBytes = 8 << 10
}

// diskBound is the bound documented in doc.go ("Disk use") for c, with
// sd the largest data segment of the cluster and minRecord the smallest
// data record (for the index entries of sealed segments, 12 bytes each).
func diskBound(c Config, sd, minRecord uint64) uint64 {
	r, sr := c.DataLog.Retention.MaxBytes, c.RaftLog.Segment.MaxStoreBytes
	data := r + 2*sd
	raftLog := c.TrailingBytes + c.SnapshotThresholdBytes + 2*sr
	snaps := uint64(c.SnapshotRetain+1) * (data + 4096) // + header and meta.json
	index := 12*(data/minRecord+raftLog/sr+1) + c.DataLog.Segment.MaxIndexBytes + c.RaftLog.Segment.MaxIndexBytes
	return data + raftLog + snaps + index + 4096 // + stable store, first_index, data.lowest
}

// The retention-never-runs bug: with retention configured, a cluster that
// is sent many times its retention keeps every node's disk under the
// documented bound, and every replica (segment sizes differ; one was down
// meanwhile and catches up from a snapshot) ends with the same lowest
// offset, refusing reads below it with its bounds.
func TestRetentionRunsOnEveryReplica(t *testing.T) {
	nodes := cluster(t, 3, retentionConfig)
	leader := leaderOf(t, nodes)
	var down *node // a follower stopped for the middle of the run
	for _, n := range nodes {
		if n != leader {
			down = n
		}
	}
	var cfg Config
	cfg.LocalID = "n0"
	cfg.SnapshotRetain = DefaultSnapshotRetain
	retentionConfig(&cfg)
	const (
		batches  = 200
		perBatch = 10
		size     = 100
	)
	bound := diskBound(cfg, cfg.DataLog.Segment.MaxStoreBytes, size+segment.RecordHeaderSize)
	sent := uint64(batches * perBatch * size)
	if sent < 8*cfg.DataLog.Retention.MaxBytes {
		t.Fatalf("the test sends only %d bytes", sent)
	}
	payload := func(off int) []byte { return fmt.Appendf(nil, "%0*d", size, off) }
	var peak uint64
	for b := range batches {
		switch b {
		case batches / 4:
			down.stop()
		case 3 * batches / 4:
			down.start()
		}
		var recs [][]byte
		for i := range perBatch {
			recs = append(recs, payload(b*perBatch+i))
		}
		if _, err := leader.AppendBatch(ctxT(t), recs); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if got := dirBytes(t, n.dir); got > bound {
				t.Fatalf("after %d batches %s holds %d bytes, above the bound %d", b+1, n.id, got, bound)
			} else {
				peak = max(peak, got)
			}
			if n.Log == nil {
				continue
			}
			// The Raft log alone: TrailingBytes + SnapshotThresholdBytes +
			// 2 segments, plus its active index.
			raftBound := cfg.TrailingBytes + cfg.SnapshotThresholdBytes + 2*cfg.RaftLog.Segment.MaxStoreBytes + cfg.RaftLog.Segment.MaxIndexBytes + 1024
			if u := n.DiskUsage(); u.RaftLog > raftBound {
				t.Fatalf("after %d batches %s's Raft log holds %d bytes, above %d", b+1, n.id, u.RaftLog, raftBound)
			}
		}
	}
	t.Logf("sent %d bytes; peak disk use of a node %d, bound %d", sent, peak, bound)

	const total = batches * perBatch
	var lowest uint64
	testutil.Eventually(t, "every replica to agree on the lowest offset", 20*time.Second, func() bool {
		lowest = leader.LowestOffset()
		for _, n := range nodes {
			if n.LowestOffset() != lowest || n.NextOffset() != total {
				return false
			}
		}
		return lowest > 0
	})
	if kept := (total - lowest) * size; kept > cfg.DataLog.Retention.MaxBytes+2*cfg.DataLog.Segment.MaxStoreBytes {
		t.Fatalf("lowest offset %d keeps %d bytes of records", lowest, kept)
	}
	// Snapshots reference the data log: the leader, which never installed
	// one, stores no copy of the records.
	if u := leader.DiskUsage(); u.Snapshots > uint64(cfg.SnapshotRetain)*4096 {
		t.Fatalf("the leader's snapshots take %d bytes", u.Snapshots)
	}
	if got, err := leader.ApplyRetention(ctxT(t)); err != nil || got != lowest {
		t.Fatalf("ApplyRetention on the leader = %d, %v; want %d", got, err, lowest)
	}
	if _, err := down.ApplyRetention(ctxT(t)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ApplyRetention on a follower: %v", err)
	}
	for _, n := range nodes {
		var oor *seglog.OffsetOutOfRangeError
		_, err := n.Read(context.Background(), lowest-1, ReadFollower)
		if !errors.As(err, &oor) || oor.Lowest < lowest || oor.Next != total {
			t.Fatalf("%s: read %d below the lowest offset %d: %v", n.id, lowest-1, lowest, err)
		}
		if b, err := n.Read(context.Background(), total-1, ReadFollower); err != nil || !bytes.Equal(b, payload(total-1)) {
			t.Fatalf("%s: read %d = %q, %v", n.id, total-1, b, err)
		}
		if n != down && n.RetentionRemoved() != lowest {
			t.Fatalf("%s: retention removed %d records, lowest offset %d", n.id, n.RetentionRemoved(), lowest)
		}
	}
}
