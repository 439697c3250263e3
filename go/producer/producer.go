package producer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// BatchesKept is how many of a producer's most recent batches a Table
// remembers, hence how far back a retry is recognised as a duplicate.
const BatchesKept = 5

// Defaults used by DefaultConfig.
const (
	// DefaultExpiry is Kafka's producer.id.expiration.ms (one day).
	DefaultExpiry       = 24 * time.Hour
	DefaultMaxProducers = 10000
	// DefaultEvictAfter is far above any client call's deadline, so a
	// retry never finds its producer evicted.
	DefaultEvictAfter = 5 * time.Minute
)

// MaxMaxProducers bounds Config.MaxProducers, hence the encoded table every
// replica accepts in a snapshot whatever its own configuration.
const MaxMaxProducers = 1 << 20

// Encoding sizes (see the package documentation).
const (
	HeaderSize            = 1 + 8 + limitsSize + 4
	MaxEncodedPerProducer = 8 + 8 + 1 + BatchesKept*batchSize
	// MaxEncodedSize bounds the encoding of any table a valid Config allows.
	MaxEncodedSize  = HeaderSize + MaxMaxProducers*MaxEncodedPerProducer
	limitsSize      = 8 + 8 + 4
	batchSize       = 3*8 + 1 + 4
	batchSizeV1     = 3 * 8
	headerSizeV1    = 1 + 8 + 4
	encodingVersion = 2
	// encodingV1 is the encoding without limits and checksums: decoded only.
	encodingV1 = 1
)

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("producer: invalid config")
	// ErrOutOfOrderSequence: a batch's sequence is neither the next
	// expected one nor one of the producer's retained batches (a gap, a
	// sequence older than the retained batches, or a retry whose records
	// differ in number). Nothing was written.
	ErrOutOfOrderSequence = errors.New("producer: out of order sequence")
	// ErrUnknownProducer: a batch with a sequence other than 0 from a
	// producer the table holds no state for (never seen, expired or
	// evicted). Nothing was written; the producer must start over with a
	// new ID.
	ErrUnknownProducer = errors.New("producer: unknown producer")
	// ErrTooManyProducers: a new producer's first batch while the table
	// holds Config.MaxProducers producers, none idle longer than
	// Config.EvictAfter. Nothing was written; retrying later is safe.
	ErrTooManyProducers = errors.New("producer: too many producers")
	// ErrBadEncoding: Decode was given bytes that are not a table.
	ErrBadEncoding = errors.New("producer: bad encoding")
)

// SequenceError is a refused batch: errors.Is matches ErrOutOfOrderSequence,
// ErrUnknownProducer or ErrTooManyProducers (Err).
type SequenceError struct {
	Err        error  // ErrOutOfOrderSequence, ErrUnknownProducer or ErrTooManyProducers
	ProducerID uint64 // the producer
	Sequence   uint64 // the batch's first sequence
	// Expected is the sequence the producer's next batch must have (with
	// ErrOutOfOrderSequence only).
	Expected uint64
	// Mismatch: the batch has the sequence and count of a retained batch
	// but other records (with ErrOutOfOrderSequence only).
	Mismatch bool
	// Limit is Config.MaxProducers (with ErrTooManyProducers only).
	Limit int
}

func (e *SequenceError) Error() string {
	switch {
	case errors.Is(e.Err, ErrUnknownProducer):
		return fmt.Sprintf("%v %d: sequence %d, but no state is kept for this producer (never seen, expired or evicted); start a new producer at sequence 0; nothing was written",
			e.Err, e.ProducerID, e.Sequence)
	case errors.Is(e.Err, ErrTooManyProducers):
		return fmt.Sprintf("%v: new producer %d refused, the table holds its limit of %d producers and none has been idle long enough to be evicted; nothing was written",
			e.Err, e.ProducerID, e.Limit)
	case e.Mismatch:
		return fmt.Sprintf("%v from producer %d: sequence %d does not match the batch written at this sequence (other records); nothing was written", e.Err, e.ProducerID, e.Sequence)
	}
	return fmt.Sprintf("%v from producer %d: sequence %d, expected %d; nothing was written", e.Err, e.ProducerID, e.Sequence, e.Expected)
}

