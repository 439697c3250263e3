package replication

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
)

func TestArena(t *testing.T) {
	var a arena
	for round := 0; round < 2; round++ {
		a.reset()
		for i := 0; i < 5; i++ {
			a.buf = append(a.buf, fmt.Sprintf("rec-%d", i)...)
			a.add()
		}
		got := a.slices()
		want := []string{"rec-0", "rec-1", "rec-2", "rec-3", "rec-4"}
		if len(got) != len(want) {
			t.Fatalf("round %d: %q", round, got)
		}
		for i := range want {
			if string(got[i]) != want[i] || cap(got[i]) != len(got[i]) {
				t.Fatalf("round %d: slice %d = %q (cap %d), want %q", round, i, got[i], cap(got[i]), want[i])
			}
		}
	}
	a.buf = make([]byte, 0, 2*arenaKeepBytes)
	a.reset()
	if cap(a.buf) != 0 {
		t.Fatalf("reset kept a %d-byte buffer", cap(a.buf))
	}
}

// StoreLogs encodes into reused buffers: after a warm-up, a batch of 100
// entries costs a handful of allocations, not one or more per entry (the
// state machine's side: TestFSMApplyReadsOnlyTheHeader).
func TestStoreLogsAllocations(t *testing.T) {
	cfg := seglog.DefaultConfig()
	cfg.Sync = seglog.SyncNever
	s, err := OpenLogStore(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := uint64(1)
	batch := func() []*raft.Log {
		out := make([]*raft.Log, 100)
		for i := range out {
			out[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{'d'}, 100)}
			next++
		}
		return out
	}
	if err := s.StoreLogs(batch()); err != nil {
		t.Fatal(err)
	}
	logs := batch()
	next -= 100
	allocs := testing.AllocsPerRun(20, func() {
		for i := range logs {
			logs[i].Index = next + uint64(i)
		}
		next += 100
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Errorf("StoreLogs of 100 entries: %.0f allocations", allocs)
	}
}
