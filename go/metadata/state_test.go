package metadata

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateTopicName(t *testing.T) {
	for _, ok := range []string{"log", "orders.v2", "a_b-c", strings.Repeat("x", MaxTopicNameLen)} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("x", MaxTopicNameLen+1)} {
		if err := ValidateTopicName(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q: %v, want ErrInvalidTopic", bad, err)
		}
	}
}

// TestApplyRefusesWithoutChange: every refused command leaves the state
// as it was (same encoding) and returns the sentinel naming why.
func TestApplyRefusesWithoutChange(t *testing.T) {
	s := cluster(t, 3, 0)
	cfg := TopicConfig{Partitions: 2, ReplicationFactor: 2}
	create(t, s, "a", cfg)
	bad := []struct {
		name string
		c    Command
		want error
	}{
		{"topic exists", Command{Op: OpCreateTopic, Topic: "a", Config: &cfg, Assignment: [][]string{{"n0", "n1"}, {"n1", "n2"}}}, ErrTopicExists},
		{"bad name", Command{Op: OpCreateTopic, Topic: "a/b", Config: &cfg, Assignment: [][]string{{"n0", "n1"}, {"n1", "n2"}}}, ErrInvalidTopic},
		{"assignment short", Command{Op: OpCreateTopic, Topic: "b", Config: &cfg, Assignment: [][]string{{"n0", "n1"}}}, ErrBadEncoding},
		{"unknown node", Command{Op: OpCreateTopic, Topic: "b", Config: &cfg, Assignment: [][]string{{"n0", "n9"}, {"n1", "n2"}}}, ErrUnknownNode},
		{"node twice", Command{Op: OpCreateTopic, Topic: "b", Config: &cfg, Assignment: [][]string{{"n0", "n0"}, {"n1", "n2"}}}, ErrBadEncoding},
		{"no config", Command{Op: OpCreateTopic, Topic: "b"}, ErrBadEncoding},
		{"delete unknown", Command{Op: OpDeleteTopic, Topic: "zz"}, ErrUnknownTopic},
		{"stale epoch", Command{Op: OpReassign, Topic: "a", Partition: 0, Epoch: 7, Replicas: []string{"n1", "n2"}}, ErrStale},
		{"no such partition", Command{Op: OpReassign, Topic: "a", Partition: 2, Replicas: []string{"n1", "n2"}}, ErrUnknownPartition},
		{"too many replicas", Command{Op: OpReassign, Topic: "a", Partition: 0, Replicas: []string{"n0", "n1", "n2", "n0"}}, ErrBadEncoding},
		{"no replicas", Command{Op: OpReassign, Topic: "a", Partition: 0, Replicas: []string{}}, ErrBadEncoding},
		{"two moves at once", Command{Op: OpReassign, Topic: "a", Partition: 0, Replicas: []string{"n0", "n1"}}, ErrBadEncoding},
		{"adding a kept replica", Command{Op: OpReassign, Topic: "a", Partition: 0, Replicas: []string{"n1", "n2", "n0"}, Adding: []string{"n1"}}, ErrBadEncoding},
		{"ready not adding", Command{Op: OpReplicaReady, Topic: "a", Partition: 0, NodeID: "n1"}, ErrStale},
		{"ready no partition", Command{Op: OpReplicaReady, Topic: "a", Partition: 5, NodeID: "n1"}, ErrUnknownPartition},
		{"create above factor", Command{Op: OpCreateTopic, Topic: "b", Config: &cfg, Assignment: [][]string{{"n0", "n1", "n2"}, {"n1", "n2"}}}, ErrBadEncoding},
		{"leave unknown", Command{Op: OpLeaveNode, NodeID: "n9"}, ErrUnknownNode},
		{"return unknown", Command{Op: OpReturnNode, NodeID: "n9"}, ErrUnknownNode},
		{"remove in use", Command{Op: OpRemoveNode, NodeID: "n1"}, ErrStale},
		{"register without address", Command{Op: OpRegisterNode, Node: &Node{ID: "n5"}}, ErrBadEncoding},
		{"unknown op", Command{Op: "explode"}, ErrBadEncoding},
	}
	for _, tc := range bad {
		before, _ := s.Encode()
		err := s.Apply(s.Applied+1, tc.c)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		after, _ := s.Encode()
		// Only Applied moves (the command took its place in the log).
		s2, _ := DecodeState(after)
		s2.Applied--
		if again, _ := s2.Encode(); !bytes.Equal(before, again) {
			t.Errorf("%s: refused, yet the state changed:\n%s\n%s", tc.name, before, after)
		}
	}
}

