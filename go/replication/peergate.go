package replication

import (
	"errors"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// Errors returned to a request PeerGate held for a peer.
var (
	// errReplaced: a newer request for the same peer arrived; only a
	// replication goroutine of an earlier leadership of this node can
	// still be waiting then.
	errReplaced = errors.New("replication: request to an unreachable peer replaced by a newer one")
	// errForgotten: the peer was removed from the group (Forget).
	errForgotten = errors.New("replication: request to an unreachable peer dropped: the peer left the group")
)

// PeerGate wraps a Raft group's raft.NetworkTransport so that a peer that
// was down gets its entries as soon as it answers again, instead of after
// hashicorp/raft's replication backoff (see the package documentation,
// "Catching up after a restart").
//
// It notes, per peer address, whether the peer's last AppendEntries or
// InstallSnapshot succeeded. While a peer is known unreachable, a
// non-heartbeat AppendEntries or an InstallSnapshot to it waits, instead
// of failing, until a heartbeat (or any other request) to the peer
// succeeds, a newer request to the same peer replaces it (errReplaced),
// the peer is forgotten (Forget, when it leaves the group) or Close
// (raft.ErrTransportShutdown). Heartbeats, votes and TimeoutNow
// never wait. Raft sends at most one such request per peer at a time from
// its current leadership, so at most one request per peer waits, and a
// peer is remembered only while it is unreachable.
//
// The other methods are the NetworkTransport's.
type PeerGate struct {
	*raft.NetworkTransport

	mu     sync.Mutex
	down   map[raft.ServerAddress]*downPeer
	closed bool
	done   chan struct{}
}

// downPeer is a peer whose last request failed.
type downPeer struct {
	up     chan struct{} // closed when a request to the peer succeeds
	waiter chan struct{} // closed to release the request waiting, if any
}

// NewPeerGate wraps t. Give the PeerGate to raft.NewRaft and call its
// Close before shutting Raft down: Raft's Shutdown waits for its
// replication goroutines, one of which may be waiting here.
func NewPeerGate(t *raft.NetworkTransport) *PeerGate {
	return &PeerGate{NetworkTransport: t, down: map[raft.ServerAddress]*downPeer{}, done: make(chan struct{})}
}

// isHeartbeat reports whether req is one of hashicorp/raft's heartbeats:
// its heartbeat goroutine sets only the header, term and leader (the same
// test raft's NetworkTransport makes to serve them on its fast path).
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	return req.PrevLogEntry == 0 && req.PrevLogTerm == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// AppendEntries implements raft.Transport: a non-heartbeat request to a
// peer known unreachable waits until it is reachable again.
func (g *PeerGate) AppendEntries(id raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if !isHeartbeat(req) {
		if err := g.wait(target); err != nil {
			return err
		}
	}
	err := g.NetworkTransport.AppendEntries(id, target, req, resp)
	g.note(target, err == nil)
	return err
}

// InstallSnapshot implements raft.Transport: to a peer known unreachable
// it waits until the peer is reachable again.
func (g *PeerGate) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, req *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if err := g.wait(target); err != nil {
		return err
	}
	err := g.NetworkTransport.InstallSnapshot(id, target, req, resp, data)
	g.note(target, err == nil)
	return err
}

// wait returns at once if target is not known unreachable, and otherwise
// once it is reachable again (nil), a newer request replaced this one, or
// g is closed.
func (g *PeerGate) wait(target raft.ServerAddress) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return raft.ErrTransportShutdown
	}
	p := g.down[target]
	if p == nil {
		g.mu.Unlock()
		return nil
	}
	if p.waiter != nil {
		close(p.waiter)
	}
	released := make(chan struct{})
	p.waiter = released
	up := p.up
	g.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-released:
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.down[target] != p {
			return errForgotten
		}
		return errReplaced
	case <-g.done:
		return raft.ErrTransportShutdown
	}
}

// note records the outcome of a request to target.
func (g *PeerGate) note(target raft.ServerAddress, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.down[target]
	switch {
	case ok && p != nil:
		close(p.up)
		delete(g.down, target)
	case !ok && p == nil && !g.closed:
		g.down[target] = &downPeer{up: make(chan struct{})}
	}
}

// Forget drops what g knows of target, releasing the request held for it
// (an error): call it when the peer leaves the group, whose Raft then
// stops replicating to it.
func (g *PeerGate) Forget(target raft.ServerAddress) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.down[target]; p != nil {
		if p.waiter != nil {
			close(p.waiter)
		}
		delete(g.down, target)
	}
}

// Close releases the request waiting (raft.ErrTransportShutdown), makes
// every request it would hold fail so at once from now on, and closes the
// NetworkTransport. Idempotent.
func (g *PeerGate) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.done)
	}
	g.mu.Unlock()
	return g.NetworkTransport.Close()
}
