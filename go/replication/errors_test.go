package replication

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{ErrInvalidConfig, ErrNotLeader, ErrLeadershipLost, ErrTimeout, ErrClosed, ErrFailed,
		ErrDiverged, ErrNotCaughtUp, ErrBadEncoding, ErrNonContiguous, ErrDeleteRange, ErrKeyNotFound, ErrDataLogLost}
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

func TestNotLeaderError(t *testing.T) {
	err := fmt.Errorf("append: %w", &NotLeaderError{LeaderID: "n1", LeaderAddr: "10.0.0.1:8400"})
	var nl *NotLeaderError
	if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || !nl.NotLeader() {
		t.Fatal("NotLeaderError is not ErrNotLeader")
	}
	if !strings.Contains(err.Error(), "n1 at 10.0.0.1:8400") {
		t.Fatalf("message %q", err)
	}
	if msg := (&NotLeaderError{}).Error(); !strings.Contains(msg, "no leader") {
		t.Fatalf("message without leader %q", msg)
	}
	if errors.Is(err, ErrClosed) {
		t.Fatal("NotLeaderError is ErrClosed")
	}
}
