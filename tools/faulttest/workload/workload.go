// Package workload drives a fault-test cluster the way its users would, and
// records every request and response in a history.Recorder for the
// checker: producers appending unique values (single records and
// batches), readers doing linearizable reads of single offsets near the
// tail, and consumers following the log with ConsumeStream on any node.
//
// Producers never resend a value: a produce that failed ambiguously stays
// Unknown (its record may or may not be in the log), so every value can
// appear at most once in a correct log.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/history"
)

// Config sizes the workload.
type Config struct {
	Producers, Readers, Consumers int
	// Rate is the most operations per second of each producer and reader
	// (they also wait for each response): it bounds the history the
	// linearizability checker has to search.
	Rate float64
	// MaxBatch is the largest ProduceBatch; half the produces are single
	// records.
	MaxBatch int
	// RequestTimeout bounds every call; a produce that times out is
	// Unknown.
	RequestTimeout time.Duration
	Seed           uint64
}

// DefaultConfig is a small, steady workload.
func DefaultConfig() Config {
	return Config{Producers: 4, Readers: 2, Consumers: 2, Rate: 80, MaxBatch: 5, RequestTimeout: 2 * time.Second, Seed: 1}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Producers < 1:
		return fmt.Errorf("workload: Producers is %d, want at least 1", c.Producers)
	case c.Readers < 0 || c.Consumers < 0:
		return errors.New("workload: Readers and Consumers must not be negative")
	case c.Rate <= 0:
		return fmt.Errorf("workload: Rate is %v, want > 0", c.Rate)
	case c.MaxBatch < 1:
		return fmt.Errorf("workload: MaxBatch is %d, want at least 1", c.MaxBatch)
	case c.RequestTimeout <= 0:
		return errors.New("workload: RequestTimeout must be positive")
	}
	return nil
}

// Workload is a running workload.
type Workload struct {
	cfg    Config
	c      *cluster.Cluster
	rec    *history.Recorder
	cancel context.CancelFunc
	wg     sync.WaitGroup

	leader   atomic.Pointer[cluster.Node] // where producers and readers send requests
	acked    atomic.Int64                 // acknowledged produce calls
	frontier atomic.Uint64                // 1 + highest acknowledged offset
}

// Start starts the workload; Stop ends it.
func Start(c *cluster.Cluster, rec *history.Recorder, cfg Config) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workload{cfg: cfg, c: c, rec: rec, cancel: cancel}
	for p := range cfg.Producers {
		w.goRun(func() { w.produce(ctx, p) })
	}
	for r := range cfg.Readers {
		w.goRun(func() { w.read(ctx, cfg.Producers+r) })
	}
	for k := range cfg.Consumers {
		w.goRun(func() { w.consume(ctx, k) })
	}
	return w, nil
}

func (w *Workload) goRun(f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
}

// Stop ends every client and waits for them: calls in flight are
// cancelled (and recorded as Unknown or dropped reads).
func (w *Workload) Stop() {
	w.cancel()
	w.wg.Wait()
}

// WaitAcked waits until n more produce calls than now are acknowledged.
func (w *Workload) WaitAcked(ctx context.Context, n int64, timeout time.Duration) error {
	target := w.acked.Load() + n
	deadline := time.Now().Add(timeout)
	for w.acked.Load() < target {
		if time.Now().After(deadline) {
			return fmt.Errorf("workload: %d of %d acknowledgements within %v", w.acked.Load()-target+n, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // polling interval
		}
	}
	return nil
}

// SetLeader points producers and readers at n (the nemesis knows first
// when it kills or isolates a leader; they also follow NOT_LEADER hints).
func (w *Workload) SetLeader(n *cluster.Node) { w.leader.Store(n) }

// target is where the next request goes: the known leader, else a random
// running member.
func (w *Workload) target(rng *rand.Rand) *cluster.Node {
	if n := w.leader.Load(); n != nil && n.Running() {
		return n
	}
	return cluster.Random(rng, w.c.Running(), nil)
}

// pace sleeps so that one client does at most Rate operations per second,
// with jitter so that clients do not march in step.
func (w *Workload) pace(ctx context.Context, rng *rand.Rand) bool {
	d := time.Duration((0.5 + rng.Float64()) * float64(time.Second) / w.cfg.Rate)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (w *Workload) produce(ctx context.Context, proc int) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(proc)))
	for seq := 0; w.pace(ctx, rng); {
		n := w.target(rng)
		if n == nil {
			continue
		}
		k := 1
		if rng.IntN(2) == 0 && w.cfg.MaxBatch > 1 {
			k = 2 + rng.IntN(w.cfg.MaxBatch-1)
		}
		op := history.Op{Process: proc, Node: n.Name, Kind: history.Append}
		recs := make([]*logv1.Record, k)
		for i := range recs {
			v := fmt.Sprintf("p%d-%d", proc, seq)
			seq++
			op.Values = append(op.Values, v)
			recs[i] = &logv1.Record{Value: []byte(v)}
		}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
		op.Call = time.Now()
		var err error
		if k == 1 {
			var resp *logv1.ProduceResponse
			if resp, err = w.c.Client(n).Produce(cctx, &logv1.ProduceRequest{Record: recs[0]}); err == nil {
				op.Offset = resp.Offset
			}
		} else {
			var resp *logv1.ProduceBatchResponse
			if resp, err = w.c.Client(n).ProduceBatch(cctx, &logv1.ProduceBatchRequest{Records: recs}); err == nil {
				op.Offset = resp.FirstOffset
			}
		}
		op.Return = time.Now()
		cancel()
		if err == nil {
			op.Outcome = history.OK
			w.acked.Add(1)
			for {
				f := w.frontier.Load()
				if op.Offset+uint64(k) <= f || w.frontier.CompareAndSwap(f, op.Offset+uint64(k)) {
					break
				}
			}
		} else {
			op.Outcome, op.Err = w.classify(err, n)
		}
		w.rec.Add(op)
	}
}

