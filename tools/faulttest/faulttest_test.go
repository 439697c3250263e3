package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/history"
	"github.com/proglog/proglog/tools/faulttest/nemesis"
	"github.com/proglog/proglog/tools/faulttest/workload"
)

// binaries returns the proglog executable and its unsafe variant: from
// Bazel (PROGLOG_BIN, PROGLOG_UNSAFE_BIN: runfiles paths) or built with the
// go command from the module root.
func binaries(t *testing.T) (safe, unsafe string) {
	t.Helper()
	safe, unsafe = runfile(os.Getenv("PROGLOG_BIN")), runfile(os.Getenv("PROGLOG_UNSAFE_BIN"))
	var err error
	if safe == "" {
		if safe, err = goBuild("../..", t.TempDir(), "proglog", ""); err != nil {
			t.Fatal(err)
		}
	}
	if unsafe == "" {
		if unsafe, err = goBuild("../..", t.TempDir(), "proglog-unsafe", unsafeTag); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*string{&safe, &unsafe} {
		if *p, err = filepath.Abs(*p); err != nil {
			t.Fatal(err)
		}
	}
	return safe, unsafe
}

// TestShortMode runs the short mode, as `faulttest --mode short` does: every
// fault on 3 nodes (with the consumer group, whose members are killed and
// added), six on 5 nodes, and power loss and full disks on 1 and 3 nodes
// must leave a history the checkers pass, each fault followed by
// acknowledged writes; and the negative controls — lost disks of 2 of 3
// nodes, a build that acknowledges before Raft commits, a power loss with
// --sync never — must be caught. The report goes to the test's outputs.
func TestShortMode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs clusters of real processes for about two minutes")
	}
	safe, unsafe := binaries(t)
	o := options{mode: "short", net: "auto", binary: safe, unsafeBinary: unsafe, hold: 2 * time.Second, seed: uint64(time.Now().UnixNano() % 1e6), negative: true}
	plans, err := o.plans()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d", o.seed)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var runs []*RunResult
	for _, pl := range plans {
		cfg := pl.cfg
		cfg.Dir = t.TempDir()
		cfg.Logf = t.Logf
		res, err := Run(ctx, cfg)
		runs = append(runs, res)
		c := res.Check
		t.Logf("%s: %s", cfg.Name, c)
		if err != nil {
			t.Errorf("%s: %v", cfg.Name, err)
			logTails(t, cfg.Dir)
			continue
		}
		if cfg.NegativeControl {
			if !res.Passed() {
				t.Errorf("%s: the checker proved nothing wrong (a timed-out linearizability check proves nothing): %s", cfg.Name, c)
			}
			if (strings.Contains(cfg.Name, "disks") || strings.Contains(cfg.Name, "power loss")) && c.Lost == 0 {
				t.Errorf("%s: no lost records reported", cfg.Name)
			}
			continue
		}
		if !res.Passed() {
			t.Errorf("%s: failed: %s\n%s", cfg.Name, c, strings.Join(c.Problems, "\n"))
		}
		want := len(cfg.Faults) * cfg.Rounds
		if res.Mode.String() == "loopback" {
			want -= len(res.Skipped)
			t.Logf("%s: loopback network (%s): not run: %v", cfg.Name, res.FallbackReason, res.Skipped)
		}
		if len(res.Faults) != want {
			t.Errorf("%s: %d faults injected, want %d", cfg.Name, len(res.Faults), want)
		}
		for _, f := range res.Faults {
			if f.Err != "" || f.RecoveryFromHeal < 0 {
				t.Errorf("%s: %s: error %q, writes again %v after the heal", cfg.Name, f.Fault, f.Err, f.RecoveryFromHeal)
			}
		}
		// The gates (gateAcked before the first fault and after each)
		// set the amount of work; the history must hold at least it.
		if want := gateAcked * (1 + len(res.Faults)); c.AckedOps < want {
			t.Errorf("%s: the history holds %d acknowledged produce calls, the run's gates saw at least %d", cfg.Name, c.AckedOps, want)
		}
		if cfg.Group != nil {
			g := res.Group
			if g == nil {
				t.Errorf("%s: no consumer-group result", cfg.Name)
				continue
			}
			t.Logf("%s: group: %d members killed, %d added; %s", cfg.Name, g.Killed, g.Added, g.Check)
			if !g.OK() {
				t.Errorf("%s: group: %s; members that gave up: %q\n%s", cfg.Name, g.Check, g.Failures, strings.Join(g.Check.Problems, "\n"))
			}
			if g.Killed == 0 || g.Added == 0 || g.Check.Commits == 0 {
				t.Errorf("%s: group: %d members killed, %d added, %d commits: the churn did not run", cfg.Name, g.Killed, g.Added, g.Check.Commits)
			}
		}
	}
	var report strings.Builder
	writeReport(&report, "proglog reliability: fault tests (short mode)", "go test ./tools/faulttest", runs)
	t.Logf("report:\n%s", report.String())
}