func (e *SequenceError) Unwrap() error { return e.Err }

// Config is a Table's limits.
type Config struct {
	// Expiry: a producer idle longer than this is forgotten. At least
	// EvictAfter. Default 24h.
	Expiry time.Duration
	// MaxProducers bounds the producers remembered (and the table's
	// encoded size). 1 to MaxMaxProducers. Default 10000.
	MaxProducers int
	// EvictAfter: only a producer idle longer than this may be evicted to
	// make room for a new one. Default 5m.
	EvictAfter time.Duration
}

// DefaultConfig returns the defaults above.
func DefaultConfig() Config {
	return Config{Expiry: DefaultExpiry, MaxProducers: DefaultMaxProducers, EvictAfter: DefaultEvictAfter}
}

// Validate returns an error wrapping ErrInvalidConfig naming the first
// problem.
func (c Config) Validate() error {
	switch {
	case c.EvictAfter <= 0:
		return fmt.Errorf("%w: EvictAfter must be positive, got %v", ErrInvalidConfig, c.EvictAfter)
	case c.Expiry < c.EvictAfter:
		return fmt.Errorf("%w: Expiry (%v) must be at least EvictAfter (%v): a producer must not expire while a retry could still come", ErrInvalidConfig, c.Expiry, c.EvictAfter)
	case c.MaxProducers < 1 || c.MaxProducers > MaxMaxProducers:
		return fmt.Errorf("%w: MaxProducers must be at least 1 and at most %d, got %d", ErrInvalidConfig, MaxMaxProducers, c.MaxProducers)
	}
	return nil
}

// Sum is a batch's checksum, as Check and Record take it: Value is
// Checksum of its records; Known is false for a batch from before
// checksums were kept, which matches a retry on its count alone.
type Sum struct {
	Value uint32
	Known bool
}

