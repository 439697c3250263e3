package segment

import (
	"fmt"
	"io"
)

// scannerChunk is the read size of a Scanner.
const scannerChunk = 256 << 10

// Scanner reads consecutive visible records of a segment in order with
// large sequential reads, verifying each checksum. It holds no lock: the
// caller must keep the segment open (and not truncated below the scanned
// range) between calls.
type Scanner struct {
	s        *Segment
	next, to uint64 // next offset to return; stop before to
	pos      uint64 // store position of buf[r]
	buf      []byte
	r, w     int
}

// NewScanner returns a Scanner over the records [from, to), which must be
// visible (from <= to <= NextOffset()).
func (s *Segment) NewScanner(from, to uint64) (*Scanner, error) {
	if from < s.base || to < from || to > s.NextOffset() {
		return nil, fmt.Errorf("segment %s: scan [%d, %d) outside [%d, %d): %w",
			s.store.path, from, to, s.base, s.NextOffset(), ErrNotFound)
	}
	sc := &Scanner{s: s, next: from, to: to}
	if from < to {
		pos, err := s.Position(from)
		if err != nil {
			return nil, err
		}
		sc.pos = pos
	}
	return sc, nil
}

// Next returns the next record's offset and its framed bytes (length,
// checksum and data, as stored; the data starts at RecordHeaderSize). The
// slice is only valid until the next call. At the end it returns io.EOF.
func (sc *Scanner) Next() (offset uint64, framed []byte, err error) {
	if sc.next >= sc.to {
		return 0, nil, io.EOF
	}
	st := sc.s.store
	if err := sc.fill(RecordHeaderSize); err != nil {
		return 0, nil, err
	}
	n := uint64(enc.Uint32(sc.buf[sc.r:]))
	if left := st.size.Load() - sc.pos - RecordHeaderSize; n > left {
		return 0, nil, corruptf(st.path, int64(sc.pos), "record length %d exceeds the %d bytes left in the file", n, left)
	}
	if err := sc.fill(RecordHeaderSize + int(n)); err != nil {
		return 0, nil, err
	}
	rec := sc.buf[sc.r : sc.r+RecordHeaderSize+int(n)]
	if _, err := st.check(rec, sc.pos); err != nil {
		return 0, nil, err
	}
	offset = sc.next
	sc.next++
	sc.r += len(rec)
	sc.pos += uint64(len(rec))
	return offset, rec, nil
}

// fill makes at least need bytes available in buf[r:w].
func (sc *Scanner) fill(need int) error {
	if sc.w-sc.r >= need {
		return nil
	}
	if sc.r > 0 {
		sc.w = copy(sc.buf, sc.buf[sc.r:sc.w])
		sc.r = 0
	}
	if len(sc.buf) < need {
		nb := make([]byte, max(need, scannerChunk))
		copy(nb, sc.buf[:sc.w])
		sc.buf = nb
	} else if len(sc.buf) < scannerChunk {
		nb := make([]byte, scannerChunk)
		copy(nb, sc.buf[:sc.w])
		sc.buf = nb
	}
	st := sc.s.store
	from := sc.pos + uint64(sc.w)
	size := st.size.Load()
	if from > size {
		return corruptf(st.path, int64(sc.pos), "record extends past the end of the %d-byte file", size)
	}
	want := min(uint64(len(sc.buf)-sc.w), size-from)
	if uint64(sc.w)+want < uint64(need) {
		return corruptf(st.path, int64(sc.pos), "record extends past the end of the %d-byte file", size)
	}
	if err := st.readFull(sc.buf[sc.w:sc.w+int(want)], from); err != nil {
		return err
	}
	sc.w += int(want)
	return nil
}
