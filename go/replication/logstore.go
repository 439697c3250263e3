package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
)

// LogStore is Raft's log on a go/seglog Log: the entry with Raft index i is the
// record at offset i (the log starts at offset 1), encoded as described in
// codec.go. It implements raft.LogStore.
//
// Its directory holds the go/seglog directory "segments" and the file
// "first_index", the logical first index: compaction removes whole
// segments only, so entries below the first index may still be on disk;
// they are invisible (FirstIndex, GetLog) and removed by later compactions.
//
// DeleteRange(min, max) accepts what Raft asks for:
//
//   - a suffix (max >= LastIndex): conflicting entries a new leader
//     overwrites, removed with TruncateAfter(min-1), durably;
//   - a prefix (min <= FirstIndex, max < LastIndex): compaction after a
//     snapshot, which always keeps at least one entry (Config.TrailingLogs
//     is at least 1); the new first index max+1 is written to first_index
//     (atomically: temporary file, fsync, rename, directory fsync) before
//     the segments below it are removed;
//   - both (everything): a conflict from the first entry on; the log
//     becomes empty;
//   - anything else (a range strictly inside the log) fails with
//     ErrDeleteRange; ranges outside the stored entries are no-ops.
//
// StoreLogs appends its entries with one AppendBatch (one write, and one
// fsync under SyncAlways). They must follow LastIndex, or start anywhere
// after it: after installing a snapshot past its last entry, Raft appends
// from the snapshot's index on, and every entry stored before is covered
// by the snapshot. The log is then replaced by an empty one starting at
// the new entries (as raft-boltdb, which allows gaps, would leave the old
// entries unreachable). Entries overlapping stored ones fail with
// ErrNonContiguous: Raft deletes a conflicting suffix first. FirstIndex and
// LastIndex are 0 when the log is empty; GetLog returns raft.ErrLogNotFound
// outside them.
//
// A LogStore opened by New (openRecordStore) is also the partition's
// record log: every records command entry (codec.go) carries the offset of
// its first record, and the store keeps a table from offsets to entries
// (recordTable), rebuilt on open by reading every stored entry, extended by
// StoreLogs and cut by DeleteRange and compaction, through which readRecord
// reads one record. Such a store never drops the entries holding records
// at or above the lowest offset its keep function returns (the FSM's
// agreed lowest offset): a prefix DeleteRange removes the entries below
// the smaller of Raft's bound and the first entry holding a record still
// kept, FirstIndex reports what is really there, and retain (called once a
// retention command raised the lowest offset) drops the rest as far as
// Raft has compacted. install writes the entries of a snapshot received
// from a leader, through the directories segments.restore and
// segments.old. The store of another Raft
// group (OpenLogStore: go/metadata's) has no table and deletes as Raft
// asks.
//
// LogStore is deliberately not a raft.MonotonicLogStore: for those,
// hashicorp/raft deletes every stored entry after installing a snapshot,
// including entries newer than the snapshot when a stale InstallSnapshot
// arrives after them (a retried RPC, or two replication streams to one
// address while a node is replaced), without forgetting them; it then fails
// to find the next entry to apply and panics ("log not found"). The fault
// tests (tools/faulttest) hit this; the gap handling above is what makes
// the ordinary, non-monotonic path work.
type LogStore struct {
	dir string
	cfg seglog.Config

	wmu     sync.Mutex   // serialises StoreLogs and DeleteRange
	entries arena        // StoreLogs' encodings, under wmu
	mu      sync.RWMutex // guards l, replaced when the log is reset
	l       *seglog.Log
	first   atomic.Uint64 // logical first index
	// stored receives a token (without blocking) after every StoreLogs,
	// for the byte-threshold compaction (compaction.go).
	stored chan struct{}
	// disk, if set, makes StoreLogs refuse entries below its reserve
	// (Config.MinFreeBytes) and counts what it writes; onReserve, if set,
	// is called (without blocking) when it does.
	disk      *diskspace.Guard
	onReserve func()

	// records is the offset table of a record log, nil otherwise; keep
	// returns the lowest offset whose record must stay (set by New before
	// Raft starts). compacted is the index below which Raft no longer
	// needs entries (its last prefix DeleteRange), under wmu.
	records   *recordTable
	keep      func() uint64
	compacted uint64
	// last caches the last entry readRecord read (under lastMu).
	lastMu    sync.Mutex
	lastIndex uint64
	lastData  []byte
}

