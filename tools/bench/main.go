// Command bench runs the same produce/consume workload against proglog and
// NATS JetStream, both started in this process on loopback, and reports
// throughput and end-to-end latency side by side as a Markdown table and a
// PNG chart. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// options are the command-line flags.
type options struct {
	quick, full bool

	out      string // directory for benchmarks.md and benchmarks.png; "" = none
	dataDir  string // parent of the temporary data directories
	duration time.Duration
	records  int

	systems      []string
	nodes        []int
	sizes        []int
	producers    []int
	batches      []int
	durabilities []string

	repeat     int
	ceilings   bool
	cpuProfile string
	rowTimeout time.Duration
	verbose    bool
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	res, err := runAll(ctx, o, stderr)
	if err != nil {
		return err
	}
	md := renderMarkdown(res)
	fmt.Fprintln(stdout, md)
	var incomplete error
	if missing := res.missingCells(); missing > 0 {
		incomplete = fmt.Errorf("%d rows are not filled (failed runs; see the notes under the table)", missing)
	}
	if o.out == "" {
		return incomplete
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "benchmarks.md"), []byte(md), 0o644); err != nil {
		return err
	}
	png, err := renderChart(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "benchmarks.png"), png, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s and %s\n", filepath.Join(o.out, "benchmarks.md"), filepath.Join(o.out, "benchmarks.png"))
	return incomplete
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var out, systems, nodes, sizes, producers, batches, durabilities string
	fs.BoolVar(&o.quick, "quick", false, "CI smoke run (< 2 min): 100 B, 1 and 4 producers, batch 1 and 100, durable, R1 and R3, 1 s per row; prints the table, writes nothing unless --out")
	fs.BoolVar(&o.full, "full", false, "the full matrix (~10-15 min): 100 B and 1 KiB, 1/4/16 producers, batch 1 and 100, durable and relaxed, R1 and R3, each row pair twice for 2 s; writes --out (default docs/)")
	fs.StringVar(&out, "out", "", "directory to write benchmarks.md and benchmarks.png to, relative to the directory bazel run was started in")
	fs.StringVar(&o.dataDir, "data-dir", "", "where the temporary data directories go (default $TMPDIR); the disk under it is what is measured")
	fs.DurationVar(&o.duration, "duration", 0, "produce time per row (default 1s with --quick, 2s with --full, 3s otherwise)")
	fs.IntVar(&o.records, "records", 0, "at most this many records per row (default 20000 with --quick, 150000 otherwise)")
	fs.StringVar(&systems, "systems", "proglog,jetstream", "systems to run")
	fs.StringVar(&nodes, "nodes", "", "cluster sizes (replication factors), comma-separated (default 1,3)")
	fs.StringVar(&sizes, "sizes", "", "record sizes in bytes (default 100 with --quick, 100,1024 otherwise)")
	fs.StringVar(&producers, "producers", "", "concurrent producers (default 1,4 with --quick, 1,4,16 otherwise)")
	fs.StringVar(&batches, "batch", "", "records per produce call: 1 (unbatched) and/or 100 (default 1,100)")
	fs.StringVar(&durabilities, "durability", "", "sync (fsync before ack) and/or relaxed (default sync with --quick, sync,relaxed otherwise)")
	fs.IntVar(&o.repeat, "repeat", 0, "run each row pair this many times, alternating which system goes first; figures are medians over the runs (default 2 with --full, else 1)")
	fs.BoolVar(&o.ceilings, "ceilings", true, "also measure the ceilings: go/seglog append rate and a gRPC no-op round trip (and a core NATS one)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof -top FILE)")
	fs.DurationVar(&o.rowTimeout, "row-timeout", 2*time.Minute, "give up on a row after this long")
	fs.BoolVar(&o.verbose, "v", false, "log more")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick && o.full {
		return nil, errors.New("--quick and --full are exclusive")
	}
	def := func(s, quick, other string) string {
		if s != "" {
			return s
		}
		if o.quick {
			return quick
		}
		return other
	}
	if out == "" && o.full {
		out = "docs"
	}
	if o.duration == 0 {
		o.duration = 3 * time.Second
		switch {
		case o.quick:
			o.duration = time.Second
		case o.full:
			o.duration = 2 * time.Second
		}
	}
	if o.repeat == 0 {
		o.repeat = 1
		if o.full {
			o.repeat = 2
		}
	}
	if o.records == 0 {
		o.records = 150000
		if o.quick {
			o.records = 20000
		}
	}
	var err error
	o.systems = splitList(systems)
	for _, s := range o.systems {
		if s != sysProglog && s != sysJetStream {
			return nil, fmt.Errorf("--systems: unknown system %q (proglog, jetstream)", s)
		}
	}
	if o.nodes, err = intList("nodes", def(nodes, "1,3", "1,3")); err != nil {
		return nil, err
	}
	if o.sizes, err = intList("sizes", def(sizes, "100", "100,1024")); err != nil {
		return nil, err
	}
	if o.producers, err = intList("producers", def(producers, "1,4", "1,4,16")); err != nil {
		return nil, err
	}
	if o.batches, err = intList("batch", def(batches, "1,100", "1,100")); err != nil {
		return nil, err
	}
	o.durabilities = splitList(def(durabilities, "sync", "sync,relaxed"))
	for _, d := range o.durabilities {
		if d != durSync && d != durRelaxed {
			return nil, fmt.Errorf("--durability: unknown %q (sync, relaxed)", d)
		}
	}
	for _, n := range o.nodes {
		if n != 1 && n != 3 && n != 5 {
			return nil, fmt.Errorf("--nodes: %d (1, 3 or 5)", n)
		}
	}
	for _, s := range o.sizes {
		if s < 16 {
			return nil, fmt.Errorf("--sizes: %d is too small (at least 16 bytes carry the timestamp)", s)
		}
	}
	if o.repeat < 1 {
		return nil, errors.New("--repeat must be positive")
	}
	if o.records < 1 {
		return nil, errors.New("--records must be positive")
	}
	o.out = resolvePath(out)
	o.dataDir = resolvePath(o.dataDir)
	o.cpuProfile = resolvePath(o.cpuProfile)
	return o, nil
}

// resolvePath makes a relative path relative to where `bazel run` was
// started (it runs the binary in its runfiles directory).
func resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if wd := os.Getenv("BUILD_WORKING_DIRECTORY"); wd != "" {
		return filepath.Join(wd, p)
	}
	return p
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func intList(name, s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--%s: bad number %q", name, f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s is empty", name)
	}
	return out, nil
}
