package discovery

import (
	"errors"
	"testing"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.BindAddr != DefaultBindAddr || c.Profile != ProfileLAN || c.ReconnectTimeout != DefaultReconnectTimeout ||
		c.ReapInterval != DefaultReapInterval || c.TombstoneTimeout != DefaultTombstoneTimeout {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("DefaultConfig without a name and key must not validate: %v", err)
	}
	c.NodeName, c.EncryptKey = "n1", make([]byte, 32)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.NodeName = "n1"
		c.EncryptKey = make([]byte, 16)
		c.Tags = map[string]string{TagRPCAddr: "127.0.0.1:8400", TagVoter: "true"}
		return c
	}
	for _, n := range []int{16, 24, 32} {
		c := good()
		c.EncryptKey = make([]byte, n)
		if err := c.Validate(); err != nil {
			t.Errorf("%d-byte key: %v", n, err)
		}
	}
	insecure := good()
	insecure.EncryptKey, insecure.AllowInsecureGossip = nil, true
	if err := insecure.Validate(); err != nil {
		t.Errorf("explicitly insecure: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no name":            func(c *Config) { c.NodeName = "" },
		"no port":            func(c *Config) { c.BindAddr = "127.0.0.1" },
		"bad port":           func(c *Config) { c.BindAddr = "127.0.0.1:http" },
		"port out of range":  func(c *Config) { c.BindAddr = "127.0.0.1:70000" },
		"bad advertise":      func(c *Config) { c.AdvertiseAddr = "x" },
		"no key":             func(c *Config) { c.EncryptKey = nil },
		"short key":          func(c *Config) { c.EncryptKey = make([]byte, 15) },
		"key and insecure":   func(c *Config) { c.AllowInsecureGossip = true },
		"unknown profile":    func(c *Config) { c.Profile = 7 },
		"zero reconnect":     func(c *Config) { c.ReconnectTimeout = 0 },
		"zero reap interval": func(c *Config) { c.ReapInterval = 0 },
		"zero tombstone":     func(c *Config) { c.TombstoneTimeout = 0 },
		"bad voter tag":      func(c *Config) { c.Tags[TagVoter] = "yes" },
	} {
		c := good()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}
