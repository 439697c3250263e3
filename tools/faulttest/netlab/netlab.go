// Package netlab gives a fault test a small virtual network: a few "hosts",
// each with its own Linux network namespace and IPv4 address on a shared
// bridge, so that the proglog servers started in them (one per host) can be
// partitioned from each other.
//
// # Namespaces mode
//
// Nothing is created in the caller's network namespace. A Lab owns a private
// "hub" namespace and one namespace per host:
//
//	hub:    lo, br0 = Subnet.1 (the control address), ports vh0, vh1, ...
//	host i: lo, eth0 = Subnet.(i+2), the veth peer of vh<i>
//
// The harness reaches the hosts only through DialContext (or GRPCDialer),
// which dials from the hub; processes run in a host through Start. Hosts reach
// each other and the control address, nothing else: not the caller's
// interfaces, not the internet, not another Lab. Because every Lab has its own
// hub, concurrent Labs may use the same Subnet. The network is IPv4 only: the
// interfaces get no IPv6 link-local addresses, which partitions would not
// cover.
//
// The namespaces are unnamed (no /run/netns mounts): the Lab holds them by file
// descriptor, and the kernel destroys a namespace, with its interfaces, once
// no descriptor, socket or process refers to it. A harness that crashes thus
// leaks nothing once its children are gone, and Start makes the children die
// with the harness (see Start).
//
// Partitions are blackhole routes: for every pair of hosts in different
// groups, each host gets a route sending the other's /32 into a blackhole. The
// control address is never blackholed. What the peers observe: a new connect
// to a partitioned peer fails at once with EINVAL ("connect: invalid
// argument"), because the route lookup fails before a packet is built; on a
// connection established before the partition, writes are still accepted
// into the socket buffer but no segment leaves either host, so reads time out
// and TCP keeps retransmitting until the partition heals (the connection then
// carries on, delivering what was buffered) or an application or TCP timeout
// gives up on it.
//
// # Loopback mode
//
// Without the privileges for namespaces (CAP_SYS_ADMIN and CAP_NET_ADMIN),
// Auto falls back to Loopback: host i is 127.x.y.(i+2) on the caller's own lo,
// with x and y chosen at random per Lab so that concurrent Labs on one machine
// do not collide; processes start normally and partitions are unavailable
// (ErrNoPartitions). Namespaces mode is Linux-only.
package netlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
)

var (
	// ErrNoPartitions is returned by Partition and Heal in Loopback mode,
	// where all hosts share the caller's namespace and cannot be separated.
	ErrNoPartitions = errors.New("netlab: partitions need Namespaces mode")
	// ErrClosed is returned by the methods of a closed Lab that act on it.
	ErrClosed = errors.New("netlab: lab is closed")
)

// MaxHosts is the most hosts a Lab holds. It is bound by Loopback mode, where
// host i is 127.x.y.(i+2) and the last octet must stay below 255.
const MaxHosts = 253

// Mode chooses how hosts are isolated.
type Mode int

const (
	// Auto uses Namespaces if the process may create them and Loopback
	// otherwise; Lab.FallbackReason says why it fell back.
	Auto Mode = iota
	// Namespaces gives every host its own network namespace. It needs root
	// (CAP_SYS_ADMIN and CAP_NET_ADMIN) on Linux.
	Namespaces
	// Loopback gives every host its own 127.0.0.0/8 address in the caller's
	// namespace. It needs no privileges but cannot partition.
	Loopback
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Namespaces:
		return "namespaces"
	case Loopback:
		return "loopback"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode is the inverse of Mode.String, ignoring case and surrounding
// space, for flags.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return Auto, nil
	case "namespaces":
		return Namespaces, nil
	case "loopback":
		return Loopback, nil
	}
	return 0, fmt.Errorf("netlab: unknown mode %q (want auto, namespaces or loopback)", s)
}

// Config describes a Lab.
type Config struct {
	// Hosts is the number of host slots, 1 to MaxHosts. A fault test
	// usually wants one per server. Default 3.
	Hosts int

	// Mode chooses between namespaces and loopback addresses. Default Auto.
	Mode Mode

	// Subnet is the IPv4 network of the bridge in Namespaces (and Auto)
	// mode; Loopback mode ignores it. Its first address (.1 in a /24) is
	// the control address the harness dials from, host i gets the
	// (i+2)-th. It must be given as a network address (host bits zero) and
	// hold Hosts+1 addresses besides the network and broadcast addresses.
	// As it exists only inside the Lab's namespaces it cannot clash with the
	// caller's networks. Default 10.213.0.0/24.
	Subnet netip.Prefix
}

