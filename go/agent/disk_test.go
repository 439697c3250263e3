package agent_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/internal/testutil"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// lowDiskSpace reports whether err is the refusal of a write for lack of
// disk space: RESOURCE_EXHAUSTED with reason LOW_DISK_SPACE.
func lowDiskSpace(err error) bool {
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == "LOW_DISK_SPACE" {
			return true
		}
	}
	return false
}

// TestFullDisk runs one node on a small tmpfs: (a) produces until the disk
// reaches the watermark, which answers RESOURCE_EXHAUSTED while reads
// still work; (b) fills the disk to the last byte with another file: still
// no crash, reads work; (d) restarts the node on the full disk: it starts
// (hashicorp/raft used to panic, unable to save the new term) and serves
// reads; (c) frees the space: produces succeed again without a
// restart.
func TestFullDisk(t *testing.T) {
	testutil.InTmpfs(t, 48<<20, func(dir string) {
		e := newEnv(t) // certificates stay off the small disk
		ctx := ctxT(t, 2*time.Minute)
		ballast := filepath.Join(dir, "ballast")
		if err := os.WriteFile(ballast, make([]byte, 12<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := e.config("solo")
		cfg.DataDir = filepath.Join(dir, "solo")
		cfg.Bootstrap = true
		cfg.MinFreeBytes = 8 << 20
		n := e.start(cfg)
		n.waitReady()

		// (a) Fill the disk by producing.
		big := make([]byte, 64<<10)
		produced := 0
		for ; ; produced++ {
			_, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: big}})
			if lowDiskSpace(err) {
				break
			}
			if err != nil {
				t.Fatalf("produce %d: %v, want success or RESOURCE_EXHAUSTED LOW_DISK_SPACE", produced, err)
			}
			if produced > 2000 {
				t.Fatal("2000 records of 64 KiB fit on a 48 MiB disk: the watermark never refused a produce")
			}
		}
		if produced == 0 {
			t.Fatal("no produce succeeded before the watermark")
		}
		t.Logf("%d records produced before the watermark", produced)
		readable := func(cons logv1.Consistency) {
			t.Helper()
			for _, off := range []uint64{0, uint64(produced - 1)} {
				got, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: off, Consistency: cons})
				if err != nil || len(got.Record.Value) != len(big) {
					t.Fatalf("consume %d (%v): %v", off, cons, err)
				}
			}
		}
		readable(logv1.Consistency_CONSISTENCY_LINEARIZABLE)
		// At the watermark the node snapshots its state machine while the
		// reserve has room: (d) restores it.
		testutil.Eventually(t, "a snapshot at the watermark", 10*time.Second, func() bool {
			s := n.a.Replica().Stats()["last_snapshot_index"]
			return s != "0" && s != ""
		})

		// (b) Fill it to the last byte with another file.
		filler := filepath.Join(dir, "filler")
		testutil.FillDisk(t, filler)
		if _, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); !lowDiskSpace(err) {
			t.Fatalf("produce on a full disk: %v, want RESOURCE_EXHAUSTED LOW_DISK_SPACE", err)
		}
		readable(logv1.Consistency_CONSISTENCY_LINEARIZABLE)
		if !n.a.IsLeader() {
			t.Fatal("the node lost its leadership on a full disk")
		}

		// (d) Restart on the full disk: filled again once the node has
		// stopped, since a clean stop trims its index files.
		n.stop()
		testutil.FillDisk(t, filler+"2")
		n = e.restart(n)
		readable(logv1.Consistency_CONSISTENCY_FOLLOWER)

		// (c) Free the space: produces succeed again, no restart.
		for _, p := range []string{filler, filler + "2", ballast} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		var off uint64
		testutil.Eventually(t, "a produce to succeed once space is freed", time.Minute, func() bool {
			resp, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}})
			if err != nil {
				switch status.Code(err) {
				case codes.ResourceExhausted, codes.Unavailable, codes.FailedPrecondition:
					return false // the watermark, or no leader yet
				}
				t.Fatalf("produce after freeing space: %v", err)
			}
			off = resp.Offset
			return true
		})
		if off != uint64(produced) {
			t.Fatalf("offset %d after freeing space, want %d", off, produced)
		}
		got, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
		if err != nil || string(got.Record.Value) != "after" {
			t.Fatalf("consume %d: %v, %v", off, got, err)
		}
		if err := n.a.Replica().Failed(); err != nil {
			t.Fatalf("replica failed: %v", err)
		}
	})
}
