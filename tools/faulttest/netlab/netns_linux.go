//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	bridgeName = "br0"
	hostIface  = "eth0"
)

// nsLab is the Namespaces-mode half of a Lab: the hub and host namespaces
// and a netlink handle into each. Netlink sockets pin their namespace, so
// they are closed with it.
type nsLab struct {
	addrs []netip.Addr // host i's address

	hub   netns.NsHandle
	hubNL *netlink.Handle
	veths []string // hub-side veth names created so far

	hosts   []netns.NsHandle
	hostsNL []*netlink.Handle
}

// newNSLab builds the hub with its bridge and one namespace per host. On
// error it removes whatever it built; fallbackOK reports that the error came
// from setting up the hub and means the kernel or our privileges do not
// allow namespaces, so Auto may fall back to Loopback.
func newNSLab(control netip.Addr, hosts []netip.Addr, bits int) (_ *nsLab, fallbackOK bool, err error) {
	n := &nsLab{addrs: hosts, hub: netns.None()}
	hubReady := false
	defer func() {
		if err != nil {
			fallbackOK = !hubReady && unsupported(err)
			err = errors.Join(err, n.close())
		}
	}()

	if n.hub, err = newNetns(); err != nil {
		return nil, false, fmt.Errorf("netlab: create hub namespace: %w", err)
	}
	if n.hubNL, err = netlink.NewHandleAt(n.hub, unix.NETLINK_ROUTE); err != nil {
		return nil, false, fmt.Errorf("netlab: open netlink in hub namespace: %w", err)
	}
	if err := linkUp(n.hubNL, "lo"); err != nil {
		return nil, false, fmt.Errorf("netlab: hub namespace: %w", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
	if err := n.hubNL.LinkAdd(br); err != nil {
		return nil, false, fmt.Errorf("netlab: create bridge %s: %w", bridgeName, err)
	}
	hubReady = true
	if err := ipv4Only(n.hubNL, bridgeName); err != nil {
		return nil, false, fmt.Errorf("netlab: bridge: %w", err)
	}
	if err := addAddr(n.hubNL, bridgeName, control, bits); err != nil {
		return nil, false, fmt.Errorf("netlab: bridge: %w", err)
	}
	if err := linkUp(n.hubNL, bridgeName); err != nil {
		return nil, false, fmt.Errorf("netlab: bridge: %w", err)
	}
	brLink, err := n.hubNL.LinkByName(bridgeName)
	if err != nil {
		return nil, false, fmt.Errorf("netlab: bridge: %w", err)
	}

	for i, addr := range hosts {
		if err := n.addHost(i, addr, bits, brLink); err != nil {
			return nil, false, err
		}
	}
	return n, false, nil
}

// addHost creates host i's namespace and wires it to the bridge. The veth
// pair is created by the hub's netlink handle with its peer placed directly
// in the host namespace, so neither end ever exists in the caller's.
func (n *nsLab) addHost(i int, addr netip.Addr, bits int, br netlink.Link) error {
	ns, err := newNetns()
	if err != nil {
		return fmt.Errorf("netlab: create host %d namespace: %w", i, err)
	}
	n.hosts = append(n.hosts, ns)
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlab: open netlink in host %d namespace: %w", i, err)
	}
	n.hostsNL = append(n.hostsNL, h)
	if err := linkUp(h, "lo"); err != nil {
		return fmt.Errorf("netlab: host %d: %w", i, err)
	}

	hubEnd := fmt.Sprintf("vh%d", i)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hubEnd},
		PeerName:      hostIface,
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := n.hubNL.LinkAdd(veth); err != nil {
		return fmt.Errorf("netlab: create host %d veth %s: %w", i, hubEnd, err)
	}
	n.veths = append(n.veths, hubEnd)
	if err := n.hubNL.LinkSetMaster(veth, br); err != nil {
		return fmt.Errorf("netlab: attach host %d veth %s to %s: %w", i, hubEnd, bridgeName, err)
	}
	if err := ipv4Only(n.hubNL, hubEnd); err != nil {
		return fmt.Errorf("netlab: host %d: %w", i, err)
	}
	if err := linkUp(n.hubNL, hubEnd); err != nil {
		return fmt.Errorf("netlab: host %d: %w", i, err)
	}
	if err := ipv4Only(h, hostIface); err != nil {
		return fmt.Errorf("netlab: host %d: %w", i, err)
	}
	if err := addAddr(h, hostIface, addr, bits); err != nil {
		return fmt.Errorf("netlab: host %d: %w", i, err)
	}
	if err := linkUp(h, hostIface); err != nil {
		return fmt.Errorf("netlab: host %d: %w", i, err)
	}
	return nil
}

func linkUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// ipv4Only stops the kernel from giving a link an IPv6 link-local address
// when it comes up, so that hosts cannot talk over IPv6, which the
// partitions (IPv4 routes) would not stop. A kernel without IPv6 needs
// nothing done.
func ipv4Only(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	err = h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE)
	if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("disable IPv6 address generation on %s: %w", name, err)
	}
	return nil
}

