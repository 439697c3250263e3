package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/seglog"
)

func openTestFSM(t *testing.T, dir string) *fsm {
	t.Helper()
	f, _, err := openFSM(dir, seglog.Config{MaxRecordBytes: 200}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close() })
	return f
}

func cmd(index uint64, recs ...string) *raft.Log {
	bs := make([][]byte, len(recs))
	for i, r := range recs {
		bs[i] = []byte(r)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeAppend(bs)}
}

func dataOf(t *testing.T, f *fsm) []string {
	t.Helper()
	var out []string
	for off := f.lowestOffset(); off < f.nextOffset(); off++ {
		b, err := f.read(off)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		out = append(out, string(b))
	}
	return out
}

func equal(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("data %q, want %q", got, want)
	}
}

func TestFSMApplyBatchResponses(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	resps := f.ApplyBatch([]*raft.Log{
		cmd(1, "a"),
		{Index: 2, Term: 1, Type: raft.LogConfiguration},
		cmd(3, "b", "c", "d"),
		{Index: 4, Term: 1, Type: raft.LogCommand, Data: []byte{9}}, // unknown command
		cmd(5, "e"),
	})
	if resps[0] != (applyResult{first: 0}) || resps[1] != nil || resps[2] != (applyResult{first: 1}) || resps[4] != (applyResult{first: 4}) {
		t.Fatalf("responses %v", resps)
	}
	if err, ok := resps[3].(error); !ok || !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("bad command response %v", resps[3])
	}
	equal(t, dataOf(t, f), "a", "b", "c", "d", "e")
	if f.applied.Load() != 5 {
		t.Fatalf("applied %d", f.applied.Load())
	}
	// Single Apply too.
	if r := f.Apply(cmd(6, "f")); r != (applyResult{first: 5}) {
		t.Fatalf("Apply = %v", r)
	}
}

func TestFSMReplayIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	entries := []*raft.Log{cmd(1, "a"), cmd(2, "b", "c"), cmd(4, "d")}
	f.ApplyBatch(entries)
	f.close()

	f = openTestFSM(t, dir)
	if f.applied.Load() != 4 {
		t.Fatalf("applied after reopen %d, want 4", f.applied.Load())
	}
	// Raft replays everything after its snapshot: all skipped.
	for _, r := range f.ApplyBatch(entries) {
		if r != (applyResult{skipped: true}) {
			t.Fatalf("replayed entry applied again: %v", r)
		}
	}
	f.ApplyBatch([]*raft.Log{cmd(5, "e")})
	equal(t, dataOf(t, f), "a", "b", "c", "d", "e")
}

