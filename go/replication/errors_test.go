package replication

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
)

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{ErrInvalidConfig, ErrLeadershipLost, ErrTimeout, ErrClosed, ErrFailed,
		ErrDiverged, ErrNotCaughtUp, ErrBadEncoding, ErrNonContiguous, ErrDeleteRange, ErrKeyNotFound, ErrOldLayout, ErrRecordGone}
	for i, a := range all {
		if a != ErrKeyNotFound && !strings.HasPrefix(a.Error(), "replication: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%q is %q", a, b)
			}
		}
	}
	if ErrKeyNotFound.Error() != "not found" {
		t.Error("raft recognises a missing stable key by the text \"not found\"")
	}
}

// ErrNotLeader is the port's, so errors.Is finds it in a
// *commitlog.NotLeaderError.
func TestNotLeaderError(t *testing.T) {
	err := fmt.Errorf("append: %w", &commitlog.NotLeaderError{LeaderID: "n1", LeaderAddr: "10.0.0.1:8400"})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatal("NotLeaderError is not ErrNotLeader")
	}
	for _, other := range []error{ErrClosed, ErrLeadershipLost, ErrFailed} {
		if errors.Is(err, other) || errors.Is(other, ErrNotLeader) {
			t.Fatalf("ErrNotLeader and %q mixed", other)
		}
	}
}