var _ raft.LogStore = (*LogStore)(nil)

const (
	segmentsDir    = "segments"
	firstIndexFile = "first_index"
	// restoreDir receives the entries of a snapshot (install); oldDir
	// holds the segments it replaces while they are swapped.
	restoreDir = "segments.restore"
	oldDir     = "segments.old"
)

// OpenLogStore opens (or creates) the Raft log store in dir. cfg configures
// the underlying log; its InitialOffset is overridden (1). Its Sync should be
// SyncAlways (the zero value and go/seglog's default): Raft assumes an entry
// is durable once stored, before it acknowledges it. SyncInterval and
// SyncNever trade that for throughput: entries still survive a crash of
// the process (they are written before StoreLogs returns), but a crash of
// the machine may lose entries the node acknowledged (see Config.RaftLog).
// Its MaxRecordBytes bounds an encoded entry, so it must exceed the largest
// command (a batch) by maxEntryOverhead.
func OpenLogStore(dir string, cfg seglog.Config) (*LogStore, error) {
	return openLogStore(dir, cfg, false)
}

// openRecordStore opens the Raft log store of a partition replica: a
// LogStore that is also its record log (see LogStore), its offset table
// rebuilt from the stored entries.
func openRecordStore(dir string, cfg seglog.Config) (*LogStore, error) {
	return openLogStore(dir, cfg, true)
}

func openLogStore(dir string, cfg seglog.Config, records bool) (*LogStore, error) {
	cfg.InitialOffset = 1
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("replication: raft log dir: %w", err)
	}
	s := &LogStore{dir: dir, cfg: cfg, stored: make(chan struct{}, 1)}
	removeTemps(s.firstIndexPath())
	if err := s.finishInstall(); err != nil {
		return nil, err
	}
	l, err := seglog.Open(filepath.Join(dir, segmentsDir), cfg)
	if errors.Is(err, seglog.ErrCorrupt) {
		return nil, fmt.Errorf("replication: the raft log is corrupt; refusing to start, since dropping entries this node "+
			"acknowledged could lose committed records (remove the node's data directory and let it rejoin): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("replication: open raft log: %w", err)
	}
	s.l = l
	first, ok, err := readUint64File(s.firstIndexPath())
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	if !ok || first < l.LowestOffset() {
		first = l.LowestOffset()
	}
	s.first.Store(first)
	// Finish a compaction a crash interrupted.
	if first > l.LowestOffset() && first <= l.NextOffset() {
		if err := l.Truncate(first); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("replication: compact raft log below %d: %w", first, err)
		}
	}
	s.compacted = first
	if records {
		s.records = &recordTable{scan: s.scanPoints}
		if err := s.rebuildRecords(); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	return s, nil
}

// rebuildRecords makes the offset table that of the stored entries: a
// chunk per segment, from the first index on (see recordTable). Callers
// do not hold mu.
func (s *LogStore) rebuildRecords() error {
	l, first, next := s.bounds()
	var bases []uint64
	if first < next {
		bases = append(bases, first)
		for _, b := range l.SegmentBases() {
			if b > first && b < next {
				bases = append(bases, b)
			}
		}
	}
	if err := s.records.reset(bases); err != nil {
		return fmt.Errorf("replication: rebuild the offset table: %w", err)
	}
	return nil
}

// scanPoints returns the points of the stored entries [from, to) (to 0:
// to the end) for the offset table: records commands of their own term,
// each following the previous one.
func (s *LogStore) scanPoints(from, to uint64) ([]recordPoint, error) {
	_, first, next := s.bounds()
	if to == 0 || to > next {
		to = next
	}
	var pts []recordPoint
	var e raft.Log
	for i := max(from, first); i < to; i++ {
		if err := s.GetLog(i, &e); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue // removed meanwhile
			}
			return nil, err
		}
		if p, ok := pointOf(&e); ok && (len(pts) == 0 || p.first == pts[len(pts)-1].end()) {
			pts = append(pts, p)
		}
	}
	return pts, nil
}

