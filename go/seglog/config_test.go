package seglog

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Segment.MaxStoreBytes != 64<<20 || c.Segment.MaxIndexBytes != 1<<20 || c.MaxRecordBytes != 1<<20 ||
		c.Sync != SyncAlways || c.SyncInterval != time.Second || c.InitialOffset != 0 ||
		c.Retention.MaxBytes != 0 || c.Retention.MaxAge != 0 {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	// Zero fields mean their defaults.
	if got := (Config{}).withDefaults(); got != c {
		t.Fatalf("Config{}.withDefaults() = %+v, want %+v", got, c)
	}
}

func TestValidate(t *testing.T) {
	with := func(f func(c *Config)) Config { c := DefaultConfig(); f(&c); return c }
	tests := []struct {
		name string
		c    Config
		want []string // substrings of the error, none = valid
	}{
		{"zero config", Config{}, nil},
		{"defaults", DefaultConfig(), nil},
		{"smallest index", with(func(c *Config) { c.Segment.MaxIndexBytes = 36 }), nil},
		{"index too small", with(func(c *Config) { c.Segment.MaxIndexBytes = 35 }),
			[]string{"Config.Segment.MaxIndexBytes is 35, must be at least 36"}},
		{"index too big", with(func(c *Config) { c.Segment.MaxIndexBytes = 5 << 30 }),
			[]string{"MaxIndexBytes is 5368709120, must be at most 4294967296"}},
		{"record too big for the format", with(func(c *Config) { c.MaxRecordBytes = 1 << 32; c.Segment.MaxStoreBytes = 1 << 40 }),
			[]string{"Config.MaxRecordBytes is 4294967296, must be at most 4294967295"}},
		{"store smaller than a record", with(func(c *Config) { c.Segment.MaxStoreBytes = 1000; c.MaxRecordBytes = 1000 }),
			[]string{"Config.Segment.MaxStoreBytes is 1000, must be at least 1032"}},
		{"store exactly one record", with(func(c *Config) { c.Segment.MaxStoreBytes = 1032; c.MaxRecordBytes = 1000 }), nil},
		{"bad sync policy", with(func(c *Config) { c.Sync = 7 }),
			[]string{"Config.Sync is SyncPolicy(7)"}},
		{"negative sync interval", with(func(c *Config) { c.SyncInterval = -time.Second }),
			[]string{"Config.SyncInterval is -1s, must not be negative"}},
		{"negative max age", with(func(c *Config) { c.Retention.MaxAge = -time.Hour }),
			[]string{"Config.Retention.MaxAge is -1h0m0s, must not be negative"}},
		{"several problems are all reported", with(func(c *Config) { c.Sync = -1; c.Retention.MaxAge = -1 }),
			[]string{"Config.Sync", "Config.Retention.MaxAge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			// Open refuses the same configuration.
			if _, oerr := Open(t.TempDir(), tt.c); oerr == nil || oerr.Error() != err.Error() {
				t.Errorf("Open error %v, want %v", oerr, err)
			}
		})
	}
}

func TestSyncPolicyString(t *testing.T) {
	for p, want := range map[SyncPolicy]string{SyncAlways: "SyncAlways", SyncInterval: "SyncInterval", SyncNever: "SyncNever", 9: "SyncPolicy(9)"} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(p), got, want)
		}
	}
}
