package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Recovery describes what Open repaired.
type Recovery struct {
	// IndexRebuilt: the index was missing, not cleanly closed or
	// inconsistent with the store, and was rebuilt by scanning the store.
	IndexRebuilt bool
	// IndexReason says why the index was rebuilt.
	IndexReason string
	// TruncatedBytes is the length of the torn tail cut off the store
	// (0 if none); TruncateReason describes the first bad record.
	TruncatedBytes int64
	TruncateReason string
	// TornPath is the side file (see TornPath) holding the bytes that were
	// cut off, fsynced before the store was truncated; "" if none.
	TornPath string
}

// Open opens the existing segment with base offset base in dir, writable
// (the log's last, active segment) or sealed (read-only).
//
// Recovery rules. The store is the source of truth; the index is derived.
//
//   - A bad store header is a *CorruptionError. A writable store shorter
//     than its header whose bytes are a prefix of the expected header (a
//     crash during Create) gets a fresh header.
//   - The index is used as is only if its header is valid and carries
//     FlagClean (set by a clean Close or Seal), its size is a whole number
//     of entries, every entry has the expected relative offset and
//     increasing positions, and its last entry's record ends exactly at the
//     end of the store (for a writable segment the last record's checksum
//     is verified too). Otherwise (crash, index still at its preallocated
//     size, entries pointing past the store's end, missing index, ...) the
//     index is rebuilt by scanning and checksumming every store record.
//   - A clean index proves that the store was fsynced, up to the end of
//     every record it lists, before the flag was set, and that nothing was
//     appended since (a writable segment clears the flag, durably, before
//     its first append). So if the index is clean but fails the checks
//     above, the store must still hold every record it lists, all valid:
//     a bad record, or fewer records than the index lists, is corruption
//     (*CorruptionError), never a torn write, and nothing is cut. The
//     index file is left untouched (still clean), so the next Open reports
//     the same corruption instead of cutting it as a torn tail.
//   - Otherwise (the index was not clean: a crash while the segment was
//     being written), the first invalid record at position P (short
//     header, length beyond the end of the file, checksum mismatch: what
//     unsynced writes cut short or zero-filled by a crash look like) is a
//     torn write if nothing valid follows it: in a writable segment the
//     bytes from P on are copied to a side file (TornPath), which is
//     fsynced with the directory, and then the store is truncated to P and
//     fsynced. If a valid record starts anywhere after P, or the segment
//     is sealed (later segments exist, so its records were once complete),
//     it is corruption: Open fails with a *CorruptionError naming the store
//     and P. Bad data is never skipped.
//
// A missing store is an error wrapping fs.ErrNotExist (a *CorruptionError
// if the index exists).
func Open(dir string, base uint64, c Config, writable bool) (*Segment, error) {
	c = c.withDefaults()
	sp := StorePath(dir, base)
	st, err := openStore(sp, base, c.OpenFile, writable)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, ierr := os.Stat(IndexPath(dir, base)); ierr == nil {
				return nil, corruptf(sp, 0, "store file missing but its index exists")
			}
		}
		return nil, err
	}
	s := &Segment{dir: dir, base: base, c: c, store: st, writable: writable}
	if err := s.recover(); err != nil {
		if s.index != nil {
			s.index.close(false)
		}
		st.close()
		return nil, err
	}
	s.visible.Store(s.index.n)
	return s, nil
}

func (s *Segment) recover() error {
	fi, err := s.store.f.Stat()
	if err != nil {
		return fmt.Errorf("segment: stat %s: %w", s.store.path, err)
	}
	s.lastWrite.Store(fi.ModTime().UnixNano())
	reason, clean, err := s.loadIndex()
	if err != nil {
		return err
	}
	if reason == "" {
		return nil
	}
	if clean >= 0 {
		if err := s.checkCleanStore(uint64(clean), reason); err != nil {
			return err
		}
	}
	s.recovery.IndexRebuilt, s.recovery.IndexReason = true, reason
	return s.rebuildIndex()
}

// loadIndex opens and maps the existing index if it can be trusted. It
// returns a non-empty reason (and leaves s.index nil) if it must be rebuilt;
// clean is then the number of entries of an index that was marked clean,
// or -1 if it was not (or is missing or unreadable). A writable index is
// marked dirty only once it is trusted, so a rejected clean index stays
// clean on disk.
func (s *Segment) loadIndex() (reason string, clean int64, err error) {
	ip := s.IndexPath()
	x, _, reason, err := openIndexFile(ip, s.base, s.c.OpenFile, s.writable)
	if errors.Is(err, fs.ErrNotExist) {
		return "index file missing", -1, nil
	}
	if err != nil {
		return "", -1, err
	}
	if reason != "" {
		return reason, -1, x.f.Close()
	}
	// Validate through a read-only mapping; a writable index is mapped
	// again with its capacity once trusted and marked dirty.
	n, writable := x.n, x.writable
	x.writable = false
	if err := x.mapFile(n); err != nil {
		x.f.Close()
		return "", -1, err
	}
	s.index = x
	if reason := s.validateIndex(); reason != "" {
		s.index = nil
		return reason, int64(n), x.close(false)
	}
	if x.writable = writable; writable {
		if err := x.markDirty(); err != nil {
			return "", -1, err
		}
		if err := x.grow(max(n, indexCapacity(s.c.MaxIndexBytes))); err != nil {
			return "", -1, err
		}
	}
	return "", -1, nil
}

