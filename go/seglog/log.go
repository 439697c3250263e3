package seglog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/proglog/proglog/go/segment"
)

// Log is an ordered sequence of records, each identified by a uint64
// offset, stored as segments in one directory. All methods are safe for
// concurrent use: any number of readers run in parallel with the writer
// (one append, truncation or retention at a time).
//
// Locking: wmu serialises everything that writes (appends, rollover,
// truncation, retention, background sync, Close). mu guards the segment
// list; Read holds it shared for the duration of its pread, structural
// changes (rollover sealing, truncation, removal) hold it exclusively.
// Appends to the active segment do not take mu at all: a record is
// published to readers by storing the new NextOffset after it is fully
// written (and, under SyncAlways, fsynced).
type Log struct {
	dir    string
	config Config
	segCfg segment.Config

	wmu     sync.Mutex
	failed  error     // sticky I/O failure; under wmu
	scratch [1][]byte // Append's one-record batch; under wmu
	dirty   bool      // appended since the last background sync; under wmu

	mu        sync.RWMutex
	segments  []*segment.Segment // ascending base offsets, contiguous; last is active
	closed    bool
	snapshots map[*snapshotReader]struct{}
	pins      map[*segment.Segment]int  // segments pinned by snapshot readers
	zombies   map[*segment.Segment]bool // removed from the log, still pinned

	next   atomic.Uint64 // published NextOffset
	lowest atomic.Uint64 // published LowestOffset

	notifier
	lock     dirLock
	stopSync chan struct{}
	syncDone chan struct{}
}

// active returns the segment appends go to. Callers hold wmu or mu.
func (l *Log) active() *segment.Segment { return l.segments[len(l.segments)-1] }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Config returns the configuration in use (defaults substituted).
func (l *Log) Config() Config { return l.config }

// LowestOffset returns the offset of the oldest record. When the log is
// empty it equals NextOffset.
func (l *Log) LowestOffset() uint64 { return l.lowest.Load() }

// NextOffset returns the offset the next Append will get. The log is empty
// iff LowestOffset() == NextOffset().
func (l *Log) NextOffset() uint64 { return l.next.Load() }

// HighestOffset returns the offset of the newest record, NextOffset()-1.
// It is meaningless when the log is empty (LowestOffset() == NextOffset());
// in particular it is math.MaxUint64 for an empty log starting at 0.
func (l *Log) HighestOffset() uint64 { return l.NextOffset() - 1 }

// Size returns the total size in bytes of the segments' store files
// (headers and record framing included, index files excluded) and the
// number of segments.
func (l *Log) Size() (bytes uint64, segments int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segments {
		bytes += s.Size()
	}
	return bytes, len(l.segments)
}

// SegmentBases returns the base offset of every segment, oldest first:
// segment i holds the records [bases[i], bases[i+1]), the last one those
// from its base to NextOffset.
func (l *Log) SegmentBases() []uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	bases := make([]uint64, len(l.segments))
	for i, s := range l.segments {
		bases[i] = s.BaseOffset()
	}
	return bases
}

// publishBounds stores lowest and next from the segment list. Callers hold
// wmu and mu (or own the Log exclusively).
func (l *Log) publishBounds() {
	l.lowest.Store(l.segments[0].BaseOffset())
	l.next.Store(l.active().NextOffset())
}

// Close stops background syncing, closes every segment cleanly (fsyncing
// the active one and marking its index clean) and wakes every Wait with
// ErrClosed. Later calls on the Log return ErrClosed; Close itself is
// idempotent. After an I/O failure (ErrFailed) the active segment is closed
// without being marked clean, so the next Open runs recovery on it.
func (l *Log) Close() error {
	l.stopSyncer()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.closeNotifier()
	var errs []error
	for _, s := range l.segments {
		if l.failed != nil && s.Writable() {
			errs = append(errs, s.Abort())
		} else {
			errs = append(errs, s.Close())
		}
	}
	for z := range l.zombies {
		errs = append(errs, z.Abort())
	}
	l.zombies = nil
	errs = append(errs, l.lock.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("seglog: close %s: %w", l.dir, err)
	}
	return nil
}

// Remove closes the log (if open) and deletes its files, then its
// directory if that is left empty.
func (l *Log) Remove() error {
	cerr := l.Close()
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return errors.Join(cerr, fmt.Errorf("seglog: remove: %w", err))
	}
	var errs []error
	for _, e := range entries {
		if _, _, ok := segment.ParseName(e.Name()); ok || e.Name() == lockFileName || segment.IsTornName(e.Name()) {
			if err := os.Remove(filepath.Join(l.dir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("seglog: remove: %w", err))
			}
		}
	}
	if err := os.Remove(l.dir); err != nil && !os.IsNotExist(err) {
		errs = append(errs, fmt.Errorf("seglog: remove: %w", err))
	}
	return errors.Join(append([]error{cerr}, errs...)...)
}

// Reset removes every record and segment and starts again with one empty
// segment at Config.InitialOffset (NextOffset and LowestOffset become
// InitialOffset). Open snapshot Readers fail with ErrSnapshotInvalidated.
// It also clears an ErrFailed state, since all files are replaced.
func (l *Log) Reset() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	for r := range l.snapshots {
		r.invalid = true
	}
	old := l.segments
	l.segments = nil
	for _, s := range old {
		if err := l.dispose(s); err != nil {
			l.failed = err
			return fmt.Errorf("seglog: reset %s: %w", l.dir, err)
		}
	}
	s, err := segment.Create(l.dir, l.config.InitialOffset, l.segCfg)
	if err != nil {
		l.failed = err
		return fmt.Errorf("seglog: reset %s: %w", l.dir, err)
	}
	l.segments = []*segment.Segment{s}
	l.failed = nil
	l.publishBounds()
	l.broadcast()
	return nil
}

// dispose deletes a segment that was detached from l.segments, durably:
// its files are unlinked and the directory fsynced. A segment pinned by a
// snapshot reader stays open (unlinked files remain readable on POSIX
// systems) until the last reader closes. Callers hold wmu and mu.
func (l *Log) dispose(s *segment.Segment) error {
	if l.pins[s] > 0 {
		if l.zombies == nil {
			l.zombies = make(map[*segment.Segment]bool)
		}
		l.zombies[s] = true
		if err := s.Unlink(); err != nil {
			return err
		}
	} else if err := s.Remove(); err != nil {
		return err
	}
	return l.segCfg.SyncDir(l.dir)
}

// check returns the error a write operation must fail with, if any.
// Callers hold wmu (closed is only written with both wmu and mu held).
func (l *Log) check() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, l.failed)
	}
	return nil
}
