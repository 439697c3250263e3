// Package nemesis injects the faults of the fault tests into a running
// cluster: process crashes (SIGKILL) and pauses (SIGSTOP), network
// partitions, damaged and lost disks, power loss of every node at once
// (unsynced data dropped), full disks, and membership changes. Each Fault
// injects, holds, and heals itself, recording what it did in an Event.
package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/netlab"
)

// Env is what faults act on.
type Env struct {
	Cluster *cluster.Cluster
	Lab     *netlab.Lab
	Rng     *rand.Rand
	// Hold is how long a fault lasts before it is healed; pauses and
	// partitions must outlast the election timeout to force an election.
	Hold time.Duration
	// OnLeader is told the leader a fault is about to act on (so clients
	// can keep sending to it, as real ones would); may be nil.
	OnLeader func(*cluster.Node)
	Logf     func(format string, args ...any)
}

// Event is one injected fault.
type Event struct {
	Fault    string
	Targets  []string  // node names
	Detail   string    // what exactly was done
	Outcome  string    // how the cluster responded, where it matters
	Injected time.Time // when the fault began
	Healed   time.Time // when it was undone (restart, SIGCONT, partition healed)
}

// Fault is one kind of fault.
type Fault struct {
	Name string
	Doc  string
	// NeedsPartitions: only where the lab can partition hosts.
	NeedsPartitions bool
	// Destructive faults lose acknowledged data by design; they are only
	// run to prove that the checker notices.
	Destructive bool
	// SingleNode: the fault also works on a cluster of one node (the
	// others need a follower, or a majority to survive).
	SingleNode bool
	// Disk is what the nodes' data directories must live on.
	Disk cluster.Disk
	run  func(ctx context.Context, env *Env, ev *Event) error
}

// Run injects the fault, holds it and heals it.
func (f Fault) Run(ctx context.Context, env *Env) (Event, error) {
	ev := Event{Fault: f.Name}
	err := f.run(ctx, env, &ev)
	if err != nil {
		err = fmt.Errorf("nemesis: %s: %w", f.Name, err)
	}
	return ev, err
}

// All lists every fault, destructive ones last.
var All = []Fault{
	{Name: "kill-leader", Doc: "SIGKILL the leader; restart it after the hold", run: kill(leader)},
	{Name: "kill-follower", Doc: "SIGKILL a follower; restart it after the hold", run: kill(follower)},
	{Name: "kill-random", Doc: "SIGKILL a random member; restart it after the hold", run: kill(anyMember)},
	{Name: "kill-meta-leader", Doc: "SIGKILL the metadata group's leader (the consumer groups' coordinator); restart it after the hold", run: kill(metaLeader)},
	{Name: "pause-meta-leader", Doc: "SIGSTOP the metadata group's leader for the hold, then SIGCONT", run: pause(metaLeader)},
	{Name: "pause-leader", Doc: "SIGSTOP the leader for the hold (longer than the election timeout), then SIGCONT", run: pause(leader)},
	{Name: "pause-random", Doc: "SIGSTOP a random member for the hold, then SIGCONT", run: pause(anyMember)},
	{Name: "partition-leader", Doc: "cut the leader off from every other node (clients still reach it)", NeedsPartitions: true, run: isolate(leader)},
	{Name: "partition-follower", Doc: "cut a follower off from every other node", NeedsPartitions: true, run: isolate(follower)},
	{Name: "partition-halves", Doc: "split the nodes into a random majority and minority (2|1, 3|2)", NeedsPartitions: true, run: halves},
	{Name: "partition-flapping", Doc: "random majority/minority splits, healed and re-cut every 200-600 ms for twice the hold", NeedsPartitions: true, run: flapping},
	{Name: "membership", Doc: "a follower of the log leaves for good (graceful leave; its replicas move to other nodes) and a fresh node with an empty disk joins, under load", run: membership},
	{Name: "truncate-follower", Doc: "SIGKILL a follower, cut the tail of the newest segment of one of its partitions' Raft logs, restart it", run: damage(truncateTail)},
	{Name: "bitflip-follower", Doc: "SIGKILL a follower, flip one bit of the newest segment of one of its partitions' Raft logs, restart it", run: damage(flipBit)},
	{Name: "power-loss", Doc: "cut the power of every node at once: SIGKILL all, drop part of what each did not fsync (powercut FUSE disks), restart all after the hold", SingleNode: true, Disk: cluster.DiskPowerCut, run: powerLoss},
	{Name: "disk-full", Doc: "fill the leader's disk (a tmpfs of its own) to the last byte with another file for the hold, then free it; the node must stay up", SingleNode: true, Disk: cluster.DiskTmpfs, run: diskFull},
	{Name: "lose-disks", Doc: "DESTRUCTIVE: isolate one follower, let the others acknowledge records, kill them, wipe both data directories, restart them, heal", Destructive: true, run: loseDisks},
}

