// Command faulttest runs proglog clusters of real processes, injects
// crashes, pauses, partitions, damaged and lost disks and membership
// changes under a recorded workload, and checks the history: no
// acknowledged record lost or duplicated, no divergence between nodes,
// consumers in order without gaps, linearizable reads linearizable, and a
// consumer group whose members are killed and added processing every
// record at least once with commits never skipping, regressing or lost. It
// writes a Markdown report (docs/reliability.md) and exits non-zero if a
// run fails, or if a negative control is not caught.
//
// See README.md for the method, the faults and the modes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/nemesis"
	"github.com/proglog/proglog/tools/faulttest/netlab"
	"github.com/proglog/proglog/tools/faulttest/workload"
)

// unsafeTag builds the proglog variant that acknowledges before Raft
// commits (go/replication/ack_unsafe.go).
const unsafeTag = "proglog_unsafe_ack_before_commit"

// shortFaults5 are the faults of the 5-node run in short mode: the ones
// whose behaviour depends on the cluster size. Membership (its replicas
// move) comes before bitflip-follower: a node replaced keeps its replicas
// (README.md, Limits), and a partition on both it and the node leaving
// could not take the replacement replica.
var shortFaults5 = []string{"kill-leader", "pause-leader", "partition-halves", "partition-flapping", "membership", "bitflip-follower"}

type options struct {
	mode                 string
	binary, unsafeBinary string
	dir, report          string
	net                  string
	duration, hold       time.Duration
	seed                 uint64
	negative             bool
	nodes                int
	faults               []string
	rounds               int
	sync                 string
	produce              string   // workload.ProduceMode of every run
	group                bool     // custom mode: the consumer-group workload too
	notRun               []string // plans left out, and why
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := options{}
	fs := pflag.NewFlagSet("faulttest", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "short", "short: every fault once on 3 nodes, six on 5 nodes (both writing the default topic and the 3 partitions of topic ft.a; the 3-node run also a consumer group over topic ft.g), power loss and full disks twice on 1 and 3 nodes, plus the negative controls (a few minutes); long: faults drawn at random for --duration on 3 nodes and half of it on 5 nodes (both with the consumer group), power loss and full disks five times on 1 and 3 nodes, plus the negative controls; disks: only the power-loss and disk-full runs of long mode and their negative control; custom: only --nodes/--faults/--rounds")
	fs.StringVar(&o.binary, "binary", "", "proglog executable (default: go build ./go/cmd/proglog)")
	fs.StringVar(&o.unsafeBinary, "unsafe-binary", "", "proglog built with -tags "+unsafeTag+" for the negative control (default: go build with that tag)")
	fs.StringVar(&o.dir, "dir", "", "where runs keep node data and logs (default: a new temporary directory)")
	fs.StringVar(&o.report, "report", "", "write the Markdown report here (e.g. docs/reliability.md); always printed to stdout")
	fs.StringVar(&o.net, "net", "auto", "network: namespaces (root: one network namespace per node, partitions possible), loopback (127.x addresses, no partitions) or auto")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "long mode: time of the 3-node run (the 5-node run gets half)")
	fs.DurationVar(&o.hold, "hold", 2*time.Second, "how long each fault lasts; longer than the 500ms election timeout")
	fs.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()%1e6), "random seed (targets, splits, workload)")
	fs.BoolVar(&o.negative, "negative", true, "also run the negative controls: lost disks of 2 of 3 nodes, and a build that acknowledges before commit; each must be caught")
	fs.StringVar(&o.produce, "produce", workload.Idempotent.String(), "how producers send: idempotent (a producer ID and sequence; ambiguous produces resent until acknowledged), once (no producer ID, never resent: an ambiguous produce stays unknown) or retry-without-id (resent without a producer ID: duplicates expected)")
	fs.IntVar(&o.nodes, "nodes", 3, "custom mode: cluster size")
	fs.StringSliceVar(&o.faults, "faults", nemesis.Standard(), "custom mode: faults, in order ("+strings.Join(nemesis.Names(), ", ")+")")
	fs.IntVar(&o.rounds, "rounds", 1, "custom mode: times through --faults")
	fs.BoolVar(&o.group, "group", false, "custom mode (3 nodes or more): add the consumer-group workload (a group of 3 consumers over topic ft.g's 6 partitions, members killed and added)")
	fs.StringVar(&o.sync, "sync", "", "custom mode: the nodes' --sync (always, interval or never; default proglog's, always)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.resolve(); err != nil {
		fmt.Fprintln(stderr, "faulttest:", err)
		return 2
	}
	plans, err := o.plans()
	if err != nil {
		fmt.Fprintln(stderr, "faulttest:", err)
		return 2
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	for _, why := range o.notRun {
		logf("not run: %s", why)
	}
	var runs []*RunResult
	failed := false
	for _, pl := range plans {
		cfg := pl.cfg
		cfg.Logf = logf
		if cfg.Dir, err = mkRunDir(o.dir, cfg.Name); err != nil {
			fmt.Fprintln(stderr, "faulttest:", err)
			return 1
		}
		logf("run %q in %s", cfg.Name, cfg.Dir)
		res, err := Run(ctx, cfg)
		if err != nil {
			logf("run %q: %v", cfg.Name, err)
		}
		runs = append(runs, res)
		ok := res.Passed()
		logf("run %q: %s (lost %d, duplicated %d, divergent %d, stale %d, linearizable %s)", cfg.Name, map[bool]string{true: "as expected", false: "NOT AS EXPECTED"}[ok],
			res.Check.Lost, res.Check.Duplicated, res.Check.Divergent, res.Check.StaleReads, linText(res.Check.Linearizable))
		failed = failed || !ok
		if ctx.Err() != nil {
			break
		}
	}
	var sb strings.Builder
	writeReport(&sb, "proglog reliability: fault tests", "faulttest "+strings.Join(userArgs(args), " "), runs)
	fmt.Fprint(stdout, sb.String())
	if o.report != "" {
		if err := os.WriteFile(o.report, []byte(sb.String()), 0o644); err != nil {
			fmt.Fprintln(stderr, "faulttest:", err)
			return 1
		}
	}
	if failed {
		return 1
	}
	return 0
}

