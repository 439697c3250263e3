package diskspace

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeFS is a Statfs with a settable answer that counts its calls.
type fakeFS struct {
	free  uint64
	err   error
	calls int
}

func (f *fakeFS) statfs(string) (uint64, error) {
	f.calls++
	return f.free, f.err
}

// newGuard returns a Guard on fs with a clock the test moves.
func newGuard(t *testing.T, fs *fakeFS, min uint64) (*Guard, *time.Time) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir, cfg.MinFreeBytes, cfg.Statfs = "/data", min, fs.statfs
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	g.next.Store(now.Add(cfg.RefreshInterval).UnixNano())
	return g, &now
}

func TestCheckAgainstWatermarkAndReserve(t *testing.T) {
	fs := &fakeFS{free: 1000}
	g, now := newGuard(t, fs, 800)
	for _, tc := range []struct {
		free              uint64
		refuse, noReserve bool
	}{
		{1000, false, false},
		{800, false, false},
		{799, true, false},
		{400, true, false},
		{399, true, true},
		{0, true, true},
		{900, false, false}, // space returns: accepted again
	} {
		fs.free = tc.free
		*now = now.Add(DefaultRefreshInterval)
		err := g.Check()
		if (err != nil) != tc.refuse || g.Refusing() != tc.refuse {
			t.Fatalf("free %d: Check = %v, want refusing %v", tc.free, err, tc.refuse)
		}
		if rerr := g.CheckReserve(); (rerr != nil) != tc.noReserve {
			t.Fatalf("free %d: CheckReserve = %v, want refusing %v", tc.free, rerr, tc.noReserve)
		}
		if err == nil {
			continue
		}
		var le *LowSpaceError
		if !errors.Is(err, ErrLowSpace) || !errors.As(err, &le) || le.Free != tc.free || le.Required != 800 || le.Dir != "/data" {
			t.Fatalf("free %d: error %#v", tc.free, err)
		}
		for _, s := range []string{"/data", "800 required", "--min-free-bytes"} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("message %q does not say %q", err, s)
			}
		}
	}
}

func TestMeasuresAtMostOncePerInterval(t *testing.T) {
	fs := &fakeFS{free: 1000}
	g, now := newGuard(t, fs, 500)
	if fs.calls != 1 {
		t.Fatalf("New measured %d times, want 1", fs.calls)
	}
	fs.free = 10
	for range 100 {
		if err := g.Check(); err != nil {
			t.Fatalf("within the interval the cached value counts: %v", err)
		}
	}
	*now = now.Add(DefaultRefreshInterval - 1)
	g.Check()
	if fs.calls != 1 {
		t.Fatalf("statfs called %d times within the interval, want 1", fs.calls)
	}
	*now = now.Add(1)
	if err := g.Check(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("after the interval: %v", err)
	}
	if fs.calls != 2 || g.Free() != 10 {
		t.Fatalf("calls %d, free %d; want 2, 10", fs.calls, g.Free())
	}
	// A failed measurement keeps the last value and is reported.
	fs.err, fs.free = errors.New("EIO"), 10000
	*now = now.Add(DefaultRefreshInterval)
	if g.Free() != 10 || g.Err() == nil {
		t.Fatalf("after a failed statfs: free %d, Err %v", g.Free(), g.Err())
	}
}

func TestZeroWatermarkNeverRefuses(t *testing.T) {
	g, _ := newGuard(t, &fakeFS{free: 0}, 0)
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	if err := g.CheckReserve(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Dir = "" }, "Dir is required"},
		{func(c *Config) { c.RefreshInterval = 0 }, "RefreshInterval must be positive, got 0s"},
	} {
		c := DefaultConfig()
		c.Dir = "/data"
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Validate = %v, want %q", err, tc.want)
		}
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("New = %v", err)
		}
	}
	c := DefaultConfig()
	c.Dir = "/data"
	c.Statfs = func(string) (uint64, error) { return 0, errors.New("ENOENT") }
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "statfs /data") {
		t.Fatalf("New with a failing statfs = %v", err)
	}
}

func TestStatfsMeasuresARealDirectory(t *testing.T) {
	c := DefaultConfig()
	c.Dir = t.TempDir()
	g, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if g.Free() == 0 {
		t.Fatal("no free space measured in the test's temporary directory")
	}
}

// Writes between two measurements count against the cached free space.
func TestUseCountsWritesUntilTheNextMeasurement(t *testing.T) {
	fs := &fakeFS{free: 1000}
	g, now := newGuard(t, fs, 500)
	g.Use(400)
	if err := g.Check(); err != nil {
		t.Fatalf("600 left: %v", err)
	}
	g.Use(101)
	if err := g.Check(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("499 left: %v", err)
	}
	g.Use(1 << 40)
	if g.Free() != 0 {
		t.Fatalf("free %d after using more than there is, want 0", g.Free())
	}
	*now = now.Add(DefaultRefreshInterval)
	if g.Free() != 1000 || g.Check() != nil {
		t.Fatalf("the next measurement did not replace the estimate: %d", g.Free())
	}
}
