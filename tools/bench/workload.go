package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	sysProglog   = "proglog"
	sysJetStream = "jetstream"

	durSync    = "sync"    // fsync before the acknowledgement
	durRelaxed = "relaxed" // fsync every 2 minutes
)

// cluster is one running system under test, as its Go client sees it.
type cluster interface {
	// Produce appends recs: one record (unbatched) or a batch, and returns
	// once every record is acknowledged.
	Produce(ctx context.Context, recs [][]byte) error
	// Position is where the next record will be: proglog's next offset,
	// JetStream's next sequence.
	Position(ctx context.Context) (uint64, error)
	// Follow reads the log from position from on, in order, calling fn with
	// each record's value until fn returns false (nil) or ctx ends.
	Follow(ctx context.Context, from uint64, fn func(value []byte) bool) error
	Close() error
}

// workload is one row of the matrix, less the system.
type workload struct {
	nodes, size, producers, batch int
	durability                    string
}

func (w workload) String() string {
	return fmt.Sprintf("R%d %dB p%d b%d %s", w.nodes, w.size, w.producers, w.batch, w.durability)
}

// runResult is what one system did in one run of a workload.
type runResult struct {
	produced      int // acknowledged records
	produceErrors int
	produceTime   time.Duration
	firstErr      error

	lat      latencies // end to end: produce call start -> the follower has it
	followed int       // measured records the live follower saw

	consumed    int
	consumeTime time.Duration

	snapshot bool // proglog took a Raft snapshot during the run

	failed error // the run could not be made
}

func (r *runResult) recordsPerSec() float64 {
	if r.produceTime <= 0 {
		return 0
	}
	return float64(r.produced) / r.produceTime.Seconds()
}

func (r *runResult) consumePerSec() float64 {
	if r.consumeTime <= 0 {
		return 0
	}
	return float64(r.consumed) / r.consumeTime.Seconds()
}

// rowResult is what one system did on one workload: one or more runs
// (--repeat), each figure the median over the runs.
type rowResult struct {
	system string
	w      workload
	runs   []runResult
	failed error // no run succeeded
}

func (r *rowResult) ok() []runResult {
	var out []runResult
	for _, x := range r.runs {
		if x.failed == nil {
			out = append(out, x)
		}
	}
	return out
}