func (w *Workload) read(ctx context.Context, proc int) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(proc)))
	for w.pace(ctx, rng) {
		n := w.target(rng)
		if n == nil {
			continue
		}
		// Mostly the tail, where a stale read would show: the newest
		// acknowledged records and just past them.
		f := w.frontier.Load()
		var off uint64
		if f == 0 || rng.IntN(4) > 0 {
			off = f + uint64(rng.IntN(3))
			off -= min(off, 2)
		} else {
			off = rng.Uint64N(f)
		}
		op := history.Op{Process: proc, Node: n.Name, Kind: history.Read, Offset: off}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
		op.Call = time.Now()
		resp, err := w.c.Client(n).Consume(cctx, &logv1.ConsumeRequest{Offset: off, Consistency: logv1.Consistency_CONSISTENCY_LINEARIZABLE})
		op.Return = time.Now()
		cancel()
		switch {
		case err == nil:
			op.Outcome, op.Found, op.Value = history.OK, true, string(resp.Record.Value)
		case status.Code(err) == codes.OutOfRange:
			op.Outcome = history.OK
		default:
			op.Outcome, op.Err = w.classify(err, n)
		}
		w.rec.Add(op)
	}
}

// classify tells a failure that proves nothing was written (the server
// refused: not the leader, bad request, disk full) from one that leaves it open, and
// follows NOT_LEADER hints.
func (w *Workload) classify(err error, n *cluster.Node) (history.Outcome, string) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.FailedPrecondition:
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == "NOT_LEADER" {
				if l := w.c.ByAddr(info.Metadata["leader_addr"]); l != nil {
					w.leader.Store(l)
				}
			}
		}
		return history.Failed, err.Error()
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.OutOfRange:
		return history.Failed, err.Error()
	case codes.ResourceExhausted:
		// A full disk (LOW_DISK_SPACE) is refused before anything is
		// written; other limits are not expected from this workload.
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == "LOW_DISK_SPACE" {
				return history.Failed, err.Error()
			}
		}
	}
	// Unavailable, DeadlineExceeded, Canceled, Internal...: the request may
	// have been applied. Try elsewhere next time.
	w.leader.CompareAndSwap(n, nil)
	return history.Unknown, err.Error()
}

// consume follows the log from offset 0 with ConsumeStream (follower
// reads), moving to another node whenever a stream ends, resuming after the
// last record received.
func (w *Workload) consume(ctx context.Context, k int) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(1000+k)))
	var next uint64
	for ctx.Err() == nil {
		n := cluster.Random(rng, w.c.Running(), func(n *cluster.Node) bool { return !n.Paused() })
		if n == nil {
			time.Sleep(100 * time.Millisecond) // nothing to read from yet
			continue
		}
		s := history.Session{Consumer: k, Node: n.Name, From: next}
		// Each stream lasts a few seconds, so consumers hop between nodes
		// (and onto nodes that just recovered) during the run.
		sctx, cancel := context.WithTimeout(ctx, time.Duration(2+rng.IntN(4))*time.Second)
		stream, err := w.c.Client(n).ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: next, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER})
		for err == nil {
			var resp *logv1.ConsumeResponse
			if resp, err = stream.Recv(); err == nil {
				s.Deliveries = append(s.Deliveries, history.Delivery{Offset: resp.Record.Offset, Value: string(resp.Record.Value), At: time.Now()})
				next = resp.Record.Offset + 1
			}
		}
		cancel()
		if ctx.Err() == nil && status.Code(err) != codes.DeadlineExceeded {
			s.End = err.Error()
		}
		w.rec.AddSession(s)
		if ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond) // rate limit reconnects
		}
	}
}
