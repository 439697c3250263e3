// Package powerloss is a test model of what a power cut leaves on disk,
// after FoundationDB's AsyncFileNonDurable: written data is durable only
// once its file is fsynced, and a file's creation or removal only once its
// directory is fsynced. Everything else may be lost, in part.
//
// An FS wraps the files of some directories (Track) behind a
// segment.OpenFileFunc (FS.OpenFile; directories are opened through it
// too, for fsync). It counts every mutating operation as a step: opening
// with O_CREATE or O_TRUNC, WriteAt, WritevAt, Truncate, Allocate, file and
// directory Sync. With a crash step k > 0, the power is cut right after
// step k: the FS computes what the disk holds then, and from then on every
// operation fails with ErrPowerLoss. Restore writes that image to the real
// directories, so the code under test can reopen them as after a reboot.
//
// What survives the cut, drawn from a seeded random source (the same seed
// and steps give the same image):
//   - File data: the content at the file's last fsync, plus a random
//     prefix of the writes and truncations made since, in order; the first
//     one left out may be torn: a random prefix of its bytes lands, and the
//     file may also keep the full new size with zeros past that prefix (the
//     size was persisted, the data was not). Writes made through a memory
//     mapping are durable only through an fsync of the file (they are not
//     seen otherwise).
//   - Directory entries: each tracked directory holds either the entries it
//     had at its last fsync (or Track) or the ones it has at the cut; file
//     creations, removals and renames since its last fsync are kept or lost
//     together. Intermediate orders of those operations are not modelled,
//     nor are operations that bypass FS (os.Remove, os.Rename) counted as
//     steps; a removed file that comes back holds what it would have held
//     had it not been removed.
//
// Only regular files directly inside tracked directories are modelled.
// Sync records what becomes durable but does not call fsync: the model,
// not the disk, decides what survives, and tests run fast. An FS is safe
// for concurrent use.
package powerloss

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/proglog/proglog/go/segment"
)

// ErrPowerLoss is returned by every operation after the crash step.
var ErrPowerLoss = errors.New("powerloss: the power is off")

// FS is the model; see the package documentation.
type FS struct {
	mu      sync.Mutex
	rng     *rand.Rand
	crashAt int
	steps   int
	crashed bool
	files   map[uint64]*file // current incarnation by inode
	dirs    map[string]*dir
	image   map[string]map[string][]byte // dir -> name -> content after the cut
}

// file is one incarnation of an inode.
type file struct {
	durable []byte // content as of the last fsync
	ops     []op   // mutations since, in order
}

// op is a write (data at off) or, if trunc, a truncation to size.
type op struct {
	trunc bool
	off   int64
	data  []byte
	size  int64
}

// dir is a tracked directory.
type dir struct {
	durable map[string]*file // entries as of its last fsync
}

// New returns an FS that cuts the power right after step crashAt (never
// if crashAt <= 0), drawing what survives from seed.
func New(seed uint64, crashAt int) *FS {
	return &FS{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		crashAt: crashAt,
		files:   map[uint64]*file{},
		dirs:    map[string]*dir{},
	}
}

// Track starts modelling the existing directory path: its current entries
// and their content are taken as durable.
func (fs *FS) Track(path string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	path = filepath.Clean(path)
	entries, err := fs.list(path)
	if err != nil {
		return err
	}
	fs.dirs[path] = &dir{durable: entries}
	return nil
}

// Steps returns how many steps were taken (and completed) so far.
func (fs *FS) Steps() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.steps
}

// Crashed reports whether the power was cut.
func (fs *FS) Crashed() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.crashed
}

