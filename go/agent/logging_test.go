package agent

import (
	"errors"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Raft logs its configuration as hclog.Fmt("%+v", servers): the adapter
// must format it, as hclog would, instead of serializing the format
// arguments ("servers":["%+v",…]).
func TestHclogToZapFormatsHclogValues(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := hclogToZap(zap.New(core), "raft", nil)
	type server struct{ ID, Address string }
	l.Info("initial configuration",
		"servers", hclog.Fmt("%+v", []server{{"n1", "127.0.0.1:1"}}),
		"hex", hclog.Hex(255), "octal", hclog.Octal(8), "binary", hclog.Binary(5),
		"quoted", hclog.Quote(`a "b"`),
		42, "non-string key",
		"error", errors.New("boom"),
		"dangling")
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1", len(entries))
	}
	got := entries[0].ContextMap()
	want := map[string]any{
		"component":      "raft",
		"servers":        "[{ID:n1 Address:127.0.0.1:1}]",
		"hex":            "0xff",
		"octal":          "010",
		"binary":         "0b101",
		"quoted":         `a "b"`,
		"42":             "non-string key",
		"error":          "boom",
		hclog.MissingKey: "dangling",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %q = %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want exactly %v", got, want)
	}
}

// The adapter's level follows zap's: messages below it are dropped.
func TestHclogToZapLevels(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	l := hclogToZap(zap.New(core), "mux", nil)
	l.Debug("d")
	l.Info("i")
	l.Warn("w")
	l.Error("e")
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+":"+e.Message)
	}
	if len(got) != 2 || got[0] != "warn:w" || got[1] != "error:e" {
		t.Errorf("logged %v, want [warn:w error:e]", got)
	}
	if l.IsInfo() || !l.IsWarn() {
		t.Errorf("IsInfo = %v, IsWarn = %v; want false, true", l.IsInfo(), l.IsWarn())
	}
}

// The zap logger names the node: a "node" key of hashicorp/raft's (or a
// peer's) must not repeat that key, which JSON tools would read as this
// node's name.
func TestHclogToZapRenamesTheNodeKey(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := hclogToZap(zap.New(core).With(zap.String("node", "n1")), "raft", nil)
	l.Info("entering candidate state", "node", "Node at 127.0.0.1:1 [Candidate]", "term", 2)
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1", len(entries))
	}
	got := entries[0].ContextMap()
	if got["node"] != "n1" || got["raft_node"] != "Node at 127.0.0.1:1 [Candidate]" {
		t.Fatalf("fields %v, want node n1 and raft_node", got)
	}
}

// Once the node stops, Raft's, Serf's and the mux's errors are expected
// (the transport shuts down, peers reset connections): they are logged at
// info level; before, and for warnings, the level is kept.
func TestHclogToZapDemotesErrorsWhileStopping(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	stopping := make(chan struct{})
	l := hclogToZap(zap.New(core), "raft", stopping)
	l.Error("before", "error", errors.New("real"))
	l.Warn("warn before")
	close(stopping)
	l.Error("failed to decode incoming command", "error", errors.New("transport shutdown"))
	l.Warn("warn after")
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+":"+e.Message)
	}
	want := []string{"error:before", "warn:warn before", "info:failed to decode incoming command", "warn:warn after"}
	if !slices.Equal(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}
}
