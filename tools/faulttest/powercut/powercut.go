// Package powercut mounts a directory through a FUSE loopback filesystem
// that can lose power: what was not fsynced is thrown away, in part, as a
// power cut would. The fault tests (tools/faulttest) put each node's data
// directory on one, so that a power loss of every node at once runs
// against real proglog processes writing through the kernel.
//
// Contract (what survives Cut):
//   - File data: everything a file held at its last fsync (or when the
//     mount started), plus a random prefix of the writes, truncations and
//     fallocates made since, in order; the first write left out may be
//     torn (a random prefix of its bytes lands). Writes through a shared
//     memory mapping count when the kernel hands them to the filesystem
//     (msync, or writeback), like any write.
//   - Directory entries: creations, removals and renames of entries made
//     since a directory's last fsync are kept or lost together, per
//     directory (a rename belongs to its destination directory). Lost
//     ones are undone in reverse order: a created file disappears, a
//     removed one comes back (with the content it would have had), a
//     renamed one returns to its old name and a file the rename replaced
//     comes back.
//   - Not modelled: mkdir and rmdir (durable at once), links, symlinks,
//     mknod, and attributes other than the size.
//
// Cut must be called with no process using the mount (kill them and wait
// for them to exit): it unmounts (the kernel hands over every write still
// cached), rewinds the backing directory to what survived, and mounts it
// again with an empty page cache, as after a reboot. The random choices
// come from the seed in Config, so a run can be repeated.
//
// Mounting needs root (mount(2) is called directly; no fusermount) and
// /dev/fuse. Everything the mount holds lives in Config.Backing; the
// bookkeeping (undo data of unsynced changes) lives in memory, bounded by
// how much is written between fsyncs.
package powercut

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable is returned by Mount where FUSE cannot be used (no
// /dev/fuse, or not root).
var ErrUnavailable = errors.New("powercut: FUSE mounts unavailable")

// Config says what to mount where.
type Config struct {
	// Backing is the directory that holds the data (created if missing).
	Backing string
	// Mountpoint is where it appears (created if missing).
	Mountpoint string
	// Seed drives what a cut keeps.
	Seed uint64
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Backing == "":
		return errors.New("powercut: Backing is required")
	case c.Mountpoint == "":
		return errors.New("powercut: Mountpoint is required")
	case filepath.Clean(c.Backing) == filepath.Clean(c.Mountpoint):
		return fmt.Errorf("powercut: Backing and Mountpoint are both %s", c.Backing)
	}
	return nil
}

// Available says whether Mount can work here, and if not, why.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnavailable)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Report is what a cut threw away.
type Report struct {
	// Files with unsynced changes; of their Writes (writes, truncations,
	// fallocates), Dropped were undone and Torn landed in part.
	Files, Writes, Dropped, Torn int
	// Dirs with unsynced entry changes; DirsLost of them lost theirs
	// (DirOpsLost changes in all).
	Dirs, DirsLost, DirOpsLost int
}

func (r Report) String() string {
	return fmt.Sprintf("%d of %d unsynced writes to %d files dropped (%d torn); entry changes of %d of %d directories lost (%d changes)",
		r.Dropped, r.Writes, r.Files, r.Torn, r.DirsLost, r.Dirs, r.DirOpsLost)
}

// FS is a mounted powercut filesystem.
type FS struct {
	cfg    Config
	trash  string // removed files wait here until their directory is fsynced
	server *fuse.Server

	mu    sync.Mutex
	rng   *rand.Rand
	seq   int
	files map[uint64]*fileLog // by backing inode
	dirs  map[uint64]*dirLog  // by backing inode of the directory
	nrm   int                 // names of trash files
}

// fileLog is a file's unsynced changes.
type fileLog struct {
	f   *os.File // the backing file, for undo whatever its name is now
	ops []dataOp
}

// dataOp is one write (data at off), truncation (trunc: to size) or
// fallocate, with what it replaced.
type dataOp struct {
	off     int64
	data    []byte // written bytes (writes only)
	old     []byte // bytes the change overwrote or cut off, from off
	oldSize int64
	trunc   bool
	size    int64
}

