package cluster

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/proglog/proglog/tools/faulttest/powercut"
)

// Disk is what a node's data directory lives on.
type Disk int

const (
	// DiskDir: a plain directory under the run directory.
	DiskDir Disk = iota
	// DiskPowerCut: a powercut FUSE mount, so that Node.PowerCut can
	// throw away what the node did not fsync. Needs root and /dev/fuse.
	DiskPowerCut
	// DiskTmpfs: a tmpfs of Config.DiskBytes of its own, so that
	// Node.FillDisk can fill it to the last byte. Needs root.
	DiskTmpfs
)

func (d Disk) String() string {
	switch d {
	case DiskPowerCut:
		return "powercut"
	case DiskTmpfs:
		return "tmpfs"
	}
	return "dir"
}

// Available says whether nodes can have this disk here, and if not, why.
func (d Disk) Available() error {
	switch d {
	case DiskPowerCut:
		return powercut.Available()
	case DiskTmpfs:
		if os.Geteuid() != 0 {
			return errors.New("cluster: tmpfs disks need root (mount)")
		}
	}
	return nil
}

// disk is a mounted data directory.
type disk struct {
	pc    *powercut.FS // DiskPowerCut
	tmpfs string       // DiskTmpfs: the mount point
}

// diskDir is where the data directory of a node named name goes: tmpfs
// mounts hold it one level down, next to the file that fills them.
func (c *Cluster) diskDir(name string) string {
	if c.cfg.Disk == DiskTmpfs {
		return filepath.Join(c.cfg.Dir, name+".tmpfs", "data")
	}
	return filepath.Join(c.cfg.Dir, name)
}

// mountDisk mounts n's disk if it needs one and is not mounted. Called
// with n.mu held.
func (n *Node) mountDisk() error {
	cfg := n.c.cfg
	if n.disk != nil || cfg.Disk == DiskDir {
		return nil
	}
	switch cfg.Disk {
	case DiskPowerCut:
		h := fnv.New64a()
		io.WriteString(h, n.Name)
		pc, err := powercut.Mount(powercut.Config{
			Backing: filepath.Join(cfg.Dir, n.Name+".disk"), Mountpoint: n.DataDir, Seed: cfg.Seed ^ h.Sum64(),
		})
		if err != nil {
			return fmt.Errorf("cluster: %s disk: %w", n.Name, err)
		}
		n.disk = &disk{pc: pc}
	case DiskTmpfs:
		mnt := filepath.Dir(n.DataDir)
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			return fmt.Errorf("cluster: %s disk: %w", n.Name, err)
		}
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size="+strconv.FormatInt(cfg.DiskBytes, 10)); err != nil {
			return fmt.Errorf("cluster: %s disk: mount a tmpfs of %d bytes on %s: %w", n.Name, cfg.DiskBytes, mnt, err)
		}
		n.disk = &disk{tmpfs: mnt}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fmt.Errorf("cluster: %s disk: %w", n.Name, err)
		}
	}
	return nil
}

// unmountDisk unmounts n's disk (the node must be down); what it held
// stays (tmpfs: is gone). Called with n.mu held.
func (n *Node) unmountDisk() error {
	d := n.disk
	if d == nil {
		return nil
	}
	n.disk = nil
	if d.pc != nil {
		return d.pc.Unmount()
	}
	if err := unix.Unmount(d.tmpfs, 0); err != nil {
		return fmt.Errorf("cluster: %s disk: unmount %s: %w", n.Name, d.tmpfs, err)
	}
	return nil
}

// PowerCut throws away what n did not fsync, as a power cut would (see
// package powercut). n must be down and on a DiskPowerCut disk.
func (n *Node) PowerCut() (powercut.Report, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.cmd != nil:
		return powercut.Report{}, fmt.Errorf("cluster: power cut of %s: it is running", n.Name)
	case n.disk == nil || n.disk.pc == nil:
		return powercut.Report{}, fmt.Errorf("cluster: power cut of %s: its disk is %v, not %v", n.Name, n.c.cfg.Disk, DiskPowerCut)
	}
	return n.disk.pc.Cut()
}

// fillName is the file FillDisk fills a node's tmpfs with, beside its
// data directory.
const fillName = "fill"

// FillDisk fills n's tmpfs to the last byte with another file and returns
// its size. n must be on a DiskTmpfs disk.
func (n *Node) FillDisk() (int64, error) {
	n.mu.Lock()
	d := n.disk
	n.mu.Unlock()
	if d == nil || d.tmpfs == "" {
		return 0, fmt.Errorf("cluster: fill the disk of %s: its disk is %v, not %v", n.Name, n.c.cfg.Disk, DiskTmpfs)
	}
	f, err := os.Create(filepath.Join(d.tmpfs, fillName))
	if err != nil {
		return 0, fmt.Errorf("cluster: fill the disk of %s: %w", n.Name, err)
	}
	defer f.Close()
	// Whole chunks, then smaller ones down to a byte, until even a byte
	// does not fit: the node may be writing meanwhile.
	var size int64
	for chunk := int64(1 << 20); chunk > 0; {
		_, err := f.Write(make([]byte, chunk))
		switch {
		case err == nil:
			size += chunk
		case errors.Is(err, unix.ENOSPC):
			fi, serr := f.Stat()
			if serr != nil {
				return 0, serr
			}
			size = fi.Size() // a short write may have landed
			if _, err := f.Seek(size, io.SeekStart); err != nil {
				return 0, err
			}
			chunk /= 2
		default:
			return size, fmt.Errorf("cluster: fill the disk of %s: %w", n.Name, err)
		}
	}
	return size, nil
}

// FreeDisk removes the file FillDisk wrote.
func (n *Node) FreeDisk() error {
	n.mu.Lock()
	d := n.disk
	n.mu.Unlock()
	if d == nil || d.tmpfs == "" {
		return fmt.Errorf("cluster: free the disk of %s: its disk is %v, not %v", n.Name, n.c.cfg.Disk, DiskTmpfs)
	}
	if err := os.Remove(filepath.Join(d.tmpfs, fillName)); err != nil {
		return fmt.Errorf("cluster: free the disk of %s: %w", n.Name, err)
	}
	return nil
}

// FreeBytes is the free space of the file system holding n's data
// directory.
func (n *Node) FreeBytes() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(n.DataDir, &st); err != nil {
		return 0, fmt.Errorf("cluster: free space of %s: %w", n.Name, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