// Checksum is a batch's checksum: CRC32C of each record's length (uvarint)
// followed by the record.
func Checksum(records [][]byte) uint32 {
	var sum uint32
	var n [binary.MaxVarintLen64]byte
	for _, r := range records {
		sum = crc32.Update(sum, castagnoli, n[:binary.PutUvarint(n[:], uint64(len(r)))])
		sum = crc32.Update(sum, castagnoli, r)
	}
	return sum
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batch is one retained batch of a producer.
type batch struct {
	seq, count, offset uint64
	sum                Sum
}

// state is one producer's entry, a node of the table's activity list.
type state struct {
	id         uint64
	seen       int64 // clock at the last activity
	batches    [BatchesKept]batch
	n          int // batches[:n], oldest first
	prev, next *state
}

func (s *state) expected() uint64 {
	b := s.batches[s.n-1]
	return b.seq + b.count
}

// Table is the state of the idempotent producers. The zero value is not
// usable: call New.
type Table struct {
	cfg   Config
	clock int64 // Unix nanoseconds; the largest time Advance was given
	m     map[uint64]*state
	// head (least recent) to tail (most recent activity): seen is
	// non-decreasing along it, since it is the clock at each activity.
	head, tail *state
}

// New returns an empty table with limits cfg (valid).
func New(cfg Config) *Table {
	return &Table{cfg: cfg, m: make(map[uint64]*state)}
}

// Len is the number of producers remembered.
func (t *Table) Len() int { return len(t.m) }

// Limits returns the table's limits: those given to New, the last
// SetLimits, or the encoded ones Decode read.
func (t *Table) Limits() Config { return t.cfg }

// SetLimits makes cfg (valid) the table's limits from now on. It evicts
// nobody: a lower MaxProducers only makes Record evict (or Check refuse new
// producers) until the table is back under it, and a shorter Expiry takes
// effect at the next Advance.
func (t *Table) SetLimits(cfg Config) { t.cfg = cfg }

// Advance moves the clock to now if it is later, then forgets the
// producers idle for longer than Config.Expiry. A zero now only expires.
func (t *Table) Advance(now time.Time) {
	if !now.IsZero() {
		t.clock = max(t.clock, now.UnixNano())
	}
	for t.head != nil && t.clock-t.head.seen > int64(t.cfg.Expiry) {
		t.remove(t.head)
	}
}

// Check decides what to do with a batch of n (> 0) records with sequence
// seq and checksum sum from producer id: append it (nil error, dup false;
// then call Record), or answer a duplicate with the first offset it was
// written at (dup true; nothing to write; Check counts it as activity), or
// refuse it (*SequenceError).
func (t *Table) Check(id, seq, n uint64, sum Sum) (offset uint64, dup bool, err error) {
	s := t.m[id]
	if s == nil {
		switch {
		case seq != 0:
			return 0, false, &SequenceError{Err: ErrUnknownProducer, ProducerID: id, Sequence: seq}
		case !t.evictable():
			return 0, false, &SequenceError{Err: ErrTooManyProducers, ProducerID: id, Sequence: seq, Limit: t.cfg.MaxProducers}
		}
		return 0, false, nil
	}
	exp := s.expected()
	if seq == exp {
		return 0, false, nil
	}
	for _, b := range s.batches[:s.n] {
		if b.seq != seq {
			continue
		}
		if b.count == n && (!b.sum.Known || !sum.Known || b.sum.Value == sum.Value) {
			t.touch(s)
			return b.offset, true, nil
		}
		return 0, false, &SequenceError{Err: ErrOutOfOrderSequence, ProducerID: id, Sequence: seq, Expected: exp, Mismatch: true}
	}
	return 0, false, &SequenceError{Err: ErrOutOfOrderSequence, ProducerID: id, Sequence: seq, Expected: exp}
}

// Record notes that the batch Check allowed was written: n records with
// sequence seq and checksum sum at offsets from offset.
func (t *Table) Record(id, seq, n uint64, sum Sum, offset uint64) {
	s := t.m[id]
	if s == nil {
		for len(t.m) >= t.cfg.MaxProducers {
			t.evict()
		}
		s = &state{id: id}
		t.m[id] = s
	} else {
		t.unlink(s)
	}
	if s.n == BatchesKept {
		copy(s.batches[:], s.batches[1:])
		s.n--
	}
	s.batches[s.n] = batch{seq: seq, count: n, offset: offset, sum: sum}
	s.n++
	s.seen = t.clock
	t.link(s)
}

// touch marks s active now.
func (t *Table) touch(s *state) {
	t.unlink(s)
	s.seen = t.clock
	t.link(s)
}

// evictable reports whether the table can make room for a new producer:
// it holds fewer than MaxProducers, or enough of them are idle longer
// than EvictAfter to evict down to MaxProducers-1.
func (t *Table) evictable() bool {
	excess := len(t.m) - t.cfg.MaxProducers + 1
	for s := t.head; excess > 0; s = s.next {
		if s == nil || t.clock-s.seen <= int64(t.cfg.EvictAfter) {
			return false
		}
		excess--
	}
	return true
}

// evict removes the producer idle for the longest, the smallest ID among
// equals.
func (t *Table) evict() {
	victim := t.head
	for s := t.head; s != nil && s.seen == t.head.seen; s = s.next {
		if s.id < victim.id {
			victim = s
		}
	}
	if victim != nil {
		t.remove(victim)
	}
}

func (t *Table) remove(s *state) {
	t.unlink(s)
	delete(t.m, s.id)
}

// link appends s at the tail.
func (t *Table) link(s *state) {
	s.prev, s.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = s
	} else {
		t.head = s
	}
	t.tail = s
}

