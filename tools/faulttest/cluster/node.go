package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/proglog/proglog/go/certs"
)

// Node is one host slot and the proglog node on it. Its process may be
// running, paused (SIGSTOP), or down; its data directory outlives it.
type Node struct {
	c    *Cluster
	Slot int
	Host string

	// Name and DataDir are set when the slot gets a node; they change
	// when a fresh node replaces a removed one.
	Name    string
	DataDir string

	member bool // in the Raft configuration (or meant to be)

	mu      sync.Mutex
	cmd     *exec.Cmd
	paused  bool
	exited  chan struct{} // closed when the current process exits
	exitErr error
	logFile *os.File
	disk    *disk // mounted data directory (Config.Disk), nil for DiskDir
}

// Addr is the node's gRPC and Raft address.
func (n *Node) Addr() string { return hostPort(n.Host, RPCPort) }

// SerfAddr is the node's gossip address.
func (n *Node) SerfAddr() string { return hostPort(n.Host, SerfPort) }

// LogPath is the file the node's processes write their output to (every
// start appends to it).
func (n *Node) LogPath() string { return filepath.Join(n.c.cfg.Dir, n.Name+".log") }

func (n *Node) String() string { return n.Name }

// Running says whether the node's process runs (paused counts as running).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Paused says whether the process is stopped by SIGSTOP.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Restart starts the node's process again on its data directory, joining
// through the other running members.
func (n *Node) Restart() error { return n.start(false, n.c.JoinAddrs(n)) }

// start runs "proglog serve" for the node inside its host's network.
func (n *Node) start(bootstrap bool, join []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("cluster: %s is already running", n.Name)
	}
	cfg := n.c.cfg
	if err := n.mountDisk(); err != nil {
		return err
	}
	// Each node has its own certificate naming it (a node refuses any
	// other); names are fresh per slot assignment, so it is issued here.
	if _, err := certs.EnsureDev(n.c.files.Dir, []string{n.Host}, n.Name); err != nil {
		return fmt.Errorf("cluster: %s certificate: %w", n.Name, err)
	}
	args := []string{"serve",
		"--node-name", n.Name, "--data-dir", n.DataDir,
		"--addr", n.Addr(), "--serf-addr", n.SerfAddr(),
		"--tls-cert", n.c.files.NodeCert(n.Name), "--tls-key", n.c.files.NodeKey(n.Name), "--tls-ca", n.c.files.CACert,
		"--gossip-key-file", n.c.keyFile, "--metrics-addr=",
		"--log-level", "info",
		"--raft-heartbeat-timeout", cfg.HeartbeatTimeout.String(),
		"--raft-election-timeout", cfg.ElectionTimeout.String(),
		"--raft-leader-lease-timeout", cfg.LeaderLeaseTimeout.String(),
		"--raft-snapshot-interval", cfg.SnapshotInterval.String(),
		"--raft-snapshot-threshold", strconv.Itoa(cfg.SnapshotThreshold),
		"--raft-trailing-logs", strconv.Itoa(cfg.TrailingLogs),
		"--replica-replacement-delay", cfg.ReplicaReplacementDelay.String(),
		"--shutdown-timeout", "5s",
	}
	if cfg.Sync != "" {
		args = append(args, "--sync", cfg.Sync)
	}
	if cfg.MinFreeBytes != 0 {
		args = append(args, "--min-free-bytes", strconv.FormatUint(cfg.MinFreeBytes, 10))
	}
	if bootstrap {
		args = append(args, "--bootstrap")
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	logFile, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %s log: %w", n.Name, err)
	}
	fmt.Fprintf(logFile, "=== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), cfg.Binary, strings.Join(args, " "))
	cmd := exec.Command(cfg.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cfg.Lab.Start(n.Slot, cmd); err != nil {
		logFile.Close()
		return fmt.Errorf("cluster: start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.paused, n.exited, n.exitErr, n.logFile = cmd, false, exited, nil, logFile
	go func() {
		err := cmd.Wait()
		// Logged before the node counts as down, so that a restart's
		// lines follow this one in the shared file.
		fmt.Fprintf(logFile, "=== %s exit: %v\n", time.Now().Format(time.RFC3339Nano), err)
		logFile.Close()
		n.mu.Lock()
		n.exitErr = err
		if n.cmd == cmd {
			n.cmd, n.paused = nil, false
		}
		n.mu.Unlock()
		close(exited)
	}()
	cfg.Logf("%s started on %s (pid %d)", n.Name, n.Addr(), cmd.Process.Pid)
	return nil
}

// signal sends sig to the running process.
func (n *Node) signal(sig syscall.Signal) (exited chan struct{}, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil, fmt.Errorf("cluster: %s is not running", n.Name)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("cluster: %s: %v: %w", n.Name, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.exited, nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() error {
	exited, err := n.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("cluster: %s did not die within 10s of SIGKILL", n.Name)
	}
}

// Pause sends SIGSTOP.
func (n *Node) Pause() error {
	_, err := n.signal(syscall.SIGSTOP)
	return err
}

// Resume sends SIGCONT.
func (n *Node) Resume() error {
	_, err := n.signal(syscall.SIGCONT)
	return err
}

// Terminate sends SIGTERM (a graceful leave) and waits up to timeout for
// a clean exit.
func (n *Node) Terminate(timeout time.Duration) error {
	exited, err := n.signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.exitErr != nil {
			return fmt.Errorf("cluster: %s exited with %v after SIGTERM", n.Name, n.exitErr)
		}
		return nil
	case <-time.After(timeout):
		// SIGQUIT makes the Go runtime write every goroutine's stack to
		// the node's log before it exits: the evidence of the hang.
		if _, err := n.signal(syscall.SIGQUIT); err == nil {
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
		}
		_ = n.Kill()
		return fmt.Errorf("cluster: %s did not exit within %v of SIGTERM (goroutine dump in %s)", n.Name, timeout, n.LogPath())
	}
}

// WaitExit waits up to timeout for the process to exit on its own and
// returns its exit error; ok is false if it still runs.
func (n *Node) WaitExit(timeout time.Duration) (err error, ok bool) {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return nil, true
	}
	select {
	case <-exited:
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.exitErr, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Wipe deletes the node's data directory: a lost disk. The node must be
// down.
func (n *Node) Wipe() error {
	if n.Running() {
		return fmt.Errorf("cluster: wipe %s: it is running", n.Name)
	}
	if err := n.releaseDisk(); err != nil {
		return err
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		return fmt.Errorf("cluster: wipe %s: %w", n.Name, err)
	}
	if err := os.RemoveAll(filepath.Join(n.c.cfg.Dir, n.Name+".disk")); err != nil { // DiskPowerCut's backing
		return fmt.Errorf("cluster: wipe %s: %w", n.Name, err)
	}
	return nil
}

// releaseDisk unmounts the disk of n, which must be down.
func (n *Node) releaseDisk() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("cluster: unmount the disk of %s: it is running", n.Name)
	}
	return n.unmountDisk()
}

// Pid is the process id of the running process, or 0.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
