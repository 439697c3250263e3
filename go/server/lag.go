package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/telemetry"
)

// lagScrapeTimeout bounds the reads of one scrape's consumer lag (local
// reads of the metadata copy and of the partitions).
const lagScrapeTimeout = 5 * time.Second

// groupLag is the consumer lag of every group on the partitions this node
// leads, as Cluster.Topics marks them (go/broker: as this node's replica
// knows its leader), so that a scrape of every node counts each partition
// once: per committed offset, the partition's NextOffset minus it (0 when
// the commit is ahead of this node's log). Groups are taken in name order
// and their offsets in topic and partition order; past
// Config.MaxGroupLagSeries the rest are counted as dropped. Partitions
// without a commit have no series. A failed read is logged (at most every
// refusedLogInterval) and exports what was read before it.
func (s *Server) groupLag() (lags []telemetry.GroupLag, dropped int) {
	ctx, cancel := context.WithTimeout(s.stopping, lagScrapeTimeout)
	defer cancel()
	led, err := s.ledPartitions(ctx)
	if err != nil {
		s.lagFailed("list the topics", err)
		return nil, 0
	}
	if len(led) == 0 {
		return nil, 0
	}
	groups, err := s.cfg.Groups.ListGroups(ctx)
	if err != nil {
		s.lagFailed("list the groups", err)
		return nil, 0
	}
	slices.SortFunc(groups, func(a, b commitlog.GroupSummary) int { return strings.Compare(a.Group, b.Group) })
	next := map[commitlog.TopicPartition]uint64{} // read once per scrape
	for _, g := range groups {
		offsets, err := s.cfg.Groups.FetchOffsets(ctx, g.Group, nil)
		if errors.Is(err, commitlog.ErrUnknownGroup) { // gone since ListGroups
			continue
		}
		if err != nil {
			s.lagFailed("fetch the offsets of group "+g.Group, err)
			return lags, dropped
		}
		slices.SortFunc(offsets, func(a, b commitlog.PartitionOffset) int {
			return compareTopicPartitions(a.TopicPartition, b.TopicPartition)
		})
		for _, o := range offsets {
			if !o.Committed || !led[o.TopicPartition] {
				continue
			}
			if len(lags) == s.cfg.MaxGroupLagSeries {
				dropped++
				continue
			}
			n, ok := next[o.TopicPartition]
			if !ok {
				p, err := s.cluster.Partition(o.Topic, o.Partition)
				if err != nil { // deleted or moved since Topics: no longer this node's
					led[o.TopicPartition] = false
					continue
				}
				n = p.NextOffset()
				next[o.TopicPartition] = n
			}
			lags = append(lags, telemetry.GroupLag{Group: g.Group, Topic: o.Topic, Partition: o.Partition, Lag: n - min(n, o.Offset)})
		}
	}
	return lags, dropped
}

// ledPartitions are the partitions whose leader Cluster.Topics names this
// node (Config.ID).
func (s *Server) ledPartitions(ctx context.Context) (map[commitlog.TopicPartition]bool, error) {
	topics, err := s.cluster.Topics(ctx)
	if err != nil {
		return nil, err
	}
	led := map[commitlog.TopicPartition]bool{}
	for _, t := range topics {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				if r.IsLeader && r.ID == s.cfg.ID {
					led[commitlog.TopicPartition{Topic: t.Name, Partition: p.Partition}] = true
				}
			}
		}
	}
	return led, nil
}

// lagFailed logs a failed read of the lag metric, rate-limited.
func (s *Server) lagFailed(what string, err error) {
	if ok, suppressed := s.lagLog.Allow(); ok {
		s.cfg.Logger.Warn("consumer group lag: cannot "+what+"; the scrape has no lag series past it",
			zap.Error(err), zap.Int("suppressed", suppressed))
	}
}