// dirLog is a directory's unsynced entry changes.
type dirLog struct {
	ops []dirOp
}

// dirOp is an entry change, with what is needed to undo it.
type dirOp struct {
	seq      int
	kind     byte // 'c' create, 'u' unlink, 'r' rename
	from, to string
	trashed  string // unlink: where the file waits; rename: the replaced file
	ino      uint64 // unlink: the removed file
}

// Mount mounts cfg.Backing at cfg.Mountpoint.
func Mount(cfg Config) (*FS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	p := &FS{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x706f776572637574))}
	p.cfg.Backing, p.cfg.Mountpoint = filepath.Clean(cfg.Backing), filepath.Clean(cfg.Mountpoint)
	p.trash = p.cfg.Backing + ".trash"
	for _, d := range []string{p.cfg.Backing, p.cfg.Mountpoint, p.trash} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("powercut: %w", err)
		}
	}
	if err := p.mount(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *FS) mount() error {
	p.files, p.dirs = map[uint64]*fileLog{}, map[uint64]*dirLog{}
	var st syscall.Stat_t
	if err := syscall.Stat(p.cfg.Backing, &st); err != nil {
		return fmt.Errorf("powercut: %s: %w", p.cfg.Backing, err)
	}
	root := &fs.LoopbackRoot{Path: p.cfg.Backing, Dev: st.Dev}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, p: p, ino: st.Ino}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	srv, err := fs.Mount(p.cfg.Mountpoint, root.RootNode, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMountStrict: true, FsName: "powercut", Name: "powercut", AllowOther: true,
	}})
	if err != nil {
		return fmt.Errorf("powercut: mount %s: %w", p.cfg.Mountpoint, err)
	}
	p.server = srv
	return nil
}

