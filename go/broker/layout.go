package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// topicsDir is the directory under the node's DataDir holding the
// partitions' replicas.
const topicsDir = "topics"

// GroupID names the Raft group of a partition: "t/<topic>/<created>/<partition>",
// where created is the metadata index that created the topic, so that a
// topic deleted and created again under the same name is another group.
// See the package documentation for its length bound.
func GroupID(topic string, created uint64, partition int) string {
	return fmt.Sprintf("t/%s/%d/%d", topic, created, partition)
}

// PartitionDir is the directory of a partition's replica under the node's
// data directory: DataDir/topics/<topic>/<created>/<partition>.
func PartitionDir(dataDir, topic string, created uint64, partition int) string {
	return filepath.Join(dataDir, topicsDir, topic, strconv.FormatUint(created, 10), strconv.Itoa(partition))
}

// CheckLayout refuses a data directory that holds the single-log layout
// (raft/ and data/ at its top) with an error wrapping ErrOldLayout; a
// missing or empty directory, or one of this layout, is fine.
func CheckLayout(dataDir string) error {
	for _, name := range []string{"raft", "data"} {
		_, err := os.Stat(filepath.Join(dataDir, name))
		if err == nil {
			return fmt.Errorf("%w: %s holds %s/, a log of the single-log release; this release keeps topics (%s/meta, %s/topics) and does not convert it. "+
				"Move its records into a new cluster with `proglog consume --from 0 | proglog produce` against the new cluster's address, then start this node with an empty data directory",
				ErrOldLayout, dataDir, name, dataDir, dataDir)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("broker: check data directory layout: %w", err)
		}
	}
	return nil
}

// nopStream stands in for a partition's stream layer when Validate checks
// the replica template; it is never used.
type nopStream struct{ net.Listener }

func (nopStream) Dial(raft.ServerAddress, time.Duration) (net.Conn, error) {
	return nil, errors.New("broker: no stream layer")
}