// userArgs drops the binary paths `bazel run` adds, for the report.
func userArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--binary=") && !strings.HasPrefix(a, "--unsafe-binary=") {
			out = append(out, a)
		}
	}
	return out
}

// resolve makes paths absolute (relative to where `bazel run` was invoked)
// and builds missing binaries.
func (o *options) resolve() error {
	wd := os.Getenv("BUILD_WORKING_DIRECTORY") // set by `bazel run`
	abs := func(p string, base string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		if base != "" {
			return filepath.Join(base, p)
		}
		a, _ := filepath.Abs(p)
		return a
	}
	o.report, o.dir = abs(o.report, wd), abs(o.dir, wd)
	o.binary, o.unsafeBinary = runfile(o.binary), runfile(o.unsafeBinary)
	if o.dir == "" {
		d, err := os.MkdirTemp("", "faulttest-")
		if err != nil {
			return err
		}
		o.dir = d
	}
	var err error
	if o.binary == "" {
		if o.binary, err = goBuild(".", o.dir, "proglog", ""); err != nil {
			return err
		}
	}
	if o.unsafeBinary == "" && o.negative {
		if o.unsafeBinary, err = goBuild(".", o.dir, "proglog-unsafe", unsafeTag); err != nil {
			return err
		}
	}
	return nil
}

// runfile resolves a path given by Bazel ($(rlocationpath ...): relative to
// the runfiles root) or by a user (relative to the working directory).
func runfile(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	roots := []string{os.Getenv("TEST_SRCDIR"), os.Getenv("RUNFILES_DIR")}
	if exe, err := os.Executable(); err == nil {
		roots = append(roots, exe+".runfiles")
	}
	for _, root := range roots {
		if root == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return filepath.Join(root, p)
		}
	}
	a, _ := filepath.Abs(p)
	return a
}

// goBuild builds ./go/cmd/proglog of the module at root into dir.
func goBuild(root, dir, name, tags string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-tags", tags, "-o", out, "./go/cmd/proglog")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run from the repository root, or pass --binary): %v\n%s", name, err, b)
	}
	return out, nil
}

type plan struct {
	cfg RunConfig
}