// Standard is every non-destructive fault on plain disks.
func Standard() []string {
	var out []string
	for _, f := range All {
		if !f.Destructive && f.Disk == cluster.DiskDir {
			out = append(out, f.Name)
		}
	}
	return out
}

// ByName looks faults up by name.
func ByName(names []string) ([]Fault, error) {
	var out []Fault
	for _, name := range names {
		i := slices.IndexFunc(All, func(f Fault) bool { return f.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("nemesis: unknown fault %q (known: %s)", name, strings.Join(Names(), ", "))
		}
		out = append(out, All[i])
	}
	return out, nil
}

// Names lists every fault's name, in the order of All.
func Names() []string {
	var out []string
	for _, f := range All {
		out = append(out, f.Name)
	}
	return out
}

// A selector picks the node a fault acts on.
type selector func(ctx context.Context, env *Env) (*cluster.Node, error)

func leader(ctx context.Context, env *Env) (*cluster.Node, error) {
	n, err := env.Cluster.Leader(ctx, 20*time.Second)
	if err == nil && env.OnLeader != nil {
		env.OnLeader(n)
	}
	return n, err
}

// metaLeader picks the metadata group's leader.
func metaLeader(ctx context.Context, env *Env) (*cluster.Node, error) {
	return env.Cluster.MetadataLeader(ctx, 20*time.Second)
}

// follower picks a running follower of the log: a replica of the default
// topic's partition 0 other than its leader (on 5 nodes, two nodes hold
// no replica of it).
func follower(ctx context.Context, env *Env) (*cluster.Node, error) {
	l, err := env.Cluster.Leader(ctx, 20*time.Second)
	if err != nil {
		return nil, err
	}
	replicas, err := env.Cluster.LogReplicas(ctx)
	if err != nil {
		return nil, err
	}
	n := cluster.Random(env.Rng, replicas, func(n *cluster.Node) bool { return n != l && n.Running() })
	if n == nil {
		return nil, errors.New("no running follower")
	}
	return n, nil
}

func anyMember(ctx context.Context, env *Env) (*cluster.Node, error) {
	n := cluster.Random(env.Rng, env.Cluster.Running(), nil)
	if n == nil {
		return nil, errors.New("no running member")
	}
	return n, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// strike picks the target node, records it and the time, and injects the
// fault into it.
func strike(ctx context.Context, env *Env, ev *Event, pick selector, inject func(*cluster.Node) error) (*cluster.Node, error) {
	n, err := pick(ctx, env)
	if err != nil {
		return nil, err
	}
	ev.Targets = []string{n.Name}
	ev.Injected = time.Now()
	return n, inject(n)
}

func kill(pick selector) func(context.Context, *Env, *Event) error {
	return func(ctx context.Context, env *Env, ev *Event) error {
		n, err := strike(ctx, env, ev, pick, (*cluster.Node).Kill)
		if err != nil {
			return err
		}
		ev.Detail = "SIGKILL " + n.Name
		if err := sleep(ctx, env.Hold); err != nil {
			return err
		}
		ev.Healed = time.Now()
		return n.Restart()
	}
}

func pause(pick selector) func(context.Context, *Env, *Event) error {
	return func(ctx context.Context, env *Env, ev *Event) error {
		n, err := strike(ctx, env, ev, pick, (*cluster.Node).Pause)
		if err != nil {
			return err
		}
		ev.Detail = fmt.Sprintf("SIGSTOP %s for %v", n.Name, env.Hold)
		serr := sleep(ctx, env.Hold)
		ev.Healed = time.Now()
		return errors.Join(serr, n.Resume())
	}
}

// slots returns the lab host slots of nodes.
func slots(nodes []*cluster.Node) []int {
	var out []int
	for _, n := range nodes {
		out = append(out, n.Slot)
	}
	return out
}

func names(nodes []*cluster.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// without returns nodes other than n.
func without(nodes []*cluster.Node, n *cluster.Node) []*cluster.Node {
	return slices.DeleteFunc(slices.Clone(nodes), func(m *cluster.Node) bool { return m == n })
}

func isolate(pick selector) func(context.Context, *Env, *Event) error {
	return func(ctx context.Context, env *Env, ev *Event) error {
		var others []*cluster.Node
		n, err := strike(ctx, env, ev, pick, func(n *cluster.Node) error {
			others = without(env.Cluster.Members(), n)
			return env.Lab.Partition([]int{n.Slot}, slots(others))
		})
		if err != nil {
			return err
		}
		ev.Detail = fmt.Sprintf("%s | %s for %v", n.Name, strings.Join(names(others), ","), env.Hold)
		serr := sleep(ctx, env.Hold)
		ev.Healed = time.Now()
		return errors.Join(serr, env.Lab.Heal())
	}
}

// split cuts the members into a random majority and minority.
func split(env *Env) (major, minor []*cluster.Node) {
	m := slices.Clone(env.Cluster.Members())
	env.Rng.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
	k := len(m)/2 + 1
	return m[:k], m[k:]
}

func halves(ctx context.Context, env *Env, ev *Event) error {
	major, minor := split(env)
	ev.Targets = names(minor)
	ev.Injected = time.Now()
	if err := env.Lab.Partition(slots(major), slots(minor)); err != nil {
		return err
	}
	ev.Detail = fmt.Sprintf("%s | %s for %v", strings.Join(names(major), ","), strings.Join(names(minor), ","), env.Hold)
	serr := sleep(ctx, env.Hold)
	ev.Healed = time.Now()
	return errors.Join(serr, env.Lab.Heal())
}

func flapping(ctx context.Context, env *Env, ev *Event) error {
	ev.Injected = time.Now()
	end := ev.Injected.Add(2 * env.Hold)
	cuts := 0
	var err error
	for time.Now().Before(end) && err == nil {
		major, minor := split(env)
		if err = env.Lab.Partition(slots(major), slots(minor)); err != nil {
			break
		}
		cuts++
		if err = sleep(ctx, time.Duration(200+env.Rng.IntN(400))*time.Millisecond); err != nil {
			break
		}
		if err = env.Lab.Heal(); err != nil {
			break
		}
		err = sleep(ctx, time.Duration(200+env.Rng.IntN(400))*time.Millisecond)
	}
	ev.Healed = time.Now()
	ev.Detail = fmt.Sprintf("%d random splits in %v", cuts, ev.Healed.Sub(ev.Injected).Round(time.Millisecond))
	return errors.Join(err, env.Lab.Heal())
}

// membership: a follower of the log leaves for good (graceful leave) and
// a fresh node joins; the node that left held replicas (of the log at
// least), which the metadata moves to other nodes once it has been
// leaving for the cluster's replica replacement delay. The fault ends
// when no partition lists it any more.
func membership(ctx context.Context, env *Env, ev *Event) error {
	n, err := follower(ctx, env)
	if err != nil {
		return err
	}
	name := n.Name // the slot may be reused under another name
	ev.Targets = []string{name}
	ev.Injected = time.Now()
	if err := env.Cluster.RemoveNode(ctx, n); err != nil {
		return err
	}
	removed := time.Since(ev.Injected).Round(time.Millisecond)
	fresh, err := env.Cluster.AddNode(ctx)
	if err != nil {
		return err
	}
	ev.Targets = append(ev.Targets, fresh.Name)
	if err := env.Cluster.WaitMoved(ctx, name, 60*time.Second); err != nil {
		return err
	}
	ev.Healed = time.Now()
	ev.Detail = fmt.Sprintf("%s left (removed after %v); fresh %s joined at %s with an empty disk; %s's replicas moved to other nodes after %v",
		name, removed, fresh.Name, fresh.Addr(), name, ev.Healed.Sub(ev.Injected).Round(time.Millisecond))
	return nil
}
