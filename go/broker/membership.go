package broker

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/proglog/proglog/go/replication"
)

// membershipLoop makes every partition this node leads have the Raft
// configuration the metadata lists: on every metadata change, when a
// local replica becomes leader or opens, and every RetryInterval (a new
// replica whose Join could not be verified yet, a change that failed).
func (b *Broker) membershipLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetryInterval)
	defer t.Stop()
	for {
		changed := b.cfg.Metadata.Changed()
		b.reconcileMembership()
		select {
		case <-b.done:
			return
		case <-changed:
		case <-b.kick:
		case <-t.C:
		}
	}
}

// reconcileMembership reconciles the groups of the partitions this node
// leads.
func (b *Broker) reconcileMembership() {
	v := b.view()
	for _, r := range b.leading() {
		if a, ok := v.want[r.key]; ok {
			b.reconcileGroup(r, a.servers)
		}
	}
	b.reportReady(v)
}

// reportReady reports this node's replicas that a reassignment added and
// that caught up (caughtUp) to the metadata, which then lets the
// controller drop the replica they replace. Each report runs in the
// background (Metadata.ReplicaReady may wait for the metadata leader),
// one at a time per replica; a failed one is made again by a later pass.
func (b *Broker) reportReady(v view) {
	for k, a := range v.want {
		if !a.adding {
			continue
		}
		b.mu.RLock()
		r, closed := b.replicas[k], b.closed
		b.mu.RUnlock()
		if r == nil || closed || !r.reporting.CompareAndSwap(false, true) {
			continue
		}
		if !b.caughtUp(r) {
			r.reporting.Store(false)
			continue
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer r.reporting.Store(false)
			ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Replica.ApplyTimeout)
			err := b.cfg.Metadata.ReplicaReady(ctx, k.topic, k.partition, a.epoch, b.cfg.NodeID)
			cancel()
			if err != nil {
				b.lg.Debug("reporting a caught-up replica", "group", k.String(), "epoch", a.epoch, "error", err)
				return
			}
			b.lg.Info("replica caught up and reported", "group", k.String(), "epoch", a.epoch)
		}()
	}
}

// caughtUp reports whether r has applied every entry up to the
// configuration that made it a voter: by Raft's log matching it then holds
// every record written before it was added. The first time r sees itself a
// voter, its last log index (at or after that configuration entry) is
// noted; it is caught up once it has applied that far.
func (b *Broker) caughtUp(r *replica) bool {
	st := r.log.Stats()
	num := func(name string) uint64 {
		n, _ := strconv.ParseUint(st[name], 10, 64)
		return n
	}
	target := r.voterAt.Load()
	if target == 0 {
		servers, err := r.log.GetServers()
		if err != nil || !slices.ContainsFunc(servers, func(s replication.Server) bool { return s.ID == b.cfg.NodeID && s.Voter }) {
			return false
		}
		target = max(num("last_log_index"), 1)
		r.voterAt.Store(target)
	}
	return num("applied_index") >= target
}

// reconcileGroup makes r's group (r leads it) hold want as voters: it adds
// the missing ones (replication.Log.Join, which with PeerName adds a
// server only once it proved to be that node on that group's stream
// layer, i.e. once the node has the replica open), and once every one of
// want is a voter, removes the servers want does not list. It never
// removes this node: a replica moved away is closed by the reconcile
// loop, and Close hands leadership over first; the new leader removes it.
func (b *Broker) reconcileGroup(r *replica, want []replication.Server) {
	cur, err := r.log.GetServers()
	if err != nil {
		b.lg.Debug("reading a partition's configuration", "group", r.key.String(), "error", err)
		return
	}
	if missing := missingVoters(cur, want); len(missing) > 0 {
		for _, s := range missing {
			if err := r.log.Join(s.ID, s.RPCAddr, true); err != nil {
				b.lg.Warn("adding a replica to its partition's group", "group", r.key.String(), "id", s.ID, "addr", s.RPCAddr, "error", err)
			}
		}
		// Removals wait until every listed replica is in: a moving
		// replica is removed only once its successor was added.
		if cur, err = r.log.GetServers(); err != nil || len(missingVoters(cur, want)) > 0 {
			return
		}
	}
	for _, s := range cur {
		if s.ID == b.cfg.NodeID || slices.ContainsFunc(want, func(w replication.Server) bool { return w.ID == s.ID }) {
			continue
		}
		if err := r.log.Leave(s.ID); err != nil {
			b.lg.Warn("removing a replica from its partition's group", "group", r.key.String(), "id", s.ID, "error", err)
			continue
		}
		b.lg.Info("removed a replica no longer assigned", "group", r.key.String(), "id", s.ID)
	}
}

// missingVoters returns the servers of want that are not voters of cur at
// the same address.
func missingVoters(cur, want []replication.Server) []replication.Server {
	var out []replication.Server
	for _, w := range want {
		if !slices.ContainsFunc(cur, func(s replication.Server) bool { return s.ID == w.ID && s.RPCAddr == w.RPCAddr && s.Voter }) {
			out = append(out, w)
		}
	}
	return out
}

// leading returns the replicas this node leads now.
func (b *Broker) leading() []*replica {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var lead []*replica
	for _, r := range b.replicas {
		if r.log.IsLeader() {
			lead = append(lead, r)
		}
	}
	return lead
}