func TestFSMCompletesPartialBatch(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	f.ApplyBatch([]*raft.Log{cmd(1, "a"), cmd(2, "b", "c", "d")})
	f.close()
	// A crash tore the batch: only "b" survived.
	l, err := seglog.Open(filepath.Join(dir, dataDir), seglog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateAfter(1); err != nil {
		t.Fatal(err)
	}
	l.Close()

	f = openTestFSM(t, dir)
	resps := f.ApplyBatch([]*raft.Log{cmd(1, "a"), cmd(2, "b", "c", "d"), cmd(3, "e")})
	if resps[0] != (applyResult{skipped: true}) || resps[1] != (applyResult{first: 1}) || resps[2] != (applyResult{first: 4}) {
		t.Fatalf("responses %v", resps)
	}
	equal(t, dataOf(t, f), "a", "b", "c", "d", "e")
	for off, want := range []envelope{{1, 1, 0, 1}, {2, 1, 0, 3}, {2, 1, 1, 3}, {2, 1, 2, 3}, {3, 1, 0, 1}} {
		b, _ := f.current().Read(uint64(off))
		e, _, err := decodeEnvelope(b)
		if err != nil || e != want {
			t.Fatalf("envelope %d = %+v, %v; want %+v", off, e, err, want)
		}
	}
}

func TestFSMRejectsOversizedRecordEverywhere(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	big := string(bytes.Repeat([]byte("x"), 300))
	resps := f.ApplyBatch([]*raft.Log{cmd(1, "a"), cmd(2, "b", big), cmd(3, "c")})
	if err, ok := resps[1].(error); !ok || !errors.Is(err, seglog.ErrRecordTooLarge) {
		t.Fatalf("oversized: %v", resps[1])
	}
	if resps[2] != (applyResult{first: 1}) {
		t.Fatalf("entry after it: %v", resps[2])
	}
	equal(t, dataOf(t, f), "a", "c")
}

func TestFSMStopsAfterAWriteFailure(t *testing.T) {
	f := openTestFSM(t, t.TempDir())
	f.ApplyBatch([]*raft.Log{cmd(1, "a")})
	f.current().Close() // every write now fails
	resps := f.ApplyBatch([]*raft.Log{cmd(2, "b")})
	if err, ok := resps[0].(error); !ok || !errors.Is(err, ErrFailed) {
		t.Fatalf("failed write: %v", resps[0])
	}
	if err, ok := f.ApplyBatch([]*raft.Log{cmd(3, "c")})[0].(error); !ok || !errors.Is(err, ErrFailed) {
		t.Fatalf("apply after a failure: %v", err)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrFailed) {
		t.Fatalf("snapshot after a failure: %v", err)
	}
	if _, err := f.read(0); !errors.Is(err, ErrFailed) {
		t.Fatalf("read after a failure: %v", err)
	}
	if f.applied.Load() != 1 {
		t.Fatalf("applied advanced past the failure: %d", f.applied.Load())
	}
}

func TestFSMSnapshotRestore(t *testing.T) {
	src := openTestFSM(t, t.TempDir())
	src.ApplyBatch([]*raft.Log{cmd(1, "a"), cmd(2, "b", "c"), {Index: 3, Type: raft.LogConfiguration}})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	store, _ := testSnapshotStore(t, src)
	id := persist(t, store, snap, 3)
	// Applied after the snapshot was taken: not in it.
	src.ApplyBatch([]*raft.Log{cmd(4, "d")})
	stream, err := open(t, store, id)
	if err != nil {
		t.Fatal(err)
	}

	dst := openTestFSM(t, t.TempDir())
	dst.ApplyBatch([]*raft.Log{cmd(1, "stale")})
	waiting := make(chan error, 1)
	go func() { waiting <- dst.wait(t.Context(), 2) }()
	if err := dst.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
		t.Fatal(err)
	}
	equal(t, dataOf(t, dst), "a", "b", "c")
	if dst.applied.Load() != 3 || dst.last != (envelope{2, 1, 1, 2}) {
		t.Fatalf("after restore applied %d last %+v", dst.applied.Load(), dst.last)
	}
	// Raft replays what follows the snapshot.
	dst.ApplyBatch([]*raft.Log{cmd(2, "b", "c"), cmd(4, "d")})
	equal(t, dataOf(t, dst), "a", "b", "c", "d")
	// A Wait on the replaced log moved to the new one.
	if err := <-waiting; err != nil {
		t.Fatalf("Wait across Restore: %v", err)
	}

	// Bad streams leave the data log as it was.
	for name, b := range map[string][]byte{
		"empty":      nil,
		"bad header": append([]byte("XXXXXXXX"), stream[8:]...),
		"cut data":   stream[:len(stream)-3],
	} {
		if err := dst.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		}
		equal(t, dataOf(t, dst), "a", "b", "c", "d")
	}
}

func TestFSMSetsCorruptDataLogAside(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	f.ApplyBatch([]*raft.Log{cmd(1, "a")})
	f.close()
	// A damaged header makes the data log unopenable.
	matches, _ := filepath.Glob(filepath.Join(dir, dataDir, "*.store"))
	if len(matches) == 0 {
		t.Fatal("no store file")
	}
	corruptFile(t, matches[0], 0)
	g, lost, err := openFSM(dir, seglog.Config{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if !lost || g.nextOffset() != 0 {
		t.Fatalf("lost %v, next %d", lost, g.nextOffset())
	}
	aside, _ := filepath.Glob(filepath.Join(dir, dataCorruptDir+".*"))
	if len(aside) != 1 {
		t.Fatalf("corrupt data log not kept aside: %v", aside)
	}
}