func addAddr(h *netlink.Handle, name string, a netip.Addr, bits int) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	ipn := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("add address %v to %s: %w", ipn, name, err)
	}
	return nil
}

// unsupported reports errors that mean "no namespaces here" rather than
// "something broke": missing privileges or kernel support.
func unsupported(err error) bool {
	for _, e := range []error{
		unix.EPERM, unix.EACCES, unix.ENOSYS, unix.EINVAL,
		unix.EOPNOTSUPP, unix.EAFNOSUPPORT, unix.EPROTONOSUPPORT,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// newNetns creates an unnamed network namespace and returns a descriptor
// for it, leaving the calling thread in its original namespace.
func newNetns() (netns.NsHandle, error) {
	ns := netns.None()
	err := onOSThread(func() (bool, error) {
		var err error
		ns, err = netns.New() // unshare: moves this thread into ns
		return err == nil, err
	})
	return ns, err
}

// inNetns runs fn on a locked OS thread switched into ns. fn must do its
// namespace-sensitive work (creating a socket, forking) on the calling
// goroutine: other goroutines run on other threads, in other namespaces.
func inNetns(ns netns.NsHandle, fn func() error) error {
	return onOSThread(func() (bool, error) {
		if err := netns.Set(ns); err != nil {
			return false, fmt.Errorf("enter namespace: %w", err)
		}
		return true, fn()
	})
}

// onOSThread runs fn on a locked OS thread; fn reports whether it switched
// the thread's network namespace, and if so the thread is switched back to
// its original one. (Only then: setns needs CAP_SYS_ADMIN even to return,
// so an unprivileged caller must not try.) If switching back fails the
// thread is left locked: when the goroutine exits, the Go runtime then
// terminates the thread instead of reusing it in the wrong namespace (the
// standard pattern, as in netns and netlink themselves). Until then the
// goroutine keeps running in the wrong namespace, which is why the error
// says so; in practice setns back to a namespace just left does not fail.
func onOSThread(fn func() (switched bool, err error)) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	switched, fnErr := fn()
	if !switched {
		runtime.UnlockOSThread()
		return fnErr
	}
	if err := netns.Set(orig); err != nil {
		return errors.Join(fnErr, fmt.Errorf("return to original namespace (thread discarded): %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// start forks cmd from a thread inside host i's namespace; the child
// inherits the thread's namespace. The thread is unlocked afterwards, not
// discarded, because the child's Pdeathsig fires when that thread exits.
func (n *nsLab) start(i int, cmd *exec.Cmd) error {
	started := false
	err := inNetns(n.hosts[i], func() error {
		if err := cmd.Start(); err != nil {
			return err
		}
		started = true
		return nil
	})
	if err != nil && started {
		// Only returning to our own namespace failed: the thread will be
		// discarded, and with it (by Pdeathsig) possibly the child. Kill it
		// so the caller gets a clean failure rather than a child dying later.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return err
}

// dial creates the socket from a thread inside the hub. A socket's
// namespace is fixed at creation, so the connection works from any thread.
// The caller resolves addr to an IP literal first so that the dialer does
// all its work on this goroutine.
func (n *nsLab) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(n.hub, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// blackhole adds (or deletes) the route in host from's namespace that
// sends traffic for host to's address into a blackhole.
func (n *nsLab) blackhole(from, to int, add bool) error {
	r := &netlink.Route{
		Dst:  &net.IPNet{IP: n.addrs[to].AsSlice(), Mask: net.CIDRMask(32, 32)},
		Type: unix.RTN_BLACKHOLE,
	}
	if add {
		return n.hostsNL[from].RouteAdd(r)
	}
	return n.hostsNL[from].RouteDel(r)
}

// close deletes the veths (each takes its peer with it) and the bridge, so
// that hosts whose children outlive the Lab are disconnected at once, then
// releases the netlink handles and namespace descriptors; the kernel frees
// the namespaces once nothing else holds them.
func (n *nsLab) close() error {
	var errs []error
	if n.hubNL != nil {
		for _, name := range n.veths {
			if err := delLink(n.hubNL, name); err != nil {
				errs = append(errs, err)
			}
		}
		if err := delLink(n.hubNL, bridgeName); err != nil {
			errs = append(errs, err)
		}
		n.hubNL.Close()
		n.hubNL = nil
	}
	n.veths = nil
	for _, h := range n.hostsNL {
		h.Close()
	}
	n.hostsNL = nil
	for _, ns := range n.hosts {
		if err := ns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: close host namespace: %w", err))
		}
	}
	n.hosts = nil
	if n.hub.IsOpen() {
		if err := n.hub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: close hub namespace: %w", err))
		}
	}
	n.hub = netns.None()
	return errors.Join(errs...)
}

// delLink deletes a hub link; one that is already gone is not an error.
func delLink(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return fmt.Errorf("netlab: find %s: %w", name, err)
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("netlab: delete %s: %w", name, err)
	}
	return nil
}

// setPdeathsig makes cmd's child die with the harness unless cmd asks for
// another signal.
func setPdeathsig(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
}