// DefaultConfig returns a Config for three hosts in Auto mode.
func DefaultConfig() Config {
	return Config{
		Hosts:  3,
		Mode:   Auto,
		Subnet: netip.MustParsePrefix("10.213.0.0/24"),
	}
}

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	if c.Hosts < 1 || c.Hosts > MaxHosts {
		return fmt.Errorf("netlab: Hosts is %d, want 1 to %d", c.Hosts, MaxHosts)
	}
	switch c.Mode {
	case Auto, Namespaces:
	case Loopback:
		return nil // Subnet is unused
	default:
		return fmt.Errorf("netlab: Mode is %v, want Auto, Namespaces or Loopback", c.Mode)
	}
	s := c.Subnet
	switch {
	case !s.IsValid():
		return errors.New("netlab: Subnet is not set (e.g. 10.213.0.0/24)")
	case !s.Addr().Is4():
		return fmt.Errorf("netlab: Subnet %v is not IPv4", s)
	case s.Masked() != s:
		return fmt.Errorf("netlab: Subnet %v has host bits set (did you mean %v?)", s, s.Masked())
	case s.Addr().IsLoopback() || s.Addr().IsMulticast() || s.Addr().IsUnspecified():
		return fmt.Errorf("netlab: Subnet %v is not a unicast network", s)
	}
	// Usable addresses exclude the network and broadcast addresses.
	if usable := 1<<(32-s.Bits()) - 2; usable < c.Hosts+1 {
		return fmt.Errorf("netlab: Subnet %v holds %d addresses, too few for the control address and %d hosts",
			s, max(usable, 0), c.Hosts)
	}
	return nil
}

// Lab is a running virtual network. Its methods are safe for concurrent use.
type Lab struct {
	mode     Mode
	fallback string
	control  netip.Addr   // Namespaces mode: the bridge address in the hub
	hosts    []netip.Addr // host i's address
	bits     int          // the Subnet's prefix length
	ns       *nsLab       // nil in Loopback mode

	// mu guards closed and cut, and is held shared while a method uses
	// the namespaces so that Close cannot release them underneath it.
	mu     sync.RWMutex
	closed bool
	cut    map[hostPair]bool // blackhole routes in place: in From's namespace, to To
}

// hostPair is one blackhole route: in From's namespace, traffic to To.
type hostPair struct{ From, To int }

// New validates cfg and builds the network. In Auto mode it tries
// Namespaces and falls back to Loopback if setting up the first namespace
// (the hub) fails for lack of privileges or kernel support (EPERM, EACCES,
// ENOSYS, EINVAL, EOPNOTSUPP, ...); later failures are returned, after
// removing whatever was built.
func New(cfg Config) (*Lab, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == Loopback {
		return newLoopback(cfg.Hosts, ""), nil
	}
	l := &Lab{
		mode:    Namespaces,
		control: cfg.Subnet.Addr().Next(),
		bits:    cfg.Subnet.Bits(),
		cut:     map[hostPair]bool{},
	}
	a := l.control
	for range cfg.Hosts {
		a = a.Next()
		l.hosts = append(l.hosts, a)
	}
	ns, fallbackOK, err := newNSLab(l.control, l.hosts, l.bits)
	if err == nil {
		l.ns = ns
		return l, nil
	}
	if cfg.Mode == Auto && fallbackOK {
		return newLoopback(cfg.Hosts, err.Error()), nil
	}
	return nil, err
}

func newLoopback(hosts int, reason string) *Lab {
	l := &Lab{mode: Loopback, fallback: reason}
	x, y := byte(1+rand.IntN(254)), byte(1+rand.IntN(254))
	for i := range hosts {
		l.hosts = append(l.hosts, netip.AddrFrom4([4]byte{127, x, y, byte(i + 2)}))
	}
	return l
}

// Mode is Namespaces or Loopback, never Auto.
func (l *Lab) Mode() Mode { return l.mode }

// FallbackReason is why Auto chose Loopback (the error from setting up
// namespaces), or "" if it did not fall back.
func (l *Lab) FallbackReason() string { return l.fallback }

// Hosts is the number of host slots.
func (l *Lab) Hosts() int { return len(l.hosts) }

// Host is the IPv4 address of host i (0-based), e.g. "10.213.0.2"; a server
// started in host i listens on it. It panics if i is out of range, like a
// slice index.
func (l *Lab) Host(i int) string { return l.hosts[i].String() }

// CanPartition reports whether Partition works: true in Namespaces mode.
func (l *Lab) CanPartition() bool { return l.mode == Namespaces }

