package segment

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/edsrzf/mmap-go"
)

// index maps a segment's relative offsets to store positions. The file is a
// FileHeaderSize header followed by IndexEntryWidth-byte entries (format.go)
// and is memory-mapped whole.
//
// While open for writing the file is preallocated to its capacity (from
// Config.MaxIndexBytes), with its blocks reserved (see reserve), and its
// header is "dirty" (no FlagClean). A clean close flushes the mapping,
// trims the file to the used entries, fsyncs, and only then sets FlagClean
// and fsyncs again, so a set flag guarantees the entries on disk are
// complete. Entries are never fsynced while the segment is being written:
// after a crash the flag is clear and the index is rebuilt from the store
// (see recover.go), which is the source of truth.
//
// Concurrency: one writer (write, truncate); readers read entries below the
// count the segment has published.
type index struct {
	f        File
	path     string
	base     uint64
	mm       mmap.MMap // the whole file, header included
	n        uint64    // entries written; writer-owned
	capacity uint64    // entries the mapping can hold
	writable bool
	// existing: opened by openIndexFile, so a writable mapping may fall
	// back to the entries it has when its capacity cannot be reserved.
	existing bool
}

// indexCapacity returns how many entries fit in a file of maxBytes.
func indexCapacity(maxBytes uint64) uint64 {
	if maxBytes < FileHeaderSize {
		return 0
	}
	return (maxBytes - FileHeaderSize) / IndexEntryWidth
}

// indexFileSize returns the size of an index file holding n entries.
func indexFileSize(n uint64) int64 { return FileHeaderSize + int64(n)*IndexEntryWidth }

// createIndex creates (or truncates) the index file at path as an empty,
// dirty, writable index with room for capacity entries.
func createIndex(path string, base, capacity uint64, open OpenFileFunc) (*index, error) {
	f, err := open(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("segment: create index: %w", err)
	}
	x := &index{f: f, path: path, base: base, capacity: capacity, writable: true}
	if err := x.writeHeader(0); err != nil {
		f.Close()
		return nil, err
	}
	if err := x.mapFile(capacity); err != nil {
		f.Close()
		return nil, err
	}
	return x, nil
}

// openIndexFile opens an existing index file for reading (and writing, if
// writable) without mapping it, and returns its header and size. reason is
// non-empty when the file cannot be trusted (bad header, not clean, odd
// size); the caller then rebuilds it.
func openIndexFile(path string, base uint64, open OpenFileFunc, writable bool) (x *index, size int64, reason string, err error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := open(path, flag, 0)
	if err != nil {
		return nil, 0, "", fmt.Errorf("segment: open index: %w", err)
	}
	x = &index{f: f, path: path, base: base, writable: writable, existing: true}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, "", fmt.Errorf("segment: stat %s: %w", path, err)
	}
	size = fi.Size()
	var hdr [FileHeaderSize]byte
	if size < FileHeaderSize {
		return x, size, "index shorter than its header", nil
	}
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		f.Close()
		return nil, 0, "", fmt.Errorf("segment: read header of %s: %w", path, err)
	}
	h, reason := decodeHeader(hdr[:], indexMagic, base)
	switch {
	case reason != "":
		return x, size, "index header: " + reason, nil
	case h.flags&FlagClean == 0:
		return x, size, "index not cleanly closed", nil
	case (size-FileHeaderSize)%IndexEntryWidth != 0:
		return x, size, fmt.Sprintf("index size %d is not a whole number of entries", size), nil
	}
	x.n = uint64(size-FileHeaderSize) / IndexEntryWidth
	return x, size, "", nil
}

// writeHeader writes the index header with the given flags.
func (x *index) writeHeader(flags uint16) error {
	var hdr [FileHeaderSize]byte
	fileHeader{magic: indexMagic, version: FormatVersion, flags: flags, base: x.base}.encode(hdr[:])
	if _, err := x.f.WriteAt(hdr[:], 0); err != nil {
		return fmt.Errorf("segment: write header of %s: %w", x.path, err)
	}
	return nil
}

// mapFile sizes the file for capacity entries (writable) and maps it.
//
// A writable index's blocks are reserved first (see reserve), so a full
// disk is an error here (wrapping syscall.ENOSPC) rather than a SIGBUS on
// a later store through the mapping. When they cannot be, the file is
// trimmed back to its entries; an index reopened from disk (existing) is
// then mapped with no room to spare, and marked clean again, which makes
// its segment full: the log rolls over to a new segment, whose creation
// fails with ENOSPC until space returns, while everything already written
// stays readable, and a crash needs no rebuild.
func (x *index) mapFile(capacity uint64) error {
	osf, err := fileOf(x.f)
	if err != nil {
		return err
	}
	prot := mmap.RDONLY
	if x.writable {
		if err := x.f.Truncate(indexFileSize(capacity)); err != nil {
			return fmt.Errorf("segment: preallocate %s: %w", x.path, err)
		}
		if err := x.reserve(indexFileSize(x.n), indexFileSize(capacity)); err != nil {
			if terr := x.f.Truncate(indexFileSize(x.n)); terr != nil || !x.existing || !errors.Is(err, syscall.ENOSPC) {
				return errors.Join(err, terr)
			}
			// Full: it takes no entries, so it is as clean as it was
			// before it was reopened (rebuilding it after a crash would
			// need the space it could not get).
			if err := x.markClean(); err != nil {
				return err
			}
			capacity = x.n
		}
		x.capacity = capacity
		prot = mmap.RDWR
	} else {
		x.capacity = x.n
	}
	mm, err := mmap.Map(osf, prot, 0)
	if err != nil {
		return fmt.Errorf("segment: mmap %s: %w", x.path, err)
	}
	x.mm = mm
	return nil
}

