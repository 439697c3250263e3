package seglog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"
)

func TestReaderRestoreRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		initial  uint64
		n        int
		truncate uint64 // Truncate(truncate) before the snapshot, 0 = none
	}{
		{"empty log", 0, 0, 0},
		{"empty log at an offset", 77, 0, 0},
		{"one record", 0, 1, 0},
		{"many segments", 0, 400, 0},
		{"after truncation", 5, 400, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			c.InitialOffset = tt.initial
			l := openLog(t, t.TempDir(), c)
			appendN(t, l, tt.n)
			if tt.truncate > 0 {
				if err := l.Truncate(tt.truncate); err != nil {
					t.Fatal(err)
				}
			}
			lowest, next := l.LowestOffset(), l.NextOffset()
			r := l.Reader()
			stream := readAll(t, iotest.OneByteReader(r)) // tiny reads work too
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			// Header: magic, first, count.
			if string(stream[:8]) != "PLOGSNAP" || enc.Uint64(stream[16:24]) != lowest || enc.Uint64(stream[24:32]) != next-lowest {
				t.Fatalf("snapshot header %q", stream[:32])
			}
			// Frames: offset, len, crc, data.
			p := snapshotHeaderSize
			for off := lowest; off < next; off++ {
				n := int(enc.Uint32(stream[p+8:]))
				if enc.Uint64(stream[p:]) != off || !bytes.Equal(stream[p+16:p+16+n], payload(off)) {
					t.Fatalf("frame of offset %d wrong", off)
				}
				p += 16 + n
			}
			if p != len(stream) {
				t.Fatalf("%d bytes after the last frame", len(stream)-p)
			}
			dir := filepath.Join(t.TempDir(), "restored")
			rl, err := Restore(dir, testConfig(), bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			defer rl.Close()
			checkLog(t, rl, lowest, next)
			appendN(t, rl, 2)
			rl.Close()
			rl = openLog(t, dir, testConfig())
			checkLog(t, rl, lowest, next+2)
		})
	}
}

func TestReaderRange(t *testing.T) {
	c := testConfig()
	c.InitialOffset = 10
	l := openLog(t, t.TempDir(), c)
	bases := fillSegments(t, l, 3)
	next := l.NextOffset()
	tests := []struct {
		name       string
		first, end uint64
		wantFirst  uint64
		outOfRange bool
	}{
		{"everything", 0, next, 10, false},
		{"below the log: from the lowest", 3, bases[1], 10, false},
		{"inside the first segment", bases[1] - 1, bases[2] + 1, bases[1] - 1, false},
		{"segment boundaries", bases[1], bases[2], bases[1], false},
		{"inside the active segment", next - 1, next, next - 1, false},
		{"empty at the end", next, next, next, false},
		{"empty at the start", 0, 10, 10, false},
		{"past the end", bases[1], next + 1, 0, true},
		{"end below the log", 0, 9, 0, true},
		{"end below first", bases[2], bases[1], 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, size, err := l.ReaderRange(tt.first, tt.end)
			if tt.outOfRange {
				if !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("ReaderRange(%d, %d) error %v, want ErrOffsetOutOfRange", tt.first, tt.end, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			stream := readAll(t, r)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if size != int64(len(stream)) {
				t.Fatalf("size %d, stream %d bytes", size, len(stream))
			}
			rl, err := Restore(filepath.Join(t.TempDir(), "restored"), testConfig(), bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			defer rl.Close()
			checkLog(t, rl, tt.wantFirst, tt.end)
		})
	}
	l.Close()
	if _, _, err := l.ReaderRange(0, next); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReaderRange after Close: %v", err)
	}
}

func TestReaderIsASnapshot(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	appendN(t, l, 200)
	r := l.Reader()
	defer r.Close()
	// Read part of the stream, then change the log under it.
	head := make([]byte, 100)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 50)                       // not included
	if err := l.Truncate(150); err != nil { // removed segments stay readable
		t.Fatal(err)
	}
	if l.LowestOffset() == 0 {
		t.Fatal("Truncate removed nothing")
	}
	rest := readAll(t, r)
	rl, err := Restore(filepath.Join(t.TempDir(), "r"), testConfig(), bytes.NewReader(append(head, rest...)))
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	checkLog(t, rl, 0, 200)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The removed segments were released with the reader.
	if len(l.zombies) != 0 || len(l.pins) != 0 {
		t.Fatalf("after Close: %d zombies, %d pins", len(l.zombies), len(l.pins))
	}
}

