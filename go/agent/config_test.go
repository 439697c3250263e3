package agent_test

import (
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
)

func TestConfigValidate(t *testing.T) {
	good := func() agent.Config {
		c := agent.DefaultConfig()
		c.DataDir = "/tmp/x"
		c.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 16))
		c.TLS = auth.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	d := agent.DefaultConfig()
	if d.NodeName == "" || !d.Voter || d.Bootstrap || d.BindAddr != "127.0.0.1:8400" || d.SerfBindAddr != "127.0.0.1:8402" ||
		d.ReadConsistency != commitlog.ConsistencyLinearizable || d.MaxRecordBytes != server.DefaultMaxRecordBytes || d.HealthAddr != "" ||
		d.ControllerVoters != 3 || d.ReplicaReplacementDelay != 10*time.Minute || d.DefaultReplicationFactor != 3 ||
		d.PreferredLeaderDelay != 10*time.Second {
		t.Fatalf("defaults: %+v", d)
	}
	withHealth := good()
	withHealth.HealthAddr = ":8403"
	if err := withHealth.Validate(); err != nil {
		t.Fatalf("HealthAddr %q: %v", withHealth.HealthAddr, err)
	}
	withListeners := good()
	withListeners.BindAddr, withListeners.Listener = "", dummyListener{}
	withListeners.HealthListener = dummyListener{}
	if err := withListeners.Validate(); err != nil {
		t.Fatalf("Listener and HealthListener: %v", err)
	}
	for want, mod := range map[string]func(*agent.Config){
		"BindAddr \"127.0.0.1:8400\" and Listener are exclusive": func(c *agent.Config) { c.Listener = dummyListener{} },
		"HealthAddr \":8403\" and HealthListener are exclusive": func(c *agent.Config) {
			c.HealthAddr, c.HealthListener = ":8403", dummyListener{}
		},
		"DataDir is empty":                              func(c *agent.Config) { c.DataDir = "" },
		"ControllerVoters is 0":                         func(c *agent.Config) { c.ControllerVoters = 0 },
		"ReplicaReplacementDelay is -1s":                func(c *agent.Config) { c.ReplicaReplacementDelay = -time.Second },
		"PreferredLeaderDelay is -1s":                   func(c *agent.Config) { c.PreferredLeaderDelay = -time.Second },
		"DefaultReplicationFactor is 8, must be 1 to 7": func(c *agent.Config) { c.DefaultReplicationFactor = 8 },
		`LogName is "audit", must be "log"`:             func(c *agent.Config) { c.LogName = "audit" },
		"NodeName is empty":                             func(c *agent.Config) { c.NodeName = "" },
		"NodeName: nodeid: invalid node name":           func(c *agent.Config) { c.NodeName = "a/b" },
		"BindAddr is empty":                             func(c *agent.Config) { c.BindAddr = "" },
		`BindAddr "localhost"`:                          func(c *agent.Config) { c.BindAddr = "localhost" },
		`SerfAdvertiseAddr "a:b"`:                       func(c *agent.Config) { c.SerfAdvertiseAddr = "a:b" },
		"StartJoinAddrs entry":                          func(c *agent.Config) { c.StartJoinAddrs = []string{"x"} },
		"GossipKey: no gossip key":                      func(c *agent.Config) { c.GossipKey = "" },
		"GossipKey: gossip key is 8 bytes": func(c *agent.Config) {
			c.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 8))
		},
		"not base64":                             func(c *agent.Config) { c.GossipKey = "!!!" },
		"TLS needs CertFile":                     func(c *agent.Config) { c.TLS.CAFile = "" },
		"MaxRecordBytes is 0":                    func(c *agent.Config) { c.MaxRecordBytes = 0 },
		"MaxStreams (-2) must be 0":              func(c *agent.Config) { c.MaxStreams = -2 },
		"unknown ReadConsistency":                func(c *agent.Config) { c.ReadConsistency = 3 },
		"unknown GossipProfile":                  func(c *agent.Config) { c.GossipProfile = 9 },
		"ShutdownTimeout is 0s":                  func(c *agent.Config) { c.ShutdownTimeout = 0 },
		"unknown trace exporter":                 func(c *agent.Config) { c.Tracing.Exporter = "jaeger" },
		"Logger is nil":                          func(c *agent.Config) { c.Logger = nil },
		`MetricsAddr "127.0.0.1:x"`:              func(c *agent.Config) { c.MetricsAddr = "127.0.0.1:x" },
		`HealthAddr ":8403x"`:                    func(c *agent.Config) { c.HealthAddr = ":8403x" },
		`HealthAddr "8403"`:                      func(c *agent.Config) { c.HealthAddr = "8403" },
		`AdvertiseAddr "[::1]:1:2"`:              func(c *agent.Config) { c.AdvertiseAddr = "[::1]:1:2" },
		`SerfBindAddr "0.0.0.0:99999"`:           func(c *agent.Config) { c.SerfBindAddr = "0.0.0.0:99999" },
		"unknown Sync policy":                    func(c *agent.Config) { c.Sync = 7 },
		"SyncInterval is -1s":                    func(c *agent.Config) { c.SyncInterval = -time.Second },
		"Retention.MaxAge is -1h0m0s":            func(c *agent.Config) { c.Retention.MaxAge = -time.Hour },
		"SegmentBytes is 1000, must be at least": func(c *agent.Config) { c.SegmentBytes = 1000 },
		"Producers: producer: invalid config: MaxProducers must be at least 1":                  func(c *agent.Config) { c.Producers.MaxProducers = 0 },
		"Producers: producer: invalid config: Expiry (1m0s) must be at least EvictAfter (5m0s)": func(c *agent.Config) { c.Producers.Expiry = time.Minute },
	} {
		c := good()
		mod(&c)
		err := c.Validate()
		if !errors.Is(err, agent.ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want ErrInvalidConfig mentioning %q", err, want)
		}
	}
	// Every problem is reported.
	c := good()
	c.DataDir, c.NodeName = "", ""
	if err := c.Validate(); !strings.Contains(err.Error(), "DataDir") || !strings.Contains(err.Error(), "NodeName") {
		t.Errorf("not every problem reported: %v", err)
	}
}

