package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// machineInfo describes where and with what a run happened.
type machineInfo struct {
	cores      int
	cpuModel   string
	memory     string
	kernel     string
	dataDir    string
	device     string // of the data directory, from /proc/mounts
	fsType     string
	mountOpts  string
	loadStart  string
	goVersion  string
	commit     string
	natsServer string
	natsClient string
}

func probeMachine(dataDir string) machineInfo {
	m := machineInfo{
		cores:      runtime.NumCPU(),
		cpuModel:   cpuModel(),
		memory:     memTotal(),
		kernel:     strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		dataDir:    dataDir,
		loadStart:  loadAvg(),
		goVersion:  runtime.Version(),
		commit:     gitCommit(),
		natsServer: server.VERSION,
		natsClient: nats.Version,
	}
	m.device, m.fsType, m.mountOpts = mountOf(dataDir)
	return m
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return string(b)
}

func cpuModel() string {
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	for _, line := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:"))
		}
	}
	return "unknown"
}

func loadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// mountOf finds the mount holding path: the longest mount point that is a
// prefix of it.
func mountOf(path string) (device, fsType, opts string) {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "unknown", "unknown", ""
	}
	defer f.Close()
	best := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		mp := fields[1]
		if path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") {
			if len(mp) > best {
				best = len(mp)
				device, fsType, opts = fields[0], fields[2], fields[3]
			}
		}
	}
	if best < 0 || device == "rootfs" || device == "none" {
		// A chroot (tools/bazel's offline mode) may see no mount for its
		// root: ask the kernel about the directory itself.
		device, fsType = statDevice(path)
		opts = "from stat(2)/statfs(2)"
	}
	return device, fsType, opts
}

// statDevice names the block device (from /sys/dev/block) and the file
// system type (from the statfs magic number) of path.
func statDevice(path string) (device, fsType string) {
	device, fsType = "unknown", "unknown"
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil {
		major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
		for _, line := range strings.Split(readFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", major, minor)), "\n") {
			if name, ok := strings.CutPrefix(line, "DEVNAME="); ok {
				device = "/dev/" + name
			}
		}
		if device == "unknown" {
			device = fmt.Sprintf("device %d:%d", major, minor)
		}
	}
	var sf syscall.Statfs_t
	if err := syscall.Statfs(path, &sf); err == nil {
		switch uint64(sf.Type) {
		case 0xef53:
			fsType = "ext4"
		case 0x58465342:
			fsType = "xfs"
		case 0x9123683e:
			fsType = "btrfs"
		case 0x01021994:
			fsType = "tmpfs"
		case 0x794c7630:
			fsType = "overlay"
		default:
			fsType = fmt.Sprintf("statfs type %#x", uint64(sf.Type))
		}
	}
	return device, fsType
}

// gitCommit is the proglog commit the tool was run from (bazel run starts
// the binary elsewhere: BUILD_WORKSPACE_DIRECTORY names the workspace).
func gitCommit() string {
	dir := os.Getenv("BUILD_WORKSPACE_DIRECTORY")
	if dir == "" {
		dir = "."
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		commit += " (with uncommitted changes)"
	}
	return commit
}