func (t *Table) unlink(s *state) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		t.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		t.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// Encode returns the table's encoding (see the package documentation).
func (t *Table) Encode() []byte {
	b := make([]byte, 0, HeaderSize+len(t.m)*MaxEncodedPerProducer)
	b = append(b, encodingVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.clock))
	b = binary.BigEndian.AppendUint64(b, uint64(t.cfg.Expiry))
	b = binary.BigEndian.AppendUint64(b, uint64(t.cfg.EvictAfter))
	b = binary.BigEndian.AppendUint32(b, uint32(t.cfg.MaxProducers))
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.m)))
	for s := t.head; s != nil; s = s.next {
		b = binary.BigEndian.AppendUint64(b, s.id)
		b = binary.BigEndian.AppendUint64(b, uint64(s.seen))
		b = append(b, byte(s.n))
		for _, bt := range s.batches[:s.n] {
			b = binary.BigEndian.AppendUint64(b, bt.seq)
			b = binary.BigEndian.AppendUint64(b, bt.count)
			b = binary.BigEndian.AppendUint64(b, bt.offset)
			var known byte
			if bt.sum.Known {
				known = 1
			}
			b = append(b, known)
			b = binary.BigEndian.AppendUint32(b, bt.sum.Value)
		}
	}
	return b
}

// Decode returns the table b encodes, with the limits it encodes. A
// version 1 encoding has none: its table gets DefaultConfig's, and its
// batches no checksum (a retry of one matches on its count alone).
func Decode(b []byte) (*Table, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: producer table: %s", ErrBadEncoding, fmt.Sprintf(format, a...))
	}
	if len(b) < 1 || (b[0] != encodingVersion && b[0] != encodingV1) {
		return nil, bad("unknown version (%d bytes)", len(b))
	}
	v1 := b[0] == encodingV1
	hsize, bsize := HeaderSize, batchSize
	if v1 {
		hsize, bsize = headerSizeV1, batchSizeV1
	}
	if len(b) < hsize {
		return nil, bad("%d bytes, shorter than its header", len(b))
	}
	t := New(DefaultConfig())
	t.clock = int64(binary.BigEndian.Uint64(b[1:9]))
	if !v1 {
		t.cfg = Config{
			Expiry:       time.Duration(binary.BigEndian.Uint64(b[9:17])),
			EvictAfter:   time.Duration(binary.BigEndian.Uint64(b[17:25])),
			MaxProducers: int(binary.BigEndian.Uint32(b[25:29])),
		}
		if err := t.cfg.Validate(); err != nil {
			return nil, bad("limits: %v", err)
		}
	}
	count := binary.BigEndian.Uint32(b[hsize-4 : hsize])
	b = b[hsize:]
	// Each producer takes at least one batch: no allocation past what b holds.
	if uint64(count)*uint64(17+bsize) > uint64(len(b)) {
		return nil, bad("%d producers in %d bytes", count, len(b))
	}
	for i := range count {
		if len(b) < 17 {
			return nil, bad("producer %d truncated", i)
		}
		s := &state{id: binary.BigEndian.Uint64(b[0:8]), seen: int64(binary.BigEndian.Uint64(b[8:16])), n: int(b[16])}
		b = b[17:]
		switch {
		case s.n < 1 || s.n > BatchesKept:
			return nil, bad("producer %d has %d batches", s.id, s.n)
		case len(b) < s.n*bsize:
			return nil, bad("producer %d truncated", s.id)
		case t.m[s.id] != nil:
			return nil, bad("producer %d twice", s.id)
		case s.seen > t.clock || (t.tail != nil && s.seen < t.tail.seen):
			return nil, bad("producer %d out of order", s.id)
		}
		for j := range s.n {
			bt := batch{
				seq:    binary.BigEndian.Uint64(b[0:8]),
				count:  binary.BigEndian.Uint64(b[8:16]),
				offset: binary.BigEndian.Uint64(b[16:24]),
			}
			if !v1 {
				if b[24] > 1 {
					return nil, bad("producer %d batch %d checksum flag %d", s.id, j, b[24])
				}
				bt.sum = Sum{Value: binary.BigEndian.Uint32(b[25:29]), Known: b[24] == 1}
			}
			s.batches[j] = bt
			b = b[bsize:]
		}
		t.m[s.id] = s
		t.link(s)
	}
	if len(b) != 0 {
		return nil, bad("%d trailing bytes", len(b))
	}
	for len(t.m) > t.cfg.MaxProducers {
		t.evict()
	}
	return t, nil
}
