package seglog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/proglog/proglog/go/segment"
)

// Snapshot stream format (all integers big-endian).
//
// Header, snapshotHeaderSize = 32 bytes:
//
//	[0:8)   magic "PLOGSNAP"
//	[8:10)  version snapshotVersion
//	[10:12) reserved, zero
//	[12:16) CRC32C of bytes [0:12) and [16:32)
//	[16:24) first: offset of the first record
//	[24:32) count: number of records that follow
//
// Then count frames, with consecutive offsets first, first+1, ...:
//
//	[0:8)   offset
//	[8:12)  length n of the data
//	[12:16) CRC32C of the 4 length bytes followed by the data (the same
//	        checksum the store keeps, so frames are copied from the store
//	        without recomputation; Restore verifies it)
//	[16:16+n) data
//
// and nothing after the last frame. Offsets are implied by first and the
// position, and are checked by Restore.
const (
	snapshotHeaderSize = 32
	snapshotVersion    = 1
	frameHeaderSize    = 8 + segment.RecordHeaderSize
)

var snapshotMagic = [8]byte{'P', 'L', 'O', 'G', 'S', 'N', 'A', 'P'}

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	enc        = binary.BigEndian
)

func encodeSnapshotHeader(b []byte, first, count uint64) {
	copy(b[0:8], snapshotMagic[:])
	enc.PutUint16(b[8:10], snapshotVersion)
	enc.PutUint16(b[10:12], 0)
	enc.PutUint64(b[16:24], first)
	enc.PutUint64(b[24:32], count)
	enc.PutUint32(b[12:16], snapshotHeaderCRC(b))
}

func snapshotHeaderCRC(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[0:12], castagnoli), castagnoli, b[16:32])
}

// snapshotReader streams the records [first, end) as of the Reader call.
type snapshotReader struct {
	l         *Log
	segs      []*segment.Segment // pinned
	first     uint64
	end       uint64
	next      uint64 // next offset to emit
	seg       int    // index in segs of the segment being scanned
	sc        *segment.Scanner
	out       []byte // encoded bytes not yet returned
	off       int
	invalid   bool // set under l.mu by TruncateAfter / Reset
	done      bool // Close called; under l.mu
	headerOut bool
	err       error
}

// snapshotChunk is roughly how much a snapshot Read encodes per lock hold.
const snapshotChunk = 256 << 10

// Reader returns a stream of every record in the log as of this call (the
// records [LowestOffset(), NextOffset()) at this moment), in the snapshot
// format documented in snapshot.go: a 32-byte header with the first offset
// and the count, then one frame (offset, length, CRC32C, data) per record.
// Restore rebuilds a log from it.
//
// The stream reads segments sequentially in large chunks and never holds
// the whole log in memory; appends continue concurrently and are not
// included. Segments removed by Truncate or ApplyRetention while the
// stream is open stay readable until it is closed. TruncateAfter below the
// snapshot's end makes the stream fail with ErrSnapshotInvalidated, and
// closing the Log makes it fail with ErrClosed. Every record's checksum is
// verified as it is read (*CorruptionError). Close the stream to release
// the segments.
func (l *Log) Reader() io.ReadCloser {
	l.wmu.Lock() // a consistent [lowest, next) with the segment list
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return &snapshotReader{l: l, err: ErrClosed}
	}
	return l.reader(l.segments[0].BaseOffset(), l.next.Load())
}

// ReaderRange is Reader for the records [first, end) only, first raised to
// LowestOffset(), and also returns the exact length of the stream in
// bytes (its header and frames), computed from the segments' positions
// without reading them. It fails with ErrOffsetOutOfRange (wrapped) if end
// is past NextOffset() or below the raised first, and with ErrClosed. A
// log restored from the stream starts exactly at first.
func (l *Log) ReaderRange(first, end uint64) (io.ReadCloser, int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return nil, 0, err
	}
	lowest, next := l.segments[0].BaseOffset(), l.next.Load()
	if first = max(first, lowest); end > next || end < first {
		return nil, 0, fmt.Errorf("%w: records [%d, %d) asked for, the log holds [%d, %d)", ErrOffsetOutOfRange, first, end, lowest, next)
	}
	size := int64(snapshotHeaderSize)
	for _, s := range l.segments {
		from, to := max(first, s.BaseOffset()), min(end, s.NextOffset())
		if from >= to {
			continue
		}
		p0, err := s.Position(from)
		p1 := s.Size()
		if err == nil && to < s.NextOffset() {
			p1, err = s.Position(to)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("seglog: snapshot range: %w", err)
		}
		// A frame is a store record (header and data) plus its offset.
		size += int64(p1-p0) + int64(to-from)*(frameHeaderSize-segment.RecordHeaderSize)
	}
	return l.reader(first, end), size, nil
}

