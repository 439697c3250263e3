package group

import (
	"context"
	"maps"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/replication"
)

// Join adds node id, reachable at addr (its API and Raft address: one
// port), to the group and registers it in the metadata; it implements
// discovery.Handler. Only the leader acts; elsewhere it returns a
// *commitlog.NotLeaderError (which discovery logs at debug level).
//
// A node not yet in the Raft configuration at addr must first prove to be
// id (Config.PeerName); one that does not is not added, Join returns nil,
// and it is logged once until it proves itself at a later Join. It becomes
// a voter if voter and the group has fewer than ControllerVoters voters,
// else a non-voter. A member is left as it is, except that a non-voter
// that may vote is promoted while a voter's place is free (a voter left).
// The node is registered (metadata.OpRegisterNode) unless it already is
// with that address, and a node that was leaving is back
// (metadata.OpReturnNode): it came back before its replicas were moved.
func (g *Group) Join(id, addr string, voter bool) error {
	if g.closed() {
		return ErrClosed
	}
	if !g.IsLeader() {
		return g.notLeader()
	}
	cf := g.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return g.mapRaftErr(err)
	}
	servers := cf.Configuration().Servers
	sid, saddr := raft.ServerID(id), raft.ServerAddress(addr)
	i := slices.IndexFunc(servers, func(s raft.Server) bool { return s.ID == sid })
	member := i >= 0 && servers[i].Address == saddr
	if !member && !g.verify(id, addr) {
		return nil
	}
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	switch {
	case member && servers[i].Suffrage == raft.Voter:
	case member && (!voter || voters >= g.cfg.ControllerVoters):
	default:
		// Another ID at this address: a node that came back renamed.
		for _, s := range servers {
			if s.ID != sid && s.Address == saddr {
				if err := g.raft.RemoveServer(s.ID, 0, g.cfg.ApplyTimeout).Error(); err != nil {
					return g.mapRaftErr(err)
				}
			}
		}
		// An existing voter at a new address stays a voter.
		vote := i >= 0 && servers[i].Suffrage == raft.Voter || voter && voters < g.cfg.ControllerVoters
		var f raft.IndexFuture
		if vote {
			f = g.raft.AddVoter(sid, saddr, 0, g.cfg.ApplyTimeout)
		} else {
			f = g.raft.AddNonvoter(sid, saddr, 0, g.cfg.ApplyTimeout)
		}
		if err := f.Error(); err != nil {
			return g.mapRaftErr(err)
		}
		g.lg.Info("node joined the metadata group", "id", id, "addr", addr, "voter", vote)
	}
	return g.register(id, addr)
}

// register records node id at addr in the metadata unless it is there,
// and brings it back if it was leaving.
func (g *Group) register(id, addr string) error {
	g.decideMu.Lock()
	defer g.decideMu.Unlock()
	var registered, leaving bool
	g.fsm.View(func(s *metadata.State) {
		if n := s.Nodes[id]; n != nil {
			registered = n.RaftAddr == addr && n.APIAddr == addr
			leaving = n.Leaving
		}
	})
	ctx := context.Background()
	if !registered {
		n := &metadata.Node{ID: id, RaftAddr: addr, APIAddr: addr}
		if _, err := g.propose(ctx, metadata.Command{Op: metadata.OpRegisterNode, Node: n}); err != nil {
			return err
		}
	}
	if leaving {
		if _, err := g.propose(ctx, metadata.Command{Op: metadata.OpReturnNode, NodeID: id}); err != nil {
			return err
		}
		g.lg.Info("leaving node is back; its replicas stay", "id", id)
	}
	return nil
}

// verify reports whether the node at addr proves to be id (always, without
// Config.PeerName), logging a failure the first time.
func (g *Group) verify(id, addr string) bool {
	if g.cfg.PeerName == nil {
		return true
	}
	err := replication.VerifyPeer(g.cfg.StreamLayer, g.cfg.PeerName, id, addr, g.cfg.JoinVerifyTimeout)
	g.unverifiedMu.Lock()
	defer g.unverifiedMu.Unlock()
	if err == nil {
		delete(g.unverified, id)
		return true
	}
	if !g.unverified[id] {
		g.lg.Warn("node did not prove its identity; not adding it to the metadata group until it does", "node", id, "addr", addr, "error", err)
	}
	if g.unverified == nil {
		g.unverified = map[string]bool{}
	}
	g.unverified[id] = true
	return false
}

// UnverifiedMembers lists, sorted, the nodes Join could not verify yet
// (for metrics).
func (g *Group) UnverifiedMembers() []string {
	g.unverifiedMu.Lock()
	defer g.unverifiedMu.Unlock()
	return slices.Sorted(maps.Keys(g.unverified))
}

// Voters returns the IDs of the group's voters in this node's latest Raft
// configuration (empty once the group is closed).
func (g *Group) Voters() map[string]bool {
	out := map[string]bool{}
	cf := g.raft.GetConfiguration()
	if cf.Error() != nil {
		return out
	}
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out[string(s.ID)] = true
		}
	}
	return out
}

// Leave marks node id leaving in the metadata (metadata.OpLeaveNode: it
// gets no new replicas, and the controller moves its replicas after
// ReplacementDelay) and removes it from the group's Raft configuration;
// it implements discovery.Handler. A node that is not registered or not a
// member is no error. Only the leader acts; elsewhere it returns a
// *commitlog.NotLeaderError.
func (g *Group) Leave(id string) error {
	if g.closed() {
		return ErrClosed
	}
	g.unverifiedMu.Lock()
	delete(g.unverified, id)
	g.unverifiedMu.Unlock()
	if !g.IsLeader() {
		return g.notLeader()
	}
	if err := g.markLeaving(id); err != nil {
		return err
	}
	cf := g.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return g.mapRaftErr(err)
	}
	i := slices.IndexFunc(cf.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
	if i < 0 {
		return nil
	}
	addr := cf.Configuration().Servers[i].Address
	if err := g.raft.RemoveServer(raft.ServerID(id), 0, g.cfg.ApplyTimeout).Error(); err != nil {
		return g.mapRaftErr(err)
	}
	// Raft no longer replicates to it: a request held for it, if it is
	// down, ends now rather than at Close.
	g.trans.Forget(addr)
	g.lg.Info("node left the metadata group", "id", id)
	return nil
}

func (g *Group) markLeaving(id string) error {
	g.decideMu.Lock()
	defer g.decideMu.Unlock()
	var mark bool
	g.fsm.View(func(s *metadata.State) {
		n := s.Nodes[id]
		mark = n != nil && !n.Leaving
	})
	if !mark {
		return nil
	}
	_, err := g.propose(context.Background(), metadata.Command{Op: metadata.OpLeaveNode, NodeID: id, At: g.cfg.clock().UTC()})
	return err
}
