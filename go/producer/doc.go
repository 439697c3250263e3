// Package producer keeps the state of proglog's idempotent producers (see
// log.proto's Producer): for each producer ID, when it last produced and
// its most recent batches (first sequence, record count, first offset),
// and decides whether a new batch is appended, is a duplicate of one
// already written, or is refused.
//
// A Table is not safe for concurrent use. go/replication keeps one in its
// state machine, where every decision is taken at the same point of the
// Raft log on every replica, so the tables of all replicas are identical:
// a Table is a pure function of the calls made on it, and its clock only
// moves with the times passed to Advance (the Raft entries' AppendedAt),
// never with the local clock.
//
// # Decisions
//
// Check a batch of n records with sequence s from producer id:
//
//   - unknown producer: s must be 0 (a new producer), else
//     *SequenceError wrapping ErrUnknownProducer;
//   - s is the next expected sequence (the last batch's s + n): append it,
//     then call Record with its first offset;
//   - (s, n) is one of the producer's BatchesKept most recent batches: a
//     duplicate, answered with that batch's first offset; nothing is
//     written;
//   - otherwise *SequenceError wrapping ErrOutOfOrderSequence, carrying the
//     expected sequence.
//
// Record and a duplicate both count as activity. Advance moves the clock
// forward (never back: it takes the maximum of the times it was given) and
// forgets producers idle for longer than Config.Expiry. Record of a new
// producer when the table holds Config.MaxProducers evicts the producer
// idle for the longest (the smallest ID among those idle equally long).
//
// # Encoding
//
// Encode writes the whole table (for Raft snapshots); Decode reads it
// back. All integers are big-endian and fixed-width:
//
//	byte    version (1)
//	int64   clock, Unix nanoseconds
//	uint32  number of producers, in order of last activity (oldest first)
//	per producer:
//	  uint64  id
//	  int64   last activity, Unix nanoseconds
//	  byte    number of batches b (1 to BatchesKept), oldest first
//	  b times: uint64 first sequence, uint64 count, uint64 first offset
//
// so a table of p producers takes at most HeaderSize + p × MaxEncodedPerProducer
// bytes (13 + 137·p; 1.37 MB at the default MaxProducers).
package producer
