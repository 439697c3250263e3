package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	envUnprivileged = "NETLAB_TEST_UNPRIVILEGED" // any: report what New does without privileges
	envHarness      = "NETLAB_TEST_HARNESS"      // any: start an echo server in a lab, print its pid, wait to be killed
)

func init() {
	childRoles[envUnprivileged] = func(string) { childUnprivileged() }
	childRoles[envHarness] = func(string) { childHarness() }
}

func childUnprivileged() {
	l, err := New(DefaultConfig())
	if err != nil {
		fmt.Println("auto error:", err)
		os.Exit(1)
	}
	fmt.Printf("auto %v: %s\n", l.Mode(), l.FallbackReason())
	cfg := DefaultConfig()
	cfg.Mode = Namespaces
	_, err = New(cfg)
	fmt.Printf("namespaces permission error %v: %v\n", errors.Is(err, os.ErrPermission), err)
	os.Exit(0)
}

func childHarness() {
	cfg := DefaultConfig()
	cfg.Mode, cfg.Hosts = Namespaces, 1
	l, err := New(cfg)
	if err != nil {
		fmt.Println("New:", err)
		os.Exit(1)
	}
	cmd := selfCmd(context.Background(), envListen+"="+l.Host(0)+":"+port)
	out, _ := cmd.StdoutPipe()
	if err := l.Start(0, cmd); err != nil {
		fmt.Println("Start:", err)
		os.Exit(1)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		fmt.Printf("echo server said %q\n", line)
		os.Exit(1)
	}
	fmt.Println("pid", cmd.Process.Pid)
	select {} // until killed
}

func TestStartSetsPdeathsig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = Loopback
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attr *syscall.SysProcAttr
		want syscall.Signal
	}{
		{nil, syscall.SIGKILL},
		{&syscall.SysProcAttr{Setpgid: true}, syscall.SIGKILL},
		{&syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}, syscall.SIGTERM},
	} {
		cmd := selfCmd(context.Background(), envIfaces+"=1")
		cmd.SysProcAttr = tc.attr
		if err := l.Start(0, cmd); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if got := cmd.SysProcAttr.Pdeathsig; got != tc.want {
			t.Errorf("Pdeathsig %v, want %v", got, tc.want)
		}
	}
}

// TestChildrenDieWithHarness kills a harness process that has a child in a
// host and checks that the child dies too.
func TestChildrenDieWithHarness(t *testing.T) {
	newNamespaces(t, 1) // skips without privileges
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	harness := selfCmd(ctx, envHarness+"=1")
	out, err := harness.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.Start(); err != nil {
		t.Fatal(err)
	}
	defer harness.Wait()
	defer harness.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	var pid int
	if _, err := fmt.Sscanf(line, "pid %d", &pid); err != nil {
		t.Fatalf("harness said %q", line)
	}
	if s := procState(pid); s == "" || s == "Z" {
		t.Fatalf("child %d is not running (state %q)", pid, s)
	}
	harness.Process.Kill()
	io.Copy(io.Discard, out)
	harness.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for s := procState(pid); s != "" && s != "Z"; s = procState(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d outlived its harness (state %q)", pid, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procState is the state letter of process pid, or "" if it is gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+3 <= len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

// TestAutoFallsBackUnprivileged runs New as user nobody: Auto must fall
// back to Loopback with a reason, and Namespaces must fail with a
// permission error (the case newNamespaces skips on).
func TestAutoFallsBackUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	// The test binary lives in a directory only root may enter; copy it
	// where nobody can run it.
	dir, err := os.MkdirTemp("", "netlab")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "netlab.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envUnprivileged+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged child: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "auto loopback: netlab: create hub namespace: operation not permitted") ||
		!strings.HasPrefix(lines[1], "namespaces permission error true: ") {
		t.Fatalf("unprivileged child said:\n%s", out)
	}
	t.Logf("unprivileged: %s", out)
}
