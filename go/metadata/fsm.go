package metadata

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// maxSnapshotBytes bounds a metadata snapshot read by Restore: metadata is
// topics and nodes, never records.
const maxSnapshotBytes = 64 << 20

// FSM is the metadata Raft group's state machine: a State behind a lock,
// changed only by Raft (Apply, Restore). Readers take a consistent view
// with View and wait for changes with Changed.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	changed chan struct{} // closed and replaced by every change
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns the state machine of an empty cluster.
func NewFSM() *FSM {
	return &FSM{state: &State{Nodes: map[string]*Node{}, Topics: map[string]*Topic{}}, changed: make(chan struct{})}
}

// Apply implements raft.FSM. The response is the command's error (nil
// if it was applied); a command that does not decode is such an error,
// the same on every replica.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := DecodeCommand(l.Data)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		// Still a command at this index: note it, so replays agree.
		f.state.Applied = max(f.state.Applied, l.Index)
		return fmt.Errorf("metadata entry %d: %w", l.Index, err)
	}
	err = f.state.Apply(l.Index, c)
	f.notify()
	return err
}

// Snapshot implements raft.FSM: the encoded state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := f.state.Encode()
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("metadata: restore: %w", err)
	}
	if len(b) > maxSnapshotBytes {
		return fmt.Errorf("%w: snapshot larger than %d bytes", ErrBadEncoding, maxSnapshotBytes)
	}
	s, err := DecodeState(b)
	if err != nil {
		return fmt.Errorf("metadata: restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = s
	f.notify()
	return nil
}

// View calls fn with the current state, which fn must not change or keep.
func (f *FSM) View(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Changed returns a channel closed at the next change of the state.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

func (f *FSM) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// snapshot is an encoded State.
type snapshot []byte

// Persist implements raft.FSMSnapshot.
func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("metadata: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (snapshot) Release() {}
