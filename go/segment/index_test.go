package segment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIndexWriteReadClose(t *testing.T) {
	tests := []struct {
		name     string
		capacity uint64
		writes   int
		truncTo  uint64
	}{
		{"empty", 10, 0, 0},
		{"partly used", 10, 4, 4},
		{"full", 10, 10, 10},
		{"truncated", 10, 8, 3},
		{"truncated to zero", 10, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), IndexName(5))
			x, err := createIndex(path, 5, tt.capacity, osOpenFile)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fileSize(t, path), indexFileSize(tt.capacity); got != want {
				t.Fatalf("preallocated size %d, want %d", got, want)
			}
			for i := 0; i < tt.writes; i++ {
				x.write(uint32(i), uint64(1000+i*10))
			}
			x.truncate(tt.truncTo)
			for i := uint64(0); i < x.n; i++ {
				rel, pos := x.entry(i)
				if rel != uint32(i) || pos != 1000+i*10 {
					t.Fatalf("entry(%d) = %d, %d", i, rel, pos)
				}
			}
			if err := x.close(true); err != nil {
				t.Fatal(err)
			}
			// A clean close trims to the used entries and sets FlagClean.
			if got, want := fileSize(t, path), indexFileSize(tt.truncTo); got != want {
				t.Fatalf("size after clean close %d, want %d", got, want)
			}
			y, size, reason, err := openIndexFile(path, 5, osOpenFile, false)
			if err != nil || reason != "" {
				t.Fatalf("reopen: %v, %q", err, reason)
			}
			defer y.close(false)
			if size != indexFileSize(tt.truncTo) || y.n != tt.truncTo {
				t.Fatalf("reopened size %d, n %d", size, y.n)
			}
			if err := y.mapFile(y.n); err != nil {
				t.Fatal(err)
			}
			for i := uint64(0); i < y.n; i++ {
				if rel, pos := y.entry(i); rel != uint32(i) || pos != 1000+i*10 {
					t.Fatalf("reopened entry(%d) = %d, %d", i, rel, pos)
				}
			}
		})
	}
}

func TestIndexTruncateZeroesEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), IndexName(0))
	x, err := createIndex(path, 0, 4, osOpenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close(false)
	x.write(0, 24)
	x.write(1, 40)
	x.truncate(1)
	for _, b := range x.mm[FileHeaderSize+IndexEntryWidth:] {
		if b != 0 {
			t.Fatal("truncated entry not zeroed")
		}
	}
}

func TestOpenIndexFileReasons(t *testing.T) {
	header := func(flags uint16, base uint64) []byte {
		b := make([]byte, FileHeaderSize)
		fileHeader{magic: indexMagic, version: FormatVersion, flags: flags, base: base}.encode(b)
		return b
	}
	tests := []struct {
		name    string
		content []byte
		reason  string
	}{
		{"clean and empty", header(FlagClean, 3), ""},
		{"clean with entries", append(header(FlagClean, 3), make([]byte, 2*IndexEntryWidth)...), ""},
		{"dirty (crash while open)", append(header(0, 3), make([]byte, 10*IndexEntryWidth)...), "not cleanly closed"},
		{"partial entry", append(header(FlagClean, 3), make([]byte, IndexEntryWidth+5)...), "not a whole number"},
		{"short", []byte("PLOG"), "shorter than its header"},
		{"wrong base", header(FlagClean, 4), "does not match file name"},
		{"bad checksum", func() []byte { b := header(FlagClean, 3); b[20] ^= 1; return b }(), "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), IndexName(3))
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			x, _, reason, err := openIndexFile(path, 3, osOpenFile, false)
			if err != nil {
				t.Fatal(err)
			}
			defer x.f.Close()
			if !strings.Contains(reason, tt.reason) || (tt.reason == "") != (reason == "") {
				t.Fatalf("reason %q, want %q", reason, tt.reason)
			}
		})
	}
}

func TestIndexCapacity(t *testing.T) {
	for _, tt := range []struct{ max, want uint64 }{
		{0, 0}, {FileHeaderSize, 0}, {FileHeaderSize + IndexEntryWidth - 1, 0},
		{FileHeaderSize + IndexEntryWidth, 1}, {1 << 20, (1<<20 - FileHeaderSize) / IndexEntryWidth},
	} {
		if got := indexCapacity(tt.max); got != tt.want {
			t.Errorf("indexCapacity(%d) = %d, want %d", tt.max, got, tt.want)
		}
	}
}
