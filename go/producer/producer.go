package producer

import (
	"encoding/binary"
	"errors"
	"fmt"
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
)

// Encoding sizes (see the package documentation).
const (
	HeaderSize            = 1 + 8 + 4
	MaxEncodedPerProducer = 8 + 8 + 1 + BatchesKept*batchSize
	batchSize             = 3 * 8
	encodingVersion       = 1
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
	// ErrBadEncoding: Decode was given bytes that are not a table.
	ErrBadEncoding = errors.New("producer: bad encoding")
)

// SequenceError is a refused batch: errors.Is matches ErrOutOfOrderSequence
// or ErrUnknownProducer (Err).
type SequenceError struct {
	Err        error  // ErrOutOfOrderSequence or ErrUnknownProducer
	ProducerID uint64 // the producer
	Sequence   uint64 // the batch's first sequence
	// Expected is the sequence the producer's next batch must have (with
	// ErrOutOfOrderSequence only).
	Expected uint64
}

func (e *SequenceError) Error() string {
	if errors.Is(e.Err, ErrUnknownProducer) {
		return fmt.Sprintf("%v %016x: sequence %d, but no state is kept for this producer (never seen, expired or evicted); start a new producer at sequence 0; nothing was written",
			e.Err, e.ProducerID, e.Sequence)
	}
	return fmt.Sprintf("%v from producer %016x: sequence %d, expected %d; nothing was written", e.Err, e.ProducerID, e.Sequence, e.Expected)
}

func (e *SequenceError) Unwrap() error { return e.Err }

// Config bounds a Table.
type Config struct {
	// Expiry: a producer idle longer than this is forgotten. Default 24h.
	Expiry time.Duration
	// MaxProducers bounds the producers remembered (and the table's
	// encoded size). Default 10000.
	MaxProducers int
}

// DefaultConfig returns the defaults above.
func DefaultConfig() Config {
	return Config{Expiry: DefaultExpiry, MaxProducers: DefaultMaxProducers}
}

// Validate returns an error wrapping ErrInvalidConfig naming the first
// problem.
func (c Config) Validate() error {
	switch {
	case c.Expiry <= 0:
		return fmt.Errorf("%w: Expiry must be positive, got %v", ErrInvalidConfig, c.Expiry)
	case c.MaxProducers < 1:
		return fmt.Errorf("%w: MaxProducers must be at least 1, got %d", ErrInvalidConfig, c.MaxProducers)
	}
	return nil
}

// batch is one retained batch of a producer.
type batch struct {
	seq, count, offset uint64
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

// New returns an empty table; cfg must be valid.
func New(cfg Config) *Table {
	return &Table{cfg: cfg, m: make(map[uint64]*state)}
}

// Len is the number of producers remembered.
func (t *Table) Len() int { return len(t.m) }

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
// seq from producer id: append it (nil error, dup false; then call Record),
// or answer a duplicate with the first offset it was written at (dup
// true; nothing to write; Check counts it as activity), or refuse it
// (*SequenceError).
func (t *Table) Check(id, seq, n uint64) (offset uint64, dup bool, err error) {
	s := t.m[id]
	if s == nil {
		if seq == 0 {
			return 0, false, nil
		}
		return 0, false, &SequenceError{Err: ErrUnknownProducer, ProducerID: id, Sequence: seq}
	}
	exp := s.expected()
	if seq == exp {
		return 0, false, nil
	}
	for _, b := range s.batches[:s.n] {
		if b.seq == seq && b.count == n {
			t.touch(s)
			return b.offset, true, nil
		}
	}
	return 0, false, &SequenceError{Err: ErrOutOfOrderSequence, ProducerID: id, Sequence: seq, Expected: exp}
}

// Record notes that the batch Check allowed was written: n records with
// sequence seq at offsets from offset.
func (t *Table) Record(id, seq, n, offset uint64) {
	s := t.m[id]
	if s == nil {
		if len(t.m) >= t.cfg.MaxProducers {
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
	s.batches[s.n] = batch{seq: seq, count: n, offset: offset}
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
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.m)))
	for s := t.head; s != nil; s = s.next {
		b = binary.BigEndian.AppendUint64(b, s.id)
		b = binary.BigEndian.AppendUint64(b, uint64(s.seen))
		b = append(b, byte(s.n))
		for _, bt := range s.batches[:s.n] {
			b = binary.BigEndian.AppendUint64(b, bt.seq)
			b = binary.BigEndian.AppendUint64(b, bt.count)
			b = binary.BigEndian.AppendUint64(b, bt.offset)
		}
	}
	return b
}

// Decode returns the table b encodes, bounded by cfg (valid): if it holds
// more than cfg.MaxProducers, the longest idle are evicted, as Record would
// have. Producers idle past cfg.Expiry are kept until the next Advance.
func Decode(cfg Config, b []byte) (*Table, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: producer table: %s", ErrBadEncoding, fmt.Sprintf(format, a...))
	}
	if len(b) < HeaderSize {
		return nil, bad("%d bytes, shorter than its header", len(b))
	}
	if b[0] != encodingVersion {
		return nil, bad("version %d, want %d", b[0], encodingVersion)
	}
	t := New(cfg)
	t.clock = int64(binary.BigEndian.Uint64(b[1:9]))
	count := binary.BigEndian.Uint32(b[9:13])
	b = b[HeaderSize:]
	// Each producer takes at least one batch: no allocation past what b holds.
	if uint64(count)*(MaxEncodedPerProducer-(BatchesKept-1)*batchSize) > uint64(len(b)) {
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
			return nil, bad("producer %016x has %d batches", s.id, s.n)
		case len(b) < s.n*batchSize:
			return nil, bad("producer %016x truncated", s.id)
		case t.m[s.id] != nil:
			return nil, bad("producer %016x twice", s.id)
		case s.seen > t.clock || (t.tail != nil && s.seen < t.tail.seen):
			return nil, bad("producer %016x out of order", s.id)
		}
		for j := range s.n {
			s.batches[j] = batch{
				seq:    binary.BigEndian.Uint64(b[0:8]),
				count:  binary.BigEndian.Uint64(b[8:16]),
				offset: binary.BigEndian.Uint64(b[16:24]),
			}
			b = b[batchSize:]
		}
		t.m[s.id] = s
		t.link(s)
	}
	if len(b) != 0 {
		return nil, bad("%d trailing bytes", len(b))
	}
	for len(t.m) > cfg.MaxProducers {
		t.evict()
	}
	return t, nil
}
