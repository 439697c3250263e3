package netlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the processes run inside the hosts: TestMain
// checks these variables and, if one is set, plays that part and exits.
const (
	envListen = "NETLAB_TEST_LISTEN" // addr: listen on it, print "ready", echo every connection
	envDial   = "NETLAB_TEST_DIAL"   // addr: dial it, echo one line, exit 0 on success or 1
	envIfaces = "NETLAB_TEST_IFACES" // any: print the interfaces, sorted, with eth0's addresses
	envHold   = "NETLAB_TEST_HOLD"   // addr: hold one connection, probe it on each stdin line
)

const port = "7000" // every host runs its own echo server on Host(i):7000

// childRoles maps each variable to the role; a role never returns.
var childRoles = map[string]func(value string){
	envListen: childListen,
	envDial:   childDial,
	envIfaces: func(string) { childIfaces() },
	envHold:   childHold,
}

func TestMain(m *testing.M) {
	for env, role := range childRoles {
		if v := os.Getenv(env); v != "" {
			role(v)
		}
	}
	os.Exit(m.Run())
}

func childListen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func childDial(addr string) {
	if err := echoOnce(addr, 2*time.Second); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ok")
	os.Exit(0)
}

func childIfaces() {
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var names []string
	for _, i := range ifs {
		name := i.Name
		if name == "eth0" {
			addrs, err := i.Addrs()
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			for _, a := range addrs {
				name += "," + a.String()
			}
		}
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Println(strings.Join(names, " "))
	os.Exit(0)
}

// childHold keeps one connection to an echo server open. For every stdin
// line "N TIMEOUT" it sends N and waits up to TIMEOUT for N to come back
// (skipping older echoes that arrive late), printing "ok N" or "fail N: err".
func childHold(addr string) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fmt.Println("fail:", err)
		os.Exit(1)
	}
	fmt.Println("connected")
	in, echo := bufio.NewScanner(os.Stdin), bufio.NewReader(c)
	for in.Scan() {
		var n int
		var d string
		_, err := fmt.Sscan(in.Text(), &n, &d)
		timeout, err2 := time.ParseDuration(d)
		if err := errors.Join(err, err2); err != nil {
			fmt.Println("fail: bad probe:", err)
			os.Exit(1)
		}
		fmt.Println(probe(c, echo, n, timeout))
	}
	os.Exit(0)
}

func probe(c net.Conn, echo *bufio.Reader, n int, timeout time.Duration) string {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "%d\n", n); err != nil {
		return fmt.Sprintf("fail %d: %v", n, err)
	}
	want := fmt.Sprint(n)
	for {
		line, err := echo.ReadString('\n')
		if err != nil {
			return fmt.Sprintf("fail %d: %v", n, err)
		}
		if strings.TrimSpace(line) == want {
			return fmt.Sprintf("ok %d", n)
		}
	}
}

// echoOnce dials addr, sends a line and checks that it comes back.
func echoOnce(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoConn(c, timeout)
}

func echoConn(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo returned %q", line)
	}
	return nil
}

