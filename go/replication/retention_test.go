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
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

func retainCmd(index, lowest uint64) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeRetain(lowest)}
}

// openSegFSM opens a state machine over a record store of segBytes
// segments.
func openSegFSM(t *testing.T, dir string, segBytes uint64) *testFSM {
	t.Helper()
	c := seglog.Config{MaxRecordBytes: 100, Sync: seglog.SyncNever}
	c.Segment.MaxStoreBytes = segBytes
	s, err := openRecordStore(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFSM{t: t, dir: dir, store: s, done: make(chan struct{})}
	tf.fsm = newFSM(s, hclog.NewNullLogger(), tf.done)
	t.Cleanup(tf.close)
	return tf
}

// fill applies commands 1..n of one 40-byte record each.
func fill(t *testing.T, f *testFSM, n int) {
	t.Helper()
	var cmds []*raft.Log
	for i := 1; i <= n; i++ {
		cmds = append(cmds, recs(uint64(i), uint64(i-1), fmt.Sprintf("%040d", i-1)))
	}
	for _, r := range f.apply(cmds...) {
		if _, ok := r.(applyResult); !ok {
			t.Fatalf("append response %v", r)
		}
	}
}

func storeFiles(t *testing.T, f *testFSM) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(f.dir, segmentsDir, "*.store"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func checkLowest(t *testing.T, f *fsm, lowest uint64) {
	t.Helper()
	if got := f.lowest.Load(); got != lowest {
		t.Fatalf("lowest offset %d, want %d", got, lowest)
	}
	var oor *seglog.OffsetOutOfRangeError
	if _, err := f.read(lowest - 1); !errors.As(err, &oor) || oor.Lowest != lowest || oor.Next != f.next.Load() {
		t.Fatalf("read %d below the lowest offset: %v", lowest-1, err)
	}
	for off := lowest; off < f.next.Load(); off++ {
		want := fmt.Sprintf("%040d", off)
		if off >= 60 {
			want = "x"
		}
		if b, err := f.read(off); err != nil || string(b) != want {
			t.Fatalf("read %d = %q, %v", off, b, err)
		}
	}
}

// Retention and compaction are one mechanism: a retention command raises
// the agreed lowest offset (reads below it refused at once), and the
// entries below the first one holding it go once Raft has compacted them —
// whichever comes first — in whole segments whatever a replica's segment
// size; Raft's compaction alone never removes a record at or above it.
func TestFSMRetentionDropsTheAgreedPrefix(t *testing.T) {
	for _, segBytes := range []uint64{256, 300, 1000} {
		t.Run(fmt.Sprint(segBytes), func(t *testing.T) {
			f := openSegFSM(t, t.TempDir(), segBytes)
			fill(t, f, 60)
			files := storeFiles(t, f)
			// Raft compacts everything but the last entry (a snapshot):
			// without retention, every record stays.
			if err := f.store.DeleteRange(1, 59); err != nil {
				t.Fatal(err)
			}
			if got := storeFiles(t, f); got != files {
				t.Fatalf("compaction without retention removed segments: %d, was %d", got, files)
			}
			resps := f.apply(recs(61, 60, "x"), retainCmd(62, 23), recs(63, 61, "x"))
			if resps[1] != (retentionResult{}) {
				t.Fatalf("retention response %v", resps[1])
			}
			checkLowest(t, f.fsm, 23)
			if got := storeFiles(t, f); got >= files {
				t.Fatalf("%d store files before and %d after retention", files, got)
			}
			first, _ := f.store.FirstIndex()
			if first > 24 { // entry 24 holds offset 23
				t.Fatalf("first index %d: the entry holding the lowest offset is gone", first)
			}
			if f.removed.Load() != 23 {
				t.Fatalf("removed %d records, want 23", f.removed.Load())
			}

			// Replays of it and of older commands change nothing.
			f.ApplyBatch([]*raft.Log{retainCmd(62, 23), retainCmd(50, 10)})
			checkLowest(t, f.fsm, 23)

			// A retention past the end of the records is refused.
			resps = f.ApplyBatch([]*raft.Log{retainCmd(64, 200)})
			if err, ok := resps[0].(error); !ok || !strings.Contains(err.Error(), "records end at") {
				t.Fatalf("retention past the end: %v", resps[0])
			}
			checkLowest(t, f.fsm, 23)

			// After a restart: the snapshot's state, the log's records.
			snap := snapshotOf(t, f.fsm)
			f.close()
			g := openSegFSM(t, f.dir, segBytes)
			if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
				t.Fatal(err)
			}
			checkLowest(t, g.fsm, 23)
		})
	}
}

// Retention before Raft compacts: the lowest offset rises at once, the
// entries stay until Raft compacted them (a restart replays the entries
// after the latest snapshot), then go.
func TestFSMRetentionWaitsForCompaction(t *testing.T) {
	f := openSegFSM(t, t.TempDir(), 256)
	fill(t, f, 60)
	files := storeFiles(t, f)
	f.apply(retainCmd(61, 30))
	checkLowest(t, f.fsm, 30)
	if got := storeFiles(t, f); got != files {
		t.Fatalf("retention removed segments Raft still needs: %d, was %d", got, files)
	}
	// Raft compacts up to the snapshot, keeping at least one entry.
	if err := f.store.DeleteRange(1, 60); err != nil {
		t.Fatal(err)
	}
	if got := storeFiles(t, f); got >= files {
		t.Fatalf("%d store files before and %d after compaction", files, got)
	}
	checkLowest(t, f.fsm, 30)
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
	one := [][]byte{{1}}
	if isRetain(encodeRecords(0, 1, Producer{}, producer.Config{}, one)) || isRetain(nil) {
		t.Fatal("a records command is a retention command")
	}
	for name, b := range map[string][]byte{
		"records":   encodeRecords(0, 1, Producer{}, producer.Config{}, one),
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
// n1's segments differ in size from the others'.
func retentionConfig(c *Config) {
	c.MaxRecordBytes = 512
	c.RaftLog.MaxRecordBytes = 4096
	c.RaftLog.Segment.MaxStoreBytes = 8192
	if c.LocalID == "n1" {
		c.RaftLog.Segment.MaxStoreBytes = 6000
	}
	c.RaftLog.Segment.MaxIndexBytes = segment.FileHeaderSize + 256*segment.IndexEntryWidth
	c.Retention.MaxBytes = 16 << 10
	c.RetentionInterval = time.Hour // only a new segment triggers it here
	c.SnapshotThreshold = 1 << 20   // never by entries: by bytes only
	c.SnapshotThresholdBytes = 16 << 10
	c.TrailingBytes = 8 << 10
}

// raftLogBound is the Raft log's bound documented in doc.go ("Disk use").
func raftLogBound(c Config) uint64 {
	return c.Retention.MaxBytes + c.TrailingBytes + c.SnapshotThresholdBytes + 2*c.RaftLog.Segment.MaxStoreBytes
}

// diskBound is the bound documented in doc.go ("Disk use") for c, with
// minEntry the smallest entry (for the index entries of sealed segments,
// 12 bytes each).
func diskBound(c Config, minEntry uint64) uint64 {
	raftLog := raftLogBound(c)
	snaps := uint64(c.SnapshotRetain+1) * (raftLog + 4096) // + header and meta.json
	index := 12*(raftLog/minEntry+1) + c.RaftLog.Segment.MaxIndexBytes
	return raftLog + snaps + index + 4096 // + stable store, first_index
}

// appendAtLeader appends recs as p through whichever node leads, again
// after a leadership change (on a loaded machine a leader can lose its
// lease mid-run); p's sequence makes a retry of a batch that got in a
// duplicate, so the offsets are the same as without the change.
func appendAtLeader(t *testing.T, nodes []*node, p Producer, recs [][]byte) {
	t.Helper()
	for {
		_, _, err := leaderOf(t, nodes).AppendIdempotent(ctxT(t), p, recs)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
			t.Fatal(err)
		}
	}
}

// The retention-never-runs bug: with retention configured, a cluster that
// is sent many times its retention keeps every node's disk under the
// documented bound, and every replica (segment sizes differ; one was down
// meanwhile and catches up from a snapshot) ends with the same lowest
// offset, refusing reads below it with its bounds.
//
// A replica that restored a snapshot did not apply the retention commands
// it covers, so only the others' RetentionRemoved is the lowest offset:
// besides the stopped one, a follower on a loaded machine may fall behind
// the leader's compacted log and catch up from a snapshot too.
func TestRetentionRunsOnEveryReplica(t *testing.T) {
	restores := map[string]*atomic.Uint64{"n0": {}, "n1": {}, "n2": {}}
	nodes := cluster(t, 3, func(c *Config) {
		retentionConfig(c)
		r := restores[c.LocalID]
		c.afterRestore = func() { r.Add(1) }
	})
	leader := leaderOf(t, nodes)
	var down *node // a follower (at first) stopped for the middle of the run
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
	bound := diskBound(cfg, perBatch*size+segment.RecordHeaderSize)
	sent := uint64(batches * perBatch * size)
	if sent < 8*cfg.Retention.MaxBytes {
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
		appendAtLeader(t, nodes, asProducer(1, uint64(b*perBatch), recs), recs)
		for _, n := range nodes {
			if got := dirBytes(t, n.dir); got > bound {
				t.Fatalf("after %d batches %s holds %d bytes, above the bound %d", b+1, n.id, got, bound)
			} else {
				peak = max(peak, got)
			}
			if n.Log == nil {
				continue
			}
			// The Raft log alone, plus its active index.
			raftBound := raftLogBound(cfg) + cfg.RaftLog.Segment.MaxIndexBytes + 1024
			if u := n.DiskUsage(); u.RaftLog > raftBound {
				t.Fatalf("after %d batches %s's Raft log holds %d bytes, above %d", b+1, n.id, u.RaftLog, raftBound)
			}
		}
	}
	t.Logf("sent %d bytes; peak disk use of a node %d, bound %d", sent, peak, bound)

	const total = batches * perBatch
	testutil.Eventually(t, "retention to run by itself on every replica", 20*time.Second, func() bool {
		for _, n := range nodes {
			if n.LowestOffset() == 0 {
				return false
			}
		}
		return true
	})
	// The leader's loop may still be proposing for the last segments: the
	// lowest offset a fresh ApplyRetention leaves in place is the end.
	var lowest uint64
	testutil.Eventually(t, "every replica to agree on the lowest offset", 20*time.Second, func() bool {
		got, err := leaderOf(t, nodes).ApplyRetention(ctxT(t))
		if err != nil {
			return false
		}
		lowest = got
		for _, n := range nodes {
			if n.LowestOffset() != lowest || n.NextOffset() != total {
				return false
			}
		}
		return true
	})
	if kept := (total - lowest) * size; kept > cfg.Retention.MaxBytes+2*cfg.RaftLog.Segment.MaxStoreBytes {
		t.Fatalf("lowest offset %d keeps %d bytes of records", lowest, kept)
	}
	for _, n := range nodes {
		// Only the leader applies retention; a node that became leader
		// since the loop above leaves the same lowest offset in place.
		if got, err := n.ApplyRetention(ctxT(t)); !errors.Is(err, ErrNotLeader) && (err != nil || got != lowest) {
			t.Fatalf("%s: ApplyRetention = %d, %v; want %d or ErrNotLeader", n.id, got, err, lowest)
		}
		// Snapshots hold the small state: a node that never restored one
		// stores no copy of the records.
		if u := n.DiskUsage(); restores[n.id].Load() == 0 && u.Snapshots > uint64(cfg.SnapshotRetain)*4096 {
			t.Fatalf("%s's snapshots take %d bytes", n.id, u.Snapshots)
		}
		var oor *seglog.OffsetOutOfRangeError
		_, err := n.Read(context.Background(), lowest-1, ReadFollower)
		if !errors.As(err, &oor) || oor.Lowest < lowest || oor.Next != total {
			t.Fatalf("%s: read %d below the lowest offset %d: %v", n.id, lowest-1, lowest, err)
		}
		if b, err := n.Read(context.Background(), total-1, ReadFollower); err != nil || !bytes.Equal(b, payload(total-1)) {
			t.Fatalf("%s: read %d = %q, %v", n.id, total-1, b, err)
		}
		restored := restores[n.id].Load()
		t.Logf("%s: %d snapshots restored, retention removed %d records", n.id, restored, n.RetentionRemoved())
		if removed := n.RetentionRemoved(); removed > lowest || restored == 0 && removed != lowest {
			t.Fatalf("%s: retention removed %d records, lowest offset %d (%d snapshots restored)", n.id, removed, lowest, restored)
		}
	}
}
