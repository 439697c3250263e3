package seglog

import (
	"fmt"

	"github.com/proglog/proglog/go/segment"
)

// Truncate removes whole segments whose records all have offsets below
// lowest (log compaction after a snapshot). Records in a segment that also
// holds offsets >= lowest stay, so LowestOffset may remain below lowest.
// If every record is below lowest, the active segment is rolled over first
// and the log ends up empty with LowestOffset() == NextOffset().
//
// Segments are removed oldest first, fsyncing the directory after each, so
// a crash never leaves a gap. Segments still read by a snapshot Reader are
// unlinked at once and closed when the Reader is closed.
func (l *Log) Truncate(lowest uint64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	if a := l.active(); a.Len() > 0 && a.NextOffset() <= lowest {
		if err := l.roll(); err != nil {
			return err
		}
	}
	n := 0
	for n < len(l.segments)-1 && l.segments[n].NextOffset() <= lowest {
		n++
	}
	if err := l.removeFront(n); err != nil {
		return fmt.Errorf("seglog: truncate before %d: %w", lowest, err)
	}
	return nil
}

// removeFront detaches the n oldest segments (never the active one) and
// deletes them, oldest first. Callers hold wmu.
func (l *Log) removeFront(n int) error {
	if n == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	removed := append([]*segment.Segment(nil), l.segments[:n]...)
	l.segments = append([]*segment.Segment(nil), l.segments[n:]...)
	l.publishBounds()
	for _, s := range removed {
		if err := l.dispose(s); err != nil {
			return l.fail(err)
		}
	}
	return nil
}

// TruncateAfter removes every record with an offset greater than offset
// (Raft's deletion of a conflicting suffix); NextOffset becomes offset+1.
// It is a no-op if offset+1 >= NextOffset(). If offset+1 < LowestOffset
// it fails with *OffsetOutOfRangeError; offset+1 == LowestOffset empties
// the log but keeps LowestOffset.
//
// Whole segments after offset are deleted newest first (directory fsynced
// after each), then the segment holding offset is truncated and its store
// fsynced, whatever the sync policy: a crash part-way leaves a log that is
// a prefix of the old one, never one with a gap. Open snapshot Readers
// that promised records after offset fail with ErrSnapshotInvalidated.
func (l *Log) TruncateAfter(offset uint64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	next, lowest := l.next.Load(), l.segments[0].BaseOffset()
	if offset >= next {
		return nil // nothing after offset (also avoids offset+1 overflowing)
	}
	if offset+1 < lowest {
		return &OffsetOutOfRangeError{Offset: offset, Lowest: lowest, Next: next}
	}
	if offset+1 == next {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for r := range l.snapshots {
		if r.end > offset+1 {
			r.invalid = true
		}
	}
	for len(l.segments) > 1 && l.active().BaseOffset() > offset {
		s := l.active()
		l.segments = l.segments[:len(l.segments)-1]
		if err := l.dispose(s); err != nil {
			return l.fail(fmt.Errorf("seglog: truncate after %d: %w", offset, err))
		}
	}
	s := l.active()
	if err := s.Unseal(); err != nil {
		return l.fail(fmt.Errorf("seglog: truncate after %d: %w", offset, err))
	}
	if err := s.TruncateAfter(offset); err != nil {
		return l.fail(fmt.Errorf("seglog: truncate after %d: %w", offset, err))
	}
	l.publishBounds()
	return nil
}