// Restore cuts the power (if it is still on) and replaces the regular
// files of every tracked directory with what survived. Close what uses the
// files first; the FS fails every operation afterwards.
func (fs *FS) Restore() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.crashed {
		if err := fs.crash(); err != nil {
			return err
		}
	}
	for path, files := range fs.image {
		// The directory itself may be gone (its entry in its parent is
		// not modelled): it comes back.
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("powerloss: restore %s: %w", path, err)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("powerloss: restore %s: %w", path, err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				if err := os.Remove(filepath.Join(path, e.Name())); err != nil {
					return fmt.Errorf("powerloss: restore: %w", err)
				}
			}
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(path, name), content, 0o644); err != nil {
				return fmt.Errorf("powerloss: restore: %w", err)
			}
		}
	}
	return nil
}

// OpenFile is a segment.OpenFileFunc over the model. Directories may be
// opened (read-only) to fsync them.
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (segment.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.crashed {
		return nil, fmt.Errorf("open %s: %w", name, ErrPowerLoss)
	}
	_, statErr := os.Lstat(name)
	if flag&os.O_WRONLY != 0 { // Sync reads the file back
		flag = flag&^os.O_WRONLY | os.O_RDWR
	}
	f, err := segment.OpenOSFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		return &dirFile{File: f, fs: fs, path: filepath.Clean(name)}, nil
	}
	ino := inode(fi)
	m := fs.files[ino]
	switch {
	case errors.Is(statErr, os.ErrNotExist):
		m = &file{} // created now: nothing of it is durable yet
		fs.files[ino] = m
	case m == nil:
		if m, err = fs.adopt(name, ino); err != nil {
			f.Close()
			return nil, err
		}
	}
	if flag&os.O_TRUNC != 0 {
		m.ops = append(m.ops, op{trunc: true})
	}
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		fs.step()
	}
	return &modelFile{File: f, fs: fs, m: m}, nil
}

// adopt models an unmodelled file with its current content as durable.
// Callers hold mu.
func (fs *FS) adopt(path string, ino uint64) (*file, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	m := &file{durable: b}
	fs.files[ino] = m
	return m, nil
}

// list returns the regular files of path and their models. Callers hold mu.
func (fs *FS) list(path string) (map[string]*file, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	out := map[string]*file{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("powerloss: %w", err)
		}
		ino := inode(fi)
		m := fs.files[ino]
		if m == nil {
			if m, err = fs.adopt(filepath.Join(path, e.Name()), ino); err != nil {
				return nil, err
			}
		}
		out[e.Name()] = m
	}
	return out, nil
}

func inode(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }

// check fails once the power is off. Callers hold mu.
func (fs *FS) check(what string) error {
	if fs.crashed {
		return fmt.Errorf("%s: %w", what, ErrPowerLoss)
	}
	return nil
}

// step counts a completed step and cuts the power after the crash step.
// Callers hold mu.
func (fs *FS) step() {
	fs.steps++
	if fs.steps == fs.crashAt {
		if err := fs.crash(); err != nil {
			panic(err) // the model itself failed: the test cannot go on
		}
	}
}

// crash computes what survives and turns the power off. Callers hold mu.
func (fs *FS) crash() error {
	fs.crashed = true
	fs.image = map[string]map[string][]byte{}
	paths := make([]string, 0, len(fs.dirs))
	for p := range fs.dirs {
		paths = append(paths, p)
	}
	slices.Sort(paths) // map order must not change the draws
	for _, p := range paths {
		entries := fs.dirs[p].durable
		if fs.rng.IntN(2) == 0 {
			current, err := fs.list(p)
			if err != nil {
				return err
			}
			entries = current
		}
		names := make([]string, 0, len(entries))
		for n := range entries {
			names = append(names, n)
		}
		slices.Sort(names)
		files := map[string][]byte{}
		for _, n := range names {
			files[n] = entries[n].survivor(fs.rng)
		}
		fs.image[p] = files
	}
	return nil
}

