package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/proglog/proglog/tools/faulttest/cluster"
)

// powerLoss cuts the power of every member at once: all are SIGKILLed
// together, then each disk (a powercut mount) throws away part of what
// its node had not fsynced; after the hold all restart. With fsync before
// every acknowledgement (--sync always) nothing acknowledged may be lost.
func powerLoss(ctx context.Context, env *Env, ev *Event) error {
	members := env.Cluster.Members()
	ev.Targets = names(members)
	ev.Injected = time.Now()
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, n := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.Running() {
				errs[i] = n.Kill()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var lost []string
	for _, n := range members {
		rep, err := n.PowerCut()
		if err != nil {
			return err
		}
		lost = append(lost, n.Name+": "+rep.String())
	}
	ev.Detail = "SIGKILL " + strings.Join(names(members), ",") + " together; lost: " + strings.Join(lost, "; ")
	if err := sleep(ctx, env.Hold); err != nil {
		return err
	}
	ev.Healed = time.Now()
	for _, n := range members {
		if err := n.Restart(); err != nil {
			return err
		}
	}
	return nil
}

// diskFull fills the leader's disk (a tmpfs of its own) to the last byte
// with another file for the hold, then frees it. The node must stay up
// throughout, refusing produces with RESOURCE_EXHAUSTED while full (the
// run counts those as refused, not lost), and take writes again once
// space is freed, without a restart.
func diskFull(ctx context.Context, env *Env, ev *Event) error {
	var size int64
	n, err := strike(ctx, env, ev, leader, func(n *cluster.Node) (err error) {
		size, err = n.FillDisk()
		return err
	})
	if err != nil {
		return err
	}
	pid := n.Pid()
	free, err := n.FreeBytes()
	if err != nil {
		return err
	}
	ev.Detail = fmt.Sprintf("filled %s's disk with a file of %d bytes (%d bytes free) for %v, then removed it", n.Name, size, free, env.Hold)
	serr := sleep(ctx, env.Hold)
	ev.Healed = time.Now()
	if err := errors.Join(serr, n.FreeDisk()); err != nil {
		return err
	}
	if got := n.Pid(); got != pid {
		return fmt.Errorf("%s did not stay up on a full disk: pid %d, now %d (see %s)", n.Name, pid, got, n.LogPath())
	}
	ev.Outcome = fmt.Sprintf("%s stayed up (pid %d) while its disk was full", n.Name, pid)
	return nil
}
