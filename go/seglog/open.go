package seglog

import (
	"fmt"
	"os"
	"slices"

	"github.com/proglog/proglog/go/segment"
)

// Open opens the log in dir, creating dir (mode 0700) and an empty log
// starting at c.InitialOffset if there is none. Zero fields of c take their
// defaults (see Config) and the result must pass Validate.
//
// Every file in dir must be a segment file ("%020d.store" or
// "%020d.index"), the lock file "LOCK" or a side file keeping a torn tail
// recovery cut off ("%020d.store.torn.<unix-nanos>", see
// segment.TornPath); anything else fails Open with an *UnknownFilesError
// listing the names. The directory is locked (flock) so
// that a second Open of it, from this or another process, fails.
//
// Open runs crash recovery (see the package documentation): every segment
// but the last is opened sealed, the last writable; indexes that were not
// closed cleanly are rebuilt from their stores; a torn record at the end of
// the last segment (if its index was not closed cleanly) is cut off and
// kept in a side file; corruption anywhere else fails Open with a
// *CorruptionError. Segments must be contiguous (each starts where the
// previous ends). What recovery repaired is available from Recovery.
func Open(dir string, c Config) (*Log, error) { return open(dir, c, nil) }

// open is Open with openFile (nil: os.OpenFile) used for store and index
// files; tests use it to record or fail file operations.
func open(dir string, c Config, openFile segment.OpenFileFunc) (*Log, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seglog: open: %w", err)
	}
	l := &Log{
		dir:    dir,
		config: c,
		segCfg: segment.Config{
			MaxStoreBytes:  c.Segment.MaxStoreBytes,
			MaxIndexBytes:  c.Segment.MaxIndexBytes,
			MaxRecordBytes: c.MaxRecordBytes,
			OpenFile:       openFile,
		},
	}
	if err := l.lock.acquire(dir); err != nil {
		return nil, err
	}
	if err := l.openSegments(); err != nil {
		for _, s := range l.segments {
			s.Abort()
		}
		l.lock.release()
		return nil, err
	}
	l.publishBounds()
	l.initNotifier()
	l.startSyncer()
	return l, nil
}

// openSegments lists dir, opens every segment and checks they are
// contiguous, or creates the first segment of a new log.
func (l *Log) openSegments() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("seglog: open: %w", err)
	}
	var bases []uint64
	seen := map[uint64]bool{}
	var unknown []string
	for _, e := range entries {
		name := e.Name()
		if (name == lockFileName || segment.IsTornName(name)) && e.Type().IsRegular() {
			continue
		}
		base, _, ok := segment.ParseName(name)
		if !ok || !e.Type().IsRegular() {
			unknown = append(unknown, name)
			continue
		}
		if !seen[base] {
			seen[base] = true
			bases = append(bases, base)
		}
	}
	if len(unknown) > 0 {
		return &UnknownFilesError{Dir: l.dir, Names: unknown}
	}
	if len(bases) == 0 {
		s, err := segment.Create(l.dir, l.config.InitialOffset, l.segCfg)
		if err != nil {
			return fmt.Errorf("seglog: open %s: %w", l.dir, err)
		}
		l.segments = []*segment.Segment{s}
		return nil
	}
	slices.Sort(bases)
	for i, base := range bases {
		last := i == len(bases)-1
		s, err := segment.Open(l.dir, base, l.segCfg, last)
		if err != nil {
			return fmt.Errorf("seglog: open %s: %w", l.dir, err)
		}
		if n := len(l.segments); n > 0 {
			if prev := l.segments[n-1]; prev.NextOffset() != base {
				s.Abort()
				return fmt.Errorf("seglog: open %s: %w", l.dir, &CorruptionError{
					Path: s.StorePath(), Position: 0,
					Reason: fmt.Sprintf("segment starts at offset %d but the previous segment (%s) ends at %d",
						base, prev.StorePath(), prev.NextOffset()),
				})
			}
		}
		l.segments = append(l.segments, s)
	}
	return nil
}

// SegmentRecovery reports what Open repaired in one segment.
type SegmentRecovery struct {
	BaseOffset uint64
	segment.Recovery
}

// Recovery returns, for each segment Open had to repair, what it did: the
// index rebuilt from the store (after a crash) and/or a torn tail cut off.
// It is empty after a clean shutdown.
func (l *Log) Recovery() []SegmentRecovery {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []SegmentRecovery
	for _, s := range l.segments {
		if r := s.Recovery(); r.IndexRebuilt || r.TruncatedBytes > 0 {
			out = append(out, SegmentRecovery{BaseOffset: s.BaseOffset(), Recovery: r})
		}
	}
	return out
}
