//go:build !linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
)

// nsLab is never built off Linux: network namespaces are Linux-only.
type nsLab struct{}

func newNSLab(netip.Addr, []netip.Addr, int) (*nsLab, bool, error) {
	return nil, true, fmt.Errorf("netlab: network namespaces on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func (*nsLab) start(int, *exec.Cmd) error { return errors.ErrUnsupported }

func (*nsLab) dial(context.Context, *net.Dialer, string, string) (net.Conn, error) {
	return nil, errors.ErrUnsupported
}

func (*nsLab) blackhole(int, int, bool) error { return errors.ErrUnsupported }

func (*nsLab) close() error { return nil }

// setPdeathsig does nothing: parent-death signals are Linux-only.
func setPdeathsig(*exec.Cmd) {}
