package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func newStore(t *testing.T) *store {
	t.Helper()
	s, err := createStore(filepath.Join(t.TempDir(), StoreName(7)), 7, osOpenFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.f.Close() })
	return s
}

func TestStoreAppendRead(t *testing.T) {
	tests := []struct {
		name    string
		batches [][][]byte
	}{
		{"one empty record", [][][]byte{{{}}}},
		{"one small record", [][][]byte{{[]byte("hello")}}},
		{"record larger than the speculative read", [][][]byte{{rec(1, 3*speculativeRead+5)}}},
		{"record exactly filling the speculative read", [][][]byte{{rec(2, speculativeRead)}}},
		{"several batches", [][][]byte{{[]byte("a"), []byte("bb")}, {{}}, {rec(3, 100), rec(4, 5000), []byte("z")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			var all [][]byte
			var pos []uint64
			wantPos := uint64(FileHeaderSize)
			for _, b := range tt.batches {
				p, err := s.append(b)
				if err != nil {
					t.Fatal(err)
				}
				if p != wantPos {
					t.Fatalf("append returned position %d, want %d", p, wantPos)
				}
				for _, r := range b {
					all = append(all, r)
					pos = append(pos, p)
					p += RecordHeaderSize + uint64(len(r))
				}
				wantPos = p
			}
			if got := s.size.Load(); got != wantPos {
				t.Fatalf("size = %d, want %d", got, wantPos)
			}
			if got := fileSize(t, s.path); got != int64(wantPos) {
				t.Fatalf("file size = %d, want %d", got, wantPos)
			}
			for i, r := range all {
				end := uint64(0)
				if i+1 < len(pos) {
					end = pos[i+1]
				}
				for _, e := range []uint64{0, end} {
					got, err := s.read(pos[i], e)
					if err != nil {
						t.Fatalf("read(%d, end %d): %v", pos[i], e, err)
					}
					if !bytes.Equal(got, r) {
						t.Fatalf("read(%d, end %d) = %d bytes, want %d", pos[i], e, len(got), len(r))
					}
				}
			}
		})
	}
}

func TestStoreHeader(t *testing.T) {
	s := newStore(t)
	b, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != FileHeaderSize || string(b[:8]) != "PLOGSTOR" || enc.Uint16(b[8:10]) != FormatVersion || enc.Uint64(b[16:24]) != 7 {
		t.Fatalf("header = %q", b)
	}
}

func TestOpenStoreHeaderErrors(t *testing.T) {
	valid := func() []byte {
		b := make([]byte, FileHeaderSize)
		fileHeader{magic: storeMagic, version: FormatVersion, base: 7}.encode(b)
		return append(b, 0, 0, 0, 0, 0, 0, 0, 0) // plus an empty record header (bad CRC, irrelevant here)
	}
	tests := []struct {
		name     string
		content  func() []byte
		writable bool
		wantErr  string // "" = success
		wantSize uint64
	}{
		{"valid", valid, false, "", FileHeaderSize + 8},
		{"bad magic", func() []byte { b := valid(); b[0] = 'X'; return b }, false, "bad magic", 0},
		{"bad header crc", func() []byte { b := valid(); b[13] ^= 1; return b }, false, "header checksum", 0},
		{"bad version", func() []byte {
			b := valid()
			fileHeader{magic: storeMagic, version: 9, base: 7}.encode(b)
			return b
		}, false, "unsupported format version 9", 0},
		{"wrong base", func() []byte {
			b := valid()
			fileHeader{magic: storeMagic, version: FormatVersion, base: 8}.encode(b)
			return b
		}, false, "does not match file name", 0},
		{"short, read-only", func() []byte { return valid()[:10] }, false, "shorter than its", 0},
		{"empty, writable: crash during create", func() []byte { return nil }, true, "", FileHeaderSize},
		{"header prefix, writable: crash during create", func() []byte { return valid()[:10] }, true, "", FileHeaderSize},
		{"short garbage, writable", func() []byte { return []byte("garbage") }, true, "shorter than its", 0},
		// The file size reached the disk before (all of) the header.
		{"header prefix and zeros, writable: crash during create", func() []byte {
			return append(valid()[:10], make([]byte, FileHeaderSize-10)...)
		}, true, "", FileHeaderSize},
		{"zeros, writable: crash during create", func() []byte { return make([]byte, FileHeaderSize) }, true, "", FileHeaderSize},
		{"header prefix and zeros, read-only", func() []byte {
			return append(valid()[:10], make([]byte, FileHeaderSize-10)...)
		}, false, "header checksum", 0},
		{"header prefix, zeros and garbage, writable", func() []byte {
			return append(append(valid()[:10], make([]byte, FileHeaderSize-11)...), 1)
		}, true, "header checksum", 0},
		{"zeros past the header, writable", func() []byte { return make([]byte, FileHeaderSize+1) }, true, "bad magic", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), StoreName(7))
			if err := os.WriteFile(path, tt.content(), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := openStore(path, 7, osOpenFile, tt.writable)
			if tt.wantErr != "" {
				ce := asCorruption(t, err)
				if ce.Path != path || ce.Position != 0 || !bytes.Contains([]byte(ce.Reason), []byte(tt.wantErr)) {
					t.Fatalf("error %+v, want path %s, position 0, reason containing %q", ce, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if got := s.size.Load(); got != tt.wantSize {
				t.Fatalf("size = %d, want %d", got, tt.wantSize)
			}
		})
	}
}

func TestStoreReadCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(b []byte) // b is the file: header + record "hello" + record "world!"
		pos     int64          // record to read
		end     uint64
		reason  string
	}{
		{"data bit flip", func(b []byte) { b[FileHeaderSize+RecordHeaderSize] ^= 1 }, FileHeaderSize, 0, "checksum mismatch"},
		{"crc bit flip", func(b []byte) { b[FileHeaderSize+5] ^= 1 }, FileHeaderSize, 0, "checksum mismatch"},
		{"length bit flip (smaller)", func(b []byte) { b[FileHeaderSize+3] ^= 1 }, FileHeaderSize, 0, "checksum mismatch"},
		{"length beyond the file", func(b []byte) { enc.PutUint32(b[FileHeaderSize:], 0xfffffff0) }, FileHeaderSize, 0, "exceeds the"},
		{"length disagrees with the index", func(b []byte) { b[FileHeaderSize+3] ^= 2 }, FileHeaderSize, FileHeaderSize + 13, "does not match the index"},
		{"last record length beyond the file", func(b []byte) { enc.PutUint32(b[FileHeaderSize+13:], 7) }, FileHeaderSize + 13, 0, "exceeds the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, err := s.append([][]byte{[]byte("hello"), []byte("world!")}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(s.path)
			tt.corrupt(b)
			if _, err := s.f.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := s.read(uint64(tt.pos), tt.end)
			runtime.ReadMemStats(&after)
			ce := asCorruption(t, err)
			if ce.Position != tt.pos || !bytes.Contains([]byte(ce.Reason), []byte(tt.reason)) {
				t.Fatalf("got %+v, want position %d, reason containing %q", ce, tt.pos, tt.reason)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Fatalf("read of a corrupt record allocated %d bytes", d)
			}
		})
	}
}

