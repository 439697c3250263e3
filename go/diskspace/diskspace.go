package diskspace

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used by DefaultConfig.
const (
	// DefaultMinFreeBytes leaves room for the writes a node cannot refuse
	// (Raft entries already accepted, a snapshot, a segment roll-over)
	// and for an operator to act.
	DefaultMinFreeBytes = 256 << 20
	// DefaultRefreshInterval bounds how late a Guard notices a change,
	// and its cost to one statfs per interval.
	DefaultRefreshInterval = time.Second
)

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("diskspace: invalid config")
	// ErrLowSpace: the free space is below the watermark; the concrete
	// error is *LowSpaceError.
	ErrLowSpace = errors.New("diskspace: free disk space below the watermark")
)

// LowSpaceError says how much space is free and how much is required.
type LowSpaceError struct {
	Dir      string // the directory whose file system is watched
	Free     uint64 // bytes free when last measured
	Required uint64 // bytes that must be free
}

func (e *LowSpaceError) Error() string {
	return fmt.Sprintf("low disk space: %d bytes free on the file system of %s, %d required (the --min-free-bytes watermark); writes resume by themselves once space is freed",
		e.Free, e.Dir, e.Required)
}

// Is reports whether target is ErrLowSpace.
func (e *LowSpaceError) Is(target error) bool { return target == ErrLowSpace }

// Config configures a Guard. Start from DefaultConfig and set Dir.
type Config struct {
	// Dir is a directory on the file system to watch (the data directory).
	Dir string
	// MinFreeBytes is the watermark; 0 disables refusing (the free space
	// is still measured and reported). Default DefaultMinFreeBytes.
	MinFreeBytes uint64
	// RefreshInterval is the longest a measurement is used. Default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Statfs returns the bytes free for writing on the file system of dir;
	// nil means statfs(2). Tests replace it.
	Statfs func(dir string) (uint64, error)
}

// DefaultConfig returns a Config with the defaults above.
func DefaultConfig() Config {
	return Config{MinFreeBytes: DefaultMinFreeBytes, RefreshInterval: DefaultRefreshInterval}
}

// Validate checks c and returns an error wrapping ErrInvalidConfig that
// names the first problem.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidConfig)
	case c.RefreshInterval <= 0:
		return fmt.Errorf("%w: RefreshInterval must be positive, got %v", ErrInvalidConfig, c.RefreshInterval)
	}
	return nil
}

// Guard watches the free space of one file system. Its methods are safe
// for concurrent use.
type Guard struct {
	cfg  Config
	now  func() time.Time // tests replace it
	free atomic.Uint64
	next atomic.Int64 // UnixNano after which free is measured again

	mu      sync.Mutex // one measurement at a time
	lastErr error      // of the last measurement; under mu
}

// New measures the free space once (failing if it cannot) and returns a
// Guard.
func New(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Statfs == nil {
		cfg.Statfs = statfs
	}
	g := &Guard{cfg: cfg, now: time.Now}
	free, err := cfg.Statfs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("diskspace: statfs %s: %w", cfg.Dir, err)
	}
	g.free.Store(free)
	g.next.Store(g.now().Add(cfg.RefreshInterval).UnixNano())
	return g, nil
}

// Free returns the bytes free on the watched file system, measured at
// most RefreshInterval ago.
func (g *Guard) Free() uint64 {
	if g.now().UnixNano() >= g.next.Load() {
		g.refresh()
	}
	return g.free.Load()
}

func (g *Guard) refresh() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if now.UnixNano() < g.next.Load() {
		return // measured by another caller meanwhile
	}
	free, err := g.cfg.Statfs(g.cfg.Dir)
	if err == nil {
		g.free.Store(free)
	}
	g.lastErr = err
	g.next.Store(now.Add(g.cfg.RefreshInterval).UnixNano())
}

// Use subtracts n bytes about to be written from the cached free space,
// until the next measurement replaces it: a fast writer cannot run far
// past the watermark between two measurements.
func (g *Guard) Use(n uint64) {
	for {
		free := g.free.Load()
		if g.free.CompareAndSwap(free, free-min(free, n)) {
			return
		}
	}
}

// Err returns the error of the last measurement, nil if it succeeded.
func (g *Guard) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastErr
}

// Check fails with *LowSpaceError while fewer than MinFreeBytes are free.
func (g *Guard) Check() error { return g.check(g.cfg.MinFreeBytes) }

// CheckReserve fails with *LowSpaceError while fewer than MinFreeBytes/2
// are free: the reserve kept for writes the node must make to stay in its
// cluster after it has stopped taking new data.
func (g *Guard) CheckReserve() error { return g.check(g.cfg.MinFreeBytes / 2) }

// Refusing reports whether Check fails.
func (g *Guard) Refusing() bool { return g.Check() != nil }

func (g *Guard) check(required uint64) error {
	if required == 0 {
		return nil
	}
	if free := g.Free(); free < required {
		return &LowSpaceError{Dir: g.cfg.Dir, Free: free, Required: required}
	}
	return nil
}
