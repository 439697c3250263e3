package group

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/metadata"
)

// controller makes the group leader's decisions (see the package
// documentation, "Controller"). One goroutine runs it for the Group's
// life; it acts only while this node leads.
type controller struct{ g *Group }

// run follows leadership (notify is Raft's NotifyCh) and, while leading,
// takes steps until none is left, again at every change of the state and
// every ControllerInterval. After a refused command it waits for the tick
// rather than the change the refusal itself makes.
func (c *controller) run(notify <-chan bool) {
	g := c.g
	defer g.wg.Done()
	tick := g.cfg.tick
	if tick == nil {
		t := time.NewTicker(g.cfg.ControllerInterval)
		defer t.Stop()
		tick = t.C
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-g.done
		cancel()
	}()
	leading, ready := false, false
	for {
		var changed <-chan struct{}
		if leading {
			if !ready {
				// Decide on every entry of the earlier terms applied, so
				// that nothing is done twice (the default topic).
				ready = g.raft.Barrier(g.cfg.ApplyTimeout).Error() == nil
			}
			if ready {
				changed = g.fsm.Changed()
				if !c.steps(ctx) {
					changed = nil
				}
			}
		}
		select {
		case <-g.done:
			return
		case leading = <-notify:
			ready = false
			g.lg.Info("metadata leadership changed", "leader", leading)
		case <-changed:
		case <-tick:
		}
	}
}

// steps takes steps until there is none to take and reports true, or
// false if a step failed.
func (c *controller) steps(ctx context.Context) bool {
	for {
		done, err := c.step(ctx)
		if err != nil {
			if !errors.Is(err, commitlog.ErrNotLeader) && ctx.Err() == nil {
				c.g.lg.Warn("controller step failed; trying again later", "error", err)
			}
			return false
		}
		if done {
			return true
		}
	}
}

// step decides the next command against the current state and proposes
// it; done if there is nothing to do.
func (c *controller) step(ctx context.Context) (done bool, err error) {
	g := c.g
	g.decideMu.Lock()
	defer g.decideMu.Unlock()
	var cmd metadata.Command
	var why string
	g.fsm.View(func(s *metadata.State) { cmd, why = c.next(s, g.cfg.clock()) })
	if cmd.Op == "" {
		return true, nil
	}
	g.lg.Info("controller", "op", cmd.Op, "why", why, "topic", cmd.Topic, "partition", cmd.Partition, "replicas", cmd.Replicas, "node", cmd.NodeID)
	if cmd.Op == metadata.OpReassign {
		return false, g.Reassign(ctx, cmd.Topic, cmd.Partition, cmd.Epoch, cmd.Replicas, cmd.Adding...)
	}
	_, err = g.propose(ctx, cmd)
	return false, err
}

// next returns the first command the rules call for in state s at time
// now, with why, or a zero Command if there is none. The rules, in order:
// register this node; create the default topic; per partition (topics by
// name), move a replica off a node that has been leaving for
// ReplacementDelay, or top up a partition below its factor; remove a
// leaving node that holds no replica.
func (c *controller) next(s *metadata.State, now time.Time) (metadata.Command, string) {
	cfg := c.g.cfg
	raftAddr := string(c.g.trans.LocalAddr())
	if n := s.Nodes[cfg.LocalID]; n == nil || n.APIAddr != cfg.APIAddr || n.RaftAddr != raftAddr {
		return metadata.Command{Op: metadata.OpRegisterNode, Node: &metadata.Node{ID: cfg.LocalID, RaftAddr: raftAddr, APIAddr: cfg.APIAddr}}, "this node (the leader) is not registered"
	}
	loads := s.Loads()
	if _, ok := s.Topics[commitlog.DefaultTopic]; !ok {
		tc := metadata.TopicConfig{Partitions: 1, ReplicationFactor: min(cfg.DefaultTopicReplicationFactor, len(loads))}
		if a, err := metadata.Place(loads, commitlog.DefaultTopic, tc); err == nil {
			tc.ReplicationFactor = cfg.DefaultTopicReplicationFactor
			return metadata.Command{Op: metadata.OpCreateTopic, Topic: commitlog.DefaultTopic, Config: &tc, Assignment: a}, "the default topic does not exist"
		}
	}
	due := func(id string) bool {
		n := s.Nodes[id]
		return n != nil && n.Leaving && now.Sub(n.LeavingSince) >= cfg.ReplacementDelay
	}
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		rf := t.Config.ReplicationFactor
		for p, part := range t.Partitions {
			if len(part.Adding) > 0 {
				continue // a new replica is catching up: one move at a time
			}
			reassign := func(replicas []string, adding ...string) metadata.Command {
				return metadata.Command{Op: metadata.OpReassign, Topic: name, Partition: p, Epoch: part.Epoch, Replicas: replicas, Adding: adding}
			}
			if i := slices.IndexFunc(part.Replicas, due); i >= 0 {
				gone := part.Replicas[i]
				if len(part.Replicas) > rf {
					return reassign(slices.Delete(slices.Clone(part.Replicas), i, i+1)), "drop the replica of a leaving node: its replacement caught up"
				}
				if to, err := metadata.Replace(loads, part.Replicas, gone); err == nil {
					// Right after the one it replaces, so that it takes its
					// place in the preference order when that one is dropped.
					return reassign(slices.Insert(slices.Clone(part.Replicas), i+1, to), to), "replace the replica of a node leaving for ReplacementDelay"
				}
				if len(part.Replicas) > 1 {
					return reassign(slices.Delete(slices.Clone(part.Replicas), i, i+1)), "drop the replica of a leaving node: no node can replace it"
				}
				continue // its only replica, and nowhere to move it
			}
			if len(part.Replicas) < rf {
				if to, err := metadata.Replace(loads, part.Replicas, ""); err == nil {
					return reassign(append(slices.Clone(part.Replicas), to)), "top up a partition below its replication factor"
				}
			}
		}
	}
	ids := make([]string, 0, len(s.Nodes))
	for id, n := range s.Nodes {
		if n.Leaving {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if !holdsReplica(s, id) {
			return metadata.Command{Op: metadata.OpRemoveNode, NodeID: id}, "a leaving node holds no replica"
		}
	}
	return metadata.Command{}, ""
}

// holdsReplica reports whether node id is a replica of any partition.
func holdsReplica(s *metadata.State, id string) bool {
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if slices.Contains(p.Replicas, id) {
				return true
			}
		}
	}
	return false
}