func (s *LogStore) firstIndexPath() string { return filepath.Join(s.dir, firstIndexFile) }

// readUint64File reads a file written by writeUint64File (first_index and
// the FSM's lowest offset): 8 bytes big-endian, 4 bytes CRC32C of them.
// ok is false if the file does not exist.
func readUint64File(path string) (v uint64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("replication: read %s: %w", path, err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false, fmt.Errorf("%w: %s is damaged", ErrBadEncoding, path)
	}
	return binary.BigEndian.Uint64(b[:8]), true, nil
}

func (s *LogStore) setFirst(first uint64) error {
	if s.first.Load() == first {
		return nil
	}
	if err := writeUint64File(s.firstIndexPath(), first); err != nil {
		return fmt.Errorf("replication: persist first index %d: %w", first, err)
	}
	s.first.Store(first)
	return nil
}

// writeUint64File replaces path with v and its checksum, atomically (see
// readUint64File).
func writeUint64File(path string, v uint64) error {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, v)
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	return writeFileAtomic(path, b)
}

// bounds returns the stored range [first, next); empty when first >= next.
func (s *LogStore) bounds() (l *seglog.Log, first, next uint64) {
	s.mu.RLock()
	l = s.l
	s.mu.RUnlock()
	return l, s.first.Load(), l.NextOffset()
}

// maxRecordBytes is the largest encoded entry the log accepts.
func (s *LogStore) maxRecordBytes() uint64 {
	l, _, _ := s.bounds()
	return l.Config().MaxRecordBytes
}

// FirstIndex implements raft.LogStore: the first stored index, 0 if none.
func (s *LogStore) FirstIndex() (uint64, error) {
	_, first, next := s.bounds()
	if first >= next {
		return 0, nil
	}
	return first, nil
}

// LastIndex implements raft.LogStore: the last stored index, 0 if none.
func (s *LogStore) LastIndex() (uint64, error) {
	_, first, next := s.bounds()
	if first >= next {
		return 0, nil
	}
	return next - 1, nil
}