// reserveChunk is how many zero bytes reserve writes per call where the
// file cannot allocate.
const reserveChunk = 64 << 10

// reserve makes sure disk blocks back the byte range [from, to) of the
// index file, so that stores through the mapping never touch an
// unallocated page: on a full disk those fault (SIGBUS) and kill the
// process. It uses the file's Allocator (fallocate(2), which writes
// nothing) and, where that is unsupported (or the File has none), writes
// zeros over the range, which is never in use: entries past x.n are zero.
func (x *index) reserve(from, to int64) error {
	if from >= to {
		return nil
	}
	if a, ok := x.f.(Allocator); ok {
		err := a.Allocate(from, to-from)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("segment: reserve %d bytes for %s: %w", to-from, x.path, err)
		}
	}
	zeros := make([]byte, min(to-from, reserveChunk))
	for off := from; off < to; off += int64(len(zeros)) {
		b := zeros[:min(int64(len(zeros)), to-off)]
		if _, err := x.f.WriteAt(b, off); err != nil {
			return fmt.Errorf("segment: reserve %d bytes for %s: %w", to-from, x.path, err)
		}
	}
	return nil
}

// entry returns entry i. The caller ensures i < the published count.
func (x *index) entry(i uint64) (rel uint32, pos uint64) {
	o := FileHeaderSize + i*IndexEntryWidth
	b := x.mm[o : o+IndexEntryWidth]
	return enc.Uint32(b[0:4]), enc.Uint64(b[4:12])
}

// write appends an entry. The caller ensures x.n < x.capacity.
func (x *index) write(rel uint32, pos uint64) {
	o := FileHeaderSize + x.n*IndexEntryWidth
	b := x.mm[o : o+IndexEntryWidth]
	enc.PutUint32(b[0:4], rel)
	enc.PutUint64(b[4:12], pos)
	x.n++
}

// truncate drops entries from n on, zeroing them.
func (x *index) truncate(n uint64) {
	if n >= x.n {
		return
	}
	clear(x.mm[FileHeaderSize+n*IndexEntryWidth : FileHeaderSize+x.n*IndexEntryWidth])
	x.n = n
}

// flush writes the mapping's dirty pages to the file (msync).
func (x *index) flush() error {
	if err := x.mm.Flush(); err != nil {
		return fmt.Errorf("segment: msync %s: %w", x.path, err)
	}
	return nil
}

// close unmaps and closes the index. If clean is set and the index is
// writable it first makes the file durable and marks it clean: msync, unmap,
// trim to the used entries, fsync, set FlagClean, fsync.
func (x *index) close(clean bool) error {
	var errs []error
	if x.mm != nil {
		if clean && x.writable {
			errs = append(errs, x.flush())
		}
		if err := x.mm.Unmap(); err != nil {
			errs = append(errs, fmt.Errorf("segment: munmap %s: %w", x.path, err))
		}
		x.mm = nil
	}
	if clean && x.writable && errors.Join(errs...) == nil {
		errs = append(errs, x.markClean())
	}
	if err := x.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("segment: close %s: %w", x.path, err))
	}
	return errors.Join(errs...)
}

func (x *index) markClean() error {
	if err := x.f.Truncate(indexFileSize(x.n)); err != nil {
		return fmt.Errorf("segment: trim %s: %w", x.path, err)
	}
	if err := x.f.Sync(); err != nil {
		return fmt.Errorf("segment: sync %s: %w", x.path, err)
	}
	if err := x.writeHeader(FlagClean); err != nil {
		return err
	}
	if err := x.f.Sync(); err != nil {
		return fmt.Errorf("segment: sync %s: %w", x.path, err)
	}
	return nil
}

// markDirty clears FlagClean and fsyncs, before the first append to a
// reopened index: from then on a crash leaves the index marked dirty.
func (x *index) markDirty() error {
	if err := x.writeHeader(0); err != nil {
		return err
	}
	if err := x.f.Sync(); err != nil {
		return fmt.Errorf("segment: sync %s: %w", x.path, err)
	}
	return nil
}
