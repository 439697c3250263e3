package broker

import (
	"context"
	"strconv"
	"time"

	"github.com/proglog/proglog/go/metadata"
)

// leaderLoop reports, every LeaderReportInterval, the partitions this node
// leads whose leader hint in the metadata names another node or none
// (Metadata.ReportLeaders), so that every node's Topics names their
// leader. A report that fails is made again at the next interval, from
// the metadata as it is then.
func (b *Broker) leaderLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.LeaderReportInterval)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		hints := b.staleHints()
		if len(hints) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.LeaderReportInterval)
		err := b.cfg.Metadata.ReportLeaders(ctx, b.cfg.NodeID, hints)
		cancel()
		if err != nil {
			b.lg.Debug("reporting partition leaders", "partitions", len(hints), "error", err)
		}
	}
}

// staleHints lists, up to metadata.MaxLeaderHints, the partitions this
// node leads whose metadata hint is not this node, with this node's term.
func (b *Broker) staleHints() []metadata.LeaderHint {
	hinted := map[key]string{}
	b.cfg.Metadata.View(func(s *metadata.State) {
		for name, t := range s.Topics {
			for p, part := range t.Partitions {
				hinted[key{name, t.Created, p}] = part.Leader
			}
		}
	})
	b.mu.RLock()
	var lead []*replica
	for k, r := range b.replicas {
		if hint, ok := hinted[k]; ok && hint != b.cfg.NodeID && r.log.IsLeader() {
			lead = append(lead, r)
		}
	}
	b.mu.RUnlock()
	var out []metadata.LeaderHint
	for _, r := range lead[:min(len(lead), metadata.MaxLeaderHints)] {
		// Raft's stats go through its main loop: outside b.mu.
		term, err := strconv.ParseUint(r.log.Stats()["term"], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, metadata.LeaderHint{Topic: r.topic, Created: r.created, Partition: r.partition, Leader: b.cfg.NodeID, Term: term})
	}
	return out
}