// GetLog implements raft.LogStore.
func (s *LogStore) GetLog(index uint64, out *raft.Log) error {
	l, first, next := s.bounds()
	if index < first || index >= next {
		return raft.ErrLogNotFound
	}
	b, err := l.Read(index)
	if err != nil {
		if errors.Is(err, seglog.ErrOffsetOutOfRange) {
			return raft.ErrLogNotFound // removed concurrently
		}
		return fmt.Errorf("replication: read raft entry %d: %w", index, err)
	}
	if err := decodeEntry(b, out); err != nil {
		return fmt.Errorf("raft entry %d: %w", index, err)
	}
	if out.Index != index {
		return fmt.Errorf("%w: raft entry at offset %d says index %d", ErrBadEncoding, index, out.Index)
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *LogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: one AppendBatch, so at most one fsync.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if s.disk != nil {
		if err := s.disk.CheckReserve(); err != nil {
			if s.onReserve != nil {
				s.onReserve()
			}
			return fmt.Errorf("replication: raft log: refusing entries %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
		}
	}
	start := logs[0].Index
	for i, e := range logs {
		if e.Index != start+uint64(i) {
			return fmt.Errorf("%w: entry %d of the batch has index %d, want %d", ErrNonContiguous, i, e.Index, start+uint64(i))
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a := &s.entries
	a.reset()
	defer a.reset()
	for _, e := range logs {
		a.buf = appendEntry(a.buf, e)
		a.add()
	}
	bufs := a.slices()
	if s.disk != nil {
		s.disk.Use(uint64(len(a.buf)))
	}
	l, first, next := s.bounds()
	switch {
	case first >= next || start > next:
		// Empty, or entries after a gap: Raft installed a snapshot
		// covering everything stored (see LogStore). Start afresh there.
		if start != next {
			var err error
			if l, err = s.reset(start); err != nil {
				return err
			}
		}
		if err := s.setFirst(start); err != nil {
			return err
		}
	case start < next:
		return fmt.Errorf("%w: got index %d, the last stored is %d", ErrNonContiguous, start, next-1)
	}
	got, err := l.AppendBatch(bufs)
	if err != nil {
		return fmt.Errorf("replication: store raft entries %d-%d: %w", start, start+uint64(len(logs))-1, err)
	}
	if got != start {
		return fmt.Errorf("replication: raft entries %d-%d stored at offset %d", start, start+uint64(len(logs))-1, got)
	}
	if s.records != nil {
		for _, e := range logs {
			s.records.add(e)
		}
	}
	select {
	case s.stored <- struct{}{}:
	default:
	}
	return nil
}

// reset replaces the (logically empty) log with an empty one starting at
// index. The new log exists before first_index names index, so a crash in
// between leaves a log that is still logically empty.
func (s *LogStore) reset(index uint64) (*seglog.Log, error) {
	l, err := s.replace(index)
	if err != nil {
		return nil, err
	}
	s.forgetLast()
	if s.records != nil {
		if err := s.records.cutFrom(0); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// replace removes the log and opens an empty one at index, under mu (the
// offset table is the caller's: it reads the log under its own lock).
func (s *LogStore) replace(index uint64) (*seglog.Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.l.Remove(); err != nil {
		return nil, fmt.Errorf("replication: reset raft log: %w", err)
	}
	cfg := s.cfg
	cfg.InitialOffset = index
	l, err := seglog.Open(filepath.Join(s.dir, segmentsDir), cfg)
	if err != nil {
		// Leave a closed log behind: every call fails with ErrClosed.
		return nil, fmt.Errorf("replication: reset raft log at %d: %w", index, err)
	}
	s.l = l
	return l, nil
}

// DeleteRange implements raft.LogStore; see the type's documentation.
func (s *LogStore) DeleteRange(min, max uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	l, first, next := s.bounds()
	if first >= next || min > max || max < first || min >= next {
		return nil // nothing stored in the range
	}
	last := next - 1
	switch {
	case min <= first && max >= last: // everything: a conflict from the start
		if err := s.setFirst(next); err != nil {
			return err
		}
		s.forgetLast()
		if err := l.Truncate(next); err != nil {
			return fmt.Errorf("replication: delete raft entries %d-%d: %w", first, last, err)
		}
		if s.records != nil {
			return s.records.cutFrom(0)
		}
	case max >= last: // suffix: conflicting entries
		if err := l.TruncateAfter(min - 1); err != nil {
			return fmt.Errorf("replication: delete raft entries %d-%d: %w", min, last, err)
		}
		s.forgetLast()
		if s.records != nil {
			return s.records.cutFrom(min)
		}
	case min <= first: // prefix: compaction
		s.compacted = max + 1
		keep, err := s.keepIndex(max + 1)
		if err != nil {
			return err
		}
		return s.dropBelow(l, keep)
	default:
		return fmt.Errorf("%w: asked for %d-%d of %d-%d", ErrDeleteRange, min, max, first, last)
	}
	return nil
}

// keepIndex lowers index, the first entry to keep, to the first entry
// holding a record at or above the keep offset (a record log's).
func (s *LogStore) keepIndex(index uint64) (uint64, error) {
	if s.records == nil || s.keep == nil {
		return index, nil
	}
	i, ok, err := s.records.holding(s.keep())
	if err != nil {
		return index, err
	}
	if ok {
		return min(index, i), nil
	}
	return index, nil
}

// dropBelow makes index the first entry (at most the next one): it is
// written to first_index before the whole segments below it are removed.
// Callers hold wmu.
func (s *LogStore) dropBelow(l *seglog.Log, index uint64) error {
	first, next := s.first.Load(), l.NextOffset()
	index = min(index, next)
	if index <= first {
		return nil
	}
	if err := s.setFirst(index); err != nil {
		return err
	}
	if err := l.Truncate(index); err != nil {
		return fmt.Errorf("replication: compact raft entries below %d: %w", index, err)
	}
	if s.records != nil {
		return s.records.cutBelow(index)
	}
	return nil
}

// retain drops the entries below the first one holding a record at or
// above the keep offset, as far as Raft has compacted (see LogStore):
// called once a retention command raised it.
func (s *LogStore) retain() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	l, _, _ := s.bounds()
	keep, err := s.keepIndex(s.compacted)
	if err != nil {
		return err
	}
	return s.dropBelow(l, keep)
}

// readRecord returns the record at offset, which the caller knows is
// applied; ErrRecordGone if this store holds no entry with it (removed,
// or never received: see the package documentation, Snapshots).
func (s *LogStore) readRecord(offset uint64) ([]byte, error) {
	index, pos, ok, err := s.records.lookup(offset)
	if err != nil {
		return nil, fmt.Errorf("replication: offset %d: %w", offset, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: offset %d", ErrRecordGone, offset)
	}
	s.lastMu.Lock()
	data := s.lastData
	if s.lastIndex != index {
		data = nil
	}
	s.lastMu.Unlock()
	if data == nil {
		var e raft.Log
		if err := s.GetLog(index, &e); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return nil, fmt.Errorf("%w: offset %d (entry %d)", ErrRecordGone, offset, index)
			}
			return nil, err
		}
		data = e.Data
		s.lastMu.Lock()
		s.lastIndex, s.lastData = index, data
		s.lastMu.Unlock()
	}
	r, err := commandRecord(data, pos)
	if err != nil {
		return nil, fmt.Errorf("offset %d (raft entry %d): %w", offset, index, err)
	}
	return slices.Clone(r), nil
}

// forgetLast drops readRecord's cached entry (the entries it may be
// changed). Callers hold wmu.
func (s *LogStore) forgetLast() {
	s.lastMu.Lock()
	s.lastIndex, s.lastData = 0, nil
	s.lastMu.Unlock()
}

// sync fsyncs the log (what SyncInterval or SyncNever left unsynced).
func (s *LogStore) sync() error {
	l, _, _ := s.bounds()
	if err := l.Sync(); err != nil {
		return fmt.Errorf("replication: sync raft log: %w", err)
	}
	return nil
}

// holds reports whether the store holds entry index with term.
func (s *LogStore) holds(index, term uint64) bool {
	var e raft.Log
	return s.GetLog(index, &e) == nil && e.Term == term
}

// install makes the store hold the Raft entries a snapshot stream from a
// leader carries after its header and producer table (h.firstEntry to
// h.applied, none if h.firstEntry is 0), unless it already holds entry
// h.applied with its term (the snapshot was installed before a restart, or
// this node's log agrees with it: by Log Matching it holds the same
// entries). A snapshot this node took (h.appliedTerm 0) changes nothing.
// The entries are restored into restoreDir first (go/seglog Restore,
// fsynced), then swapped in: first_index is set to the first entry, the
// segments are renamed to oldDir and the restored ones into place (the
// directory fsynced), and oldDir is removed; a crash in between is
// finished or rolled back by the next open (finishInstall) and the
// snapshot installed again. Without entries the store is reset to an
// empty log starting after h.applied, where Raft continues. Either way
// this node's entries after h.applied, if it has them from h.applied+1 on,
// are kept after the installed ones, as raft-boltdb keeps them: Raft still
// counts them as stored, and deletes them as conflicting when the
// leader's arrive.
func (s *LogStore) install(r io.Reader, h snapshotHeader) error {
	if h.appliedTerm == 0 || s.holds(h.applied, h.appliedTerm) {
		return nil // a snapshot this node took, or one it installed
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	l, first, next := s.bounds()
	tail := first <= h.applied+1 && h.applied+1 < next // kept: see above
	if h.firstEntry == 0 {
		if tail {
			return s.dropBelow(l, h.applied+1)
		}
		if _, err := s.reset(h.applied + 1); err != nil {
			return err
		}
		return s.setFirst(h.applied + 1)
	}
	restore := filepath.Join(s.dir, restoreDir)
	if err := os.RemoveAll(restore); err != nil {
		return fmt.Errorf("replication: install snapshot entries: %w", err)
	}
	cfg := s.cfg
	cfg.InitialOffset = h.firstEntry
	nl, err := seglog.Restore(restore, cfg, r)
	if err != nil {
		return fmt.Errorf("replication: install snapshot entries: %w", err)
	}
	if nl.LowestOffset() != h.firstEntry || nl.NextOffset() != h.applied+1 {
		err := fmt.Errorf("%w: snapshot carries raft entries [%d, %d), want [%d, %d]", ErrBadEncoding, nl.LowestOffset(), nl.NextOffset(), h.firstEntry, h.applied)
		return errors.Join(err, nl.Close(), os.RemoveAll(restore))
	}
	if tail {
		if err := copyEntries(nl, l, h.applied+1, next); err != nil {
			return errors.Join(fmt.Errorf("replication: install snapshot entries: keep entries after %d: %w", h.applied, err), nl.Close(), os.RemoveAll(restore))
		}
	}
	if err := nl.Close(); err != nil {
		return fmt.Errorf("replication: install snapshot entries: %w", err)
	}
	if err := s.swapIn(restore, cfg, h.firstEntry); err != nil {
		return fmt.Errorf("replication: install snapshot entries: %w", err)
	}
	s.compacted = h.firstEntry
	s.forgetLast()
	return s.rebuildRecords()
}

// swapIn replaces the segments with those restored in dir, first the
// first index, under mu (see install).
func (s *LogStore) swapIn(dir string, cfg seglog.Config, first uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.l.Close(); err != nil {
		return err
	}
	segs, old := filepath.Join(s.dir, segmentsDir), filepath.Join(s.dir, oldDir)
	if err := writeUint64File(s.firstIndexPath(), first); err != nil {
		return err
	}
	s.first.Store(first)
	if err := errors.Join(os.Rename(segs, old), os.Rename(dir, segs), segment.SyncDir(s.dir), os.RemoveAll(old)); err != nil {
		return err
	}
	l, err := seglog.Open(segs, cfg)
	if err != nil {
		return err
	}
	s.l = l
	return nil
}

// copyEntries appends the encoded entries [from, to) of src to dst, in
// batches of at most a segment's worth, and fsyncs dst.
func copyEntries(dst, src *seglog.Log, from, to uint64) error {
	limit := dst.Config().Segment.MaxStoreBytes
	var batch [][]byte
	var size uint64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := dst.AppendBatch(batch)
		batch, size = batch[:0], 0
		return err
	}
	for i := from; i < to; i++ {
		b, err := src.Read(i)
		if err != nil {
			return err
		}
		if size+uint64(len(b)) > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		batch, size = append(batch, b), size+uint64(len(b))
	}
	if err := flush(); err != nil {
		return err
	}
	return dst.Sync()
}

// finishInstall completes or rolls back a swap install was interrupted in:
// with the segments in place the old ones are removed, without them the
// old ones are put back.
func (s *LogStore) finishInstall() error {
	segs, old := filepath.Join(s.dir, segmentsDir), filepath.Join(s.dir, oldDir)
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return os.RemoveAll(filepath.Join(s.dir, restoreDir))
	}
	if _, err := os.Stat(segs); errors.Is(err, os.ErrNotExist) {
		if err := errors.Join(os.Rename(old, segs), segment.SyncDir(s.dir)); err != nil {
			return fmt.Errorf("replication: roll back an interrupted snapshot install: %w", err)
		}
	}
	if err := errors.Join(os.RemoveAll(old), os.RemoveAll(filepath.Join(s.dir, restoreDir))); err != nil {
		return fmt.Errorf("replication: clean up an interrupted snapshot install: %w", err)
	}
	return nil
}

// Close closes the underlying log.
func (s *LogStore) Close() error {
	s.mu.RLock()
	l := s.l
	s.mu.RUnlock()
	if err := l.Close(); err != nil {
		return fmt.Errorf("replication: close raft log: %w", err)
	}
	return nil
}
