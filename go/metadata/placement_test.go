package metadata

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// cluster returns a State with n registered nodes n0..n<n-1>, in racks
// r0..r<racks-1> round robin (no racks if racks is 0).
func cluster(t *testing.T, n, racks int) *State {
	t.Helper()
	s := &State{}
	for i := range n {
		node := &Node{ID: fmt.Sprintf("n%d", i), RaftAddr: fmt.Sprintf("10.0.0.%d:8400", i), APIAddr: fmt.Sprintf("10.0.0.%d:8400", i)}
		if racks > 0 {
			node.Rack = fmt.Sprintf("r%d", i%racks)
		}
		mustApply(t, s, Command{Op: OpRegisterNode, Node: node})
	}
	return s
}

func mustApply(t *testing.T, s *State, c Command) {
	t.Helper()
	if err := s.Apply(s.Applied+1, c); err != nil {
		t.Fatalf("apply %s: %v", c.Op, err)
	}
}

// create places and creates a topic, as the controller does.
func create(t *testing.T, s *State, name string, cfg TopicConfig) [][]string {
	t.Helper()
	a, err := Place(s.Loads(), name, cfg)
	if err != nil {
		t.Fatalf("place %s: %v", name, err)
	}
	mustApply(t, s, Command{Op: OpCreateTopic, Topic: name, Config: &cfg, Assignment: a})
	return a
}

func spread(loads []NodeLoad, f func(NodeLoad) int) int {
	lo, hi := f(loads[0]), f(loads[0])
	for _, l := range loads {
		lo, hi = min(lo, f(l)), max(hi, f(l))
	}
	return hi - lo
}

// TestPlaceSpreads creates random topics one after another on clusters
// of several sizes: after each, every partition's replicas are distinct
// nodes and no node holds more than one replica more than another. When
// every topic has the same replication factor, no node is the preferred
// leader of more than two partitions more than another (greedy placement
// cannot always keep both counts within one; with mixed factors a
// factor-1 topic's leader is its only replica, wherever the replicas'
// balance puts it).
func TestPlaceSpreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 4, 5, 7, 9} {
		for _, factor := range []int{0, 1, 2, 3} { // 0: mixed
			if factor > n {
				continue
			}
			s := cluster(t, n, 0)
			for k := range 40 {
				r := factor
				if r == 0 {
					r = 1 + rng.IntN(min(n, 3))
				}
				cfg := TopicConfig{Partitions: 1 + rng.IntN(12), ReplicationFactor: r}
				a := create(t, s, fmt.Sprintf("t%d", k), cfg)
				for p, r := range a {
					if len(r) != cfg.ReplicationFactor {
						t.Fatalf("%d nodes, topic %d partition %d: %v, want %d replicas", n, k, p, r, cfg.ReplicationFactor)
					}
					if c := slices.Compact(slices.Sorted(slices.Values(r))); len(c) != len(r) {
						t.Fatalf("%d nodes, topic %d partition %d: replicas %v are not distinct", n, k, p, r)
					}
				}
				loads := s.Loads()
				if d := spread(loads, func(l NodeLoad) int { return l.Replicas }); d > 1 {
					t.Fatalf("%d nodes, factor %d, after topic %d: replicas per node differ by %d: %+v", n, factor, k, d, loads)
				}
				if d := spread(loads, func(l NodeLoad) int { return l.Leaders }); factor != 0 && d > 2 {
					t.Fatalf("%d nodes, factor %d, after topic %d: preferred leaders per node differ by %d: %+v", n, factor, k, d, loads)
				}
			}
		}
	}
}

// TestPlaceUsesEveryRack: with as many racks as replicas, each partition
// has a replica in every rack.
func TestPlaceUsesEveryRack(t *testing.T) {
	s := cluster(t, 6, 3)
	for k := range 5 {
		a := create(t, s, fmt.Sprintf("t%d", k), TopicConfig{Partitions: 7, ReplicationFactor: 3})
		for p, r := range a {
			racks := map[string]bool{}
			for _, id := range r {
				racks[s.Nodes[id].Rack] = true
			}
			if len(racks) != 3 {
				t.Fatalf("topic %d partition %d: replicas %v use racks %v, want 3", k, p, r, racks)
			}
		}
	}
}

