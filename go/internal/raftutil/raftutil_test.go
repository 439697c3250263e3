package raftutil

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

var errClosed = errors.New("closed")

// WaitForLeader returns the leader once one is named, and otherwise ends
// with the context's error or the closed error, whichever comes first.
func TestWaitForLeader(t *testing.T) {
	var calls atomic.Int32
	leader := func() (string, string) {
		if calls.Add(1) < 3 { // no leader on the first two polls
			return "", ""
		}
		return "n1", "127.0.0.1:1"
	}
	id, addr, err := WaitForLeader(context.Background(), nil, errClosed, leader)
	if err != nil || id != "n1" || addr != "127.0.0.1:1" || calls.Load() != 3 {
		t.Fatalf("WaitForLeader = %q, %q, %v after %d polls; want n1 after 3", id, addr, err, calls.Load())
	}

	none := func() (string, string) { return "", "" }
	done := make(chan struct{})
	close(done)
	if _, _, err := WaitForLeader(context.Background(), done, errClosed, none); !errors.Is(err, errClosed) {
		t.Fatalf("closed: %v, want %v", err, errClosed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := WaitForLeader(ctx, nil, errClosed, none); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}
