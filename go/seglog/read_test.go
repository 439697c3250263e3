package seglog

import (
	"errors"
	"os"
	"testing"

	"github.com/proglog/proglog/go/segment"
)

func TestReadOutOfRange(t *testing.T) {
	c := testConfig()
	c.InitialOffset = 10
	l := openLog(t, t.TempDir(), c)
	appendN(t, l, 5) // [10, 15)
	tests := []struct {
		offset uint64
		ok     bool
	}{{9, false}, {10, true}, {14, true}, {15, false}, {0, false}, {1 << 63, false}}
	for _, tt := range tests {
		_, err := l.Read(tt.offset)
		if tt.ok {
			if err != nil {
				t.Errorf("Read(%d) = %v", tt.offset, err)
			}
			continue
		}
		var oe *OffsetOutOfRangeError
		if !errors.As(err, &oe) || !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("Read(%d) = %v, want *OffsetOutOfRangeError", tt.offset, err)
		}
		if *oe != (OffsetOutOfRangeError{Offset: tt.offset, Lowest: 10, Next: 15}) {
			t.Fatalf("Read(%d) error = %+v", tt.offset, *oe)
		}
	}
}

func TestReadReturnsACopy(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	appendN(t, l, 2)
	b, _ := l.Read(0)
	for i := range b {
		b[i] = 0
	}
	checkLog(t, l, 0, 2)
}

func TestReadCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	appendN(t, l, 3)
	// Flip a data bit of record 1 behind the log's back.
	pos := int64(segment.FileHeaderSize + segment.RecordHeaderSize + len(payload(0)) + segment.RecordHeaderSize + 1)
	path := segment.StorePath(dir, 0)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], pos)
	b[0] ^= 0x10
	f.WriteAt(b[:], pos)
	f.Close()
	_, err = l.Read(1)
	ce := asCorruption(t, err)
	if ce.Path != path || ce.Position != pos-segment.RecordHeaderSize-1 {
		t.Fatalf("corruption reported at %s:%d", ce.Path, ce.Position)
	}
	for _, off := range []uint64{0, 2} {
		if _, err := l.Read(off); err != nil {
			t.Fatalf("Read(%d) next to the corrupt record: %v", off, err)
		}
	}
}
