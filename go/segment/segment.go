package segment

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Config bounds a segment.
type Config struct {
	// MaxStoreBytes is the largest the store file may grow (header
	// included). Appends that would exceed it fail with ErrFull.
	MaxStoreBytes uint64
	// MaxIndexBytes is the preallocated size of the index file of a
	// writable segment; it bounds the number of records.
	MaxIndexBytes uint64
	// MaxRecordBytes is the largest record length recovery considers when
	// looking for valid records after a bad one (see Open). 0 means
	// MaxRecordLen.
	MaxRecordBytes uint64
	// OpenFile opens store and index files; nil means os.OpenFile. Tests
	// use it to observe or fail file operations.
	OpenFile OpenFileFunc
}

func (c Config) withDefaults() Config {
	if c.OpenFile == nil {
		c.OpenFile = osOpenFile
	}
	if c.MaxRecordBytes == 0 || c.MaxRecordBytes > MaxRecordLen {
		c.MaxRecordBytes = MaxRecordLen
	}
	return c
}

// Segment is a store and its index: the records with offsets
// [BaseOffset, NextOffset).
//
// A writable segment (the log's active segment) accepts appends; a sealed
// one is read-only with a trimmed, clean index. Concurrency: one goroutine
// may call Append, Sync and Fits while any number call Read, NextOffset,
// Size and the other accessors; Seal, Unseal, TruncateAfter, Close and
// Remove require exclusive access (no concurrent calls of any kind).
type Segment struct {
	dir       string
	base      uint64
	c         Config
	store     *store
	index     *index
	writable  bool
	closed    bool
	visible   atomic.Uint64 // records readers may read
	lastWrite atomic.Int64  // UnixNano of the last append (file mtime at open)
	recovery  Recovery
}

// Create creates a new, empty, writable segment with base offset base in
// dir. The store file is created with its header and fsynced, then the
// directory is fsynced, before the index is created: an index file thus
// never exists without its store. (The index needs no directory fsync: if
// it is lost, Open rebuilds it from the store.)
func Create(dir string, base uint64, c Config) (*Segment, error) {
	c = c.withDefaults()
	capacity := indexCapacity(c.MaxIndexBytes)
	if capacity == 0 {
		return nil, fmt.Errorf("segment: MaxIndexBytes %d holds no entry", c.MaxIndexBytes)
	}
	sp := StorePath(dir, base)
	st, err := createStore(sp, base, c.OpenFile)
	if err != nil {
		return nil, err
	}
	if err := syncDir(c.OpenFile, dir); err != nil {
		st.close()
		os.Remove(sp)
		return nil, err
	}
	x, err := createIndex(IndexPath(dir, base), base, capacity, c.OpenFile)
	if err != nil {
		// Index first: never leave an index without its store (a full
		// disk fails here, and the next Create or Open must work).
		st.close()
		os.Remove(IndexPath(dir, base))
		os.Remove(sp)
		return nil, err
	}
	s := &Segment{dir: dir, base: base, c: c, store: st, index: x, writable: true}
	s.lastWrite.Store(time.Now().UnixNano())
	return s, nil
}

// BaseOffset returns the offset of the segment's first record.
func (s *Segment) BaseOffset() uint64 { return s.base }

// NextOffset returns the offset after the last visible record; the segment
// is empty iff NextOffset() == BaseOffset().
func (s *Segment) NextOffset() uint64 { return s.base + s.visible.Load() }

// Len returns the number of visible records.
func (s *Segment) Len() uint64 { return s.visible.Load() }

// Size returns the size of the store file in bytes, header included.
func (s *Segment) Size() uint64 { return s.store.size.Load() }

// LastAppend returns the time of the last append, or the store file's
// modification time if there was none since Open.
func (s *Segment) LastAppend() time.Time { return time.Unix(0, s.lastWrite.Load()) }

// Writable reports whether the segment accepts appends (is not sealed).
func (s *Segment) Writable() bool { return s.writable }

// StorePath and IndexPath return the segment's file paths.
func (s *Segment) StorePath() string { return s.store.path }

