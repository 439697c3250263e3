package segment

import (
	"fmt"
	"io"
	"os"
)

// File is the part of *os.File that stores and indexes use. It exists so
// tests can interpose on file operations (to record the order of writes and
// syncs, or inject failures); production code uses *os.File.
//
// The index memory-maps its file, which needs a real *os.File: a File used
// for an index must be an *os.File or implement OSFile() *os.File.
type File interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
	Name() string
}

// VectorWriter is implemented by Files that can write several buffers at an
// offset with one system call (pwritev). The store then frames records
// without copying large ones: headers and small records are packed into
// one buffer, large records are written from the caller's slices.
type VectorWriter interface {
	// WritevAt writes the concatenation of bufs at offset off, like
	// WriteAt: it returns a non-nil error if it wrote fewer bytes.
	WritevAt(bufs [][]byte, off int64) (int, error)
}

// Allocator is implemented by Files that can reserve disk blocks without
// writing them (fallocate(2) on Linux; the production File on Linux has
// it). The index reserves its whole preallocated size so that writes
// through its memory mapping never need a new block: on a full disk those
// would kill the process with SIGBUS instead of returning ENOSPC. Files
// without it (or whose Allocate fails with errors.ErrUnsupported) get the
// range written with zeros instead.
type Allocator interface {
	// Allocate reserves blocks for the n bytes at offset off, extending
	// the file if needed, without changing its contents. It fails with an
	// error wrapping syscall.ENOSPC if the disk is full and
	// errors.ErrUnsupported if the file system cannot allocate.
	Allocate(off, n int64) error
}

// OpenFileFunc opens a file like os.OpenFile.
type OpenFileFunc func(name string, flag int, perm os.FileMode) (File, error)

// osFile is the production File: an *os.File with WritevAt (on Linux).
type osFile struct {
	*os.File
	iovecs []iovec // WritevAt's scratch; the store has one writer
}

// OSFile returns the underlying *os.File.
func (f *osFile) OSFile() *os.File { return f.File }

// OpenOSFile is the default OpenFileFunc: os.OpenFile, plus VectorWriter
// where the platform supports it. Test wrappers can embed its result.
func OpenOSFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return &osFile{File: f}, nil
}

var osOpenFile OpenFileFunc = OpenOSFile

// fileOf returns the *os.File behind f, for memory mapping.
func fileOf(f File) (*os.File, error) {
	switch v := f.(type) {
	case *os.File:
		return v, nil
	case interface{ OSFile() *os.File }:
		return v.OSFile(), nil
	}
	return nil, fmt.Errorf("segment: %s: file type %T cannot be memory-mapped (needs *os.File or OSFile())", f.Name(), f)
}

// syncDir fsyncs a directory, opened with open, so that file creations,
// renames and removals in it are durable.
func syncDir(open OpenFileFunc, dir string) error {
	d, err := open(dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("segment: open dir for sync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("segment: sync dir %s: %w", dir, err)
	}
	return nil
}

// SyncDir fsyncs the directory dir (after creating or removing segment
// files), opening it with c.OpenFile like the segments' files.
func (c Config) SyncDir(dir string) error { return syncDir(c.withDefaults().OpenFile, dir) }

// SyncDir fsyncs the directory dir through the operating system, for
// callers without a segment Config (Config{}.SyncDir).
func SyncDir(dir string) error { return Config{}.SyncDir(dir) }
