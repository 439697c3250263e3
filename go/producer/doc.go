// Package producer keeps the state of proglog's idempotent producers (see
// log.proto's Producer): for each producer ID, when it last produced and
// its most recent batches (first sequence, record count, checksum, first
// offset), and decides whether a new batch is appended, is a duplicate of
// one already written, or is refused.
//
// A Table is not safe for concurrent use. go/replication keeps one in its
// state machine, where every decision is taken at the same point of the
// Raft log on every replica, so the tables of all replicas are identical:
// a Table is a pure function of the calls made on it, and its clock only
// moves with the times passed to Advance (the Raft entries' AppendedAt),
// never with the local clock. Its limits (Config) are part of that state:
// set by New, SetLimits (go/replication: from each command, the leader's)
// or Decode, never read from a node's own configuration at decision time.
//
// # Decisions
//
// Check a batch of n records with sequence s and checksum c (Sum: Checksum
// of the records as the client sent them) from producer id:
//
//   - unknown producer: s must be 0 (a new producer), else
//     *SequenceError wrapping ErrUnknownProducer; and the table must have
//     room: fewer than Config.MaxProducers producers, or enough of them
//     idle longer than Config.EvictAfter to evict, else *SequenceError
//     wrapping ErrTooManyProducers (with Limit);
//   - s is the next expected sequence (the last batch's s + n): append it,
//     then call Record with its first offset;
//   - (s, n, c) is one of the producer's BatchesKept most recent batches: a
//     duplicate, answered with that batch's first offset; nothing is
//     written. A batch or a request without a known checksum (an old
//     encoding, Sum.Known false) matches on (s, n) alone;
//   - otherwise *SequenceError wrapping ErrOutOfOrderSequence, carrying the
//     expected sequence; Mismatch is set when s is a retained batch's but
//     the count or the checksum differs (a retry with other records).
//
// Record and a duplicate both count as activity. Advance moves the clock
// forward (never back: it takes the maximum of the times it was given) and
// forgets producers idle for longer than Config.Expiry. Record of a new
// producer when the table holds Config.MaxProducers evicts the producer
// idle for the longest (the smallest ID among those idle equally long);
// Check has made sure it is idle longer than Config.EvictAfter. So a
// producer active within EvictAfter is never forgotten (Validate requires
// Expiry ≥ EvictAfter): a retry within it is recognised whatever its
// sequence, including a producer's first batch.
//
// # Encoding
//
// Encode writes the whole table (for Raft snapshots); Decode reads it
// back. All integers are big-endian and fixed-width:
//
//	byte    version (2)
//	int64   clock, Unix nanoseconds
//	int64   limits: Expiry, nanoseconds
//	int64   limits: EvictAfter, nanoseconds
//	uint32  limits: MaxProducers
//	uint32  number of producers, in order of last activity (oldest first)
//	per producer:
//	  uint64  id
//	  int64   last activity, Unix nanoseconds
//	  byte    number of batches b (1 to BatchesKept), oldest first
//	  b times: uint64 first sequence, uint64 count, uint64 first offset,
//	           byte checksum known (0 or 1), uint32 checksum
//
// so a table of p producers takes at most HeaderSize + p × MaxEncodedPerProducer
// bytes (33 + 162·p; 1.62 MB at the default MaxProducers), and any table a
// valid Config allows at most MaxEncodedSize. Version 1 (no limits, batches
// of three uint64 without a checksum) still decodes: its table gets
// DefaultConfig's limits and its batches no checksum (a retry of one
// matches on its count alone).
package producer
