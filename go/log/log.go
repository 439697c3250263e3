package log

import (
	"context"
	"errors"
	"io"
	"time"
)

// Log is a replicated commit log's local storage: an ordered sequence of
// records, each identified by a uint64 offset, stored in segments in one
// directory. All methods are safe for concurrent use; reads run in parallel
// with one writer.
type Log struct {
	dir    string
	config Config
}

var errTODO = errors.New("log: not implemented yet")

// Open opens (creating dir if missing) the log in dir, running crash
// recovery on the segments it finds; see the package documentation.
func Open(dir string, c Config) (*Log, error) { return nil, errTODO }

// Append appends one record and returns its offset.
func (l *Log) Append(record []byte) (offset uint64, err error) { return 0, errTODO }

// AppendBatch appends records with one write and at most one fsync and
// returns the offset of the first.
func (l *Log) AppendBatch(records [][]byte) (first uint64, err error) { return 0, errTODO }

// Read returns the record at offset.
func (l *Log) Read(offset uint64) ([]byte, error) { return nil, errTODO }

// LowestOffset returns the offset of the oldest record.
func (l *Log) LowestOffset() uint64 { return 0 }

// HighestOffset returns NextOffset()-1; meaningless when the log is empty.
func (l *Log) HighestOffset() uint64 { return l.NextOffset() - 1 }

// NextOffset returns the offset the next Append gets.
func (l *Log) NextOffset() uint64 { return 0 }

// Wait blocks until NextOffset() > offset, ctx is done or the log is closed.
func (l *Log) Wait(ctx context.Context, offset uint64) error { return errTODO }

// Truncate removes whole segments whose records are all < lowest.
func (l *Log) Truncate(lowest uint64) error { return errTODO }

// TruncateAfter removes every record with an offset > offset.
func (l *Log) TruncateAfter(offset uint64) error { return errTODO }

// Reader returns a snapshot stream of every record.
func (l *Log) Reader() io.ReadCloser { return nil }

// Restore rebuilds a log in dir from a stream produced by Reader.
func Restore(dir string, c Config, r io.Reader) (*Log, error) { return nil, errTODO }

// ApplyRetention removes segments according to Config.Retention.
func (l *Log) ApplyRetention(now time.Time) (removed int, err error) { return 0, errTODO }

// Size returns the total store bytes and the number of segments.
func (l *Log) Size() (bytes uint64, segments int) { return 0, 0 }

// Close closes the log.
func (l *Log) Close() error { return errTODO }

// Remove closes the log and deletes its files.
func (l *Log) Remove() error { return errTODO }

// Reset removes every record and starts again at Config.InitialOffset.
func (l *Log) Reset() error { return errTODO }