// selfCmd is the test binary run as a child in one of the roles above. The
// child gets no role variable but those in env: it must not inherit its
// parent's role.
func selfCmd(ctx context.Context, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NETLAB_TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// startEcho starts an echo server in host i on Host(i):port and waits until
// it listens. It is killed when the test ends.
func startEcho(t *testing.T, l *Lab, i int) {
	t.Helper()
	cmd := selfCmd(context.Background(), envListen+"="+net.JoinHostPort(l.Host(i), port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(i, cmd); err != nil {
		t.Fatalf("start echo server in host %d: %v", i, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			t.Fatalf("echo server in host %d: got %q, stderr %q", i, line, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("echo server in host %d did not start", i)
	}
}

// runIn runs the test binary in host i in one of the one-shot roles and
// returns whether it exited 0, and its output. err is for failures to run
// it at all; it may be called from any goroutine.
func runIn(l *Lab, i int, env ...string) (ok bool, out string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := selfCmd(ctx, env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := l.Start(i, cmd); err != nil {
		return false, "", fmt.Errorf("start child in host %d: %w", i, err)
	}
	err = cmd.Wait()
	out = strings.TrimSpace(buf.String())
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) {
		return false, out, fmt.Errorf("child in host %d: %w (output %q)", i, err, out)
	}
	return err == nil, out, nil
}

// mustRunIn is runIn for the test goroutine.
func mustRunIn(t *testing.T, l *Lab, i int, env ...string) (bool, string) {
	t.Helper()
	ok, out, err := runIn(l, i, env...)
	if err != nil {
		t.Fatal(err)
	}
	return ok, out
}

// hostReaches reports whether a process in host from can talk to the echo
// server of host to.
func hostReaches(l *Lab, from, to int) (bool, string, error) {
	return runIn(l, from, envDial+"="+net.JoinHostPort(l.Host(to), port))
}

// harnessReaches reports whether DialContext reaches host i's echo server.
func harnessReaches(l *Lab, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := l.GRPCDialer()(ctx, net.JoinHostPort(l.Host(i), port))
	if err != nil {
		return err
	}
	defer c.Close()
	// Use the connection from another goroutine: the socket must not
	// depend on the dialing thread.
	errc := make(chan error, 1)
	go func() { errc <- echoConn(c, 2*time.Second) }()
	return <-errc
}

// wantReach checks reachability between every ordered pair of hosts
// against reach(from, to), and that the harness reaches every host.
func wantReach(t *testing.T, l *Lab, reach func(from, to int) bool) {
	t.Helper()
	for i := range l.Hosts() {
		if err := harnessReaches(l, i); err != nil {
			t.Errorf("harness cannot reach host %d: %v", i, err)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for from := range l.Hosts() {
		for to := range l.Hosts() {
			if from == to {
				continue
			}
			wg.Go(func() {
				ok, out, err := hostReaches(l, from, to)
				mu.Lock()
				defer mu.Unlock()
				switch want := reach(from, to); {
				case err != nil:
					t.Error(err)
				case ok && !want:
					t.Errorf("host %d reaches host %d, want partitioned", from, to)
				case !ok && want:
					t.Errorf("host %d cannot reach host %d: %s", from, to, out)
				case !ok:
					t.Logf("host %d -> host %d (partitioned): %s", from, to, out)
				}
			})
		}
	}
	wg.Wait()
}

func interfaceNames(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}

// netnsFDs counts this process's descriptors that refer to a network
// namespace.
func netnsFDs(t *testing.T) int {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, "net:[") {
			n++
		}
	}
	return n
}

// newNamespaces makes a Lab in Namespaces mode, skipping the test if the
// process lacks the privileges.
func newNamespaces(t *testing.T, hosts int) *Lab {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux-only")
	}
	cfg := DefaultConfig()
	cfg.Hosts, cfg.Mode = hosts, Namespaces
	l, err := New(cfg)
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("no privileges for network namespaces: %v", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // substring of the error
	}{
		{"zero hosts", func(c *Config) { c.Hosts = 0 }, "Hosts is 0"},
		{"negative hosts", func(c *Config) { c.Hosts = -1 }, "Hosts is -1"},
		{"too many hosts", func(c *Config) { c.Hosts = MaxHosts + 1 }, "want 1 to 253"},
		{"bad mode", func(c *Config) { c.Mode = 7 }, "Mode is mode(7)"},
		{"no subnet", func(c *Config) { c.Subnet = netip.Prefix{} }, "Subnet is not set"},
		{"ipv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "not IPv4"},
		{"host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.213.0.7/24") }, "did you mean 10.213.0.0/24"},
		{"loopback subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("127.1.0.0/24") }, "not a unicast network"},
		{"subnet too small", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/30") }, "holds 2 addresses, too few for the control address and 3 hosts"},
		{"/32", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.0.0.1/32") }, "holds 0 addresses"},
		{"too small for hosts", func(c *Config) { c.Hosts = 7; c.Subnet = netip.MustParsePrefix("10.0.0.0/29") }, "too few for the control address and 7 hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid Config")
			}
		})
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"exact fit", func(c *Config) { c.Hosts = 5; c.Subnet = netip.MustParsePrefix("10.0.0.0/29") }},
		{"big subnet", func(c *Config) { c.Hosts = MaxHosts; c.Subnet = netip.MustParsePrefix("172.20.0.0/16") }},
		{"loopback ignores subnet", func(c *Config) { c.Mode = Loopback; c.Subnet = netip.Prefix{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Auto, Namespaces, Loopback} {
		got, err := ParseMode(" " + strings.ToUpper(m.String()) + " ")
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ParseMode("docker"); err == nil {
		t.Error(`ParseMode("docker") succeeded`)
	}
}

func TestLoopback(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode, cfg.Hosts = Loopback, 5
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Mode() != Loopback || l.FallbackReason() != "" || l.CanPartition() || l.Hosts() != 5 {
		t.Fatalf("Mode %v, FallbackReason %q, CanPartition %v, Hosts %d",
			l.Mode(), l.FallbackReason(), l.CanPartition(), l.Hosts())
	}
	seen := map[string]bool{}
	var prefix [3]byte
	for i := range l.Hosts() {
		a, err := netip.ParseAddr(l.Host(i))
		if err != nil || !a.Is4() || !a.IsLoopback() || seen[a.String()] {
			t.Fatalf("Host(%d) = %q: want a distinct IPv4 loopback address", i, l.Host(i))
		}
		seen[a.String()] = true
		b := a.As4()
		if i == 0 {
			copy(prefix[:], b[:3])
		}
		if [3]byte(b[:3]) != prefix || b[1] == 0 || b[1] == 255 || b[2] == 0 || b[2] == 255 || int(b[3]) != i+2 {
			t.Errorf("Host(%d) = %v, want 127.x.y.%d with x, y in 1..254 shared by all hosts", i, a, i+2)
		}
	}

	// A child started in host 0 serves on Host(0), and the harness reaches it.
	startEcho(t, l, 0)
	if err := harnessReaches(l, 0); err != nil {
		t.Errorf("DialContext to host 0: %v", err)
	}
	if err := l.Partition([]int{0}, []int{1}); !errors.Is(err, ErrNoPartitions) {
		t.Errorf("Partition = %v, want ErrNoPartitions", err)
	}
	if err := l.Heal(); !errors.Is(err, ErrNoPartitions) {
		t.Errorf("Heal = %v, want ErrNoPartitions", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestLoopbackLabsDiffer checks that two labs pick different address
// ranges (with 254*254 choices a collision is rare; allow a few tries).
func TestLoopbackLabsDiffer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = Loopback
	for range 5 {
		a, _ := New(cfg)
		b, _ := New(cfg)
		if a.Host(0) != b.Host(0) {
			return
		}
	}
	t.Error("five pairs of loopback labs got the same addresses")
}

func TestAuto(t *testing.T) {
	before := interfaceNames(t)
	l, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	switch l.Mode() {
	case Namespaces:
		if l.FallbackReason() != "" {
			t.Errorf("FallbackReason = %q without a fallback", l.FallbackReason())
		}
		if l.Host(0) != "10.213.0.2" || l.Host(2) != "10.213.0.4" {
			t.Errorf("hosts %s, %s; want 10.213.0.2, 10.213.0.4", l.Host(0), l.Host(2))
		}
	case Loopback:
		if l.FallbackReason() == "" {
			t.Error("fell back to Loopback without a reason")
		}
		t.Logf("fell back: %s", l.FallbackReason())
	default:
		t.Errorf("Mode = %v", l.Mode())
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if after := interfaceNames(t); !slices.Equal(before, after) {
		t.Errorf("interfaces before %v, after %v", before, after)
	}
}

func TestNamespaces(t *testing.T) {
	beforeIfs, beforeFDs := interfaceNames(t), netnsFDs(t)
	l := newNamespaces(t, 3)
	if l.Mode() != Namespaces || !l.CanPartition() || l.FallbackReason() != "" {
		t.Fatalf("Mode %v, CanPartition %v, FallbackReason %q", l.Mode(), l.CanPartition(), l.FallbackReason())
	}
	if got := interfaceNames(t); !slices.Equal(got, beforeIfs) {
		t.Fatalf("the Lab changed the caller's interfaces: before %v, now %v", beforeIfs, got)
	}
	for i := range l.Hosts() {
		startEcho(t, l, i)
	}
	all := func(from, to int) bool { return true }

	t.Run("connected", func(t *testing.T) { wantReach(t, l, all) })

	t.Run("isolated from caller", func(t *testing.T) {
		// eth0 has its IPv4 address and no IPv6 link-local one, which
		// partitions would not cover.
		if ok, out := mustRunIn(t, l, 0, envIfaces+"=1"); !ok || out != "eth0,10.213.0.2/24 lo" {
			t.Errorf("interfaces in host 0: %q (ok %v), want \"eth0,10.213.0.2/24 lo\"", out, ok)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		if err := echoOnce(ln.Addr().String(), 2*time.Second); err != nil {
			t.Fatalf("the caller's own listener does not work: %v", err)
		}
		if ok, out := mustRunIn(t, l, 0, envDial+"="+ln.Addr().String()); ok {
			t.Errorf("host 0 reached the caller's listener on %v", ln.Addr())
		} else {
			t.Logf("host 0 -> caller's %v: %s", ln.Addr(), out)
		}
	})

	t.Run("partition", func(t *testing.T) {
		if err := l.Partition([]int{0}, []int{1, 2}); err != nil {
			t.Fatal(err)
		}
		wantReach(t, l, func(from, to int) bool { return from != 0 && to != 0 })
	})

	t.Run("replace partition", func(t *testing.T) {
		// Host 2 is named in no group: cut off from everyone.
		if err := l.Partition([]int{0, 1}); err != nil {
			t.Fatal(err)
		}
		wantReach(t, l, func(from, to int) bool { return from != 2 && to != 2 })
	})

	t.Run("heal", func(t *testing.T) {
		if err := l.Heal(); err != nil {
			t.Fatal(err)
		}
		wantReach(t, l, all)
		if err := l.Heal(); err != nil {
			t.Errorf("second Heal: %v", err)
		}
	})

	t.Run("bad partitions", func(t *testing.T) {
		if err := l.Partition([]int{0, 3}); err == nil || !strings.Contains(err.Error(), "no host 3") {
			t.Errorf("Partition with host 3 = %v", err)
		}
		if err := l.Partition([]int{0, 1}, []int{1, 2}); err == nil || !strings.Contains(err.Error(), "host 1 is in groups 0 and 1") {
			t.Errorf("Partition with host 1 twice = %v", err)
		}
		wantReach(t, l, all) // a rejected partition changes nothing
	})

	t.Run("established connection", func(t *testing.T) { testEstablished(t, l) })

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := interfaceNames(t); !slices.Equal(got, beforeIfs) {
		t.Errorf("interfaces before New %v, after Close %v", beforeIfs, got)
	}
	if got := netnsFDs(t); got != beforeFDs {
		t.Errorf("%d namespace descriptors open after Close, %d before New", got, beforeFDs)
	}
	if err := l.Partition([]int{0}); !errors.Is(err, ErrClosed) {
		t.Errorf("Partition after Close = %v, want ErrClosed", err)
	}
	if _, err := l.DialContext(context.Background(), "tcp", net.JoinHostPort(l.Host(0), port)); !errors.Is(err, ErrClosed) {
		t.Errorf("DialContext after Close = %v, want ErrClosed", err)
	}
	if err := l.Start(0, selfCmd(context.Background(), envIfaces+"=1")); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// testEstablished checks that a partition also silences a connection that
// was open before it, and that the connection recovers after Heal.
func testEstablished(t *testing.T, l *Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := selfCmd(ctx, envHold+"="+net.JoinHostPort(l.Host(1), port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(0, cmd); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := bufio.NewScanner(stdout)
	expect := func(prefix, cmdline string) {
		t.Helper()
		if cmdline != "" {
			fmt.Fprintln(stdin, cmdline)
		}
		if !out.Scan() {
			t.Fatalf("holder exited: %v", out.Err())
		}
		if got := out.Text(); !strings.HasPrefix(got, prefix) {
			t.Fatalf("holder said %q, want %q...", got, prefix)
		} else {
			t.Logf("holder: %s", got)
		}
	}
	expect("connected", "")
	expect("ok 1", "1 2s")
	if err := l.Partition([]int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	expect("fail 2", "2 1s")
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	expect("ok 3", "3 15s")
}

// TestConcurrentLabs checks that two Labs with the same Subnet do not see
// each other.
func TestConcurrentLabs(t *testing.T) {
	a := newNamespaces(t, 2)
	b := newNamespaces(t, 2)
	startEcho(t, a, 1)
	if err := harnessReaches(a, 1); err != nil {
		t.Fatalf("lab a cannot reach its host 1: %v", err)
	}
	if err := harnessReaches(b, 1); err == nil {
		t.Error("lab b reached lab a's host 1 at the same address")
	}
	if ok, out, err := hostReaches(b, 0, 1); err != nil || ok {
		t.Errorf("lab b's host 0 dialing lab a's host 1: ok %v, %v (%s)", ok, err, out)
	}
}
