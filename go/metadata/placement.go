package metadata

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
)

// NodeLoad is a node that may take replicas and what it holds.
type NodeLoad struct {
	ID, Rack string
	// Replicas and Leaders count the partitions it holds a replica of and
	// is the preferred leader of.
	Replicas, Leaders int
}

// Place decides the replicas of every partition of a new topic named
// topic with cfg, on the nodes of loads (see the package documentation
// for the rule). It does not change loads.
func Place(loads []NodeLoad, topic string, cfg TopicConfig) ([][]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReplicationFactor > len(loads) {
		return nil, fmt.Errorf("%w: replication factor %d, %d nodes can take replicas", ErrNotEnoughNodes, cfg.ReplicationFactor, len(loads))
	}
	nodes := slices.Clone(loads)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	h := fnv.New32a()
	h.Write([]byte(topic))
	seed := int(h.Sum32() % uint32(len(nodes)))

	out := make([][]string, cfg.Partitions)
	chosen := make([]bool, len(nodes))
	for p := range out {
		start := (seed + p) % len(nodes)
		dist := func(i int) int { return (i - start + len(nodes)) % len(nodes) }
		clear(chosen)
		racks := map[string]bool{}
		picked := make([]int, 0, cfg.ReplicationFactor)
		pick := func(i int) {
			chosen[i] = true
			if r := nodes[i].Rack; r != "" {
				racks[r] = true
			}
			picked = append(picked, i)
		}
		// The preferred leader first: the node with the fewest leaderships
		// among those a least-loaded replica set may include (replicas at
		// most the factor-th smallest count), so that leaders spread as
		// evenly as replicas do.
		counts := make([]int, len(nodes))
		for i, n := range nodes {
			counts[i] = n.Replicas
		}
		slices.Sort(counts)
		limit := counts[cfg.ReplicationFactor-1]
		lead := -1
		for i, n := range nodes {
			if n.Replicas > limit {
				continue
			}
			if l := nodes[max(lead, 0)]; lead < 0 || n.Leaders < l.Leaders ||
				n.Leaders == l.Leaders && (n.Replicas < l.Replicas || n.Replicas == l.Replicas && dist(i) < dist(lead)) {
				lead = i
			}
		}
		pick(lead)
		for len(picked) < cfg.ReplicationFactor {
			best := -1
			for i := range nodes {
				if !chosen[i] && (best < 0 || better(nodes, racks, i, best, dist)) {
					best = i
				}
			}
			pick(best)
		}
		replicas := make([]string, len(picked))
		for k, i := range picked {
			nodes[i].Replicas++
			if k == 0 {
				nodes[i].Leaders++
			}
			replicas[k] = nodes[i].ID
		}
		out[p] = replicas
	}
	return out, nil
}

// better reports whether node i is a better choice than node j for the
// next replica of a partition whose replicas so far use racks.
func better(nodes []NodeLoad, racks map[string]bool, i, j int, dist func(int) int) bool {
	a, b := nodes[i], nodes[j]
	if ra, rb := a.Rack != "" && racks[a.Rack], b.Rack != "" && racks[b.Rack]; ra != rb {
		return !ra
	}
	if a.Replicas != b.Replicas {
		return a.Replicas < b.Replicas
	}
	if a.Leaders != b.Leaders {
		return a.Leaders < b.Leaders
	}
	return dist(i) < dist(j)
}

// Replace picks the node to take over leaving's replica of a partition
// whose replicas are current: not already a replica, preferring a rack
// the others do not use, then the fewest replicas, then the lowest ID.
func Replace(loads []NodeLoad, current []string, leaving string) (string, error) {
	racks := map[string]bool{}
	for _, l := range loads {
		if l.ID != leaving && l.Rack != "" && slices.Contains(current, l.ID) {
			racks[l.Rack] = true
		}
	}
	var best *NodeLoad
	for i := range loads {
		n := &loads[i]
		if slices.Contains(current, n.ID) {
			continue
		}
		if best == nil {
			best = n
			continue
		}
		ra, rb := n.Rack != "" && racks[n.Rack], best.Rack != "" && racks[best.Rack]
		switch {
		case ra != rb:
			if !ra {
				best = n
			}
		case n.Replicas != best.Replicas:
			if n.Replicas < best.Replicas {
				best = n
			}
		case n.ID < best.ID:
			best = n
		}
	}
	if best == nil {
		return "", fmt.Errorf("%w: every node that can take replicas already holds one of this partition", ErrNotEnoughNodes)
	}
	return best.ID, nil
}
