package segment

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

func TestCreateAppendRead(t *testing.T) {
	dir := t.TempDir()
	s := mustCreate(t, dir, 100, testConfig())
	defer s.Close()
	if s.BaseOffset() != 100 || s.NextOffset() != 100 || s.Len() != 0 || s.Size() != FileHeaderSize || !s.Writable() {
		t.Fatalf("new segment: base %d next %d len %d size %d", s.BaseOffset(), s.NextOffset(), s.Len(), s.Size())
	}
	for _, p := range []string{s.StorePath(), s.IndexPath()} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := fileSize(t, s.IndexPath()); got != int64(testConfig().MaxIndexBytes) {
		t.Fatalf("index not preallocated: %d bytes", got)
	}
	recs := records(100, 20)
	first, err := s.Append(recs[:5], true)
	if err != nil || first != 100 {
		t.Fatalf("Append batch = %d, %v", first, err)
	}
	mustAppend(t, s, recs[5:])
	checkRecords(t, s, recs)
	if first, err := s.Append(nil, false); err != nil || first != 120 {
		t.Fatalf("empty Append = %d, %v; want 120, nil", first, err)
	}
	if got := s.Size(); got != uint64(positions(recs)[19])+RecordHeaderSize+uint64(len(recs[19])) {
		t.Fatalf("Size = %d", got)
	}
	if time.Since(s.LastAppend()) > time.Minute {
		t.Fatalf("LastAppend = %v", s.LastAppend())
	}
}

func TestCreateExisting(t *testing.T) {
	dir := t.TempDir()
	s := mustCreate(t, dir, 0, testConfig())
	defer s.Close()
	if _, err := Create(dir, 0, testConfig()); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing segment: %v, want ErrExist", err)
	}
}

func TestReadNotFound(t *testing.T) {
	s := mustCreate(t, t.TempDir(), 10, testConfig())
	defer s.Close()
	mustAppend(t, s, records(10, 3))
	for _, off := range []uint64{0, 9, 13, 1 << 63} {
		if _, err := s.Read(off); !errors.Is(err, ErrNotFound) {
			t.Errorf("Read(%d) = %v, want ErrNotFound", off, err)
		}
		if _, err := s.Position(off); !errors.Is(err, ErrNotFound) {
			t.Errorf("Position(%d) = %v, want ErrNotFound", off, err)
		}
	}
}

func TestFitsAndIsMaxed(t *testing.T) {
	small := Config{MaxStoreBytes: FileHeaderSize + 3*(RecordHeaderSize+10), MaxIndexBytes: FileHeaderSize + 5*IndexEntryWidth}
	tests := []struct {
		name      string
		c         Config
		existing  int // 10-byte records already appended
		batch     []int
		wantFits  int
		wantMaxed bool // after appending existing
	}{
		{"empty, all fit", small, 0, []int{10, 10, 10}, 3, false},
		{"store bound", small, 0, []int{10, 10, 10, 10}, 3, false},
		{"store bound, partly full", small, 2, []int{10, 10}, 1, false},
		{"byte precise", small, 2, []int{11}, 0, false},
		{"store full", small, 3, []int{0}, 0, true},
		{"index bound", Config{MaxStoreBytes: 1 << 20, MaxIndexBytes: FileHeaderSize + 2*IndexEntryWidth}, 1, []int{0, 0, 0}, 1, false},
		{"index full", Config{MaxStoreBytes: 1 << 20, MaxIndexBytes: FileHeaderSize + 2*IndexEntryWidth}, 2, []int{0}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCreate(t, t.TempDir(), 0, tt.c)
			defer s.Close()
			for i := 0; i < tt.existing; i++ {
				if _, err := s.Append([][]byte{make([]byte, 10)}, false); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.IsMaxed(); got != tt.wantMaxed {
				t.Fatalf("IsMaxed = %v, want %v", got, tt.wantMaxed)
			}
			var batch [][]byte
			for _, n := range tt.batch {
				batch = append(batch, make([]byte, n))
			}
			if got := s.Fits(batch); got != tt.wantFits {
				t.Fatalf("Fits = %d, want %d", got, tt.wantFits)
			}
			if tt.wantFits < len(batch) {
				size := s.Size()
				if _, err := s.Append(batch, false); !errors.Is(err, ErrFull) {
					t.Fatalf("Append of a batch that does not fit: %v, want ErrFull", err)
				}
				if s.Size() != size || s.Len() != uint64(tt.existing) {
					t.Fatal("a rejected Append changed the segment")
				}
			}
		})
	}
}

func TestConcurrentReadersOneWriter(t *testing.T) {
	c := testConfig()
	c.MaxIndexBytes = FileHeaderSize + 2000*IndexEntryWidth
	c.MaxStoreBytes = 1 << 22
	s := mustCreate(t, t.TempDir(), 0, c)
	defer s.Close()
	const n = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				next := s.NextOffset()
				if next == 0 {
					continue
				}
				for _, off := range []uint64{next - 1, next / 2, 0} {
					got, err := s.Read(off)
					if err != nil {
						t.Errorf("Read(%d) with next %d: %v", off, next, err)
						return
					}
					if !bytes.Equal(got, rec(off, int(off%50))) {
						t.Errorf("Read(%d) returned wrong data", off)
						return
					}
				}
			}
		}()
	}
	for i := uint64(0); i < n; i++ {
		if _, err := s.Append([][]byte{rec(i, int(i%50))}, false); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
