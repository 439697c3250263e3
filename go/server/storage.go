package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

// StorageLog is a single node's commitlog.Partition over the local storage
// engine: the engine's offset is the record's offset, and the bytes are
// stored as given (the server's EncodeRecords). Its idempotent producers'
// table (producer.DefaultConfig, by this process's clock) lives in memory
// only: a restart forgets the producers, whose next retries are then
// refused as UNKNOWN_PRODUCER rather than written twice.
type StorageLog struct {
	log *seglog.Log

	mu        sync.Mutex // serializes idempotent appends
	producers *producer.Table
}

var _ commitlog.Partition = (*StorageLog)(nil)

// NewStorageLog wraps l. The engine's Config.MaxRecordBytes should be at
// least the server's, or valid records fail with ResourceExhausted there.
func NewStorageLog(l *seglog.Log) *StorageLog {
	return &StorageLog{log: l, producers: producer.New(producer.DefaultConfig())}
}

// Append implements commitlog.Partition.
func (s *StorageLog) Append(ctx context.Context, recs [][]byte) (uint64, error) {
	// A caller that already gave up must not get a write it cannot see.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(recs) == 1 {
		off, err := s.log.Append(recs[0])
		if err != nil {
			return 0, fmt.Errorf("append: %w", err)
		}
		return off, nil
	}
	first, err := s.log.AppendBatch(recs)
	if err != nil {
		return 0, fmt.Errorf("append batch of %d: %w", len(recs), err)
	}
	return first, nil
}

// AppendIdempotent implements commitlog.Partition.
func (s *StorageLog) AppendIdempotent(ctx context.Context, p commitlog.Producer, recs [][]byte) (commitlog.Appended, error) {
	if err := ctx.Err(); err != nil {
		return commitlog.Appended{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.producers.Advance(time.Now())
	n, sum := uint64(len(recs)), producer.Sum{Value: p.Checksum, Known: true}
	if off, dup, err := s.producers.Check(p.ID, p.Sequence, n, sum); err != nil || dup {
		return commitlog.Appended{First: off, Duplicate: dup}, err
	}
	first, err := s.Append(ctx, recs)
	if err != nil {
		return commitlog.Appended{}, err
	}
	s.producers.Record(p.ID, p.Sequence, n, sum, first)
	return commitlog.Appended{First: first}, nil
}

// Read implements commitlog.Partition. A single node's log is the whole
// log: every record is committed once appended, so both consistencies read
// the same.
func (s *StorageLog) Read(_ context.Context, offset uint64, _ commitlog.Consistency) ([]byte, error) {
	b, err := s.log.Read(offset)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return b, nil
}

// LowestOffset implements commitlog.Partition.
func (s *StorageLog) LowestOffset() uint64 { return s.log.LowestOffset() }

// NextOffset implements commitlog.Partition.
func (s *StorageLog) NextOffset() uint64 { return s.log.NextOffset() }

// Bounds implements commitlog.Partition: one log, every consistency is its
// own.
func (s *StorageLog) Bounds(ctx context.Context, _ commitlog.Consistency) (lowest, next uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	return s.log.LowestOffset(), s.log.NextOffset(), nil
}

// Wait implements commitlog.Partition.
func (s *StorageLog) Wait(ctx context.Context, offset uint64) error { return s.log.Wait(ctx, offset) }

// selfLister lists this node alone, as leader: a single node is always the
// leader of its log.
type selfLister struct {
	id   string
	addr func() string
}

func (l selfLister) Servers(context.Context) ([]commitlog.Server, error) {
	return []commitlog.Server{{ID: l.id, Addr: l.addr(), IsLeader: true}}, nil
}
