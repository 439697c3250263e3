package segment

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// scanBufSize is the read-ahead used when verifying a whole store.
const scanBufSize = 1 << 20

// scan verifies every record of the store from the header up to size
// bytes, calling visit for each valid one in order. It stops at the first
// invalid record and returns its position as validEnd with the reason; if
// every record is valid, validEnd == size and reason is "". Memory use is
// bounded by scanBufSize whatever the record lengths claim. err reports I/O
// failures (and errors returned by visit).
func (s *store) scan(size int64, visit func(pos uint64, n uint32) error) (validEnd int64, reason string, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(s.f, FileHeaderSize, size-FileHeaderSize), scanBufSize)
	pos := int64(FileHeaderSize)
	var hdr [RecordHeaderSize]byte
	for pos < size {
		if size-pos < RecordHeaderSize {
			return pos, fmt.Sprintf("truncated record header (%d bytes left)", size-pos), nil
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return pos, "", s.scanErr(pos, err)
		}
		n := enc.Uint32(hdr[0:4])
		left := size - pos - RecordHeaderSize
		if int64(n) > left {
			return pos, fmt.Sprintf("record length %d exceeds the %d bytes left in the file", n, left), nil
		}
		crc := crc32.Checksum(hdr[0:4], castagnoli)
		for rem := int(n); rem > 0; {
			b, err := br.Peek(min(rem, scanBufSize))
			if err != nil {
				return pos, "", s.scanErr(pos, err)
			}
			crc = recordCRCUpdate(crc, b)
			br.Discard(len(b))
			rem -= len(b)
		}
		if want := enc.Uint32(hdr[4:8]); crc != want {
			return pos, fmt.Sprintf("record checksum mismatch (stored %08x, computed %08x)", want, crc), nil
		}
		if visit != nil {
			if err := visit(uint64(pos), n); err != nil {
				return pos, "", err
			}
		}
		pos += RecordHeaderSize + int64(n)
	}
	return pos, "", nil
}

func (s *store) scanErr(pos int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("segment: %s shrank while being scanned at %d: %w", s.path, pos, err)
	}
	return fmt.Errorf("segment: scan %s at %d: %w", s.path, pos, err)
}

// resyncWindow is the read window used by findRecord.
const resyncWindow = 64 << 10

// findRecord looks for any valid record (plausible length, matching
// checksum) starting at a position in [from, end). Recovery uses it to tell
// a torn tail (nothing valid after the bad record) from corruption in the
// middle of a segment (valid records follow). Lengths above maxLen are not
// considered, which bounds the work to about (end-from) * maxLen / 2^32
// checksummed bytes for random garbage; a genuine next record is found
// within one record length of from.
func (s *store) findRecord(from, end int64, maxLen uint64) (pos int64, found bool, err error) {
	win := make([]byte, resyncWindow+RecordHeaderSize)
	var scratch []byte
	for wstart := from; wstart+RecordHeaderSize <= end; wstart += resyncWindow {
		wlen := min(int64(len(win)), end-wstart)
		w := win[:wlen]
		if _, err := s.f.ReadAt(w, wstart); err != nil && !errors.Is(err, io.EOF) {
			return 0, false, fmt.Errorf("segment: read %s at %d: %w", s.path, wstart, err)
		}
		for i := int64(0); i < resyncWindow && i+RecordHeaderSize <= wlen; i++ {
			p := wstart + i
			n := uint64(enc.Uint32(w[i:]))
			if n > maxLen || uint64(end-p-RecordHeaderSize) < n {
				continue
			}
			want := enc.Uint32(w[i+lenWidth:])
			var data []byte
			if i+RecordHeaderSize+int64(n) <= wlen {
				data = w[i+RecordHeaderSize : i+RecordHeaderSize+int64(n)]
			} else {
				if uint64(cap(scratch)) < n {
					scratch = make([]byte, n)
				}
				data = scratch[:n]
				if _, err := s.f.ReadAt(data, p+RecordHeaderSize); err != nil {
					return 0, false, fmt.Errorf("segment: read %s at %d: %w", s.path, p+RecordHeaderSize, err)
				}
			}
			if recordCRC(w[i:i+lenWidth], data) == want {
				return p, true, nil
			}
		}
	}
	return 0, false, nil
}
