package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/proglog/proglog/go/certs"
)

// results is everything a run measured.
type results struct {
	opts     *options
	machine  machineInfo
	rows     []*rowResult // in matrix order, proglog before jetstream
	ceilings []ceiling
	notes    []string
	started  time.Time
	elapsed  time.Duration
	loadEnd  string
}

// pair returns the other system's result for r's workload, or nil.
func (res *results) pair(r *rowResult) *rowResult {
	for _, o := range res.rows {
		if o != r && o.w == r.w && o.system != r.system {
			return o
		}
	}
	return nil
}

func (res *results) missingCells() int {
	n := 0
	for _, r := range res.rows {
		if r.failed != nil || r.recordsPerSec() <= 0 || r.p999() < 0 || r.consumePerSec() <= 0 {
			n++
		}
	}
	return n
}

func runAll(ctx context.Context, o *options, logw io.Writer) (*results, error) {
	res := &results{opts: o, started: time.Now()}
	base, err := os.MkdirTemp(o.dataDir, "proglog-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	res.machine = probeMachine(base)
	pki, err := certs.EnsureDev(filepath.Join(base, "certs"), nil)
	if err != nil {
		return nil, err
	}
	jsTLS, err := newJSTLS(pki)
	if err != nil {
		return nil, err
	}

	if o.ceilings {
		fmt.Fprintln(logw, "ceilings ...")
		res.ceilings = measureCeilings(ctx, base, pki, jsTLS, o, logw)
	}

	var workloads []workload
	for _, n := range o.nodes {
		for _, d := range o.durabilities {
			for _, size := range o.sizes {
				for _, b := range o.batches {
					for _, p := range o.producers {
						workloads = append(workloads, workload{nodes: n, size: size, producers: p, batch: b, durability: d})
					}
				}
			}
		}
	}
	// Per replication factor and durability, one cluster of each system,
	// both running at once; their rows alternate (proglog first, then
	// JetStream first, ...) so that each pair is measured seconds apart and
	// drifting machine load hits both alike.
	for _, n := range o.nodes {
		for _, d := range o.durabilities {
			var ws []workload
			for _, w := range workloads {
				if w.nodes == n && w.durability == d {
					ws = append(ws, w)
				}
			}
			res.rows = append(res.rows, runGroup(ctx, base, pki, jsTLS, n, d, ws, o, logw)...)
		}
	}
	res.elapsed = time.Since(res.started)
	res.loadEnd = loadAvg()
	return res, nil
}

func runGroup(ctx context.Context, base string, pki certs.DevFiles, jsTLS *jsTLS, nodes int, durability string, ws []workload, o *options, logw io.Writer) []*rowResult {
	clusters := map[string]cluster{}
	startErr := map[string]error{}
	for _, sys := range o.systems {
		c, err := startCluster(ctx, base, pki, jsTLS, sys, nodes, durability, logw)
		if err != nil {
			startErr[sys] = err
			continue
		}
		clusters[sys] = c
	}
	defer func() {
		for sys, c := range clusters {
			if err := c.Close(); err != nil {
				fmt.Fprintf(logw, "%s R%d: close: %v\n", sys, nodes, err)
			}
		}
	}()
	var out []*rowResult
	for i, w := range ws {
		rows := map[string]*rowResult{}
		for _, sys := range o.systems {
			rows[sys] = &rowResult{system: sys, w: w, failed: startErr[sys]}
		}
		for rep := 0; rep < o.repeat; rep++ {
			order := o.systems
			if (i+rep)%2 == 1 {
				order = slices.Clone(order)
				slices.Reverse(order)
			}
			for _, sys := range order {
				if startErr[sys] != nil {
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, o.rowTimeout)
				r := runWorkload(rctx, clusters[sys].(*dirCluster).cluster, w, o.duration, o.records, logw)
				cancel()
				rows[sys].runs = append(rows[sys].runs, r)
				if r.failed != nil {
					fmt.Fprintf(logw, "  %-9s %-28s FAILED: %v\n", sys, w, r.failed)
					continue
				}
				fmt.Fprintf(logw, "  %-9s %-28s %9.0f rec/s  e2e p50 %-9v p99 %-9v  consume %9.0f rec/s  (%d records, %d errors)\n",
					sys, w, r.recordsPerSec(), fmtDur(r.lat.p50()), fmtDur(r.lat.p99()), r.consumePerSec(), r.produced, r.produceErrors)
				if r.firstErr != nil {
					fmt.Fprintf(logw, "    first error: %v\n", r.firstErr)
				}
				if r.snapshot {
					fmt.Fprintf(logw, "    (a Raft snapshot was taken during this run)\n")
				}
			}
		}
		// Table order: proglog first.
		for _, sys := range o.systems {
			r := rows[sys]
			if r.failed == nil && len(r.ok()) == 0 && len(r.runs) > 0 {
				r.failed = r.runs[0].failed
			}
			out = append(out, r)
		}
	}
	return out
}

// startCluster starts one system's cluster in a fresh directory under base
// (removed when the cluster is closed).
func startCluster(ctx context.Context, base string, pki certs.DevFiles, jsTLS *jsTLS, sys string, nodes int, durability string, logw io.Writer) (cluster, error) {
	dir, err := os.MkdirTemp(base, fmt.Sprintf("%s-r%d-%s-", sys, nodes, durability))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var c cluster
	switch sys {
	case sysProglog:
		c, err = startProglog(sctx, dir, pki, nodes, durability)
	case sysJetStream:
		c, err = startJetStream(sctx, dir, jsTLS, nodes, durability)
	}
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(logw, "%s R%d %s: start failed: %v\n", sys, nodes, durability, err)
		return nil, err
	}
	fmt.Fprintf(logw, "%s R%d %s: cluster up in %v\n", sys, nodes, durability, time.Since(t0).Round(time.Millisecond))
	return &dirCluster{cluster: c, dir: dir}, nil
}

// dirCluster removes the cluster's directory when it is closed.
type dirCluster struct {
	cluster
	dir string
}

func (d *dirCluster) Close() error {
	err := d.cluster.Close()
	if rerr := os.RemoveAll(d.dir); err == nil {
		err = rerr
	}
	return err
}