// survivor returns the content the file may hold after the cut.
func (m *file) survivor(rng *rand.Rand) []byte {
	b := slices.Clone(m.durable)
	k := rng.IntN(len(m.ops) + 1)
	for _, o := range m.ops[:k] {
		b = o.apply(b)
	}
	if k == len(m.ops) || rng.IntN(2) == 0 {
		return b
	}
	o := m.ops[k]
	if o.trunc {
		return b // a truncation is not torn
	}
	torn := op{off: o.off, data: o.data[:rng.IntN(len(o.data)+1)]}
	b = torn.apply(b)
	if end := o.off + int64(len(o.data)); rng.IntN(2) == 0 && end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...) // size landed, data not
	}
	return b
}

func (o op) apply(b []byte) []byte {
	if o.trunc {
		if o.size <= int64(len(b)) {
			return b[:o.size]
		}
		return append(b, make([]byte, o.size-int64(len(b)))...)
	}
	if end := o.off + int64(len(o.data)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[o.off:], o.data)
	return b
}

// modelFile is a regular file opened through FS.
type modelFile struct {
	segment.File
	fs *FS
	m  *file
}

// OSFile returns the underlying *os.File, for memory mapping.
func (f *modelFile) OSFile() *os.File {
	return f.File.(interface{ OSFile() *os.File }).OSFile()
}

func (f *modelFile) WriteAt(b []byte, off int64) (int, error) {
	return f.write([][]byte{b}, off, func() (int, error) { return f.File.WriteAt(b, off) })
}

// WritevAt implements segment.VectorWriter (with one WriteAt where the
// platform has no pwritev).
func (f *modelFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	return f.write(bufs, off, func() (int, error) {
		if vw, ok := f.File.(segment.VectorWriter); ok {
			return vw.WritevAt(bufs, off)
		}
		return f.File.WriteAt(slices.Concat(bufs...), off)
	})
}

func (f *modelFile) write(bufs [][]byte, off int64, do func() (int, error)) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check("write " + f.Name()); err != nil {
		return 0, err
	}
	n, err := do()
	if n > 0 {
		f.m.ops = append(f.m.ops, op{off: off, data: slices.Concat(bufs...)[:n]})
		f.fs.step()
	}
	return n, err
}

func (f *modelFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check("truncate " + f.Name()); err != nil {
		return err
	}
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.m.ops = append(f.m.ops, op{trunc: true, size: size})
	f.fs.step()
	return nil
}

// Allocate implements segment.Allocator where the real file does: the
// reservation is modelled as a write of zeros past the file's end (its
// contents are unchanged; a cut may lose the extension, as it may lose
// any unsynced size change).
func (f *modelFile) Allocate(off, n int64) error {
	a, ok := f.File.(segment.Allocator)
	if !ok {
		return fmt.Errorf("powerloss: allocate %s: %w", f.Name(), errors.ErrUnsupported)
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check("allocate " + f.Name()); err != nil {
		return err
	}
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	if err := a.Allocate(off, n); err != nil {
		return err
	}
	if end := off + n; end > fi.Size() {
		f.m.ops = append(f.m.ops, op{off: fi.Size(), data: make([]byte, end-fi.Size())})
	}
	f.fs.step()
	return nil
}

// Sync makes the file's current content (memory-mapped writes included)
// durable in the model.
func (f *modelFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check("sync " + f.Name()); err != nil {
		return err
	}
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, fi.Size())
	if _, err := f.File.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("powerloss: read %s: %w", f.Name(), err)
	}
	f.m.durable, f.m.ops = b, nil
	f.fs.step()
	return nil
}

// dirFile is a directory opened through FS, to fsync it.
type dirFile struct {
	segment.File
	fs   *FS
	path string
}

// Sync makes the directory's current entries durable in the model.
func (d *dirFile) Sync() error {
	d.fs.mu.Lock()
	defer d.fs.mu.Unlock()
	if err := d.fs.check("sync " + d.path); err != nil {
		return err
	}
	if t := d.fs.dirs[d.path]; t != nil {
		entries, err := d.fs.list(d.path)
		if err != nil {
			return err
		}
		t.durable = entries
	}
	d.fs.step()
	return nil
}
