// Package segment implements the on-disk building blocks of the proglog
// commit log (package log): the store file, the index file and the
// Segment that pairs them.
//
// A store ("%020d.store", named by the segment's base offset) is a 24-byte
// versioned header followed by records, each a 4-byte big-endian length, a
// CRC32C (Castagnoli) of the length bytes and the data, and the data. An
// index ("%020d.index") is a header followed by fixed-width entries
// (IndexEntryWidth = 12 bytes: relative offset uint32, store position
// uint64); it is memory-mapped, preallocated to Config.MaxIndexBytes while
// the segment is writable and trimmed to its used size, fsynced and marked
// clean (FlagClean) when the segment is closed or sealed. format.go has
// the exact layout.
//
// Appends write a batch of records to the store with one write system call
// (pwritev on Linux, so large records are not copied), add the index
// entries and, if asked, fsync the store; only then are the records
// visible to Read. Reads check the record length against the file size
// before allocating and verify the checksum.
//
// Open recovers a segment after a crash: see Open for the rules. A clean
// index proves the store was fsynced, so damage behind it is corruption; a
// torn tail of a segment that was being written is cut off and kept in a
// side file (TornPath). Files, and directories opened to fsync them, are
// opened through an OpenFileFunc so tests can observe and fail file
// operations; package powerloss uses it to model what a power cut leaves
// of unsynced writes.
package segment
