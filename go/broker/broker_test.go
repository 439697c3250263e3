package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
)

// appendTo appends n records starting at record first to topic's
// partition through its leader and returns the offset after them.
func appendTo(t *testing.T, topic string, p, first, n int, bs ...*Broker) uint64 {
	t.Helper()
	lb := leader(t, topic, p, bs...)
	part, err := lb.Partition(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	var next uint64
	for i := first; i < first+n; i++ {
		off, err := part.Append(ctxT(t), [][]byte{rec(i)})
		if err != nil {
			t.Fatalf("append to %s/%d on its leader %s: %v", topic, p, lb.cfg.NodeID, err)
		}
		next = off + 1
	}
	return next
}

// holds checks that b's replica of topic's partition holds records 0 to
// n-1 at offsets lowest to lowest+n-1 once it has applied them.
func holds(t *testing.T, b *Broker, topic string, p int, lowest uint64, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%s opening its replica of %s/%d", b.cfg.NodeID, topic, p), 30*time.Second, func() bool {
		return b.Replica(topic, p) != nil
	})
	part, err := b.Partition(topic, p)
	if err != nil {
		t.Fatalf("%s: Partition(%s, %d): %v", b.cfg.NodeID, topic, p, err)
	}
	if err := part.Wait(ctxT(t), lowest+uint64(n)-1); err != nil {
		t.Fatalf("%s: wait for %s/%d's record %d: %v", b.cfg.NodeID, topic, p, n-1, err)
	}
	for i := range n {
		got, err := part.Read(ctxT(t), lowest+uint64(i), commitlog.ConsistencyFollower)
		if err != nil || string(got) != string(rec(i)) {
			t.Fatalf("%s: %s/%d offset %d = %q, %v; want %q", b.cfg.NodeID, topic, p, lowest+uint64(i), got, err, rec(i))
		}
	}
}