// IndexPath returns the path of the segment's index file.
func (s *Segment) IndexPath() string { return IndexPath(s.dir, s.base) }

// Recovery reports what Open had to repair.
func (s *Segment) Recovery() Recovery { return s.recovery }

// Fits returns how many of the leading records fit in the segment's
// remaining store and index space.
func (s *Segment) Fits(records [][]byte) int {
	if !s.writable {
		return 0
	}
	size := s.store.size.Load()
	storeLeft := uint64(0)
	if s.c.MaxStoreBytes > size {
		storeLeft = s.c.MaxStoreBytes - size
	}
	indexLeft := s.index.capacity - s.index.n
	for i, r := range records {
		need := RecordHeaderSize + uint64(len(r))
		if uint64(i) >= indexLeft || need > storeLeft {
			return i
		}
		storeLeft -= need
	}
	return len(records)
}

// IsMaxed reports whether the segment cannot take even one empty record:
// its store or its index is full (or it is sealed).
func (s *Segment) IsMaxed() bool {
	return !s.writable || s.index.n >= s.index.capacity ||
		s.store.size.Load()+RecordHeaderSize > s.c.MaxStoreBytes
}

// Append writes records to the store with one write call, adds their index
// entries, fsyncs the store if sync is set, and then makes them visible to
// Read. It returns the offset of the first record. All records must fit
// (see Fits), otherwise nothing is written and the error is ErrFull.
//
// On error the segment's files may hold a partial append that is not
// visible; the caller should stop appending and let crash recovery (Open)
// sort it out — except when the error wraps ErrNotWritten: the store write
// failed and was undone, and the segment is as it was.
func (s *Segment) Append(records [][]byte, sync bool) (first uint64, err error) {
	switch {
	case s.closed:
		return 0, ErrClosed
	case !s.writable:
		return 0, fmt.Errorf("segment %s: append: %w", s.store.path, ErrReadOnly)
	}
	first = s.base + s.index.n
	if len(records) == 0 {
		return first, nil
	}
	if s.Fits(records) < len(records) {
		return 0, fmt.Errorf("segment %s: append %d records: %w", s.store.path, len(records), ErrFull)
	}
	pos, err := s.store.append(records)
	if err != nil {
		return 0, err
	}
	for _, r := range records {
		s.index.write(uint32(s.index.n), pos)
		pos += RecordHeaderSize + uint64(len(r))
	}
	if sync {
		if err := s.store.sync(); err != nil {
			return 0, err
		}
	}
	s.lastWrite.Store(time.Now().UnixNano())
	s.visible.Store(s.index.n)
	return first, nil
}

// Read returns the record with the given absolute offset. It fails with
// ErrNotFound if the offset is not a visible record of this segment and
// with *CorruptionError if the index or the record fails validation
// (including a checksum mismatch).
func (s *Segment) Read(offset uint64) ([]byte, error) {
	n := s.visible.Load()
	if offset < s.base || offset-s.base >= n {
		return nil, fmt.Errorf("segment %s: read offset %d: %w", s.store.path, offset, ErrNotFound)
	}
	rel := offset - s.base
	r, pos := s.index.entry(rel)
	if uint64(r) != rel {
		return nil, corruptf(s.index.path, indexFileSize(rel), "index entry %d has relative offset %d", rel, r)
	}
	var end uint64
	if rel+1 < n {
		_, end = s.index.entry(rel + 1)
	}
	data, err := s.store.read(pos, end)
	if err != nil {
		return nil, fmt.Errorf("segment: read offset %d: %w", offset, err)
	}
	return data, nil
}

// Position returns the store position of the visible record at offset.
func (s *Segment) Position(offset uint64) (uint64, error) {
	if offset < s.base || offset-s.base >= s.visible.Load() {
		return 0, fmt.Errorf("segment %s: position of offset %d: %w", s.store.path, offset, ErrNotFound)
	}
	_, pos := s.index.entry(offset - s.base)
	return pos, nil
}

// Sync fsyncs the store file. The index is not synced: it is rebuilt from
// the store after a crash.
func (s *Segment) Sync() error {
	if s.closed {
		return ErrClosed
	}
	return s.store.sync()
}
