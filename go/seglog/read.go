package seglog

import (
	"fmt"
	"sort"

	"github.com/proglog/proglog/go/segment"
)

// Read returns the record at offset, in a new slice the caller owns.
//
// It fails with *OffsetOutOfRangeError (errors.Is ErrOffsetOutOfRange) if
// offset < LowestOffset() or offset >= NextOffset(), with *CorruptionError
// (errors.Is ErrCorrupt) if the record or its index entry fails validation
// (checksum mismatch, impossible length), and with ErrClosed after Close.
// Only records whose Append has completed are ever returned.
func (l *Log) Read(offset uint64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	lowest, next := l.segments[0].BaseOffset(), l.next.Load()
	if offset < lowest || offset >= next {
		return nil, &OffsetOutOfRangeError{Offset: offset, Lowest: lowest, Next: next}
	}
	s := l.segmentFor(offset)
	data, err := s.Read(offset)
	if err != nil {
		return nil, fmt.Errorf("seglog: read offset %d: %w", offset, err)
	}
	return data, nil
}

// segmentFor returns the segment holding offset, which must be in
// [LowestOffset, NextOffset). Callers hold mu or wmu.
func (l *Log) segmentFor(offset uint64) *segment.Segment {
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].BaseOffset() > offset })
	return l.segments[i-1]
}
