package nemesis

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The disk faults find a node's partition logs in the broker's layout,
// with and without data logs, and leave out a log the node set aside and
// the metadata group's.
func TestSegmentDirs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  []string
	}{
		{
			name: "raft and data logs",
			files: []string{
				"meta/log/segments/00000000000000000001.store",
				"meta/snapshots/1-2-3/state.bin",
				"topics/log/5/0/raft/log/segments/00000000000000000001.store",
				"topics/log/5/0/raft/log/segments/00000000000000000001.index",
				"topics/log/5/0/data/00000000000000000000.store",
				"topics/log/5/0/data.corrupt.42/00000000000000000000.store",
				"topics/ft.a/9/2/raft/log/segments/00000000000000000001.store",
			},
			want: []string{
				"topics/ft.a/9/2/raft/log/segments",
				"topics/log/5/0/data",
				"topics/log/5/0/raft/log/segments",
			},
		},
		{
			name: "one copy: no data logs",
			files: []string{
				"meta/log/segments/00000000000000000001.store",
				"topics/log/5/0/raft/log/segments/00000000000000000001.store",
			},
			want: []string{"topics/log/5/0/raft/log/segments"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := segmentDirs(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i], _ = filepath.Rel(dir, got[i])
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("segment directories %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := segmentDirs(t.TempDir()); err == nil {
		t.Error("an empty data directory: no error")
	}
}