// Start starts cmd (cmd.Start) with the child inside host i's network
// namespace; in Loopback mode it is a plain cmd.Start. On Linux, unless cmd
// already asks for a signal, Start sets cmd.SysProcAttr.Pdeathsig to SIGKILL
// (allocating SysProcAttr if nil) so that the child dies with the harness,
// even if the harness is killed. The caller waits for the child as usual.
//
// The kernel sends Pdeathsig when the thread that forked the child exits,
// not the process. Start forks from a locked thread and afterwards unlocks
// it, handing it back to the Go runtime, which keeps idle threads alive;
// discarding it would kill the child when the calling goroutine exits. The
// runtime ends a thread only when a goroutine exits while locked to it
// (runtime.LockOSThread without Unlock), which a harness should not do.
func (l *Lab) Start(i int, cmd *exec.Cmd) error {
	if i < 0 || i >= len(l.hosts) {
		return fmt.Errorf("netlab: start in host %d: no such host (have %d)", i, len(l.hosts))
	}
	setPdeathsig(cmd)
	if l.mode == Loopback {
		return cmd.Start()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.ns.start(i, cmd); err != nil {
		return fmt.Errorf("netlab: start %s in host %d: %w", cmd.Path, i, err)
	}
	return nil
}

// DialContext dials addr from the harness's vantage point: from the control
// address in the hub namespace (Loopback mode: the caller's namespace). A
// host name in addr is resolved in the caller's namespace first. The
// connection is usable from any goroutine, as a socket stays in the
// namespace it was created in.
func (l *Lab) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if l.mode == Loopback {
		return d.DialContext(ctx, network, addr)
	}
	addr, err := resolveOutside(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	return l.ns.dial(ctx, &d, network, addr)
}

// GRPCDialer returns DialContext for TCP, shaped for grpc.WithContextDialer.
func (l *Lab) GRPCDialer() func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return l.DialContext(ctx, "tcp", addr)
	}
}

// resolveOutside turns a host name in addr into an IP literal using the
// caller's resolver, so that no lookup (and no goroutine the dialer might
// start for several addresses) runs while a thread is inside the hub.
func resolveOutside(ctx context.Context, network, addr string) (string, error) {
	if !strings.HasPrefix(network, "tcp") && !strings.HasPrefix(network, "udp") {
		return addr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("netlab: dial %s: %w", addr, err)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return addr, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return "", fmt.Errorf("netlab: dial %s: %w", addr, err)
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

// Partition replaces the current partition: hosts in different groups cannot
// exchange packets (in either direction), and a host named in no group is cut
// off from every other host; Partition() with no groups isolates all hosts.
// The control address always reaches every host. Pairs cut both before and
// after stay cut throughout, so replacing a partition heals nothing in
// between. Each host may appear in at most one group. On error the routes
// added so far stay in place; Heal removes them.
func (l *Lab) Partition(groups ...[]int) error {
	if l.mode != Namespaces {
		return ErrNoPartitions
	}
	group := make([]int, len(l.hosts)) // host -> group index, or -1 for none
	for i := range group {
		group[i] = -1
	}
	for g, members := range groups {
		for _, h := range members {
			if h < 0 || h >= len(l.hosts) {
				return fmt.Errorf("netlab: partition: no host %d (have %d)", h, len(l.hosts))
			}
			if group[h] != -1 {
				return fmt.Errorf("netlab: partition: host %d is in groups %d and %d", h, group[h], g)
			}
			group[h] = g
		}
	}
	want := map[hostPair]bool{}
	for a := range l.hosts {
		for b := range l.hosts {
			if a != b && (group[a] == -1 || group[b] == -1 || group[a] != group[b]) {
				want[hostPair{a, b}] = true
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.applyLocked(want)
}

// Heal removes every partition rule.
func (l *Lab) Heal() error {
	if l.mode != Namespaces {
		return ErrNoPartitions
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.applyLocked(nil)
}

// applyLocked makes the blackhole routes in place equal want: it adds the
// missing ones before deleting the unwanted ones, so no pair in both sets is
// ever reachable in between.
func (l *Lab) applyLocked(want map[hostPair]bool) error {
	for _, p := range sortedPairs(want) {
		if l.cut[p] {
			continue
		}
		if err := l.ns.blackhole(p.From, p.To, true); err != nil {
			return fmt.Errorf("netlab: cut host %d from host %d: %w", p.From, p.To, err)
		}
		l.cut[p] = true
	}
	for _, p := range sortedPairs(l.cut) {
		if want[p] {
			continue
		}
		if err := l.ns.blackhole(p.From, p.To, false); err != nil {
			return fmt.Errorf("netlab: reconnect host %d to host %d: %w", p.From, p.To, err)
		}
		delete(l.cut, p)
	}
	return nil
}

// sortedPairs orders the routes so that errors and partial states are
// reproducible.
func sortedPairs(m map[hostPair]bool) []hostPair {
	ps := slices.Collect(maps.Keys(m))
	slices.SortFunc(ps, func(a, b hostPair) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return ps
}

// Close removes every interface and releases every namespace the Lab made;
// it is idempotent. Children still running in a host keep its namespace (with
// only lo left) alive until they exit; stop them first. In Loopback mode
// Close does nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.ns == nil {
		return nil
	}
	clear(l.cut)
	return l.ns.close()
}
