// Package raftutil holds what proglog's Raft groups — go/replication's
// partition replicas and go/metadata/group's metadata group — do alike
// with a hashicorp/raft instance: wait for a leader, and when they close,
// keep a snapshot of what was applied, hand leadership over, and shut Raft
// down without hanging.
package raftutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// ShutdownTimeout bounds how long Shutdown waits for Raft's goroutines.
const ShutdownTimeout = 5 * time.Second

// SnapshotNow takes a snapshot of what r applied, so the next start
// restores it before hearing from a leader; having nothing new to
// snapshot is not a failure, any other error is logged.
func SnapshotNow(r *raft.Raft, lg hclog.Logger) {
	if err := r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		lg.Warn("snapshot before close failed", "error", err)
	}
}

// HandOver transfers r's leadership to another voter if r leads a group
// that has one, so the group does not wait an election timeout; a failed
// transfer is logged.
func HandOver(r *raft.Raft, self string, lg hclog.Logger) {
	if r.State() != raft.Leader || !otherVoters(r, self) {
		return
	}
	if err := r.LeadershipTransfer().Error(); err != nil {
		lg.Warn("leadership transfer before close failed", "error", err)
	}
}

func otherVoters(r *raft.Raft, self string) bool {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != raft.ServerID(self) {
			return true
		}
	}
	return false
}

// Shutdown shuts r down, waiting at most ShutdownTimeout: hashicorp/raft
// waits for its replication goroutines, which can stay blocked on a
// pipeline to a peer (seen in the fault tests after network partitions).
// Everything the node acknowledged is durable by then, so the caller
// closes its transport and stores anyway; the timeout is logged, not
// returned.
func Shutdown(r *raft.Raft, lg hclog.Logger) error {
	stopped := make(chan error, 1)
	f := r.Shutdown()
	go func() { stopped <- f.Error() }()
	select {
	case err := <-stopped:
		if err != nil {
			return fmt.Errorf("shutdown raft: %w", err)
		}
	case <-time.After(ShutdownTimeout):
		lg.Warn("raft did not stop in time; closing its transport and stores anyway", "after", ShutdownTimeout)
	}
	return nil
}

// WaitForLeader calls leader every 10ms until it names one (returning its
// ID and address), ctx is done (ctx.Err()), or done is closed (closed).
func WaitForLeader(ctx context.Context, done <-chan struct{}, closed error, leader func() (id, addr string)) (string, string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, addr := leader(); id != "" {
			return id, addr, nil
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-done:
			return "", "", closed
		case <-t.C:
		}
	}
}
