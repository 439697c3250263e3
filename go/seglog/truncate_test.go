package seglog

import (
	"errors"
	"slices"
	"testing"
)

// fillSegments appends records until the log has at least n segments and
// returns the segment base offsets.
func fillSegments(t *testing.T, l *Log, n int) []uint64 {
	t.Helper()
	for len(segmentBases(t, l.Dir())) < n {
		appendN(t, l, 1)
	}
	appendN(t, l, 2) // the active segment is not empty
	return segmentBases(t, l.Dir())
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name       string
		lowest     func(bases []uint64, next uint64) uint64
		wantLowest func(bases []uint64, next uint64) uint64
	}{
		{"below the log: no-op", func(b []uint64, _ uint64) uint64 { return 0 }, func(b []uint64, _ uint64) uint64 { return 0 }},
		{"inside the first segment: kept", func(b []uint64, _ uint64) uint64 { return b[1] - 1 }, func(b []uint64, _ uint64) uint64 { return 0 }},
		{"exactly the second segment", func(b []uint64, _ uint64) uint64 { return b[1] }, func(b []uint64, _ uint64) uint64 { return b[1] }},
		{"inside the third segment", func(b []uint64, _ uint64) uint64 { return b[2] + 1 }, func(b []uint64, _ uint64) uint64 { return b[2] }},
		{"inside the active segment", func(b []uint64, next uint64) uint64 { return next - 1 }, func(b []uint64, _ uint64) uint64 { return b[len(b)-1] }},
		{"everything: log becomes empty at NextOffset", func(b []uint64, next uint64) uint64 { return next }, func(b []uint64, next uint64) uint64 { return next }},
		{"beyond NextOffset", func(b []uint64, next uint64) uint64 { return next + 100 }, func(b []uint64, next uint64) uint64 { return next }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, testConfig())
			bases := fillSegments(t, l, 4)
			next := l.NextOffset()
			if err := l.Truncate(tt.lowest(bases, next)); err != nil {
				t.Fatal(err)
			}
			wantLowest := tt.wantLowest(bases, next)
			checkLog(t, l, wantLowest, next)
			for _, b := range segmentBases(t, dir) {
				if b < wantLowest {
					t.Fatalf("segment %d below the new lowest %d still on disk", b, wantLowest)
				}
			}
			appendN(t, l, 3)
			l.Close()
			l = openLog(t, dir, testConfig())
			checkLog(t, l, wantLowest, next+3)
		})
	}
}

func TestTruncateAfter(t *testing.T) {
	tests := []struct {
		name    string
		offset  func(bases []uint64, next uint64) uint64
		wantErr bool
	}{
		{"last record: no-op", func(_ []uint64, next uint64) uint64 { return next - 1 }, false},
		{"beyond the log: no-op", func(_ []uint64, next uint64) uint64 { return next + 10 }, false},
		{"max offset: no-op", func(_ []uint64, _ uint64) uint64 { return 1<<64 - 1 }, false},
		{"inside the active segment", func(_ []uint64, next uint64) uint64 { return next - 2 }, false},
		{"last record of a sealed segment", func(b []uint64, _ uint64) uint64 { return b[2] - 1 }, false},
		{"first record of a sealed segment", func(b []uint64, _ uint64) uint64 { return b[1] }, false},
		{"first record of the log", func(b []uint64, _ uint64) uint64 { return b[0] }, false},
		{"everything (lowest-1): empty log, lowest kept", func(b []uint64, _ uint64) uint64 { return b[0] - 1 }, false},
		{"below lowest-1: error", func(b []uint64, _ uint64) uint64 { return b[0] - 2 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := testConfig()
			c.InitialOffset = 100
			l := openLog(t, dir, c)
			bases := fillSegments(t, l, 4)
			next := l.NextOffset()
			off := tt.offset(bases, next)
			err := l.TruncateAfter(off)
			if tt.wantErr {
				var oe *OffsetOutOfRangeError
				if !errors.As(err, &oe) || oe.Offset != off || oe.Lowest != 100 || oe.Next != next {
					t.Fatalf("TruncateAfter(%d) = %v, want *OffsetOutOfRangeError", off, err)
				}
				checkLog(t, l, 100, next)
				return
			}
			if err != nil {
				t.Fatalf("TruncateAfter(%d): %v", off, err)
			}
			wantNext := min(off+1, next)
			if off == 1<<64-1 {
				wantNext = next
			}
			checkLog(t, l, 100, wantNext)
			for _, b := range segmentBases(t, dir) {
				if b > wantNext || (b == wantNext && b != 100) {
					t.Fatalf("segment %d at or after the new next %d still on disk (%v)", b, wantNext, segmentBases(t, dir))
				}
			}
			// Appending continues at the new NextOffset, with new content,
			// and survives a crash.
			appendN(t, l, 40)
			checkLog(t, l, 100, wantNext+40)
			crash(t, l)
			l = openLog(t, dir, c)
			checkLog(t, l, 100, wantNext+40)
		})
	}
}

func TestTruncateAfterThenRollover(t *testing.T) {
	// Truncating back into a sealed segment makes it writable again; it
	// fills up and rolls over normally, reusing the removed base offsets.
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	bases := fillSegments(t, l, 3)
	if err := l.TruncateAfter(bases[1] - 5); err != nil {
		t.Fatal(err)
	}
	if got := segmentBases(t, dir); !slices.Equal(got, bases[:1]) {
		t.Fatalf("segments %v, want %v", got, bases[:1])
	}
	appendN(t, l, 100)
	checkLog(t, l, 0, bases[1]-4+100)
	l.Close()
	l = openLog(t, dir, testConfig())
	checkLog(t, l, 0, bases[1]-4+100)
	if r := l.Recovery(); len(r) != 0 {
		t.Fatalf("recovery after clean close: %+v", r)
	}
}