// TestReplicasAgree: two replicas applying the same commands (one of
// them twice, as Raft replays after a restart, one from a snapshot taken
// half-way) hold states that encode to the same bytes.
func TestReplicasAgree(t *testing.T) {
	var log []Command
	add := func(c Command) { log = append(log, c) }
	for _, id := range []string{"n0", "n1", "n2", "n3"} {
		add(Command{Op: OpRegisterNode, Node: &Node{ID: id, RaftAddr: id + ":1", APIAddr: id + ":2"}})
	}
	cfg := TopicConfig{Partitions: 3, ReplicationFactor: 2, Retention: Retention{MaxBytes: 1 << 30, MaxAge: time.Hour}}
	add(Command{Op: OpCreateTopic, Topic: "a", Config: &cfg, Assignment: [][]string{{"n0", "n1"}, {"n2", "n3"}, {"n1", "n2"}}})
	add(Command{Op: OpCreateTopic, Topic: "a", Config: &cfg, Assignment: [][]string{{"n0", "n1"}, {"n2", "n3"}, {"n1", "n2"}}}) // refused
	add(Command{Op: OpReassign, Topic: "a", Partition: 1, Epoch: 0, Replicas: []string{"n2", "n3", "n0"}})
	add(Command{Op: OpReassign, Topic: "a", Partition: 1, Epoch: 1, Replicas: []string{"n2", "n0"}})
	add(Command{Op: OpReassign, Topic: "a", Partition: 0, Epoch: 0, Replicas: []string{"n0", "n3", "n1"}, Adding: []string{"n3"}})
	add(Command{Op: OpLeaveNode, NodeID: "n1", At: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)})
	add(Command{Op: OpReturnNode, NodeID: "n1"})
	add(Command{Op: OpReplicaReady, Topic: "a", Partition: 0, Epoch: 1, NodeID: "n3"})
	add(Command{Op: OpReassign, Topic: "a", Partition: 0, Epoch: 1, Replicas: []string{"n0", "n1"}})
	add(Command{Op: OpLeaveNode, NodeID: "n3", At: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)})
	add(Command{Op: OpLeaveNode, NodeID: "n3", At: time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)})
	add(Command{Op: OpCreateTopic, Topic: "b", Config: &TopicConfig{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]string{{"n3"}}}) // allowed: Apply checks registration, Place avoids leaving nodes
	add(Command{Op: OpDeleteTopic, Topic: "b"})
	add(Command{Op: OpRemoveNode, NodeID: "n3"})

	a := &State{}
	for i, c := range log {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		_ = a.Apply(uint64(i+1), d)
	}
	b := &State{}
	half := len(log) / 2
	for i, c := range log[:half] {
		_ = b.Apply(uint64(i+1), c)
	}
	snap, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if b, err = DecodeState(snap); err != nil {
		t.Fatal(err)
	}
	for i, c := range log { // replays the first half: ignored
		_ = b.Apply(uint64(i+1), c)
	}
	ea, _ := a.Encode()
	eb, _ := b.Encode()
	if !bytes.Equal(ea, eb) {
		t.Fatalf("replicas differ:\n%s\n%s", ea, eb)
	}
	if _, ok := a.Nodes["n3"]; ok || len(a.Topics) != 1 || a.Topics["a"].Partitions[1].Epoch != 2 {
		t.Fatalf("unexpected final state: %s", ea)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := EncodeCommand(Command{Op: OpDeleteTopic, Topic: "a"})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{9}, good[1:]...),
		"unknown field": append([]byte{commandVersion}, `{"op":"delete_topic","colour":"red"}`...),
		"trailing":      append(append([]byte{}, good...), `{}`...),
		"not json":      {commandVersion, '{'},
	} {
		if _, err := DecodeCommand(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
	if _, err := DecodeState([]byte{snapshotVersion, '[', ']'}); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("state as array: %v, want ErrBadEncoding", err)
	}
}

// FuzzApply: any bytes either fail to decode or apply without panicking,
// and a refused command changes nothing but Applied (a batch of commits
// may apply some of them).
func FuzzApply(f *testing.F) {
	c, _ := EncodeCommand(Command{Op: OpCreateTopic, Topic: "a", Config: &TopicConfig{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]string{{"n0"}}})
	f.Add(c)
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := DecodeCommand(b)
		if err != nil {
			return
		}
		s := cluster(t, 2, 0)
		before, _ := s.Encode()
		var ce *CommitsError
		if err := s.Apply(s.Applied+1, cmd); err != nil && !errors.As(err, &ce) {
			s.Applied--
			if after, _ := s.Encode(); !bytes.Equal(before, after) {
				t.Fatalf("refused (%v) but changed", err)
			}
		}
	})
}

// TestUnderReplicatedAndReady: a topic may be created with fewer replicas
// than its factor (the default topic on a new cluster) and grown one
// replica at a time; a replica added with Adding stays there until its
// report at the current epoch, and an older report is refused.
func TestUnderReplicatedAndReady(t *testing.T) {
	s := cluster(t, 3, 0)
	cfg := TopicConfig{Partitions: 1, ReplicationFactor: 2}
	mustApply(t, s, Command{Op: OpCreateTopic, Topic: "log", Config: &cfg, Assignment: [][]string{{"n0"}}})
	mustApply(t, s, Command{Op: OpReassign, Topic: "log", Epoch: 0, Replicas: []string{"n0", "n1"}})
	mustApply(t, s, Command{Op: OpReassign, Topic: "log", Epoch: 1, Replicas: []string{"n0", "n2", "n1"}, Adding: []string{"n2"}})
	p := &s.Topics["log"].Partitions[0]
	if !slices.Equal(p.Adding, []string{"n2"}) || p.Epoch != 2 {
		t.Fatalf("after adding n2: %+v", *p)
	}
	if err := s.Apply(s.Applied+1, Command{Op: OpReplicaReady, Topic: "log", Epoch: 1, NodeID: "n2"}); !errors.Is(err, ErrStale) {
		t.Fatalf("report of an older epoch: %v, want ErrStale", err)
	}
	mustApply(t, s, Command{Op: OpReplicaReady, Topic: "log", Epoch: 2, NodeID: "n2"})
	if p.Adding != nil || p.Epoch != 2 {
		t.Fatalf("after the report: %+v, want no Adding at epoch 2", *p)
	}
	mustApply(t, s, Command{Op: OpReassign, Topic: "log", Epoch: 2, Replicas: []string{"n0", "n2"}})
}