func TestParseSyncPolicy(t *testing.T) {
	if d := agent.DefaultConfig(); d.Sync != seglog.SyncAlways {
		t.Fatalf("default Sync %v, want SyncAlways", d.Sync)
	}
	for s, want := range map[string]seglog.SyncPolicy{"always": seglog.SyncAlways, "interval": seglog.SyncInterval, "never": seglog.SyncNever} {
		if got, err := agent.ParseSyncPolicy(s); err != nil || got != want {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := agent.ParseSyncPolicy("sometimes"); !errors.Is(err, agent.ErrInvalidConfig) {
		t.Errorf("ParseSyncPolicy(sometimes): %v", err)
	}
}

func TestGossipKeys(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		raw := make([]byte, n)
		raw[0] = 0xfb // '+' / '-' in the first character, per alphabet
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			got, err := agent.DecodeGossipKey(" " + enc.EncodeToString(raw) + "\n")
			if err != nil || len(got) != n || got[0] != 0xfb {
				t.Errorf("DecodeGossipKey(%d bytes): %v, %v", n, got, err)
			}
		}
	}
	k1, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := agent.GenerateGossipKey()
	if b, err := agent.DecodeGossipKey(k1); err != nil || len(b) != 32 || k1 == k2 {
		t.Fatalf("generated keys %q %q: %v", k1, k2, err)
	}

	dir := filepath.Join(t.TempDir(), "data")
	key, created, err := agent.LoadOrCreateGossipKey(dir)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateGossipKey: %v, created %v", err, created)
	}
	path := filepath.Join(dir, agent.GossipKeyFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	again, created, err := agent.LoadOrCreateGossipKey(dir)
	if err != nil || created || again != key {
		t.Fatalf("second call: %q (created %v), %v; want the stored %q", again, created, err, key)
	}
	if got, err := agent.ReadGossipKeyFile(path); err != nil || got != key {
		t.Fatalf("ReadGossipKeyFile: %q, %v", got, err)
	}
	if err := os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := agent.LoadOrCreateGossipKey(dir); err == nil || !strings.Contains(err.Error(), "5 bytes") {
		t.Fatalf("a bad key file must be reported, not replaced: %v", err)
	}
}

// dummyListener stands for a listener Validate does not use.
type dummyListener struct{ net.Listener }
