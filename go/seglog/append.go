package seglog

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/proglog/proglog/go/segment"
)

// Append appends one record and returns its offset. See AppendBatch.
func (l *Log) Append(record []byte) (offset uint64, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.scratch[0] = record
	offset, err = l.appendLocked(l.scratch[:], l.config.Sync == SyncAlways)
	l.scratch[0] = nil
	return offset, err
}

// AppendBatch appends records, in order, with consecutive offsets and
// returns the offset of the first (NextOffset, with nothing written, for an
// empty batch).
//
// The batch is framed into one buffer and written with one write call and,
// under SyncAlways, one fsync of the store before AppendBatch returns.
// When the batch does not fit in the active segment the log first rolls
// over to a new segment; only a batch larger than a whole segment is split
// across segments (one write and fsync per segment).
//
// If any record is longer than Config.MaxRecordBytes the call fails with
// ErrRecordTooLarge and nothing is written. Records become visible to Read
// and Wait only when AppendBatch is about to return successfully. On an
// I/O error the Log enters the failed state (ErrFailed); the appended
// records may or may not survive the next Open, and their offsets are
// never acknowledged. The exceptions are a full disk (an error wrapping
// syscall.ENOSPC) when nothing of the batch was written: a roll-over that
// cannot create the new segment, or a store write that the segment undid
// (segment.ErrNotWritten) before any part of the batch landed; the Log
// stays usable and a later call succeeds once space is freed.
func (l *Log) AppendBatch(records [][]byte) (first uint64, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.appendLocked(records, l.config.Sync == SyncAlways)
}

// appendLocked appends records; sync says whether to fsync before
// publishing. Callers hold wmu.
func (l *Log) appendLocked(records [][]byte, sync bool) (first uint64, err error) {
	if err := l.check(); err != nil {
		return 0, err
	}
	first = l.next.Load()
	for i, r := range records {
		if uint64(len(r)) > l.config.MaxRecordBytes {
			return 0, fmt.Errorf("%w: record %d of the batch is %d bytes, the limit (MaxRecordBytes) is %d",
				ErrRecordTooLarge, i, len(r), l.config.MaxRecordBytes)
		}
	}
	if len(records) == 0 {
		return first, nil
	}
	if first+uint64(len(records)) < first {
		return 0, fmt.Errorf("seglog: append: offsets would overflow uint64 (next %d, %d records)", first, len(records))
	}
	for rest := records; len(rest) > 0; {
		s := l.active()
		k := s.Fits(rest)
		if k == 0 && s.Len() == 0 {
			// Cannot happen with a valid Config (a record always fits in
			// an empty segment); do not roll over forever.
			return 0, fmt.Errorf("seglog: append: a %d-byte record does not fit in the empty segment %s",
				len(rest[0]), s.StorePath())
		}
		if k < len(rest) && s.Len() > 0 || k == 0 {
			if err := l.roll(); err != nil {
				return 0, err
			}
			continue
		}
		if _, err := s.Append(rest[:k], sync); err != nil {
			err = fmt.Errorf("seglog: append to %s: %w", s.StorePath(), err)
			if len(rest) == len(records) && errors.Is(err, segment.ErrNotWritten) && errors.Is(err, syscall.ENOSPC) {
				// A full disk, and the write was undone: nothing of the
				// batch was written, so the log goes on.
				return 0, err
			}
			return 0, l.fail(err)
		}
		rest = rest[k:]
	}
	l.dirty = true
	l.next.Store(first + uint64(len(records)))
	l.broadcast()
	return first, nil
}

// roll seals the active segment and starts a new one at NextOffset. The old
// store is fsynced before the new segment's files exist, so a sealed
// segment is always complete on disk whatever the sync policy: recovery may
// then treat any bad record in a sealed segment as corruption. Callers hold
// wmu.
func (l *Log) roll() error {
	old := l.active()
	if err := old.Sync(); err != nil {
		return l.fail(fmt.Errorf("seglog: roll over: %w", err))
	}
	s, err := segment.Create(l.dir, old.NextOffset(), l.segCfg)
	if errors.Is(err, syscall.ENOSPC) {
		// A full disk: Create left nothing behind and the active segment
		// is untouched, so the log goes on (and retries the roll-over).
		return fmt.Errorf("seglog: roll over: %w", err)
	}
	if err != nil {
		return l.fail(fmt.Errorf("seglog: roll over: %w", err))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := old.Seal(); err != nil {
		s.Remove()
		return l.fail(fmt.Errorf("seglog: roll over: seal %s: %w", old.StorePath(), err))
	}
	l.segments = append(l.segments, s)
	return nil
}

// fail records err as the Log's sticky failure. Callers hold wmu.
func (l *Log) fail(err error) error {
	if l.failed == nil {
		l.failed = err
	}
	return err
}
