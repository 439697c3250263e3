package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Seal makes a writable segment read-only: it fsyncs the store, closes the
// index cleanly (msync, trim, fsync, mark clean) and maps it again
// read-only. The log seals its active segment when rolling over.
func (s *Segment) Seal() error {
	if s.closed {
		return ErrClosed
	}
	if !s.writable {
		return nil
	}
	if err := s.store.sync(); err != nil {
		return err
	}
	x := s.index
	if err := x.close(true); err != nil {
		return err
	}
	s.writable = false
	rx, _, reason, err := openIndexFile(x.path, s.base, s.c.OpenFile, false)
	if err != nil {
		return err
	}
	if reason != "" {
		rx.f.Close()
		return fmt.Errorf("segment: sealed index %s unusable: %s", x.path, reason)
	}
	if err := rx.mapFile(rx.n); err != nil {
		rx.f.Close()
		return err
	}
	s.index = rx
	return nil
}

// Unseal makes a sealed segment writable again (the log does this when
// TruncateAfter makes it the last segment). The index is marked dirty and
// fsynced before any change, and mapped with its full capacity.
func (s *Segment) Unseal() error {
	if s.closed {
		return ErrClosed
	}
	if s.writable {
		return nil
	}
	sp := s.store.path
	if err := s.store.close(); err != nil {
		return err
	}
	n := s.index.n
	if err := s.index.close(false); err != nil {
		return err
	}
	s.closed = true // until both files are open again
	st, err := openStore(sp, s.base, s.c.OpenFile, true)
	if err != nil {
		return err
	}
	x, _, reason, err := openIndexFile(s.IndexPath(), s.base, s.c.OpenFile, true)
	if err != nil {
		st.close()
		return err
	}
	if reason != "" || x.n != n {
		x.f.Close()
		st.close()
		return fmt.Errorf("segment: reopen index %s: %s (entries %d, want %d)", x.path, reason, x.n, n)
	}
	if err := x.markDirty(); err != nil {
		x.f.Close()
		st.close()
		return err
	}
	if err := x.mapFile(max(n, indexCapacity(s.c.MaxIndexBytes))); err != nil {
		x.f.Close()
		st.close()
		return err
	}
	s.store, s.index, s.writable, s.closed = st, x, true, false
	return nil
}

// TruncateAfter removes every record with an offset greater than offset
// (all of them if offset < BaseOffset) and fsyncs the store. The segment
// must be writable.
func (s *Segment) TruncateAfter(offset uint64) error {
	switch {
	case s.closed:
		return ErrClosed
	case !s.writable:
		return fmt.Errorf("segment %s: truncate: %w", s.store.path, ErrReadOnly)
	}
	var keep uint64
	if offset >= s.base {
		keep = offset - s.base + 1
	}
	if keep >= s.index.n {
		return nil
	}
	_, pos := s.index.entry(keep)
	s.visible.Store(keep)
	s.index.truncate(keep)
	if err := s.store.truncate(pos); err != nil {
		return err
	}
	return s.store.sync()
}

// Close closes the segment. A writable segment is closed cleanly: the store
// is fsynced and the index trimmed, synced and marked clean, so the next
// Open can trust it without a scan.
func (s *Segment) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.writable {
		if err := s.store.sync(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.index.close(s.writable && len(errs) == 0))
	errs = append(errs, s.store.close())
	return errors.Join(errs...)
}

// Remove closes the segment (without the clean-close work: the files are
// going away) and deletes its files. The caller fsyncs the directory if the
// removal must be durable.
func (s *Segment) Remove() error {
	var errs []error
	if !s.closed {
		s.closed = true
		errs = append(errs, s.index.close(false), s.store.close())
	}
	errs = append(errs, s.Unlink())
	return errors.Join(errs...)
}

// Unlink deletes the segment's files but leaves them open: on POSIX
// systems reads keep working until Close. The log uses it to remove a
// segment an open snapshot Reader still reads. The index goes first: a
// crash in between leaves a store without an index, which Open rebuilds,
// never an index without its store, which Open reports as corruption.
func (s *Segment) Unlink() error {
	var errs []error
	for _, p := range []string{s.IndexPath(), s.store.path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("segment: remove: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Abort closes the segment's files without syncing or marking the index
// clean, for use after an I/O error (or on a segment whose files were
// unlinked). The next Open of a writable segment rebuilds its index.
func (s *Segment) Abort() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.index.close(false), s.store.close())
}
