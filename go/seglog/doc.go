// Package seglog is proglog's storage engine: an append-only, segmented,
// crash-safe commit log of opaque records addressed by uint64 offsets.
//
// # Layout
//
// A Log owns one directory. Records live in segments; segment N holds the
// offsets [N, next segment's base) in two files named by the zero-padded
// base offset: "%020d.store" (the records) and "%020d.index" (offset ->
// store position, memory-mapped). A "LOCK" file is flocked while the log
// is open. Any other file in the directory makes Open fail. The file
// formats are documented in package segment (format.go): both files start
// with a 24-byte versioned header (magic "PLOGSTOR"/"PLOGINDX", version,
// flags, header CRC, base offset); a store record is a 4-byte length, a
// CRC32C (Castagnoli) of length and data, then the data; an index entry is
// a 4-byte relative offset and an 8-byte position.
//
// The last segment is active (appends go there); the others are sealed:
// read-only, with an index trimmed to its entries and marked clean. When an
// append does not fit in the active segment (Config.Segment.MaxStoreBytes
// or MaxIndexBytes), the log rolls over: it seals the active segment and
// creates a new one at NextOffset.
//
// # Durability: what is fsynced when
//
// The store is the source of truth; the index is derived data that
// recovery can always rebuild from the store. So:
//
//   - SyncAlways (default): every Append/AppendBatch writes its records to
//     the store with one write system call (write/pwritev from the
//     caller's buffers, no user-space buffer that outlives the call), then
//     fsyncs the store, and only then publishes the records to readers and
//     returns. An acknowledged append survives a crash or power loss.
//   - SyncInterval: a background goroutine fsyncs the active store every
//     Config.SyncInterval if anything was appended. Records are visible as
//     soon as they are written. A power loss can lose the last interval; a
//     process crash loses nothing (the data is in the page cache).
//   - SyncNever: appends are never fsynced; the OS writes them back.
//   - Log.Sync makes everything appended so far durable under any policy
//     (it fsyncs the active store, without the write lock), e.g. before a
//     snapshot of the log is handed on.
//   - The index is never fsynced on append, under any policy: after a
//     crash it is not trusted (see below) but validated or rebuilt from the
//     store, so syncing it would buy nothing but latency.
//   - Whatever the policy, structural changes are made durable: a new
//     segment's store is created with its header and fsynced, then the
//     directory is fsynced, before its index is created (an index never
//     exists without its store); on rollover the old store is fsynced
//     before the new segment exists (so a sealed segment is always
//     complete on disk) and its index is msynced, trimmed, fsynced, marked
//     clean and fsynced again; TruncateAfter fsyncs the truncated store;
//     each segment removal (Truncate, TruncateAfter, ApplyRetention, Reset)
//     is followed by a directory fsync, so a crash never leaves a gap;
//     Close fsyncs the active store and closes its index cleanly.
//
// # Crash recovery
//
// Open decides per segment whether the index can be trusted: only if its
// header carries the clean flag (set by a clean Close or seal, after the
// entries were synced; cleared and synced when a segment is reopened for
// appending), its size is whole entries, the entries are sequential with
// increasing positions, and the last one ends exactly at the end of the
// store (for the active segment the last record's checksum is verified
// too). Otherwise (unclean shutdown: index dirty and still at its
// preallocated size; entries pointing past the store's end; missing index)
// the index is rebuilt by reading and checksumming every record of the
// store. Recovery returns what was repaired.
//
// A clean index proves that every record it lists was fsynced and that
// nothing was appended since, so if a clean index is rejected the store
// must still hold all its records, valid: a bad record or a short store
// there is corruption (*CorruptionError; the index is left clean, so every
// later Open says so too), never a torn write.
//
// Otherwise (the index was not clean: a crash while the segment was being
// written), the first invalid record found while scanning (header cut
// short, length beyond the end of the file, checksum mismatch: what a crash
// makes of unsynced writes) at position P is judged as follows. If it is in
// the last segment and no valid record starts anywhere after P, it is a
// torn write: the bytes from P on are copied to a side file
// ("<store>.torn.<unix-nanos>", fsynced with the directory; Open ignores
// it, Remove deletes it), then the store is truncated to P (and fsynced)
// and the log continues from the record before it. Otherwise (a valid
// record follows, or the segment is sealed, whose records were complete and
// synced before later segments existed) it is corruption: Open fails with a
// *CorruptionError naming the file and P. Bad records are never skipped
// silently, and nothing panics. In short: a bad checksum on the last record
// of a segment written when the process died, with nothing after it, is a
// torn write; anywhere else, it is corruption.
//
// After a clean shutdown Open does not checksum every record; a record
// corrupted at rest (bit rot) is then reported by Read, which verifies the
// checksum of every record it returns (*CorruptionError), as does the
// snapshot Reader.
//
// A store file shorter than its header is the trace of a crash during
// segment creation and is reinitialised if it is the last segment. Segments
// must be contiguous; a gap is reported as corruption.
//
// # Concurrency
//
// All methods are safe for concurrent use. Reads do not block each other
// and do not wait for appends or fsyncs: an append writes outside the
// readers' lock and publishes the new NextOffset with an atomic store
// after its data (and, under SyncAlways, the fsync) is complete, so a
// reader never sees a partially written record. Rollover sealing,
// truncation, retention and Close take the readers' lock exclusively for a
// short time. Wait blocks without polling: a channel is closed and
// replaced on every publication.
//
// # Snapshots, truncation and retention
//
// Reader streams a consistent snapshot of every record (format in
// snapshot.go) without loading the log into memory, ReaderRange of a range
// of records with the stream's length computed up front (for a snapshot
// that references the log rather than copies it); Restore rebuilds a log
// from either. Truncate
// removes whole segments below an offset (compaction); TruncateAfter
// removes a suffix (Raft log conflict resolution); ApplyRetention removes
// old segments by total size and age, only when called by the owner, and
// RetentionOffset computes where it would cut without removing anything
// (a replicated owner agrees on that offset first, then Truncates there).
package seglog
