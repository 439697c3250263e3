package commitlog_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
)

func TestParseConsistency(t *testing.T) {
	for in, want := range map[string]commitlog.Consistency{
		"linearizable": commitlog.ConsistencyLinearizable,
		"Follower":     commitlog.ConsistencyFollower,
		" follower ":   commitlog.ConsistencyFollower,
	} {
		got, err := commitlog.ParseConsistency(in)
		if err != nil || got != want || !got.Valid() {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, err := commitlog.ParseConsistency(got.String()); err != nil || again != got {
			t.Errorf("round trip of %v: %v, %v", got, again, err)
		}
	}
	for _, in := range []string{"", "strong", "eventual"} {
		if _, err := commitlog.ParseConsistency(in); !errors.Is(err, commitlog.ErrUnknownConsistency) {
			t.Errorf("ParseConsistency(%q): %v, want ErrUnknownConsistency", in, err)
		}
	}
	if var0 := commitlog.Consistency(0); var0 != commitlog.ConsistencyLinearizable {
		t.Error("the zero value must be the safe default, linearizable")
	}
	if c := commitlog.Consistency(9); c.Valid() || c.String() != "Consistency(9)" {
		t.Errorf("Consistency(9): valid %v, %q", c.Valid(), c)
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{commitlog.ErrNotLeader, commitlog.ErrLeadershipLost, commitlog.ErrUnavailable, commitlog.ErrUnknownConsistency}
	for i, a := range all {
		if !strings.HasPrefix(a.Error(), "commitlog: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%q is %q", a, b)
			}
		}
	}
}

func TestNotLeaderError(t *testing.T) {
	err := fmt.Errorf("append: %w", &commitlog.NotLeaderError{LeaderID: "n1", LeaderAddr: "10.0.0.1:8400"})
	var nl *commitlog.NotLeaderError
	if !errors.Is(err, commitlog.ErrNotLeader) || !errors.As(err, &nl) || !nl.NotLeader() {
		t.Fatal("NotLeaderError is not ErrNotLeader")
	}
	if !strings.Contains(err.Error(), "n1 at 10.0.0.1:8400") {
		t.Fatalf("message %q", err)
	}
	if msg := (&commitlog.NotLeaderError{}).Error(); !strings.Contains(msg, "no leader") {
		t.Fatalf("message without leader %q", msg)
	}
	if errors.Is(err, commitlog.ErrUnavailable) {
		t.Fatal("NotLeaderError is ErrUnavailable")
	}
}
