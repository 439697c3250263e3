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
// # A full disk
//
// A full disk is an error (wrapping syscall.ENOSPC), never a signal. The
// index is written through a shared memory mapping, and a store to a page
// of a sparse file that has no block yet faults (SIGBUS) when the file
// system cannot allocate one, killing the process. So whenever a writable
// index is mapped (created, reopened, grown, rebuilt) its whole
// preallocated size is reserved first with fallocate(2) (mode 0, which
// writes nothing), or, where the file system cannot (EOPNOTSUPP) or the
// File is not an Allocator, by writing zeros past the entries. Creating a
// segment on a full disk then fails with ENOSPC. Reopening a writable
// segment on a full disk (its clean index was trimmed to its entries)
// still succeeds: the index is mapped with no room to spare and stays
// marked clean (a crash then needs no rebuild, which would need the
// space), so the segment is full and the log rolls over, which fails with
// ENOSPC until space returns; its records stay readable. Rebuilding an
// index needs its reserve: on a full disk Open then fails with ENOSPC. Store writes use pwrite(v) and
// report ENOSPC as an error. Writing entries with pwrite and mapping the
// index read-only would avoid the reservation but costs a system call per
// append and loses the one-copy mapping; reserving costs nothing per
// append.
//
// Open recovers a segment after a crash: see Open for the rules. A clean
// index proves the store was fsynced, so damage behind it is corruption; a
// torn tail of a segment that was being written is cut off and kept in a
// side file (TornPath). Files, and directories opened to fsync them, are
// opened through an OpenFileFunc so tests can observe and fail file
// operations; package powerloss uses it to model what a power cut leaves
// of unsynced writes.
package segment