func medianOf(runs []runResult, f func(*runResult) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i := range runs {
		v[i] = f(&runs[i])
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (r *rowResult) recordsPerSec() float64 {
	return medianOf(r.ok(), (*runResult).recordsPerSec)
}

func (r *rowResult) mbPerSec() float64 { return r.recordsPerSec() * float64(r.w.size) / 1e6 }

func (r *rowResult) consumePerSec() float64 {
	return medianOf(r.ok(), (*runResult).consumePerSec)
}

func (r *rowResult) latQ(q float64) time.Duration {
	runs := r.ok()
	for _, x := range runs {
		if len(x.lat) == 0 {
			return -1
		}
	}
	if len(runs) == 0 {
		return -1
	}
	return time.Duration(medianOf(runs, func(x *runResult) float64 { return float64(x.lat.quantile(q)) }))
}

func (r *rowResult) p50() time.Duration  { return r.latQ(0.50) }
func (r *rowResult) p99() time.Duration  { return r.latQ(0.99) }
func (r *rowResult) p999() time.Duration { return r.latQ(0.999) }

// produced, consumed and errors are totals over the runs.
func (r *rowResult) totals() (produced, consumed, errs int, firstErr error) {
	for _, x := range r.runs {
		produced += x.produced
		consumed += x.consumed
		errs += x.produceErrors
		if firstErr == nil {
			firstErr = x.firstErr
		}
	}
	return
}

// epoch is the origin of the timestamps written into the records; the
// clients and servers share this process, hence this monotonic clock.
var epoch = time.Now()

func stamp(b []byte) { binary.LittleEndian.PutUint64(b, uint64(time.Since(epoch))) }

func stampOf(b []byte) time.Duration {
	if len(b) < 8 {
		return -1
	}
	return time.Duration(binary.LittleEndian.Uint64(b))
}

// snapshotter is a cluster that takes snapshots the run should know of
// (proglog's copy its whole data log).
type snapshotter interface{ snapshotIndex() uint64 }

// warmupCalls is how many produce calls precede the measured phase.
const warmupCalls = 3

// runWorkload drives w against c: a live follower is started, a few
// warm-up calls are made and awaited by the follower (so that both the
// produce path and the follower are established), then producers run for
// at most duration or maxRecords records while the follower measures
// end-to-end latency, and finally a fresh consumer reads the measured
// records back.
func runWorkload(ctx context.Context, c cluster, w workload, duration time.Duration, maxRecords int, logw io.Writer) runResult {
	var res runResult
	if sn, ok := c.(snapshotter); ok {
		before := sn.snapshotIndex()
		defer func() { res.snapshot = sn.snapshotIndex() != before }()
	}
	start, err := c.Position(ctx)
	if err != nil {
		res.failed = fmt.Errorf("position: %w", err)
		return res
	}
	warmN := warmupCalls * w.batch

	// The live follower. It counts every record from start on and samples
	// the latency of those after the warm-up.
	var (
		target   atomic.Int64 // records to wait for (warm-up included); -1: not known yet
		followMu sync.Mutex
		samples  = make([]time.Duration, 0, maxRecords+w.batch*w.producers)
		followed int
		progress = make(chan struct{}, 1)
	)
	target.Store(-1)
	followCtx, stopFol := context.WithCancel(ctx)
	defer stopFol()
	folDone := make(chan error, 1)
	go func() {
		folDone <- c.Follow(followCtx, start, func(v []byte) bool {
			now := time.Since(epoch)
			followMu.Lock()
			if followed >= warmN {
				if ts := stampOf(v); ts >= 0 {
					samples = append(samples, now-ts)
				}
			}
			followed++
			n := followed
			followMu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			t := target.Load()
			return t < 0 || int64(n) < t
		})
	}()
	seen := func() int {
		followMu.Lock()
		defer followMu.Unlock()
		return followed
	}
	// waitSeen waits until the follower saw n records, it ended, or d passed.
	waitSeen := func(n int, d time.Duration) bool {
		timeout := time.After(d)
		for seen() < n {
			select {
			case <-progress:
			case err := <-folDone:
				folDone <- err
				return seen() >= n
			case <-timeout:
				return false
			case <-ctx.Done():
				return false
			}
		}
		return true
	}

	// Warm-up: connections, leader discovery, the follower's subscription.
	warm := newPayloads(w.batch, w.size)
	for i := 0; i < warmupCalls; i++ {
		stampAll(warm)
		if err := c.Produce(ctx, warm); err != nil {
			res.failed = fmt.Errorf("warm-up produce: %w", err)
			return res
		}
	}
	if !waitSeen(warmN, 30*time.Second) {
		res.failed = fmt.Errorf("the follower did not see the %d warm-up records within 30s (saw %d)", warmN, seen())
		return res
	}
	measured, err := c.Position(ctx)
	if err != nil {
		res.failed = fmt.Errorf("position: %w", err)
		return res
	}

	// Producers.
	var (
		reserved atomic.Int64
		acked    atomic.Int64
		errs     atomic.Int64
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	t0 := time.Now()
	for p := 0; p < w.producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := newPayloads(w.batch, w.size)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if reserved.Add(int64(w.batch)) > int64(maxRecords) {
					return
				}
				stampAll(recs)
				if err := c.Produce(ctx, recs); err != nil {
					errs.Add(1)
					errOnce.Do(func() { res.firstErr = err })
					if ctx.Err() != nil {
						return
					}
					continue
				}
				acked.Add(int64(w.batch))
			}
		}()
	}
	wg.Wait()
	res.produceTime = time.Since(t0)
	res.produced = int(acked.Load())
	res.produceErrors = int(errs.Load())

	// Let the follower catch up with everything acknowledged.
	total := warmN + res.produced
	target.Store(int64(total))
	if !waitSeen(total, 30*time.Second) {
		fmt.Fprintf(logw, "  the follower saw %d of %d records within 30s\n", seen()-warmN, res.produced)
	}
	stopFol()
	if err := <-folDone; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(logw, "  follower: %v\n", err)
	}
	followMu.Lock()
	res.lat = newLatencies(samples)
	res.followed = followed - warmN
	followMu.Unlock()

	// Read the measured records back with a fresh consumer.
	if res.produced > 0 {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		n := 0
		t1 := time.Now()
		err := c.Follow(cctx, measured, func([]byte) bool {
			n++
			return n < res.produced
		})
		res.consumeTime = time.Since(t1)
		cancel()
		res.consumed = n
		if err != nil && n < res.produced {
			fmt.Fprintf(logw, "  consume: %v after %d of %d records\n", err, n, res.produced)
		}
	}
	return res
}

// newPayloads returns n random records of size bytes each (random, so that
// neither system gains from compression anywhere).
func newPayloads(n, size int) [][]byte {
	buf := make([]byte, n*size)
	_, _ = rand.Read(buf)
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return out
}

func stampAll(recs [][]byte) {
	now := uint64(time.Since(epoch))
	for _, r := range recs {
		binary.LittleEndian.PutUint64(r, now)
	}
}