// reader returns a stream of the records [first, end), which the log
// holds, pinning their segments. Callers hold wmu and mu.
func (l *Log) reader(first, end uint64) *snapshotReader {
	r := &snapshotReader{l: l, first: first, end: end, next: first}
	i := len(l.segments) - 1
	if first < end {
		i = slices.Index(l.segments, l.segmentFor(first))
	}
	r.segs = append(r.segs, l.segments[i:]...)
	if l.pins == nil {
		l.pins = make(map[*segment.Segment]int)
	}
	if l.snapshots == nil {
		l.snapshots = make(map[*snapshotReader]struct{})
	}
	for _, s := range r.segs {
		l.pins[s]++
	}
	l.snapshots[r] = struct{}{}
	return r
}

// Read implements io.Reader.
func (r *snapshotReader) Read(p []byte) (int, error) {
	if r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.off = r.out[:0], 0
		if err := r.fill(); err != nil {
			r.err = err
			if len(r.out) == 0 {
				return 0, err
			}
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// fill encodes the next chunk of the stream into r.out.
func (r *snapshotReader) fill() error {
	l := r.l
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case r.done:
		return fmt.Errorf("seglog: snapshot reader: %w", ErrClosed)
	case l.closed:
		return ErrClosed
	case r.invalid:
		return ErrSnapshotInvalidated
	}
	if !r.headerOut {
		r.out = append(r.out, make([]byte, snapshotHeaderSize)...)
		encodeSnapshotHeader(r.out, r.first, r.end-r.first)
		r.headerOut = true
	}
	for len(r.out) < snapshotChunk {
		if r.next == r.end {
			if len(r.out) == 0 {
				return io.EOF
			}
			return nil
		}
		if r.sc == nil {
			s := r.segs[r.seg]
			to := min(s.NextOffset(), r.end)
			if to <= r.next {
				r.seg++
				continue
			}
			sc, err := s.NewScanner(r.next, to)
			if err != nil {
				return fmt.Errorf("seglog: snapshot: %w", err)
			}
			r.sc = sc
		}
		off, framed, err := r.sc.Next()
		if err == io.EOF {
			r.sc = nil
			r.seg++
			continue
		}
		if err != nil {
			return fmt.Errorf("seglog: snapshot at offset %d: %w", r.next, err)
		}
		var o [8]byte
		enc.PutUint64(o[:], off)
		r.out = append(r.out, o[:]...)
		r.out = append(r.out, framed...)
		r.next++
	}
	return nil
}

// Close releases the snapshot's segments.
func (r *snapshotReader) Close() error {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.done || r.segs == nil {
		r.done = true
		return nil
	}
	r.done = true
	delete(l.snapshots, r)
	var errs []error
	for _, s := range r.segs {
		l.pins[s]--
		if l.pins[s] == 0 {
			delete(l.pins, s)
			if l.zombies[s] {
				delete(l.zombies, s)
				errs = append(errs, s.Abort())
			}
		}
	}
	r.segs = nil
	return errors.Join(errs...)
}

// Restore buffers up to restoreBatchBytes or restoreBatchRecords before
// writing a batch.
const (
	restoreBatchBytes   = 1 << 20
	restoreBatchRecords = 4096
)

// checkEmptyDir fails with ErrNotEmpty if dir exists and has any entry.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("seglog: restore: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s holds %q", ErrNotEmpty, dir, entries[0].Name())
	}
	return nil
}