func TestTopicOfThreePartitions(t *testing.T) {
	e := newEnv(t)
	bs := []*Broker{e.start("n1"), e.start("n2"), e.start("n3")}
	info, err := bs[1].CreateTopic(ctxT(t), "orders", commitlog.TopicConfig{Partitions: 3, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "orders" || info.Config.Partitions != 3 || len(info.Partitions) != 3 {
		t.Fatalf("created %+v", info)
	}
	for p, pi := range info.Partitions {
		if pi.Partition != p || len(pi.Replicas) != 3 {
			t.Fatalf("partition %d: %+v", p, pi)
		}
		for _, s := range pi.Replicas {
			if s.Addr != "api-"+s.ID {
				t.Fatalf("partition %d replica %+v: want its API address", p, s)
			}
		}
	}
	for p := range 3 {
		// Every replica bootstrapped the group with all three: no Join
		// was needed.
		for _, b := range bs {
			testutil.Eventually(t, "the replicas to open", 30*time.Second, func() bool { return b.Replica("orders", p) != nil })
			e.mu.Lock()
			n := e.openedWith[fmt.Sprintf("%s orders/%d", b.cfg.NodeID, p)]
			e.mu.Unlock()
			if n != 3 {
				t.Fatalf("%s opened orders/%d with %d servers in its configuration, want 3", b.cfg.NodeID, p, n)
			}
		}
		next := appendTo(t, "orders", p, 0, 5, bs...)
		if next != 5 {
			t.Fatalf("%s/%d: next offset %d after 5 records", "orders", p, next)
		}
		for _, b := range bs {
			holds(t, b, "orders", p, 0, 5)
		}
		// The leader's Topics marks it as the partition's leader.
		lb := leader(t, "orders", p, bs...)
		topics, err := lb.Topics(ctxT(t), "orders")
		if err != nil {
			t.Fatal(err)
		}
		var marked []string
		for _, s := range topics[0].Partitions[p].Replicas {
			if s.IsLeader {
				marked = append(marked, s.ID)
			}
		}
		if !slices.Equal(marked, []string{lb.cfg.NodeID}) {
			t.Fatalf("%s/%d: leader hints %v, want [%s]", "orders", p, marked, lb.cfg.NodeID)
		}
	}
	// The group IDs and directories are the documented ones.
	var created uint64
	e.meta.View(func(s *metadata.State) { created = s.Topics["orders"].Created })
	for _, b := range bs {
		for p := range 3 {
			if !e.net.registered(b.cfg.NodeID, fmt.Sprintf("t/orders/%d/%d", created, p)) {
				t.Fatalf("%s: group of orders/%d not registered", b.cfg.NodeID, p)
			}
			if _, err := os.Stat(filepath.Join(b.cfg.DataDir, "topics", "orders", fmt.Sprint(created), fmt.Sprint(p))); err != nil {
				t.Fatal(err)
			}
		}
		if !b.Ready() {
			t.Fatalf("%s not ready with every replica open", b.cfg.NodeID)
		}
	}
}

func TestPartitionErrors(t *testing.T) {
	e := newEnv(t)
	b1, b2 := e.start("n1"), e.start("n2")
	e.meta.createRaw(t, "one", 1, []string{"n1"})
	leader(t, "one", 0, b1)

	if _, err := b1.Partition("nope", 0); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	for _, p := range []int{-1, 1} {
		if _, err := b1.Partition("one", p); !errors.Is(err, commitlog.ErrUnknownPartition) {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	// n2 holds no replica: it names one that does, at its API address.
	_, err := b2.Partition("one", 0)
	var nl *commitlog.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != "n1" || nl.LeaderAddr != "api-n1" {
		t.Fatalf("not hosted: %v", err)
	}
	if _, err := b2.Topics(ctxT(t), "one", "nope"); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Fatalf("Topics of an unknown name: %v", err)
	}
	if err := b2.DeleteTopic(ctxT(t), commitlog.DefaultTopic); !errors.Is(err, commitlog.ErrInvalidTopic) {
		t.Fatalf("deleting the default topic: %v", err)
	}
	if _, err := b2.CreateTopic(ctxT(t), "one", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, commitlog.ErrTopicExists) {
		t.Fatalf("creating an existing topic: %v", err)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.Partition("one", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestDeleteTopicRemovesReplicas(t *testing.T) {
	e := newEnv(t)
	bs := []*Broker{e.start("n1"), e.start("n2"), e.start("n3")}
	if _, err := bs[0].CreateTopic(ctxT(t), "gone", commitlog.TopicConfig{Partitions: 2, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	var created uint64
	e.meta.View(func(s *metadata.State) { created = s.Topics["gone"].Created })
	for p := range 2 {
		appendTo(t, "gone", p, 0, 3, bs...)
	}
	logs := map[string]any{}
	for _, b := range bs {
		for p := range 2 {
			logs[fmt.Sprint(b.cfg.NodeID, p)] = b.Replica("gone", p)
		}
	}
	if err := bs[2].DeleteTopic(ctxT(t), "gone"); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		dir := filepath.Join(b.cfg.DataDir, "topics", "gone")
		testutil.Eventually(t, b.cfg.NodeID+" removing the deleted topic's data", 30*time.Second, func() bool {
			_, err := os.Stat(dir)
			return errors.Is(err, os.ErrNotExist)
		})
		for p := range 2 {
			if e.net.registered(b.cfg.NodeID, GroupID("gone", created, p)) {
				t.Fatalf("%s: group of gone/%d still registered", b.cfg.NodeID, p)
			}
			if _, err := b.Partition("gone", p); !errors.Is(err, commitlog.ErrUnknownTopic) {
				t.Fatalf("%s: Partition of a deleted topic: %v", b.cfg.NodeID, err)
			}
		}
	}
}

// TestRestartAfterDeleteWhileDown: a node that was down while a topic was
// deleted removes that topic's data when it starts again, and reopens the
// replicas of the topics that still exist with their records.
func TestRestartAfterDeleteWhileDown(t *testing.T) {
	e := newEnv(t)
	bs := []*Broker{e.start("n1"), e.start("n2"), e.start("n3")}
	for _, name := range []string{"keep", "drop"} {
		if _, err := bs[0].CreateTopic(ctxT(t), name, commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		appendTo(t, name, 0, 0, 4, bs...)
		holds(t, bs[2], name, 0, 0, 4)
	}
	var dropDir string
	e.meta.View(func(s *metadata.State) {
		dropDir = PartitionDir(bs[2].cfg.DataDir, "drop", s.Topics["drop"].Created, 0)
	})
	if err := bs[2].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dropDir); err != nil {
		t.Fatalf("Close removed data: %v", err)
	}
	if err := bs[0].DeleteTopic(ctxT(t), "drop"); err != nil {
		t.Fatal(err)
	}
	b3 := e.restart("n3")
	if _, err := os.Stat(dropDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the deleted topic's data is still there after New: %v", err)
	}
	holds(t, b3, "keep", 0, 0, 4)
}

func TestDefaultTopicGrowsAsNodesJoin(t *testing.T) {
	e := newEnv(t)
	b1 := e.start("n1")
	// As the controller creates it at bootstrap: factor 3, one node.
	e.meta.createRaw(t, commitlog.DefaultTopic, 3, []string{"n1"})
	appendTo(t, commitlog.DefaultTopic, 0, 0, 10, b1)

	bs := []*Broker{b1}
	for _, id := range []string{"n2", "n3"} {
		b := e.start(id)
		bs = append(bs, b)
		var ids []string
		for _, b := range bs {
			ids = append(ids, b.cfg.NodeID)
		}
		// The controller tops the partition up by one replica.
		e.meta.reassign(t, commitlog.DefaultTopic, 0, nil, ids...)
		testutil.Eventually(t, id+" added to the default topic's group", 30*time.Second, func() bool {
			return len(voters(t, b1, commitlog.DefaultTopic, 0)) == len(ids)
		})
		holds(t, b, commitlog.DefaultTopic, 0, 0, 10)
	}
	// Every replica takes new records.
	appendTo(t, commitlog.DefaultTopic, 0, 10, 5, bs...)
	for _, b := range bs {
		holds(t, b, commitlog.DefaultTopic, 0, 0, 15)
	}
}

func TestReassignMovesReplica(t *testing.T) {
	e := newEnv(t)
	bs := []*Broker{e.start("n1"), e.start("n2"), e.start("n3")}
	e.meta.createRaw(t, "moving", 2, []string{"n1", "n2"})
	appendTo(t, "moving", 0, 0, 10, bs...)
	oldDir := PartitionDir(bs[1].cfg.DataDir, "moving", 0, 0)
	e.meta.View(func(s *metadata.State) {
		oldDir = PartitionDir(bs[1].cfg.DataDir, "moving", s.Topics["moving"].Created, 0)
	})

	// n3 takes over from n2: added first, reported once caught up, then
	// n2 is dropped.
	e.meta.reassign(t, "moving", 0, []string{"n3"}, "n1", "n2", "n3")
	holds(t, bs[2], "moving", 0, 0, 10)
	testutil.Eventually(t, "n3 reported caught up", 30*time.Second, func() bool {
		var adding []string
		e.meta.View(func(s *metadata.State) { adding = s.Topics["moving"].Partitions[0].Adding })
		return len(adding) == 0
	})
	e.meta.reassign(t, "moving", 0, nil, "n1", "n3")
	testutil.Eventually(t, "n2 removed from the group and its data deleted", 30*time.Second, func() bool {
		lb := leader(t, "moving", 0, bs[0], bs[2])
		v := voters(t, lb, "moving", 0)
		_, err := os.Stat(oldDir)
		return len(v) == 2 && v["n1"] && v["n3"] && errors.Is(err, os.ErrNotExist)
	})
	if bs[1].Replica("moving", 0) != nil {
		t.Fatal("n2 still has a replica")
	}
	appendTo(t, "moving", 0, 10, 3, bs[0], bs[2])
	holds(t, bs[2], "moving", 0, 0, 13)
}

func TestOldLayoutRefused(t *testing.T) {
	for _, name := range []string{"raft", "data"} {
		e := newEnv(t)
		cfg := e.config("n1")
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := New(cfg)
		if !errors.Is(err, ErrOldLayout) {
			t.Fatalf("%s/: %v", name, err)
		}
		for _, want := range []string{name + "/", "proglog consume --from 0 | proglog produce"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("message %q does not name %q", err, want)
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "topics")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("refused directory changed: %v", err)
		}
	}
}

func TestGroupIDFitsTransportBound(t *testing.T) {
	// raftnet's MaxGroupIDLen: a group ID is at most this long on the wire.
	const maxGroupIDLen = 512
	longest := GroupID(strings.Repeat("x", metadata.MaxTopicNameLen), ^uint64(0), metadata.MaxPartitions-1)
	if len(longest) > maxGroupIDLen {
		t.Fatalf("longest group ID is %d bytes, above %d", len(longest), maxGroupIDLen)
	}
}

func TestConfigValidate(t *testing.T) {
	e := newEnv(t)
	good := e.config("n1")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no node":          func(c *Config) { c.NodeID = "" },
		"no data dir":      func(c *Config) { c.DataDir = "" },
		"no metadata":      func(c *Config) { c.Metadata = nil },
		"no stream layers": func(c *Config) { c.StreamLayers = nil },
		"zero retry":       func(c *Config) { c.RetryInterval = 0 },
		"zero report":      func(c *Config) { c.LeaderReportInterval = 0 },
		"template dir":     func(c *Config) { c.Replica.DataDir = "/x" },
		"template bad":     func(c *Config) { c.Replica.ApplyTimeout = 0 },
	} {
		c := e.config("n1")
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestLeaderHintsForPartitionsNotHosted: a partition's leader reports its
// leadership to the metadata, so a node holding no replica of it names the
// leader in Topics; the report names the leader's term.
func TestLeaderHintsForPartitionsNotHosted(t *testing.T) {
	e := newEnv(t)
	b1, b2 := e.start("n1"), e.start("n2")
	e.meta.createRaw(t, "solo", 1, []string{"n1"})
	leader(t, "solo", 0, b1)
	testutil.Eventually(t, "n2 to name n1 the leader of solo/0", 30*time.Second, func() bool {
		topics, err := b2.Topics(ctxT(t), "solo")
		if err != nil {
			t.Fatal(err)
		}
		r := topics[0].Partitions[0].Replicas
		return len(r) == 1 && r[0].ID == "n1" && r[0].IsLeader
	})
	var term uint64
	e.meta.View(func(s *metadata.State) { term = s.Topics["solo"].Partitions[0].LeaderTerm })
	if want := b1.Replica("solo", 0).Stats()["term"]; fmt.Sprint(term) != want {
		t.Fatalf("hint of term %d, the leader's term is %s", term, want)
	}
}
