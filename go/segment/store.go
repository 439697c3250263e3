package segment

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync/atomic"
)

// store is the append-only record file of a segment: a FileHeaderSize
// header followed by length-prefixed, checksummed records (format.go).
//
// Concurrency: one writer (append, truncate) and any number of readers
// (read); readers must only read records the writer has finished, which the
// segment guarantees by publishing records after append returns.
type store struct {
	f    File
	path string
	size atomic.Uint64 // bytes in the file; only the writer stores it
	buf  []byte        // writer's framing buffer, reused across appends
	iov  [][]byte      // writer's vectored-write scratch
}

// maxRetainedBuf caps the framing buffer kept between appends, so one huge
// batch does not pin its memory for the life of the segment.
const maxRetainedBuf = 4 << 20

// createStore creates a new, empty store file at path (which must not
// exist), writes its header and fsyncs it. The caller fsyncs the directory.
func createStore(path string, base uint64, open OpenFileFunc) (*store, error) {
	f, err := open(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("segment: create store: %w", err)
	}
	s := &store{f: f, path: path}
	if err := s.writeHeader(base); err != nil {
		// Remove it, or the next Create (O_EXCL) fails: a full disk
		// fails here.
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return s, nil
}

// writeHeader (re)writes the file header of an empty store, truncating
// anything after it, and fsyncs the file.
func (s *store) writeHeader(base uint64) error {
	var hdr [FileHeaderSize]byte
	fileHeader{magic: storeMagic, version: FormatVersion, base: base}.encode(hdr[:])
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("segment: truncate %s: %w", s.path, err)
	}
	if _, err := s.f.WriteAt(hdr[:], 0); err != nil {
		return fmt.Errorf("segment: write header of %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: sync %s: %w", s.path, err)
	}
	s.size.Store(FileHeaderSize)
	return nil
}

// openStore opens the existing store at path and validates its header.
//
// A writable store no longer than its header whose bytes are a prefix of
// the expected header, possibly followed by zeros (including an empty or
// all-zero file), is the trace of a crash while the segment was being
// created, before its header was fsynced (the file size may reach the disk
// before the data): the header is rewritten. It holds no record, so
// nothing is lost. Any other header problem is a *CorruptionError.
func openStore(path string, base uint64, open OpenFileFunc, writable bool) (*store, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := open(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("segment: open store: %w", err)
	}
	s := &store{f: f, path: path}
	if err := s.loadHeader(base, writable); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *store) loadHeader(base uint64, writable bool) error {
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("segment: stat %s: %w", s.path, err)
	}
	size := fi.Size()
	var hdr [FileHeaderSize]byte
	n, err := s.f.ReadAt(hdr[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("segment: read header of %s: %w", s.path, err)
	}
	var want [FileHeaderSize]byte
	fileHeader{magic: storeMagic, version: FormatVersion, base: base}.encode(want[:])
	if writable && size <= FileHeaderSize && tornHeader(hdr[:n], want[:]) {
		return s.writeHeader(base)
	}
	if size < FileHeaderSize || n < FileHeaderSize {
		return corruptf(s.path, 0, "store file is %d bytes, shorter than its %d-byte header", size, FileHeaderSize)
	}
	if _, reason := decodeHeader(hdr[:], storeMagic, base); reason != "" {
		return corruptf(s.path, 0, "store header: %s", reason)
	}
	s.size.Store(uint64(size))
	return nil
}

// tornHeader reports whether got is a prefix of want followed by zeros:
// what a crash can leave of an unsynced header write.
func tornHeader(got, want []byte) bool {
	p := 0
	for p < len(got) && got[p] == want[p] {
		p++
	}
	return !slices.ContainsFunc(got[p:], func(b byte) bool { return b != 0 })
}

// frameLen returns the number of store bytes records occupy.
func frameLen(records [][]byte) uint64 {
	var n uint64
	for _, r := range records {
		n += RecordHeaderSize + uint64(len(r))
	}
	return n
}

