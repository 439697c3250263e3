package metadata

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// TestFSMOverRaft runs a real three-voter Raft group of metadata FSMs
// (hashicorp/raft's in-memory transport and stores): topics created on the
// leader reach every replica, a refused command is the leader's Apply
// error and changes no replica, and a replica that restores the leader's
// snapshot holds the same state.
func TestFSMOverRaft(t *testing.T) {
	ids := []raft.ServerID{"m0", "m1", "m2"}
	fsms := make([]*FSM, len(ids))
	rafts := make([]*raft.Raft, len(ids))
	trans := make([]*raft.InmemTransport, len(ids))
	var conf raft.Configuration
	for i, id := range ids {
		_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(id))
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i, id := range ids {
		cfg := raft.DefaultConfig()
		cfg.LocalID = id
		cfg.LogOutput = io.Discard
		store := raft.NewInmemStore()
		fsms[i] = NewFSM()
		if err := raft.BootstrapCluster(cfg, store, store, raft.NewInmemSnapshotStore(), trans[i], conf); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(cfg, fsms[i], store, store, raft.NewInmemSnapshotStore(), trans[i])
		if err != nil {
			t.Fatal(err)
		}
		rafts[i] = r
		t.Cleanup(func() { _ = r.Shutdown().Error() })
	}
	// Wait for a leader: every node reports leadership changes to obs.
	obs := make(chan raft.Observation, 16)
	for _, r := range rafts {
		r.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		}))
	}
	var leader *raft.Raft
	var leaderFSM *FSM
	for leader == nil {
		for i, r := range rafts {
			if r.State() == raft.Leader {
				leader, leaderFSM = r, fsms[i]
			}
		}
		if leader == nil {
			<-obs
		}
	}
	var last uint64 // index of the last command applied
	apply := func(c Command) error {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		f := leader.Apply(b, 0)
		if err := f.Error(); err != nil {
			t.Fatalf("raft apply: %v", err)
		}
		last = f.Index()
		if err, _ := f.Response().(error); err != nil {
			return err
		}
		return nil
	}
	for _, id := range ids {
		if err := apply(Command{Op: OpRegisterNode, Node: &Node{ID: string(id), RaftAddr: string(id), APIAddr: string(id)}}); err != nil {
			t.Fatal(err)
		}
	}
	var loads []NodeLoad
	leaderFSM.View(func(s *State) { loads = s.Loads() }) // applied: Apply returned
	cfg := TopicConfig{Partitions: 4, ReplicationFactor: 3}
	a, err := Place(loads, "orders", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(Command{Op: OpCreateTopic, Topic: "orders", Config: &cfg, Assignment: a}); err != nil {
		t.Fatal(err)
	}
	if err := apply(Command{Op: OpCreateTopic, Topic: "orders", Config: &cfg, Assignment: a}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v, want ErrTopicExists", err)
	}
	// Every replica has applied the last command once its Changed
	// channel has fired for it (State.Applied counts commands only; Raft's
	// no-op and barrier entries never reach the FSM); wait on the
	// channels, no polling.
	want := last
	encode := func(f *FSM) []byte {
		for {
			ch := f.Changed()
			var b []byte
			var applied uint64
			f.View(func(s *State) { applied = s.Applied; b, _ = s.Encode() })
			if applied >= want {
				return b
			}
			<-ch
		}
	}
	first := encode(fsms[0])
	for i := range fsms[1:] {
		if b := encode(fsms[i+1]); !bytes.Equal(first, b) {
			t.Fatalf("replica %d differs:\n%s\n%s", i+1, first, b)
		}
	}
	// A fresh FSM restored from a snapshot of one holds the same state.
	snap, err := fsms[1].Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	restored := NewFSM()
	if err := restored.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if b := encode(restored); !bytes.Equal(first, b) {
		t.Fatalf("restored state differs:\n%s\n%s", first, b)
	}
}

func TestFSMRestoreRejectsGarbage(t *testing.T) {
	f := NewFSM()
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte("not a snapshot")))); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("restore garbage: %v, want ErrBadEncoding", err)
	}
	big := io.MultiReader(bytes.NewReader([]byte{snapshotVersion}), io.LimitReader(zeros{}, maxSnapshotBytes+10))
	if err := f.Restore(io.NopCloser(big)); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("restore oversize: %v, want ErrBadEncoding", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }
