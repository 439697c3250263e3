package agent_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/internal/testutil"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TestRetentionThroughTheAPI: a node configured with retention drops old
// records by itself, and consuming below them answers OUT_OF_RANGE with the
// log's bounds.
func TestRetentionThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	cfg := e.config("solo")
	cfg.Bootstrap = true
	// The records live in the Raft log, whose segments hold at least two of
	// its largest entries (a whole request: about 18 MiB here); retention
	// removes whole segments, the active one never.
	cfg.SegmentBytes = 2 << 20 // raised to the Raft log's floor
	cfg.Retention.MaxBytes = 8192
	n := e.start(cfg)
	n.waitReady()
	const count = 80 // 80 records of 512 KiB: two segments and more
	pad := make([]byte, 512<<10)
	for i := range count {
		rec := append(value(i), pad...)
		if _, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: rec}}); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	var info *errdetails.ErrorInfo
	testutil.Eventually(t, "offset 0 to be out of range", 20*time.Second, func() bool {
		_, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER})
		if !isOutOfRange(err) {
			return false
		}
		st, _ := status.FromError(err)
		for _, d := range st.Details() {
			if i, ok := d.(*errdetails.ErrorInfo); ok {
				info = i
			}
		}
		return true
	})
	// Retention ran by itself. It may still be running (the leader applies
	// it as its data log gains segments): once more now brings it to its
	// end for these records, so the bounds read again stay put.
	if _, err := n.a.Replica().ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER})
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.Reason != "OFFSET_OUT_OF_RANGE" || info.Metadata["next"] != strconv.Itoa(count) {
		t.Fatalf("OUT_OF_RANGE details %v", info)
	}
	lowest, err := strconv.Atoi(info.Metadata["lowest"])
	if err != nil || lowest <= 0 || lowest >= count {
		t.Fatalf("lowest offset %q", info.Metadata["lowest"])
	}
	got, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(lowest)})
	if err != nil || !strings.HasPrefix(string(got.Record.Value), string(value(lowest))) {
		t.Fatalf("consume the lowest offset %d: %v, %v", lowest, got, err)
	}
	resp, err := http.Get("http://" + n.a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"proglog_log_lowest_offset " + info.Metadata["lowest"], "proglog_retention_removed_records_total " + info.Metadata["lowest"]} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}