// logTails shows the end of every node log of a failed run.
func logTails(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		from := max(0, len(lines)-15)
		for i, line := range lines {
			if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
				from = min(from, i) // a crash: show it whole
				break
			}
		}
		t.Logf("%s (tail):\n%s", filepath.Base(l), strings.Join(lines[from:], "\n"))
	}
}

func TestPlans(t *testing.T) {
	o := options{mode: "short", net: "auto", binary: "/bin/proglog", unsafeBinary: "/bin/unsafe", hold: time.Second, negative: true}
	plans, err := o.plans()
	if err != nil {
		t.Fatal(err)
	}
	// Every standard fault runs in short mode; the destructive one only in
	// the negative control, against the safe binary; the unsafe binary only
	// in its own control. One run has the consumer group.
	seen := map[string]bool{}
	groups := 0
	for _, pl := range plans {
		if pl.cfg.Group != nil {
			groups++
		}
		pl.cfg.Dir = "/run-dir" // set per run by the caller
		if err := pl.cfg.Validate(); err != nil {
			t.Errorf("%s: %v", pl.cfg.Name, err)
		}
		for _, f := range pl.cfg.Faults {
			seen[f] = true
		}
		if (pl.cfg.Binary == "/bin/unsafe") != (pl.cfg.NegativeControl && strings.Contains(pl.cfg.Name, "acknowledges")) {
			t.Errorf("%s runs %s", pl.cfg.Name, pl.cfg.Binary)
		}
		if standard := !pl.cfg.NegativeControl && diskOf(pl.cfg) == cluster.DiskDir; standard != (len(pl.cfg.Topics) > 0) {
			t.Errorf("%s: topics %v", pl.cfg.Name, pl.cfg.Topics)
		}
		if pl.cfg.Workload.Mode != workload.Idempotent {
			t.Errorf("%s: producers %v, want idempotent by default", pl.cfg.Name, pl.cfg.Workload.Mode)
		}
	}
	for _, f := range nemesis.All {
		if !seen[f.Name] && f.Disk.Available() == nil {
			t.Errorf("fault %s is not in short mode", f.Name)
		}
	}
	if groups != 1 {
		t.Errorf("%d short-mode runs with a consumer group, want 1", groups)
	}
	o.produce = "retry-without-id"
	if plans, err = o.plans(); err != nil || plans[0].cfg.Workload.Mode != workload.RetryWithoutID {
		t.Errorf("--produce retry-without-id: %v", err)
	}
	o.produce = "twice"
	if _, err := o.plans(); err == nil {
		t.Error("unknown produce mode accepted")
	}
	o.produce = ""
	o.mode = "bogus"
	if _, err := o.plans(); err == nil {
		t.Error("unknown mode accepted")
	}
	o.mode, o.net = "short", "wires"
	if _, err := o.plans(); err == nil {
		t.Error("unknown network accepted")
	}
}

// A negative control is caught only by a proven violation: lost records or
// an Illegal verdict, never by porcupine timing out (Unknown).
func TestNegativeControlNeedsAViolation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check history.Result
		want  bool
	}{
		{"linearizability unknown", history.Result{Linearizable: porcupine.Unknown}, false},
		{"clean", history.Result{Linearizable: porcupine.Ok}, false},
		{"illegal", history.Result{Linearizable: porcupine.Illegal}, true},
		{"lost, linearizability unknown", history.Result{Lost: 1, Linearizable: porcupine.Unknown}, true},
	} {
		r := &RunResult{Config: RunConfig{NegativeControl: true}, Check: tc.check}
		if got := r.Passed(); got != tc.want {
			t.Errorf("%s: negative control caught = %v, want %v", tc.name, got, tc.want)
		}
		r.Config.NegativeControl = false
		if got, want := r.Passed(), tc.check.OK(); got != want {
			t.Errorf("%s: ordinary run passed = %v, want %v", tc.name, got, want)
		}
	}
	r := &RunResult{Config: RunConfig{NegativeControl: true}, Check: history.Result{Lost: 3}, Err: "cut short"}
	if r.Passed() {
		t.Error("a negative control that did not complete passed")
	}
}