// append frames records and writes them at the end of the file with a
// single write system call. It returns the position of the first record.
//
// If the file is a VectorWriter (pwritev), headers and records of at most
// inlineMax bytes are packed into the reused framing buffer and larger
// records are written straight from the caller's slices, so big records
// are never copied. Otherwise everything is framed into one buffer and
// written with WriteAt.
//
// On a failed or short write it truncates the file back to its previous
// size (if that fails too the store is in an unknown state; the caller
// must stop using it).
func (s *store) append(records [][]byte) (pos uint64, err error) {
	pos = s.size.Load()
	vw, vector := s.f.(VectorWriter)
	var total, large uint64 // all framed bytes; bytes of records written in place
	for _, r := range records {
		total += RecordHeaderSize + uint64(len(r))
		if len(r) > inlineMax {
			large += uint64(len(r))
		}
	}
	vector = vector && large > 0 // anything to gain?
	packed := total - large      // bytes that go through s.buf
	if !vector {
		packed = total
	}
	if uint64(cap(s.buf)) < packed {
		s.buf = make([]byte, 0, packed)
	}
	buf := s.buf[:0] // never reallocated below: capacity is exact
	iov := s.iov[:0]
	run := 0 // start of the packed bytes not yet in iov
	for _, r := range records {
		o := len(buf)
		buf = buf[:o+RecordHeaderSize]
		enc.PutUint32(buf[o:], uint32(len(r)))
		if !vector || len(r) <= inlineMax {
			buf = append(buf, r...)
			// One checksum call over the contiguous length and data.
			crc := crc32.Checksum(buf[o:o+lenWidth], castagnoli)
			crc = crc32.Update(crc, castagnoli, buf[o+RecordHeaderSize:])
			enc.PutUint32(buf[o+lenWidth:], crc)
			continue
		}
		enc.PutUint32(buf[o+lenWidth:], recordCRC(buf[o:o+lenWidth], r))
		iov = append(iov, buf[run:], r)
		run = len(buf)
	}
	if vector {
		if run < len(buf) {
			iov = append(iov, buf[run:])
		}
		_, err = vw.WritevAt(iov, int64(pos))
		clear(iov) // do not pin the caller's records
		s.iov = iov[:0]
	} else {
		_, err = s.f.WriteAt(buf, int64(pos))
	}
	if cap(s.buf) > maxRetainedBuf {
		s.buf = nil
	}
	if err != nil {
		werr := fmt.Errorf("segment: write %d bytes to %s at %d: %w", total, s.path, pos, err)
		if terr := s.f.Truncate(int64(pos)); terr != nil {
			return 0, errors.Join(werr, fmt.Errorf("segment: undo partial write to %s: %w", s.path, terr))
		}
		return 0, fmt.Errorf("%w: %w", ErrNotWritten, werr)
	}
	s.size.Store(pos + total)
	return pos, nil
}

// inlineMax is the largest record append copies into its framing buffer
// when the file supports vectored writes; larger ones are written in place.
const inlineMax = 4 << 10

// read returns the data of the record at pos. If end is non-zero it is the
// known end position of the record (the next record's position), allowing
// a single read; otherwise the record header is read first (speculatively
// together with up to speculativeRead bytes of data). The length is checked
// against the file size before anything is allocated, and the checksum is
// verified.
func (s *store) read(pos, end uint64) ([]byte, error) {
	size := s.size.Load()
	if pos < FileHeaderSize || pos+RecordHeaderSize > size || pos+RecordHeaderSize < pos {
		return nil, corruptf(s.path, int64(pos), "record position outside the %d-byte file", size)
	}
	if end != 0 {
		if end > size || end < pos+RecordHeaderSize {
			return nil, corruptf(s.path, int64(pos), "record end %d outside the %d-byte file", end, size)
		}
		buf := make([]byte, end-pos)
		if err := s.readFull(buf, pos); err != nil {
			return nil, err
		}
		n := enc.Uint32(buf[0:4])
		if uint64(n) != end-pos-RecordHeaderSize {
			return nil, corruptf(s.path, int64(pos), "record length %d does not match the index (%d)", n, end-pos-RecordHeaderSize)
		}
		return s.check(buf, pos)
	}
	avail := size - pos
	buf := make([]byte, min(avail, RecordHeaderSize+speculativeRead))
	if err := s.readFull(buf, pos); err != nil {
		return nil, err
	}
	n := uint64(enc.Uint32(buf[0:4]))
	if n > avail-RecordHeaderSize {
		return nil, corruptf(s.path, int64(pos), "record length %d exceeds the %d bytes left in the file", n, avail-RecordHeaderSize)
	}
	if RecordHeaderSize+n <= uint64(len(buf)) {
		return s.check(buf[:RecordHeaderSize+n], pos)
	}
	full := make([]byte, RecordHeaderSize+n)
	copy(full, buf)
	if err := s.readFull(full[len(buf):], pos+uint64(len(buf))); err != nil {
		return nil, err
	}
	return s.check(full, pos)
}

// speculativeRead is how much data read fetches with the header when the
// record length is not known in advance.
const speculativeRead = 4096 - RecordHeaderSize

func (s *store) readFull(buf []byte, pos uint64) error {
	if _, err := s.f.ReadAt(buf, int64(pos)); err != nil {
		if errors.Is(err, io.EOF) {
			return corruptf(s.path, int64(pos), "unexpected end of file reading %d bytes", len(buf))
		}
		return fmt.Errorf("segment: read %s at %d: %w", s.path, pos, err)
	}
	return nil
}

// check verifies the checksum of a framed record and returns its data.
func (s *store) check(rec []byte, pos uint64) ([]byte, error) {
	data := rec[RecordHeaderSize:len(rec):len(rec)]
	if got, want := recordCRC(rec[0:lenWidth], data), enc.Uint32(rec[lenWidth:]); got != want {
		return nil, corruptf(s.path, int64(pos), "record checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return data, nil
}

// sync fsyncs the store file.
func (s *store) sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: sync %s: %w", s.path, err)
	}
	return nil
}

// truncate cuts the file to size bytes.
func (s *store) truncate(size uint64) error {
	if err := s.f.Truncate(int64(size)); err != nil {
		return fmt.Errorf("segment: truncate %s to %d: %w", s.path, size, err)
	}
	s.size.Store(size)
	return nil
}

func (s *store) close() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("segment: close %s: %w", s.path, err)
	}
	return nil
}

// recordCRCUpdate continues a record checksum over more data.
func recordCRCUpdate(crc uint32, data []byte) uint32 { return crc32.Update(crc, castagnoli, data) }