// Unmount unmounts without losing anything (a clean shutdown: what was
// written stays).
func (p *FS) Unmount() error {
	if err := p.server.Unmount(); err != nil {
		return fmt.Errorf("powercut: unmount %s: %w", p.cfg.Mountpoint, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fl := range p.files {
		fl.f.Close()
	}
	p.files, p.dirs = nil, nil
	return os.RemoveAll(p.trash)
}

// Mountpoint is where the filesystem is mounted.
func (p *FS) Mountpoint() string { return p.cfg.Mountpoint }

// Cut cuts the power: it unmounts, throws away part of what was not
// fsynced (see the package documentation) and mounts again. No process
// may use the mount.
func (p *FS) Cut() (Report, error) {
	if err := p.server.Unmount(); err != nil {
		return Report{}, fmt.Errorf("powercut: cut: unmount %s (is a process still using it?): %w", p.cfg.Mountpoint, err)
	}
	p.server.Wait()
	p.mu.Lock()
	rep, err := p.rewind()
	p.mu.Unlock()
	if err != nil {
		return rep, err
	}
	return rep, p.mount()
}

// rewind undoes the unsynced changes the cut loses.
func (p *FS) rewind() (Report, error) {
	var rep Report
	var errs []error
	inos := sortedKeys(p.files)
	for _, ino := range inos {
		fl := p.files[ino]
		if len(fl.ops) > 0 {
			rep.Files++
			rep.Writes += len(fl.ops)
			keep := p.rng.IntN(len(fl.ops) + 1)
			rep.Dropped += len(fl.ops) - keep
			for i := len(fl.ops) - 1; i >= keep; i-- {
				errs = append(errs, undoData(fl.f, fl.ops[i]))
			}
			if keep < len(fl.ops) && len(fl.ops[keep].data) > 1 && p.rng.IntN(2) == 0 {
				op := fl.ops[keep]
				n := 1 + p.rng.IntN(len(op.data)-1)
				_, err := fl.f.WriteAt(op.data[:n], op.off)
				errs = append(errs, err)
				rep.Torn++
			}
		}
		fl.f.Close()
	}
	var lost []dirOp
	for _, ino := range sortedKeys(p.dirs) {
		d := p.dirs[ino]
		if len(d.ops) == 0 {
			continue
		}
		rep.Dirs++
		if p.rng.IntN(2) == 0 {
			rep.DirsLost++
			rep.DirOpsLost += len(d.ops)
			lost = append(lost, d.ops...)
		}
	}
	slices.SortFunc(lost, func(a, b dirOp) int { return b.seq - a.seq })
	for _, op := range lost {
		errs = append(errs, undoDir(op))
	}
	errs = append(errs, os.RemoveAll(p.trash), os.MkdirAll(p.trash, 0o755))
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("powercut: cut: %w", err)
	}
	return rep, nil
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func undoData(f *os.File, op dataOp) error {
	if op.trunc && op.size < op.oldSize {
		if err := f.Truncate(op.oldSize); err != nil {
			return err
		}
	}
	if len(op.old) > 0 {
		if _, err := f.WriteAt(op.old, op.off); err != nil {
			return err
		}
	}
	return f.Truncate(op.oldSize)
}

func undoDir(op dirOp) error {
	ignore := func(err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil // a later change moved it on; not modelled
		}
		return err
	}
	switch op.kind {
	case 'c':
		return ignore(os.Remove(op.to))
	case 'u':
		return ignore(os.Rename(op.trashed, op.to))
	default: // 'r'
		if err := ignore(os.Rename(op.to, op.from)); err != nil {
			return err
		}
		if op.trashed != "" {
			return ignore(os.Rename(op.trashed, op.to))
		}
		return nil
	}
}

// fileFor returns the log of the backing file at path (ino), opening it on
// first use. Called with p.mu held.
func (p *FS) fileFor(ino uint64, path string) (*fileLog, error) {
	if fl := p.files[ino]; fl != nil {
		return fl, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fl := &fileLog{f: f}
	p.files[ino] = fl
	return fl, nil
}

// record notes a change to the file about to happen: n bytes at off
// written (data), or a truncation to size, or a fallocate of [off, off+n).
func (p *FS) record(ino uint64, path string, op dataOp, n int64) syscall.Errno {
	p.mu.Lock()
	defer p.mu.Unlock()
	fl, err := p.fileFor(ino, path)
	if err != nil {
		return fs.ToErrno(err)
	}
	fi, err := fl.f.Stat()
	if err != nil {
		return fs.ToErrno(err)
	}
	op.oldSize = fi.Size()
	if op.trunc {
		op.off = min(op.size, op.oldSize)
		n = op.oldSize - op.off
	}
	if end := min(op.off+n, op.oldSize); end > op.off {
		op.old = make([]byte, end-op.off)
		if _, err := fl.f.ReadAt(op.old, op.off); err != nil {
			return fs.ToErrno(err)
		}
	}
	fl.ops = append(fl.ops, op)
	return 0
}

// synced makes a file's changes so far durable.
func (p *FS) synced(ino uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fl := p.files[ino]; fl != nil {
		fl.ops = nil
	}
}

// dirOp notes an entry change of directory dir.
func (p *FS) dirOp(dir uint64, op dirOp) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	op.seq = p.seq
	d := p.dirs[dir]
	if d == nil {
		d = &dirLog{}
		p.dirs[dir] = d
	}
	d.ops = append(d.ops, op)
}

// dirSynced makes a directory's entry changes durable; files removed from
// it are gone for good.
func (p *FS) dirSynced(dir uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dirs[dir]
	if d == nil {
		return
	}
	for _, op := range d.ops {
		if op.trashed != "" {
			os.Remove(op.trashed)
			if fl := p.files[op.ino]; fl != nil && op.kind == 'u' {
				fl.f.Close()
				delete(p.files, op.ino)
			}
		}
	}
	d.ops = nil
}

// trashName reserves a name in the trash. Called with p.mu held.
func (p *FS) trashName() string {
	p.nrm++
	return filepath.Join(p.trash, strconv.Itoa(p.nrm))
}

// node is a LoopbackNode that tells its FS what changes.
type node struct {
	fs.LoopbackNode
	p   *FS
	ino uint64 // backing inode
}

var (
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
)

// backing is the node's path in the backing directory.
func (n *node) backing() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := n.p.record(n.ino, n.backing(), dataOp{off: off, data: slices.Clone(data)}, int64(len(data))); errno != 0 {
		return 0, errno
	}
	return f.(fs.FileWriter).Write(ctx, data, off)
}

