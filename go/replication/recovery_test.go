package replication

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/mux"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

// lastStore returns the newest store file of the go/seglog directory dir.
func lastStore(t *testing.T, dir string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*"+segment.StoreSuffix))
	if len(names) == 0 {
		t.Fatalf("no store in %s", dir)
	}
	return names[len(names)-1]
}

// crashTail makes dir's last segment look like a crash cut a write short:
// its index is gone (as if never closed cleanly) and junk follows its last
// record.
func crashTail(t *testing.T, dir string) {
	t.Helper()
	store := lastStore(t, dir)
	base, _, _ := segment.ParseName(filepath.Base(store))
	if err := os.Remove(segment.IndexPath(dir, base)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(store, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0, 0, 0, 9, 1}); err != nil { // a record header cut short
		t.Fatal(err)
	}
}

func TestNewReportsRecovery(t *testing.T) {
	var logs testutil.SyncBuffer
	n := newNode(t, "solo", true, func(c *Config) {
		c.SnapshotInterval = time.Hour
		c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs})
	})
	waitLeader(t, n)
	ctx := ctxT(t)
	appendRecs(t, ctx, n, 5)
	if r := n.Recovery(); len(r.Actions()) != 0 {
		t.Fatalf("new node reports recovery: %+v", r)
	}
	n.stop()
	crashTail(t, filepath.Join(n.dir, "raft", "log", segmentsDir))
	n.start()
	var got []string
	for _, a := range n.Recovery().Actions() {
		got = append(got, a.Log+" "+a.Action)
	}
	want := []string{"raft " + RecoveryIndexRebuilt, "raft " + RecoveryTornTailCut}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Recovery actions %q, want %q", got, want)
	}
	for _, w := range want {
		l, a, _ := strings.Cut(w, " ")
		if !strings.Contains(logs.String(), "[WARN]  recovery: "+a+": log="+l) {
			t.Errorf("no WARN log for %s; logs:\n%s", w, logs.String())
		}
	}
	if r := n.Recovery(); r.RaftLog[0].TornPath == "" {
		t.Fatalf("no side file named: %+v", r)
	}
	waitLeader(t, n)
	for off := range uint64(5) {
		if b, err := n.Read(ctx, off, ReadLinearizable); err != nil || !bytes.Equal(b, rec(int(off))) {
			t.Fatalf("offset %d after recovery: %q, %v", off, b, err)
		}
	}
}

func TestNewRefusesCorruptRaftLog(t *testing.T) {
	n := newNode(t, "solo", true, func(c *Config) { c.SnapshotInterval = time.Hour })
	waitLeader(t, n)
	if _, err := n.Append(ctxT(t), rec(0)); err != nil {
		t.Fatal(err)
	}
	n.stop()
	// Cleanly closed, so its last entry was fsynced: damage there is
	// corruption, not a torn write to cut.
	store := lastStore(t, filepath.Join(n.dir, "raft", "log", segmentsDir))
	fi, err := os.Stat(store)
	if err != nil {
		t.Fatal(err)
	}
	corruptFile(t, store, fi.Size()-1)
	before, _ := os.ReadFile(store)
	mc := mux.DefaultConfig()
	mc.InsecurePlaintext = true
	m, err := mux.New(testutil.HoldPort(t).Listener(), mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	go m.Serve()
	cfg := fastConfig(t, n.id, n.dir, muxGroup(t, m))
	for range 2 { // and again: the failed start changed nothing
		l, err := New(cfg)
		if !errors.Is(err, seglog.ErrCorrupt) || !strings.Contains(err.Error(), "refusing to start") {
			if l != nil {
				l.Close()
			}
			t.Fatalf("New with a corrupt Raft log: %v, want seglog.ErrCorrupt", err)
		}
		if after, _ := os.ReadFile(store); !bytes.Equal(after, before) {
			t.Fatal("New changed the corrupt Raft log")
		}
	}
}