// TestPlaceIsDeterministicAndRotates: the same input gives the same
// placement; on an empty cluster topics of one partition start on
// different nodes depending on their names.
func TestPlaceIsDeterministicAndRotates(t *testing.T) {
	s := cluster(t, 5, 0)
	cfg := TopicConfig{Partitions: 1, ReplicationFactor: 1}
	first := map[string]bool{}
	for _, name := range []string{"orders", "payments", "clicks", "audit", "log", "events", "metrics"} {
		a, err := Place(s.Loads(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Place(s.Loads(), name, cfg)
		if !slices.Equal(a[0], b[0]) {
			t.Fatalf("%s: placed on %v, then on %v", name, a[0], b[0])
		}
		first[a[0][0]] = true
	}
	if len(first) < 2 {
		t.Fatalf("seven names on an empty 5-node cluster all start on %v", first)
	}
}

func TestPlaceErrors(t *testing.T) {
	s := cluster(t, 2, 0)
	if _, err := Place(s.Loads(), "t", TopicConfig{Partitions: 1, ReplicationFactor: 3}); !errors.Is(err, ErrNotEnoughNodes) {
		t.Fatalf("R=3 on 2 nodes: %v, want ErrNotEnoughNodes", err)
	}
	if _, err := Place(s.Loads(), "t", TopicConfig{Partitions: 0, ReplicationFactor: 1}); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("0 partitions: %v, want ErrInvalidTopic", err)
	}
	mustApply(t, s, Command{Op: OpLeaveNode, NodeID: "n1"})
	if _, err := Place(s.Loads(), "t", TopicConfig{Partitions: 1, ReplicationFactor: 2}); !errors.Is(err, ErrNotEnoughNodes) {
		t.Fatalf("R=2 with one node leaving: %v, want ErrNotEnoughNodes", err)
	}
}

// TestReplace moves every replica off a leaving node: the replacement is
// never already a replica, keeps racks distinct, and the node can then be
// removed.
func TestReplace(t *testing.T) {
	s := cluster(t, 6, 3)
	create(t, s, "a", TopicConfig{Partitions: 8, ReplicationFactor: 3})
	mustApply(t, s, Command{Op: OpLeaveNode, NodeID: "n0"})
	if err := s.Apply(s.Applied+1, Command{Op: OpRemoveNode, NodeID: "n0"}); !errors.Is(err, ErrStale) {
		t.Fatalf("remove a node holding replicas: %v, want ErrStale", err)
	}
	for p, part := range s.Topics["a"].Partitions {
		i := slices.Index(part.Replicas, "n0")
		if i < 0 {
			continue
		}
		to, err := Replace(s.Loads(), part.Replicas, "n0")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(part.Replicas, to) || to == "n0" {
			t.Fatalf("partition %d %v: replacement %s", p, part.Replicas, to)
		}
		// Two steps, one server at a time: add the replacement right
		// after n0, then drop n0, so it takes n0's place in the order.
		adding := slices.Insert(slices.Clone(part.Replicas), i+1, to)
		mustApply(t, s, Command{Op: OpReassign, Topic: "a", Partition: p, Epoch: part.Epoch, Replicas: adding, Adding: []string{to}})
		next := slices.Delete(slices.Clone(adding), i, i+1)
		mustApply(t, s, Command{Op: OpReassign, Topic: "a", Partition: p, Epoch: part.Epoch + 1, Replicas: next})
		racks := map[string]bool{}
		for _, id := range next {
			racks[s.Nodes[id].Rack] = true
		}
		if len(racks) != 3 {
			t.Fatalf("partition %d moved to %v: racks %v", p, next, racks)
		}
	}
	mustApply(t, s, Command{Op: OpRemoveNode, NodeID: "n0"})
	if _, ok := s.Nodes["n0"]; ok {
		t.Fatal("n0 still registered after remove")
	}
}