// TestReturnNode: a leaving node gets no replicas (Loads leaves it out)
// until OpReturnNode brings it back; registering again does not.
func TestReturnNode(t *testing.T) {
	s := cluster(t, 2, 0)
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	mustApply(t, s, Command{Op: OpLeaveNode, NodeID: "n1", At: at})
	mustApply(t, s, Command{Op: OpLeaveNode, NodeID: "n1", At: at.Add(time.Hour)})
	mustApply(t, s, Command{Op: OpRegisterNode, Node: &Node{ID: "n1", RaftAddr: "x:1", APIAddr: "x:1"}})
	if l := s.Loads(); len(l) != 1 || !s.Nodes["n1"].LeavingSince.Equal(at) {
		t.Fatalf("after leaving twice and registering again: loads %v, node %+v, want n0 only and n1 leaving since %v", l, *s.Nodes["n1"], at)
	}
	mustApply(t, s, Command{Op: OpReturnNode, NodeID: "n1"})
	if l := s.Loads(); len(l) != 2 || s.Nodes["n1"].Leaving || !s.Nodes["n1"].LeavingSince.IsZero() {
		t.Fatalf("after return: loads %v, node %+v", l, *s.Nodes["n1"])
	}
}

// TestLeaderHints: OpLeaders records a partition's leader when its term is
// above the recorded one, and ignores a stale term, another creation of
// the topic, a leader holding no replica and an unknown partition, entry
// by entry; more than MaxLeaderHints entries are refused.
func TestLeaderHints(t *testing.T) {
	s := cluster(t, 3, 0)
	a := create(t, s, "a", TopicConfig{Partitions: 2, ReplicationFactor: 2})
	created := s.Topics["a"].Created
	outsider := "n0"
	for _, id := range []string{"n0", "n1", "n2"} {
		if !slices.Contains(a[0], id) {
			outsider = id
		}
	}
	leader := func(p int) (string, uint64) {
		part := s.Topics["a"].Partitions[p]
		return part.Leader, part.LeaderTerm
	}
	mustApply(t, s, Command{Op: OpLeaders, Leaders: []LeaderHint{
		{Topic: "a", Created: created, Partition: 0, Leader: a[0][1], Term: 5},
		{Topic: "a", Created: created, Partition: 1, Leader: a[1][0], Term: 2},
	}})
	if id, term := leader(0); id != a[0][1] || term != 5 {
		t.Fatalf("partition 0: leader %q term %d, want %q 5", id, term, a[0][1])
	}
	mustApply(t, s, Command{Op: OpLeaders, Leaders: []LeaderHint{
		{Topic: "a", Created: created, Partition: 0, Leader: a[0][0], Term: 4},     // stale term
		{Topic: "a", Created: created, Partition: 0, Leader: a[0][0], Term: 5},     // same term
		{Topic: "a", Created: created + 1, Partition: 0, Leader: a[0][0], Term: 9}, // another creation
		{Topic: "a", Created: created, Partition: 0, Leader: outsider, Term: 9},    // no replica there
		{Topic: "a", Created: created, Partition: 7, Leader: a[0][0], Term: 9},     // no such partition
		{Topic: "zz", Created: created, Partition: 0, Leader: a[0][0], Term: 9},    // no such topic
		{Topic: "a", Created: created, Partition: 1, Leader: a[1][1], Term: 3},     // newer: applies
	}})
	if id, term := leader(0); id != a[0][1] || term != 5 {
		t.Fatalf("partition 0 after ignored hints: leader %q term %d, want %q 5", id, term, a[0][1])
	}
	if id, term := leader(1); id != a[1][1] || term != 3 {
		t.Fatalf("partition 1: leader %q term %d, want %q 3", id, term, a[1][1])
	}
	err := s.Apply(s.Applied+1, Command{Op: OpLeaders, Leaders: make([]LeaderHint, MaxLeaderHints+1)})
	if !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("%d hints: %v, want ErrBadEncoding", MaxLeaderHints+1, err)
	}
	// Hints survive a snapshot.
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if p := s2.Topics["a"].Partitions[1]; p.Leader != a[1][1] || p.LeaderTerm != 3 {
		t.Fatalf("after a snapshot: %+v", p)
	}
}
