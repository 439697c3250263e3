package segment

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestStoreScan(t *testing.T) {
	recs := [][]byte{[]byte("alpha"), {}, rec(2, 3000), []byte("omega")}
	pos := positions(recs)
	end := pos[3] + RecordHeaderSize + 5
	tests := []struct {
		name     string
		mutate   func(b []byte) []byte
		wantEnd  int64
		reason   string // "" = all valid
		wantRecs int
	}{
		{"all valid", func(b []byte) []byte { return b }, end, "", 4},
		{"torn header", func(b []byte) []byte { return b[:pos[3]+5] }, pos[3], "truncated record header", 3},
		{"torn data", func(b []byte) []byte { return b[:end-1] }, pos[3], "exceeds the", 3},
		{"bad checksum in the middle", func(b []byte) []byte { b[pos[2]+100] ^= 0x80; return b }, pos[2], "checksum mismatch", 2},
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 100)...) }, end, "checksum mismatch", 4},
		{"huge length", func(b []byte) []byte { enc.PutUint32(b[pos[1]:], 1<<31); return b }, pos[1], "exceeds the", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, err := s.append(recs); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(s.path)
			b = tt.mutate(b)
			if err := s.f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.f.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
			var visited []int64
			gotEnd, reason, err := s.scan(int64(len(b)), func(p uint64, n uint32) error {
				visited = append(visited, int64(p))
				if want := len(recs[len(visited)-1]); int(n) != want {
					t.Errorf("visit %d: length %d, want %d", len(visited)-1, n, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			wantEnd := tt.wantEnd
			if gotEnd != wantEnd || !strings.Contains(reason, tt.reason) || (tt.reason == "") != (reason == "") {
				t.Fatalf("scan = %d, %q; want %d, %q", gotEnd, reason, wantEnd, tt.reason)
			}
			if len(visited) != tt.wantRecs {
				t.Fatalf("visited %d records, want %d", len(visited), tt.wantRecs)
			}
			for i, p := range visited {
				if p != pos[i] {
					t.Fatalf("visited record %d at %d, want %d", i, p, pos[i])
				}
			}
		})
	}
}

func TestStoreFindRecord(t *testing.T) {
	valid := func(data []byte) []byte {
		var b [RecordHeaderSize]byte
		enc.PutUint32(b[:], uint32(len(data)))
		enc.PutUint32(b[4:], RecordCRC(data))
		return append(b[:], data...)
	}
	garbage := bytes.Repeat([]byte{0xA5, 0x17, 0x00, 0x3C}, 20000) // 80000 bytes, spans windows
	tests := []struct {
		name   string
		region []byte // written at FileHeaderSize
		maxLen uint64
		want   int64 // position relative to FileHeaderSize, -1 = none
	}{
		{"zeros", make([]byte, 5000), 4096, -1},
		{"garbage", garbage, 4096, -1},
		{"record after garbage", append(append([]byte{}, garbage[:77]...), valid([]byte("found me"))...), 4096, 77},
		{"record past the first window", append(append([]byte{}, garbage...), valid(rec(9, 100))...), 4096, int64(len(garbage))},
		{"record longer than the window", append([]byte{1, 2, 3}, valid(rec(9, 3*resyncWindow))...), 4 * resyncWindow, 3},
		{"record longer than maxLen is not considered", append([]byte{1, 2, 3}, valid(rec(9, 500))...), 100, -1},
		{"empty record", append([]byte{9}, valid(nil)...), 10, 1},
		{"truncated record", append([]byte{9}, valid(rec(1, 50))[:40]...), 4096, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, err := s.f.WriteAt(tt.region, FileHeaderSize); err != nil {
				t.Fatal(err)
			}
			end := int64(FileHeaderSize + len(tt.region))
			p, found, err := s.findRecord(FileHeaderSize, end, tt.maxLen)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want < 0 {
				if found {
					t.Fatalf("found a record at %d in %s", p, tt.name)
				}
				return
			}
			if !found || p != FileHeaderSize+tt.want {
				t.Fatalf("findRecord = %d, %v; want %d", p, found, FileHeaderSize+tt.want)
			}
		})
	}
}