// Runs of one node take only the faults that work there; a run's faults
// must agree on the disks they need.
func TestRunConfigValidate(t *testing.T) {
	group := workload.DefaultGroupConfig()
	for _, tc := range []struct {
		nodes  int
		faults []string
		want   string
		topics []TopicSpec
		group  *workload.GroupConfig
	}{
		{1, []string{"power-loss"}, "", nil, nil},
		{1, []string{"disk-full"}, "", nil, nil},
		{0, []string{"power-loss"}, "faulttest: 0 nodes: need at least 1", nil, nil},
		{1, []string{"kill-follower"}, "faulttest: 1 nodes: kill-follower needs at least 3", nil, nil},
		{3, []string{"power-loss", "disk-full"}, "faulttest: power-loss needs powercut disks and disk-full tmpfs disks: run them separately", nil, nil},
		{3, []string{"kill-leader", "power-loss"}, "faulttest: kill-leader needs dir disks and power-loss powercut disks: run them separately", nil, nil},
		{3, []string{"kill-leader"}, "", []TopicSpec{{"ft.a", 3, 3}}, nil},
		{3, []string{"kill-leader"}, `faulttest: topic "ft.a" of 3 partitions and 5 replicas on 3 nodes: need a new name, a partition and 1 to 3 replicas`, []TopicSpec{{"ft.a", 3, 5}}, nil},
		{3, []string{"kill-leader"}, `faulttest: topic "log" of 1 partitions and 3 replicas on 3 nodes: need a new name, a partition and 1 to 3 replicas`, []TopicSpec{{"log", 1, 3}}, nil},
		{3, []string{"kill-leader"}, `faulttest: topic "ft.a" of 0 partitions and 3 replicas on 3 nodes: need a new name, a partition and 1 to 3 replicas`, []TopicSpec{{"ft.a", 0, 3}}, nil},
		{3, []string{"kill-leader"}, "", []TopicSpec{{"ft.a", 3, 3}}, &group},
		{1, []string{"power-loss"}, "faulttest: 1 nodes: the group workload needs at least 3", nil, &group},
		{3, []string{"kill-leader"}, `faulttest: topic "ft.g" is both in Topics and the group's`, []TopicSpec{{"ft.g", 3, 3}}, &group},
	} {
		c := DefaultRunConfig()
		c.Binary, c.Dir, c.Nodes, c.Faults = "/bin/proglog", "/run-dir", tc.nodes, tc.faults
		c.Topics, c.Group = tc.topics, tc.group
		err := c.Validate()
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("%d nodes, %v: %v, want %q", tc.nodes, tc.faults, err, tc.want)
		}
	}
}

// Produces refused for a full disk are counted per fault, from its
// injection to the next fault's.
func TestLowDiskRefused(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	full := "rpc error: code = ResourceExhausted desc = the server's disk is nearly full"
	ops := []history.Op{
		{Kind: history.Append, Outcome: history.Failed, Err: full, Call: at(0)},                        // before
		{Kind: history.Append, Outcome: history.Failed, Err: full, Call: at(1)},                        // in
		{Kind: history.Append, Outcome: history.Failed, Err: full, Call: at(2)},                        // in
		{Kind: history.Append, Outcome: history.Failed, Err: "code = FailedPrecondition", Call: at(2)}, // not leader
		{Kind: history.Append, Outcome: history.OK, Call: at(2)},
		{Kind: history.Append, Outcome: history.Failed, Err: full, Call: at(3)}, // after
	}
	if got := lowDiskRefused(ops, at(1), at(3)); got != 2 {
		t.Errorf("refused in [1s, 3s) = %d, want 2", got)
	}
	if got := lowDiskRefused(ops, at(1), time.Time{}); got != 3 {
		t.Errorf("refused from 1s on = %d, want 3", got)
	}
}

// A run's check is its partitions' together: counts summed, the worst
// linearizability verdict, every problem named by its partition.
func TestMergeChecks(t *testing.T) {
	parts := []PartitionResult{
		{Topic: "log", Partition: 0, Check: history.Result{Ops: 10, AckedOps: 4, Linearizable: porcupine.Ok}},
		{Topic: "ft.a", Partition: 1, Check: history.Result{Ops: 5, AckedOps: 2, Lost: 3, Linearizable: porcupine.Unknown, Problems: []string{"lost: p1-7"}}},
		{Topic: "ft.a", Partition: 2, Check: history.Result{Ops: 1, Linearizable: porcupine.Ok}},
	}
	m := mergeChecks(parts)
	if m.Ops != 16 || m.AckedOps != 6 || m.Lost != 3 {
		t.Errorf("ops %d, acked %d, lost %d; want 16, 6, 3", m.Ops, m.AckedOps, m.Lost)
	}
	if m.Linearizable != porcupine.Unknown {
		t.Errorf("linearizable %v, want Unknown (one partition timed out)", m.Linearizable)
	}
	if want := []string{"ft.a/1: lost: p1-7"}; !slices.Equal(m.Problems, want) {
		t.Errorf("problems %q, want %q", m.Problems, want)
	}
	parts[2].Check.Linearizable = porcupine.Illegal
	if m := mergeChecks(parts); m.Linearizable != porcupine.Illegal || !m.Violated() {
		t.Errorf("linearizable %v, violated %v: want Illegal, true", m.Linearizable, m.Violated())
	}
	if m := mergeChecks(parts[:1]); !m.OK() {
		t.Errorf("one clean partition: not OK: %s", m)
	}
}