func (o *options) plans() ([]plan, error) {
	mode, err := netlab.ParseMode(o.net)
	if err != nil {
		return nil, err
	}
	produce := workload.Idempotent
	if o.produce != "" {
		if produce, err = workload.ParseProduceMode(o.produce); err != nil {
			return nil, err
		}
	}
	base := func(name string, nodes int, faults []string) RunConfig {
		c := DefaultRunConfig()
		c.Name, c.Nodes, c.Faults, c.Binary, c.Net, c.Hold, c.Seed = name, nodes, faults, o.binary, mode, o.hold, o.seed
		c.Workload = workload.DefaultConfig()
		c.Workload.Seed, c.Workload.Mode = o.seed, produce
		return c
	}
	group := func() *workload.GroupConfig {
		g := workload.DefaultGroupConfig()
		g.Seed = o.seed
		return &g
	}
	var out []plan
	switch o.mode {
	case "short":
		a := base("3 nodes, every fault once, a consumer group", 3, nemesis.Standard())
		b := base("5 nodes, six faults", 5, shortFaults5)
		a.Topics, b.Topics = ShortTopics(), ShortTopics()
		a.Group = group()
		out = append(out, plan{cfg: a}, plan{cfg: b})
	case "long":
		a := base(fmt.Sprintf("3 nodes, random faults for %v, a consumer group", o.duration), 3, nemesis.Standard())
		a.Duration = o.duration
		b := base(fmt.Sprintf("5 nodes, random faults for %v, a consumer group", o.duration/2), 5, nemesis.Standard())
		b.Duration = o.duration / 2
		a.Topics, b.Topics = ShortTopics(), ShortTopics()
		a.Group, b.Group = group(), group()
		out = append(out, plan{cfg: a}, plan{cfg: b})
	case "disks":
		// Only the power-loss and disk-full runs (below).
	case "custom":
		c := base(fmt.Sprintf("%d nodes, %s", o.nodes, strings.Join(o.faults, ", ")), o.nodes, o.faults)
		c.Rounds, c.Sync = o.rounds, o.sync
		if o.nodes >= 3 {
			c.Topics = ShortTopics()
		}
		if o.group {
			c.Group = group()
		}
		out = append(out, plan{cfg: c})
	default:
		return nil, fmt.Errorf("unknown --mode %q (short, long, disks or custom)", o.mode)
	}
	// Power loss and full disks: their own runs, since they need their own
	// disks (powercut FUSE mounts, tmpfs), and one node as well as three.
	var disks []plan
	switch o.mode {
	case "short":
		disks = diskPlans(base, 2)
	case "long", "disks":
		disks = diskPlans(base, 5)
	}
	for _, pl := range disks {
		if err := diskOf(pl.cfg).Available(); err != nil {
			o.notRun = append(o.notRun, fmt.Sprintf("%s: %v", pl.cfg.Name, err))
			continue
		}
		out = append(out, pl)
	}
	if o.negative {
		lost := base("negative control: disks of 2 of 3 nodes lost", 3, []string{"lose-disks"})
		unsafe := base("negative control: a build that acknowledges before commit", 3, []string{"partition-leader", "kill-leader", "pause-leader"})
		unsafe.Binary = o.unsafeBinary
		lost.NegativeControl, unsafe.NegativeControl = true, true
		if o.mode != "disks" {
			out = append(out, plan{cfg: lost}, plan{cfg: unsafe})
		}
		if len(disks) > 0 {
			never := base("negative control: power loss of 1 node with --sync never", 1, []string{"power-loss"})
			never.Rounds, never.Sync, never.NegativeControl = 2, "never", true
			if err := cluster.DiskPowerCut.Available(); err != nil {
				o.notRun = append(o.notRun, fmt.Sprintf("%s: %v", never.Name, err))
			} else {
				out = append(out, plan{cfg: never})
			}
		}
	}
	return out, nil
}

// diskPlans are the power-loss and disk-full runs, on 1 and 3 nodes, each
// fault repeated rounds times, plus (with the negative controls) a power
// loss with --sync never, which must lose acknowledged records.
func diskPlans(base func(string, int, []string) RunConfig, rounds int) []plan {
	var out []plan
	for _, fault := range []string{"power-loss", "disk-full"} {
		for _, nodes := range []int{1, 3} {
			c := base(fmt.Sprintf("%d node%s, %s ×%d", nodes, map[bool]string{true: "s"}[nodes > 1], fault, rounds), nodes, []string{fault})
			c.Rounds = rounds
			out = append(out, plan{cfg: c})
		}
	}
	return out
}

// diskOf is the disk a run's faults need.
func diskOf(c RunConfig) cluster.Disk {
	faults, err := nemesis.ByName(c.Faults)
	if err != nil || len(faults) == 0 {
		return cluster.DiskDir
	}
	return faults[0].Disk
}
