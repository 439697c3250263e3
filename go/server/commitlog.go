package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// CommitLog is the log the server serves. Implementations must be safe for
// concurrent use and report failures with the go/seglog errors (wrapped is
// fine) so the server maps them to status codes: *seglog.OffsetOutOfRangeError,
// seglog.ErrRecordTooLarge, seglog.ErrClosed, seglog.ErrFailed, seglog.ErrCorrupt, or a
// context error.
type CommitLog interface {
	// Append stores rec and returns its offset. The server has already set
	// the timestamp, cleared the offset and checked the size.
	Append(ctx context.Context, rec *logv1.Record) (uint64, error)
	// AppendBatch stores recs at consecutive offsets, all or none, and
	// returns the first offset.
	AppendBatch(ctx context.Context, recs []*logv1.Record) (uint64, error)
	// AppendIdempotent is AppendBatch for producer p (p.ID is not 0; see
	// log.proto's Producer and go/producer): unless recs repeat a batch p
	// already wrote — then nothing is written and Appended.First is the
	// offset it was written at, with Duplicate set — or p's sequence is
	// refused, with an error wrapping *producer.SequenceError.
	AppendIdempotent(ctx context.Context, p Producer, recs []*logv1.Record) (Appended, error)
	// Read returns the record at offset, with Offset set, read with
	// consistency c (see Consistency).
	Read(ctx context.Context, offset uint64, c Consistency) (*logv1.Record, error)
	// LowestOffset is the oldest readable offset.
	LowestOffset() uint64
	// NextOffset is the offset the next append gets.
	NextOffset() uint64
	// Bounds returns LowestOffset and NextOffset read with consistency c:
	// under ConsistencyLinearizable they include every append acknowledged
	// before the call (a replicated log confirms its leadership first).
	Bounds(ctx context.Context, c Consistency) (lowest, next uint64, err error)
	// Wait blocks until NextOffset() > offset (returning nil), ctx is done
	// (returning ctx.Err()) or the log closes (seglog.ErrClosed).
	Wait(ctx context.Context, offset uint64) error
}

// Producer identifies an idempotent produce (log.proto's Producer): the
// producer's ID (not 0) and the sequence of the request's first record.
type Producer struct {
	ID       uint64
	Sequence uint64
	// Checksum is go/producer's Checksum of the request's records as the
	// client sent them, before the server stamps missing timestamps (the
	// Server sets it): a retry at a sequence already written is a
	// duplicate only if its records match.
	Checksum uint32
}

// Appended is what CommitLog.AppendIdempotent did.
type Appended struct {
	// First is the offset of the first record.
	First uint64
	// Duplicate: the records repeated a batch already written at First;
	// nothing new was written.
	Duplicate bool
}

// ServerLister reports the servers of the cluster for GetServers.
type ServerLister interface {
	GetServers(ctx context.Context) ([]*logv1.Server, error)
}

// StorageLog adapts the local storage engine to CommitLog: each record is
// stored as its protobuf encoding (Offset left zero, so it costs nothing) and
// the engine's offset is the record's offset. Its idempotent producers'
// table (producer.DefaultConfig, by this process's clock) lives in memory
// only: a restart forgets the producers, whose next retries are then
// refused as UNKNOWN_PRODUCER rather than written twice.
type StorageLog struct {
	log *seglog.Log

	mu        sync.Mutex // serializes idempotent appends
	producers *producer.Table
}

var _ CommitLog = (*StorageLog)(nil)

// NewStorageLog wraps l. The engine's Config.MaxRecordBytes should be at
// least the server's, or valid records fail with ResourceExhausted there.
func NewStorageLog(l *seglog.Log) *StorageLog {
	return &StorageLog{log: l, producers: producer.New(producer.DefaultConfig())}
}

// Append implements CommitLog.
func (s *StorageLog) Append(ctx context.Context, rec *logv1.Record) (uint64, error) {
	// A caller that already gave up must not get a write it cannot see.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	bufs, err := EncodeRecords([]*logv1.Record{rec})
	if err != nil {
		return 0, err
	}
	off, err := s.log.Append(bufs[0])
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	return off, nil
}

// AppendBatch implements CommitLog.
func (s *StorageLog) AppendBatch(ctx context.Context, recs []*logv1.Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	bufs, err := EncodeRecords(recs)
	if err != nil {
		return 0, err
	}
	first, err := s.log.AppendBatch(bufs)
	if err != nil {
		return 0, fmt.Errorf("append batch of %d: %w", len(recs), err)
	}
	return first, nil
}

// AppendIdempotent implements CommitLog.
func (s *StorageLog) AppendIdempotent(ctx context.Context, p Producer, recs []*logv1.Record) (Appended, error) {
	if err := ctx.Err(); err != nil {
		return Appended{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.producers.Advance(time.Now())
	bufs, err := EncodeRecords(recs)
	if err != nil {
		return Appended{}, err
	}
	n, sum := uint64(len(bufs)), producer.Sum{Value: p.Checksum, Known: true}
	if off, dup, err := s.producers.Check(p.ID, p.Sequence, n, sum); err != nil || dup {
		return Appended{First: off, Duplicate: dup}, err
	}
	first, err := s.log.AppendBatch(bufs)
	if err != nil {
		return Appended{}, fmt.Errorf("append batch of %d: %w", len(recs), err)
	}
	s.producers.Record(p.ID, p.Sequence, n, sum, first)
	return Appended{First: first}, nil
}

// Read implements CommitLog. A single node's log is the whole log: every
// record is committed once appended, so both consistencies read the same.
func (s *StorageLog) Read(_ context.Context, offset uint64, _ Consistency) (*logv1.Record, error) {
	b, err := s.log.Read(offset)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return DecodeRecord(offset, b)
}

// EncodeRecords returns the stored form of recs, the bytes every CommitLog
// keeps for a record: its protobuf encoding.
func EncodeRecords(recs []*logv1.Record) ([][]byte, error) {
	bufs := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := proto.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode records[%d]: %w", i, err)
		}
		bufs[i] = b
	}
	return bufs, nil
}

// DecodeRecord is the record stored as b (see EncodeRecords) at offset.
func DecodeRecord(offset uint64, b []byte) (*logv1.Record, error) {
	rec := &logv1.Record{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("decode record %d: %w", offset, err)
	}
	rec.Offset = offset
	return rec, nil
}

// LowestOffset implements CommitLog.
func (s *StorageLog) LowestOffset() uint64 { return s.log.LowestOffset() }

// NextOffset implements CommitLog.
func (s *StorageLog) NextOffset() uint64 { return s.log.NextOffset() }

// Bounds implements CommitLog: one log, every consistency is its own.
func (s *StorageLog) Bounds(ctx context.Context, _ Consistency) (lowest, next uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	return s.log.LowestOffset(), s.log.NextOffset(), nil
}

// Wait implements CommitLog.
func (s *StorageLog) Wait(ctx context.Context, offset uint64) error { return s.log.Wait(ctx, offset) }

// selfLister lists this node alone, as leader: a single node is always the
// leader of its log.
type selfLister struct {
	id   string
	addr func() string
}

func (l selfLister) GetServers(context.Context) ([]*logv1.Server, error) {
	return []*logv1.Server{{Id: l.id, RpcAddr: l.addr(), IsLeader: true}}, nil
}