func TestStoreReadOutsideFile(t *testing.T) {
	s := newStore(t)
	if _, err := s.append([][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	for _, pos := range []uint64{0, 5, FileHeaderSize + 2, 1 << 40, ^uint64(0) - 2} {
		if _, err := s.read(pos, 0); !errors.Is(err, ErrCorrupt) {
			t.Errorf("read(%d) error = %v, want ErrCorrupt", pos, err)
		}
	}
}

// failingFile fails writes after writing half of the data.
type failingFile struct{ File }

func (f *failingFile) WriteAt(b []byte, off int64) (int, error) {
	n, _ := f.File.WriteAt(b[:len(b)/2], off)
	return n, errors.New("injected write failure")
}

type failingVectorFile struct{ failingFile }

func (f *failingVectorFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	n, _ := f.File.WriteAt(bufs[0][:len(bufs[0])/2], off)
	return n, errors.New("injected write failure")
}

func TestStoreAppendFailureRollsBack(t *testing.T) {
	for _, vector := range []bool{false, true} {
		s := newStore(t)
		if _, err := s.append([][]byte{[]byte("kept")}); err != nil {
			t.Fatal(err)
		}
		size := s.size.Load()
		if vector {
			s.f = &failingVectorFile{failingFile{s.f}}
		} else {
			s.f = &failingFile{s.f}
		}
		if _, err := s.append([][]byte{rec(1, 100), rec(2, 2*inlineMax)}); err == nil {
			t.Fatal("append succeeded despite the write failure")
		}
		if got := s.size.Load(); got != size {
			t.Fatalf("vector=%v: size = %d after failed append, want %d", vector, got, size)
		}
		if got := fileSize(t, s.path); got != int64(size) {
			t.Fatalf("vector=%v: file size = %d after failed append, want %d (partial write not undone)", vector, got, size)
		}
	}
}

// plainFile hides WritevAt, forcing the copying write path.
type plainFile struct{ File }

func TestStoreWritePaths(t *testing.T) {
	big := make([][]byte, 1500) // more buffers than one pwritev takes
	for i := range big {
		big[i] = rec(uint64(i), inlineMax+1+i%3)
	}
	mixed := [][]byte{{}, rec(1, 10), rec(2, inlineMax), rec(3, inlineMax+1), {}, rec(4, 3*inlineMax), rec(5, 7)}
	for _, batch := range [][][]byte{mixed, big, {rec(9, 5*inlineMax)}} {
		var files [][]byte
		for _, vector := range []bool{true, false} {
			s := newStore(t)
			if !vector {
				s.f = plainFile{s.f}
			}
			if _, ok := s.f.(VectorWriter); ok != vector {
				t.Fatalf("VectorWriter = %v, want %v", ok, vector)
			}
			if _, err := s.append(batch); err != nil {
				t.Fatal(err)
			}
			if _, err := s.append([][]byte{[]byte("tail")}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(s.path)
			files = append(files, b)
			pos := uint64(FileHeaderSize)
			for i, r := range batch {
				got, err := s.read(pos, 0)
				if err != nil || !bytes.Equal(got, r) {
					t.Fatalf("vector=%v: record %d: %v", vector, i, err)
				}
				pos += RecordHeaderSize + uint64(len(r))
			}
			if len(s.iov) != 0 || cap(s.iov) > 0 && s.iov[:cap(s.iov)][0] != nil {
				t.Fatal("vectored write scratch still references records")
			}
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Fatal("vectored and copying writes produced different files")
		}
	}
}

func TestStoreFramingBuffer(t *testing.T) {
	// Copying path: a huge framing buffer is not kept.
	s := newStore(t)
	s.f = plainFile{s.f}
	if _, err := s.append([][]byte{make([]byte, maxRetainedBuf+1)}); err != nil {
		t.Fatal(err)
	}
	if s.buf != nil {
		t.Fatalf("framing buffer of %d bytes retained", cap(s.buf))
	}
	if _, err := s.append([][]byte{[]byte("small")}); err != nil {
		t.Fatal(err)
	}
	if cap(s.buf) == 0 || cap(s.buf) > 1024 {
		t.Fatalf("small append left a buffer of capacity %d", cap(s.buf))
	}
	// Vectored path: a large record is not copied at all.
	s = newStore(t)
	if _, err := s.append([][]byte{make([]byte, maxRetainedBuf+1)}); err != nil {
		t.Fatal(err)
	}
	if cap(s.buf) != RecordHeaderSize {
		t.Fatalf("vectored append of a large record used a %d-byte buffer", cap(s.buf))
	}
}
