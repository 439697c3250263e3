package replication

import (
	"io/fs"
	"path/filepath"
	"strings"
)

// DiskUsage is the size of a node's files under Config.DataDir, by
// component (apparent sizes: preallocated index files count in full).
type DiskUsage struct {
	RaftLog   uint64 // DataDir/raft/log: the Raft log, which holds the records
	Snapshots uint64 // DataDir/raft/snapshots
	Other     uint64 // everything else (stable store, snapshot installs in progress: the entries restored and the segments they replace)
}

// Total is the sum of every component.
func (u DiskUsage) Total() uint64 { return u.RaftLog + u.Snapshots + u.Other }

// DiskUsage walks Config.DataDir and sums the sizes of its files (for
// metrics and the documented disk bound). Files removed during the walk
// are skipped.
func (l *Log) DiskUsage() DiskUsage {
	var u DiskUsage
	root := l.cfg.DataDir
	sep := string(filepath.Separator)
	raftLog := filepath.Join(root, "raft", "log")
	// The last prefix a path has decides: an install's side directories
	// under the Raft log's are Other.
	parts := []struct {
		prefix string
		n      *uint64
	}{
		{raftLog + sep, &u.RaftLog},
		{filepath.Join(raftLog, restoreDir) + sep, &u.Other},
		{filepath.Join(raftLog, oldDir) + sep, &u.Other},
		{filepath.Join(root, "raft", "snapshots") + sep, &u.Snapshots},
	}
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		n := &u.Other
		for _, p := range parts {
			if strings.HasPrefix(path, p.prefix) {
				n = p.n
			}
		}
		*n += uint64(fi.Size())
		return nil
	})
	return u
}
