package broker

import (
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
	b.mu.RLock()
	var lead []*replica
	for _, r := range b.replicas {
		if r.log.IsLeader() {
			lead = append(lead, r)
		}
	}
	b.mu.RUnlock()
	for _, r := range lead {
		if a, ok := v.want[r.key]; ok {
			b.reconcileGroup(r, a.servers)
		}
	}
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
	voters := make(map[string]string, len(cur))
	for _, s := range cur {
		if s.Voter {
			voters[s.ID] = s.RPCAddr
		}
	}
	complete := true
	listed := make(map[string]bool, len(want))
	for _, s := range want {
		listed[s.ID] = true
		if addr, ok := voters[s.ID]; ok && addr == s.RPCAddr {
			continue
		}
		complete = false
		if err := r.log.Join(s.ID, s.RPCAddr, true); err != nil {
			b.lg.Warn("adding a replica to its partition's group", "group", r.key.String(), "id", s.ID, "addr", s.RPCAddr, "error", err)
		}
	}
	if !complete {
		// Removals wait until every listed replica is in: a moving replica
		// is removed only once its successor was added.
		if cur, err = r.log.GetServers(); err != nil {
			return
		}
		voters = map[string]string{}
		for _, s := range cur {
			if s.Voter {
				voters[s.ID] = s.RPCAddr
			}
		}
		for _, s := range want {
			if addr, ok := voters[s.ID]; !ok || addr != s.RPCAddr {
				return
			}
		}
	}
	for _, s := range cur {
		if listed[s.ID] || s.ID == b.cfg.NodeID {
			continue
		}
		if err := r.log.Leave(s.ID); err != nil {
			b.lg.Warn("removing a replica from its partition's group", "group", r.key.String(), "id", s.ID, "error", err)
			continue
		}
		b.lg.Info("removed a replica no longer assigned", "group", r.key.String(), "id", s.ID)
	}
}