// Restore creates a log in dir from a snapshot stream produced by Reader,
// with configuration c (c.InitialOffset is replaced by the stream's first
// offset), and returns it open. dir must not exist or contain no log files
// (ErrNotEmpty otherwise).
//
// Every frame is verified (offset sequence, length against MaxRecordBytes,
// checksum) and the stream must hold exactly the announced number of
// records; otherwise Restore fails with ErrBadSnapshot (or
// ErrRecordTooLarge) and removes the files it created (and dir, if
// that is then empty). Records are written
// in large batches without per-batch fsync; the log is fsynced once at the
// end, so a returned log is durable.
func Restore(dir string, c Config, r io.Reader) (*Log, error) { return restore(dir, c, r, nil) }

// restore is Restore with openFile used for store and index files (see
// open).
func restore(dir string, c Config, r io.Reader, openFile segment.OpenFileFunc) (*Log, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [snapshotHeaderSize]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading header: %w", ErrBadSnapshot, err)
	}
	switch {
	case [8]byte(hdr[0:8]) != snapshotMagic:
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, hdr[0:8])
	case enc.Uint32(hdr[12:16]) != snapshotHeaderCRC(hdr[:]):
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrBadSnapshot)
	case enc.Uint16(hdr[8:10]) != snapshotVersion:
		return nil, fmt.Errorf("%w: unsupported version %d", ErrBadSnapshot, enc.Uint16(hdr[8:10]))
	}
	first, count := enc.Uint64(hdr[16:24]), enc.Uint64(hdr[24:32])
	if first+count < first {
		return nil, fmt.Errorf("%w: first offset %d + count %d overflows", ErrBadSnapshot, first, count)
	}
	if err := checkEmptyDir(dir); err != nil {
		return nil, err
	}
	c.InitialOffset = first
	l, err := open(dir, c, openFile)
	if err != nil {
		return nil, err
	}
	if err := l.restoreFrames(br, first, count); err != nil {
		l.Remove()
		return nil, err
	}
	return l, nil
}

func (l *Log) restoreFrames(br *bufio.Reader, first, count uint64) error {
	var (
		arena []byte
		batch [][]byte
		fh    [frameHeaderSize]byte
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		l.wmu.Lock()
		_, err := l.appendLocked(batch, false)
		l.wmu.Unlock()
		arena, batch = arena[:0], batch[:0]
		return err
	}
	for i := uint64(0); i < count; i++ {
		want := first + i
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			return fmt.Errorf("%w: frame %d of %d: %w", ErrBadSnapshot, i, count, err)
		}
		if off := enc.Uint64(fh[0:8]); off != want {
			return fmt.Errorf("%w: frame %d has offset %d, want %d", ErrBadSnapshot, i, off, want)
		}
		n := uint64(enc.Uint32(fh[8:12]))
		if n > l.config.MaxRecordBytes {
			return fmt.Errorf("%w: offset %d is %d bytes, MaxRecordBytes is %d", ErrRecordTooLarge, want, n, l.config.MaxRecordBytes)
		}
		if len(batch) > 0 && (uint64(len(arena))+n > uint64(cap(arena)) || len(batch) >= restoreBatchRecords) {
			if err := flush(); err != nil {
				return err
			}
		}
		if cap(arena) == 0 || uint64(cap(arena)-len(arena)) < n {
			arena = make([]byte, 0, max(n, restoreBatchBytes))
		}
		start := len(arena)
		arena = arena[:start+int(n)]
		data := arena[start:]
		if _, err := io.ReadFull(br, data); err != nil {
			return fmt.Errorf("%w: data of offset %d: %w", ErrBadSnapshot, want, err)
		}
		if segment.RecordCRC(data) != enc.Uint32(fh[12:16]) {
			return fmt.Errorf("%w: checksum mismatch at offset %d", ErrBadSnapshot, want)
		}
		batch = append(batch, data)
	}
	if err := flush(); err != nil {
		return err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%w: data after the last of %d records", ErrBadSnapshot, count)
		}
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.active().Sync(); err != nil {
		return l.fail(fmt.Errorf("seglog: restore: %w", err))
	}
	return nil
}
