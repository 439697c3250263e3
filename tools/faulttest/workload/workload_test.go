package workload

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/tools/faulttest/history"
)

// A produce refused for a full disk (RESOURCE_EXHAUSTED, LOW_DISK_SPACE)
// proves nothing was written: refused, not ambiguous. Other failures
// without such proof stay ambiguous.
func TestClassifyLowDiskSpace(t *testing.T) {
	lowDisk, err := status.New(codes.ResourceExhausted, "the server's disk is nearly full").
		WithDetails(&errdetails.ErrorInfo{Reason: "LOW_DISK_SPACE", Domain: "proglog"})
	if err != nil {
		t.Fatal(err)
	}
	w := &Workload{}
	for _, tc := range []struct {
		name string
		err  error
		want history.Outcome
	}{
		{"low disk space", lowDisk.Err(), history.Failed},
		{"resource exhausted without a reason", status.Error(codes.ResourceExhausted, "busy"), history.Unknown},
		{"internal", status.Error(codes.Internal, "internal error"), history.Unknown},
		{"not a status", errors.New("connection reset"), history.Unknown},
	} {
		if got, _ := w.classify(tc.err, nil); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