// checkCleanStore verifies, before the index is rebuilt, that the store
// behind a clean index of n entries that failed validation (why) still
// holds at least n records, all valid: see the rules on Open.
func (s *Segment) checkCleanStore(n uint64, why string) error {
	size := int64(s.store.size.Load())
	var count uint64
	validEnd, bad, err := s.store.scan(size, func(uint64, uint32) error { count++; return nil })
	switch {
	case err != nil:
		return err
	case bad != "":
		return corruptf(s.store.path, validEnd, "%s in a cleanly closed segment, whose records were fsynced (index rejected: %s)", bad, why)
	case count < n:
		return corruptf(s.store.path, validEnd, "store holds %d records but its clean index lists %d (index rejected: %s)", count, n, why)
	}
	return nil
}

// validateIndex checks the cheap invariants of a clean index against the
// store. It returns why the index cannot be trusted, or "".
func (s *Segment) validateIndex() string {
	x, size := s.index, s.store.size.Load()
	if x.n == 0 {
		if size != FileHeaderSize {
			return fmt.Sprintf("index is empty but the store holds %d bytes of records", size-FileHeaderSize)
		}
		return ""
	}
	prev := uint64(0)
	for i := uint64(0); i < x.n; i++ {
		rel, pos := x.entry(i)
		switch {
		case uint64(rel) != i:
			return fmt.Sprintf("index entry %d has relative offset %d", i, rel)
		case i == 0 && pos != FileHeaderSize:
			return fmt.Sprintf("index entry 0 has position %d, want %d", pos, FileHeaderSize)
		case i > 0 && pos < prev+RecordHeaderSize:
			return fmt.Sprintf("index entry %d position %d is not after entry %d (%d)", i, pos, i-1, prev)
		case pos+RecordHeaderSize > size:
			return fmt.Sprintf("index entry %d points to %d, past the end of the %d-byte store", i, pos, size)
		}
		prev = pos
	}
	var hdr [RecordHeaderSize]byte
	if _, err := s.store.f.ReadAt(hdr[:], int64(prev)); err != nil {
		return fmt.Sprintf("reading the last record header: %v", err)
	}
	end := prev + RecordHeaderSize + uint64(enc.Uint32(hdr[0:4]))
	if end != size {
		return fmt.Sprintf("last indexed record ends at %d but the store is %d bytes", end, size)
	}
	if s.writable {
		if _, err := s.store.read(prev, end); err != nil {
			return fmt.Sprintf("last record: %v", err)
		}
	}
	return ""
}

// rebuildIndex recreates the index from a full scan of the store, applying
// the torn-tail and corruption rules documented on Open.
func (s *Segment) rebuildIndex() error {
	ip := s.IndexPath()
	capacity := max(1, indexCapacity(s.c.MaxIndexBytes))
	x, err := createIndex(ip, s.base, capacity, s.c.OpenFile)
	if err != nil {
		return err
	}
	s.index = x
	size := int64(s.store.size.Load())
	validEnd, bad, err := s.store.scan(size, func(pos uint64, _ uint32) error {
		if x.n == x.capacity {
			if err := x.grow(2 * x.capacity); err != nil {
				return err
			}
		}
		x.write(uint32(x.n), pos)
		return nil
	})
	if err != nil {
		return err
	}
	if bad != "" {
		if !s.writable {
			return corruptf(s.store.path, validEnd, "%s (in a sealed segment, followed by later segments)", bad)
		}
		p, found, err := s.store.findRecord(validEnd+1, size, s.c.MaxRecordBytes)
		if err != nil {
			return err
		}
		if found {
			return corruptf(s.store.path, validEnd, "%s, but a valid record follows at %d", bad, p)
		}
		torn, err := s.saveTorn(validEnd, size)
		if err != nil {
			return err
		}
		if err := s.store.truncate(uint64(validEnd)); err != nil {
			return err
		}
		if err := s.store.sync(); err != nil {
			return err
		}
		s.recovery.TruncatedBytes = size - validEnd
		s.recovery.TruncateReason = fmt.Sprintf("%s at %d", bad, validEnd)
		s.recovery.TornPath = torn
		s.lastWrite.Store(time.Now().UnixNano())
	}
	// Growing may have mapped more than configured; accept no more.
	x.capacity = max(x.n, indexCapacity(s.c.MaxIndexBytes))
	if !s.writable {
		// Persist the rebuilt index as clean and reopen it read-only.
		x.writable = true
		if err := x.close(true); err != nil {
			s.index = nil
			return err
		}
		s.index = nil
		rx, _, reason, err := openIndexFile(ip, s.base, s.c.OpenFile, false)
		if err != nil {
			return err
		}
		if reason != "" {
			rx.f.Close()
			return fmt.Errorf("segment: rebuilt index %s unusable: %s", ip, reason)
		}
		if err := rx.mapFile(rx.n); err != nil {
			rx.f.Close()
			return err
		}
		s.index = rx
	}
	return nil
}

// grow remaps a writable index with room for capacity entries.
func (x *index) grow(capacity uint64) error {
	if err := x.mm.Unmap(); err != nil {
		return fmt.Errorf("segment: munmap %s: %w", x.path, err)
	}
	x.mm = nil
	return x.mapFile(capacity)
}

// saveTorn copies the store bytes [from, to) to a new side file (TornPath)
// and makes it durable (file and directory fsync), so that cutting them off
// the store loses nothing an operator may want to inspect.
func (s *Segment) saveTorn(from, to int64) (path string, err error) {
	path = TornPath(s.store.path, time.Now())
	f, err := s.c.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("segment: save torn tail: %w", err)
	}
	_, err = io.Copy(io.NewOffsetWriter(f, 0), io.NewSectionReader(s.store.f, from, to-from))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.c.OpenFile, s.dir)
	}
	if err != nil {
		return "", fmt.Errorf("segment: save torn tail of %s to %s: %w", s.store.path, path, err)
	}
	return path, nil
}