func TestReaderInvalidated(t *testing.T) {
	tests := []struct {
		name    string
		change  func(l *Log) error
		wantErr error // nil: the stream completes
	}{
		{"TruncateAfter below the snapshot end", func(l *Log) error { return l.TruncateAfter(50) }, ErrSnapshotInvalidated},
		{"TruncateAfter at the snapshot end", func(l *Log) error { l.Append([]byte("x")); return l.TruncateAfter(199) }, nil},
		{"Reset", (*Log).Reset, ErrSnapshotInvalidated},
		{"Close", (*Log).Close, ErrClosed},
		{"ApplyRetention", func(l *Log) error { _, err := l.ApplyRetention(time.Now().Add(1000 * time.Hour)); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			c.Retention.MaxAge = time.Hour
			l := openLog(t, t.TempDir(), c)
			appendN(t, l, 200)
			r := l.Reader()
			defer r.Close()
			if _, err := io.ReadFull(r, make([]byte, 64)); err != nil {
				t.Fatal(err)
			}
			if err := tt.change(l); err != nil {
				t.Fatal(err)
			}
			_, err := io.ReadAll(r)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("reading on = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	appendN(t, l, 5)
	r := l.Reader()
	good := readAll(t, r)
	r.Close()
	frame1 := snapshotHeaderSize + 16 + len(payload(0)) // start of the second frame
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty", nil, ErrBadSnapshot},
		{"short header", good[:20], ErrBadSnapshot},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadSnapshot},
		{"header checksum", mutate(func(b []byte) []byte { b[20] ^= 1; return b }), ErrBadSnapshot},
		{"version", mutate(func(b []byte) []byte { b[9] = 2; encodeFixCRC(b); return b }), ErrBadSnapshot},
		{"offset out of sequence", mutate(func(b []byte) []byte { b[frame1+7]++; return b }), ErrBadSnapshot},
		{"data checksum", mutate(func(b []byte) []byte { b[frame1+17] ^= 1; return b }), ErrBadSnapshot},
		{"truncated in a frame", good[:len(good)-3], ErrBadSnapshot},
		{"missing frames", good[:frame1], ErrBadSnapshot},
		{"trailing data", append(bytes.Clone(good), 0), ErrBadSnapshot},
		{"record too large", mutate(func(b []byte) []byte { enc.PutUint32(b[frame1+8:], 5000); return b }), ErrRecordTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "r")
			rl, err := Restore(dir, testConfig(), bytes.NewReader(tt.stream))
			if !errors.Is(err, tt.want) {
				if rl != nil {
					rl.Close()
				}
				t.Fatalf("Restore = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("failed Restore left %s behind (%v)", dir, err)
			}
		})
	}
	t.Run("non-empty directory", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
		if _, err := Restore(dir, testConfig(), bytes.NewReader(good)); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("Restore into a non-empty dir = %v, want ErrNotEmpty", err)
		}
	})
}

// encodeFixCRC recomputes the header checksum of a snapshot stream.
func encodeFixCRC(b []byte) { enc.PutUint32(b[12:16], snapshotHeaderCRC(b)) }

func TestReaderCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testConfig())
	appendN(t, l, 3)
	path := filepath.Join(dir, "00000000000000000000.store")
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 1
	os.WriteFile(path, b, 0o644)
	r := l.Reader()
	defer r.Close()
	_, err := io.ReadAll(r)
	asCorruption(t, err)
}