func (n *node) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if errno := n.p.record(n.ino, n.backing(), dataOp{off: int64(off)}, 0); errno != 0 {
		return errno
	}
	return f.(fs.FileAllocater).Allocate(ctx, off, size, mode)
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if errno := n.p.record(n.ino, n.backing(), dataOp{trunc: true, size: int64(size)}, 0); errno != 0 {
			return errno
		}
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.p.record(n.ino, n.backing(), dataOp{trunc: true}, 0); errno != 0 {
			return nil, 0, errno
		}
	}
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return noPassthrough(fh), fl, 0
}

// fileHandle is the loopback's file without kernel passthrough, which
// would send reads and writes to the backing file without this
// filesystem seeing them.
type fileHandle struct{ *fs.LoopbackFile }

func (fileHandle) PassthroughFd() (int, bool) { return -1, false }

func noPassthrough(fh fs.FileHandle) fs.FileHandle {
	return fileHandle{fh.(*fs.LoopbackFile)}
}

func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if fs, ok := f.(fs.FileFsyncer); ok {
		if errno := fs.Fsync(ctx, flags); errno != 0 {
			return errno
		}
	}
	n.p.synced(n.ino)
	return 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	path := filepath.Join(n.backing(), name)
	_, err := os.Lstat(path)
	existed := err == nil
	if existed && flags&syscall.O_TRUNC != 0 {
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err == nil {
			if errno := n.p.record(st.Ino, path, dataOp{trunc: true}, 0); errno != 0 {
				return nil, nil, 0, errno
			}
		}
	}
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if !existed {
		n.p.dirOp(n.ino, dirOp{kind: 'c', to: path})
	}
	return in, noPassthrough(fh), fl, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	path := filepath.Join(n.backing(), name)
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fs.ToErrno(err)
	}
	n.p.mu.Lock()
	trashed := n.p.trashName()
	n.p.mu.Unlock()
	if err := os.Rename(path, trashed); err != nil {
		return fs.ToErrno(err)
	}
	n.p.dirOp(n.ino, dirOp{kind: 'u', to: path, trashed: trashed, ino: st.Ino})
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || flags != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE/NOREPLACE are not modelled
	}
	from, to := filepath.Join(n.backing(), name), filepath.Join(np.backing(), newName)
	var trashed string
	if fi, err := os.Lstat(to); err == nil && !fi.IsDir() {
		n.p.mu.Lock()
		trashed = n.p.trashName()
		n.p.mu.Unlock()
		if err := os.Link(to, trashed); err != nil {
			return fs.ToErrno(err)
		}
	}
	if err := os.Rename(from, to); err != nil {
		if trashed != "" {
			os.Remove(trashed)
		}
		return fs.ToErrno(err)
	}
	n.p.dirOp(np.ino, dirOp{kind: 'r', from: from, to: to, trashed: trashed})
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{dirStream: h.(dirStream), n: n}, fl, 0
}

// dirStream is what the loopback's directory handle implements.
type dirStream interface {
	fs.FileReaddirenter
	fs.FileSeekdirer
	fs.FileReleasedirer
	fs.FileFsyncdirer
}

// dirHandle notes a directory's fsync.
type dirHandle struct {
	dirStream
	n *node
}

func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if errno := h.dirStream.Fsyncdir(ctx, flags); errno != 0 {
		return errno
	}
	h.n.p.dirSynced(h.n.ino)
	return 0
}
