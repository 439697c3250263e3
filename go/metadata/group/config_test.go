package group

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// nopStream satisfies raft.StreamLayer for config checks.
type nopStream struct{ net.Listener }

func (nopStream) Dial(raft.ServerAddress, time.Duration) (net.Conn, error) {
	return nil, errors.New("no")
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.DataDir, c.LocalID, c.APIAddr, c.StreamLayer = t.TempDir(), "n0", "127.0.0.1:8400", nopStream{}
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no data dir":     {func(c *Config) { c.DataDir = "" }, "DataDir is required"},
		"no local ID":     {func(c *Config) { c.LocalID = "" }, "LocalID is required"},
		"no API address":  {func(c *Config) { c.APIAddr = "" }, "APIAddr is required"},
		"no stream layer": {func(c *Config) { c.StreamLayer = nil }, "StreamLayer is required"},
		"no verify timeout": {func(c *Config) {
			c.PeerName = func(net.Conn) (string, error) { return "", nil }
			c.JoinVerifyTimeout = 0
		}, "JoinVerifyTimeout"},
		"no voters":          {func(c *Config) { c.ControllerVoters = 0 }, "ControllerVoters must be at least 1, got 0"},
		"default factor 0":   {func(c *Config) { c.DefaultTopicReplicationFactor = 0 }, "DefaultTopicReplicationFactor must be 1 to 7, got 0"},
		"default factor 8":   {func(c *Config) { c.DefaultTopicReplicationFactor = 8 }, "DefaultTopicReplicationFactor must be 1 to 7, got 8"},
		"negative delay":     {func(c *Config) { c.ReplacementDelay = -time.Second }, "ReplacementDelay must not be negative"},
		"no interval":        {func(c *Config) { c.ControllerInterval = 0 }, "ControllerInterval must be positive"},
		"no apply timeout":   {func(c *Config) { c.ApplyTimeout = 0 }, "ApplyTimeout must be positive"},
		"no snapshots":       {func(c *Config) { c.SnapshotRetain = 0 }, "SnapshotRetain must be at least 1"},
		"no pool":            {func(c *Config) { c.MaxPool = 0 }, "MaxPool must be at least 1"},
		"no transport limit": {func(c *Config) { c.TransportTimeout = 0 }, "TransportTimeout must be positive"},
		"no command size":    {func(c *Config) { c.MaxCommandBytes = 0 }, "MaxCommandBytes must be positive"},
		"no group members":   {func(c *Config) { c.MaxGroupMembers = 0 }, "MaxGroupMembers must be at least 1, got 0"},
		"no groups":          {func(c *Config) { c.MaxGroups = 0 }, "MaxGroups must be 1 to 10000 (metadata.MaxConsumerGroups), got 0"},
		"no session checks":  {func(c *Config) { c.SessionCheckInterval = 0 }, "SessionCheckInterval must be positive"},
		"raft timings":       {func(c *Config) { c.HeartbeatTimeout = time.Millisecond }, "raft:"},
	} {
		c := valid()
		tc.mod(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalidConfig saying %q", name, err, tc.want)
		}
	}
	if _, err := Open(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open of a zero Config: %v, want ErrInvalidConfig", err)
	}
}
