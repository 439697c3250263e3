//go:build linux

package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWritevAt(t *testing.T) {
	tests := []struct {
		name string
		bufs func() [][]byte
	}{
		{"one buffer", func() [][]byte { return [][]byte{[]byte("hello")} }},
		{"empty buffers are skipped", func() [][]byte { return [][]byte{{}, []byte("a"), {}, {}, []byte("b"), {}} }},
		{"only empty buffers", func() [][]byte { return [][]byte{{}, {}} }},
		{"more buffers than IOV_MAX", func() [][]byte {
			var out [][]byte
			for i := 0; i < 3*iovMax+5; i++ {
				out = append(out, rec(uint64(i), 1+i%5))
			}
			return out
		}},
		{"large buffers", func() [][]byte { return [][]byte{rec(1, 3<<20), rec(2, 1), rec(3, 2<<20)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			f, err := OpenOSFile(path, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			bufs := tt.bufs()
			want := append([]byte("prefix"), bytes.Join(bufs, nil)...)
			f.WriteAt([]byte("prefix"), 0)
			n, err := f.(VectorWriter).WritevAt(bufs, 6)
			if err != nil || n != len(want)-6 {
				t.Fatalf("WritevAt = %d, %v; want %d", n, err, len(want)-6)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, want) {
				t.Fatalf("file has %d bytes, want %d (content differs)", len(got), len(want))
			}
		})
	}
}
