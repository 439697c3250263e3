package replication

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// nopStream satisfies raft.StreamLayer for config checks.
type nopStream struct{ net.Listener }

func (nopStream) Dial(raft.ServerAddress, time.Duration) (net.Conn, error) {
	return nil, errors.New("no")
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.MaxRecordBytes != DefaultMaxRecordBytes || c.RaftLog.MaxRecordBytes != DefaultRaftMaxRecordBytes ||
		c.SnapshotRetain != DefaultSnapshotRetain || c.HeartbeatTimeout != DefaultHeartbeatTimeout {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("DefaultConfig without DataDir, LocalID, StreamLayer: %v", err)
	}
	c.DataDir, c.LocalID, c.StreamLayer = t.TempDir(), "n1", nopStream{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	rc := c.raftConfig()
	if !rc.NoSnapshotRestoreOnStart || rc.LocalID != "n1" || rc.TrailingLogs != DefaultTrailingLogs {
		t.Fatalf("raft config %+v", rc)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.DataDir, c.LocalID, c.StreamLayer = "/tmp/x", "n1", nopStream{}
		return c
	}
	for name, mod := range map[string]func(*Config){
		"no data dir":                   func(c *Config) { c.DataDir = "" },
		"no id":                         func(c *Config) { c.LocalID = "" },
		"no stream layer":               func(c *Config) { c.StreamLayer = nil },
		"no snapshots kept":             func(c *Config) { c.SnapshotRetain = 0 },
		"zero apply timeout":            func(c *Config) { c.ApplyTimeout = 0 },
		"no pool":                       func(c *Config) { c.MaxPool = 0 },
		"zero transport":                func(c *Config) { c.TransportTimeout = 0 },
		"records too large for entries": func(c *Config) { c.MaxRecordBytes = c.RaftLog.MaxRecordBytes },
		"tiny raft records":             func(c *Config) { c.RaftLog.MaxRecordBytes = 10 },
		"bad raft log":                  func(c *Config) { c.RaftLog.Segment.MaxStoreBytes = 100 },
		"lease > heartbeat":             func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout },
		"tiny heartbeat":                func(c *Config) { c.HeartbeatTimeout = time.Millisecond },
		"negative retention interval":   func(c *Config) { c.RetentionInterval = -1 },
		"retention without interval": func(c *Config) {
			c.Retention.MaxAge = time.Hour
			c.RetentionInterval = 0
		},
		"negative retention age":            func(c *Config) { c.Retention.MaxAge = -1 },
		"no producer expiry":                func(c *Config) { c.Producers.Expiry = 0 },
		"no producers":                      func(c *Config) { c.Producers.MaxProducers = 0 },
		"byte threshold below a segment":    func(c *Config) { c.SnapshotThresholdBytes = c.RaftLog.Segment.MaxStoreBytes - 1 },
		"initial servers without bootstrap": func(c *Config) { c.InitialServers = []Server{{ID: "n1"}} },
		"initial servers without local": func(c *Config) {
			c.Bootstrap, c.InitialServers = true, []Server{{ID: "n2", RPCAddr: "a:1"}}
		},
		"initial server twice": func(c *Config) {
			c.Bootstrap, c.InitialServers = true, []Server{{ID: "n1"}, {ID: "n1"}}
		},
		"initial server without address": func(c *Config) {
			c.Bootstrap, c.InitialServers = true, []Server{{ID: "n1"}, {ID: "n2"}}
		},
		"initial server without id": func(c *Config) {
			c.Bootstrap, c.InitialServers = true, []Server{{ID: "n1"}, {RPCAddr: "a:1"}}
		},
		"no verify timeout": func(c *Config) {
			c.PeerName = func(net.Conn) (string, error) { return "", nil }
			c.JoinVerifyTimeout = 0
		},
	} {
		c := good()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
	c := good()
	c.RetentionInterval, c.SnapshotThresholdBytes = 0, 0 // no retention, no byte threshold
	if err := c.Validate(); err != nil {
		t.Errorf("retention and byte threshold off: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with an empty config: %v", err)
	}
}

func TestConsistencyString(t *testing.T) {
	if ReadLinearizable.String() != "linearizable" || ReadFollower.String() != "follower" || Consistency(7).String() != "Consistency(7)" {
		t.Fatal("Consistency.String")
	}
}
