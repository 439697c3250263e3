package broker

import (
	"slices"
	"time"

	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/replication"
)

// preferredState is what the balancing loop remembers of a partition this
// node leads while another replica is preferred.
type preferredState struct {
	// target is the preferred replica seen a voter since since.
	target string
	since  time.Time
	// retryAt: a transfer to target failed; none before then.
	retryAt time.Time
}

// preferredLoop moves leadership back to preferred replicas (the first of
// each partition's replica list), every RetryInterval; it runs only with a
// positive PreferredLeaderDelay.
func (b *Broker) preferredLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetryInterval)
	defer t.Stop()
	states := map[key]*preferredState{}
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		b.balance(states)
		if b.cfg.onPass != nil {
			b.cfg.onPass()
		}
	}
}

// preferredReplica is a partition's preferred replica with its Raft
// address, and whether its node is leaving (or gone).
type preferredReplica struct {
	server  replication.Server
	leaving bool
}

// preferredReplicas returns every partition's preferred replica.
func (b *Broker) preferredReplicas() map[key]preferredReplica {
	out := map[key]preferredReplica{}
	b.cfg.Metadata.View(func(s *metadata.State) {
		for name, t := range s.Topics {
			for p, part := range t.Partitions {
				if len(part.Replicas) == 0 {
					continue
				}
				id := part.Replicas[0]
				pr := preferredReplica{server: replication.Server{ID: id}}
				if n := s.Nodes[id]; n != nil {
					pr.server.RPCAddr, pr.leaving = n.RaftAddr, n.Leaving
				} else {
					pr.leaving = true // gone from the metadata
				}
				out[key{name, t.Created, p}] = pr
			}
		}
	})
	return out
}

// balance makes one pass: for each partition this node leads while its
// preferred replica is another node, not leaving, a voter of the group at
// its metadata address that answers heartbeats (replication.Log.Reachable:
// a node down or restarting does not), and has been all of that for
// PreferredLeaderDelay, it transfers leadership to it
// (replication.Log.TransferLeadership, which waits for the replica to
// catch up and fails if it does not). Transfers run one at a time, in
// this loop; a failed one is tried again after PreferredLeaderDelay.
// states carries what a pass remembers to the next.
func (b *Broker) balance(states map[key]*preferredState) {
	pref := b.preferredReplicas()
	seen := map[key]bool{}
	for _, r := range b.leading() {
		pr, ok := pref[r.key]
		if !ok || pr.leaving || pr.server.ID == b.cfg.NodeID || !r.log.Reachable(pr.server.ID) || !b.isVoter(r, pr.server) {
			continue
		}
		now := b.cfg.now()
		st := states[r.key]
		if st == nil || st.target != pr.server.ID {
			st = &preferredState{target: pr.server.ID, since: now}
			states[r.key] = st
		}
		seen[r.key] = true
		if now.Sub(st.since) < b.cfg.PreferredLeaderDelay || now.Before(st.retryAt) {
			continue
		}
		select {
		case <-b.done:
			return
		default:
		}
		var done func(error)
		if b.cfg.onTransfer != nil {
			done = b.cfg.onTransfer(r.key, pr.server.ID)
		}
		err := r.log.TransferLeadership(pr.server.ID, pr.server.RPCAddr)
		if done != nil {
			done(err)
		}
		if err != nil {
			st.retryAt = b.cfg.now().Add(b.cfg.PreferredLeaderDelay)
			b.lg.Warn("moving leadership to the preferred replica failed; retrying", "group", r.key.String(), "to", pr.server.ID, "in", b.cfg.PreferredLeaderDelay, "error", err)
			continue
		}
		b.lg.Info("leadership moved to the preferred replica", "group", r.key.String(), "to", pr.server.ID)
	}
	// A partition no longer led here, or whose preferred replica is back
	// to this node or not eligible, starts its delay again next time.
	for k := range states {
		if !seen[k] {
			delete(states, k)
		}
	}
}

// isVoter reports whether s is a voter of r's group at its address.
func (b *Broker) isVoter(r *replica, s replication.Server) bool {
	cur, err := r.log.GetServers()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(cur, func(c replication.Server) bool { return c.ID == s.ID && c.RPCAddr == s.RPCAddr && c.Voter })
}
