package replication

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/proglog/proglog/go/segment"
)

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content: write a temporary file, fsync it, rename it over
// path, fsync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return segment.SyncDir(dir)
}

// removeTemps deletes temporary files writeFileAtomic left behind by a
// crash.
func removeTemps(path string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// oldDataDir is the data log of the single-log layout, under DataDir.
const oldDataDir = "data"

// refuseOldLayout fails with ErrOldLayout if dir holds the single-log
// layout's data log.
func refuseOldLayout(dir string) error {
	data := filepath.Join(dir, oldDataDir)
	if fi, err := os.Stat(data); err == nil && fi.IsDir() {
		return fmt.Errorf("%w: %s holds a data log beside the raft log (proglog before topics); this version keeps the records in the raft log only and cannot convert it in place: "+
			"start a new cluster on new data directories and copy the records with `proglog consume --from 0 | proglog produce` against the new cluster, then remove %s",
			ErrOldLayout, data, dir)
	}
	return nil
}
