// Package workload drives a fault-test cluster the way its users would, and
// records every request and response in a history.Recorder for the
// checker: producers appending unique values (single records and
// batches), readers doing linearizable reads of single offsets near the
// tail, and consumers following the log with ConsumeStream on any replica
// of it.
//
// Every value is produced by one operation only, so it may appear at most
// once in a correct log. By default (ProduceMode Idempotent) each producer
// goroutine is an idempotent producer (log.v1 Producer: a random ID, and
// sequences counting its records) that resends a produce that failed
// ambiguously — the same records and sequence, to the current leader —
// until it is acknowledged or the run ends; the history records it as one
// operation, Unknown only if never acknowledged, so a resend the cluster
// writes again shows as a value at two offsets. ProduceMode Once is the
// workload without idempotence: an ambiguous failure stays Unknown, never
// resent; RetryWithoutID resends without a producer ID, the negative
// control: a resend of records the cluster had committed writes them again.
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

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/history"
)

// ProduceMode is how producers send and resend their records.
type ProduceMode int

const (
	// Idempotent producers (the default) send a producer ID and sequence
	// and resend a produce that failed ambiguously until it is
	// acknowledged or the run ends.
	Idempotent ProduceMode = iota
	// Once sends no producer ID and never resends: a produce that failed
	// ambiguously stays Unknown.
	Once
	// RetryWithoutID resends like Idempotent without a producer ID, so the
	// cluster cannot recognise a resend: a negative control, whose resends
	// of records already written are written again.
	RetryWithoutID
)

func (m ProduceMode) String() string {
	switch m {
	case Idempotent:
		return "idempotent"
	case Once:
		return "once"
	case RetryWithoutID:
		return "retry-without-id"
	}
	return fmt.Sprintf("ProduceMode(%d)", int(m))
}

// ParseProduceMode parses a ProduceMode's String.
func ParseProduceMode(s string) (ProduceMode, error) {
	for m := Idempotent; m <= RetryWithoutID; m++ {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("workload: unknown produce mode %q (idempotent, once or retry-without-id)", s)
}

// Config sizes the workload.
type Config struct {
	// Topic and Partition are the partition the workload writes and
	// reads (Topic empty: the default topic, commitlog.DefaultTopic).
	// Partitions is the topic's number of partitions: each record gets a
	// key the Go client's partitioner (KeyPartition) maps to Partition,
	// as a keyed producer's record would be.
	Topic      string
	Partition  uint32
	Partitions int

	Producers, Readers, Consumers int
	// Rate is the most operations per second of each producer and reader
	// (they also wait for each response): it bounds the history the
	// linearizability checker has to search.
	Rate float64
	// MaxBatch is the largest ProduceBatch; half the produces are single
	// records.
	MaxBatch int
	// RequestTimeout bounds every call; a produce that times out is
	// Unknown until a resend is acknowledged.
	RequestTimeout time.Duration
	// Mode is how producers send and resend (default Idempotent).
	Mode ProduceMode
	Seed uint64
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
	case c.Partitions < 0 || c.Partitions > 0 && int(c.Partition) >= c.Partitions:
		return fmt.Errorf("workload: Partition %d of a topic of %d partitions", c.Partition, c.Partitions)
	case c.Mode < Idempotent || c.Mode > RetryWithoutID:
		return fmt.Errorf("workload: Mode is %v, want Idempotent, Once or RetryWithoutID", c.Mode)
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

// topic is the topic requests name.
func (w *Workload) topic() string {
	if w.cfg.Topic == "" {
		return commitlog.DefaultTopic
	}
	return w.cfg.Topic
}

// key returns a key the Go client's partitioner maps to the workload's
// partition (nil for a topic of one partition or unknown size).
func (w *Workload) key(rng *rand.Rand) []byte {
	if w.cfg.Partitions <= 1 {
		return nil
	}
	for {
		k := fmt.Appendf(nil, "k%d", rng.IntN(1<<20))
		if client.KeyPartition(k, w.cfg.Partitions) == int(w.cfg.Partition) {
			return k
		}
	}
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
	p := newProducer(rng)
	for seq := 0; w.pace(ctx, rng); {
		if w.target(rng) == nil {
			continue
		}
		k := 1
		if rng.IntN(2) == 0 && w.cfg.MaxBatch > 1 {
			k = 2 + rng.IntN(w.cfg.MaxBatch-1)
		}
		op := history.Op{Process: proc, Kind: history.Append}
		recs := make([]*logv1.Record, k)
		for i := range recs {
			v := fmt.Sprintf("p%d-%d", proc, seq)
			seq++
			op.Values = append(op.Values, v)
			recs[i] = &logv1.Record{Value: []byte(v), Key: w.key(rng)}
		}
		op.Call = time.Now()
		w.resolve(&op, p, rng,
			func(pr *logv1.Producer) attempt { return w.send(ctx, rng, recs, pr) },
			func() bool { return w.pace(ctx, rng) })
		if op.Outcome == history.OK {
			w.acked.Add(1)
			for {
				f := w.frontier.Load()
				if op.Offset+uint64(k) <= f || w.frontier.CompareAndSwap(f, op.Offset+uint64(k)) {
					break
				}
			}
		}
		w.rec.Add(op)
	}
}

// producer is the idempotence state of one producer goroutine.
type producer struct {
	id   uint64 // non-zero
	next uint64 // sequence of its next record
}

func newProducer(rng *rand.Rand) *producer {
	p := &producer{}
	p.restart(rng)
	return p
}

// restart makes p a new producer, from sequence 0.
func (p *producer) restart(rng *rand.Rand) {
	for p.id, p.next = 0, 0; p.id == 0; {
		p.id = rng.Uint64()
	}
}

// attempt is what one send of an append's records came to.
type attempt struct {
	node      string
	first     uint64
	duplicate bool
	err       error           // nil: acknowledged
	outcome   history.Outcome // for err: Failed (proved not written) or Unknown
}

// errNoNode: no member was running to send to.
var errNoNode = errors.New("workload: no running node to send to")

// send sends recs once, as one Produce or ProduceBatch with producer pr
// (nil: not idempotent), to the leader or a running member.
func (w *Workload) send(ctx context.Context, rng *rand.Rand, recs []*logv1.Record, pr *logv1.Producer) attempt {
	n := w.target(rng)
	if n == nil {
		return attempt{err: errNoNode, outcome: history.Failed}
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	a := attempt{node: n.Name}
	if len(recs) == 1 {
		var resp *logv1.ProduceResponse
		if resp, a.err = w.c.Client(n).Produce(cctx, &logv1.ProduceRequest{Record: recs[0], Producer: pr, Topic: w.topic(), Partition: w.cfg.Partition}); a.err == nil {
			a.first, a.duplicate = resp.Offset, resp.Duplicate
		}
	} else {
		var resp *logv1.ProduceBatchResponse
		if resp, a.err = w.c.Client(n).ProduceBatch(cctx, &logv1.ProduceBatchRequest{Records: recs, Producer: pr, Topic: w.topic(), Partition: w.cfg.Partition}); a.err == nil {
			a.first, a.duplicate = resp.FirstOffset, resp.Duplicate
		}
	}
	if a.err != nil {
		a.outcome, _ = w.classify(a.err, n)
	}
	return a
}

// resolve sends op's records with send until op is resolved, and records
// the outcome, the attempts and the last node and error in op (op.Call is
// the first attempt's). An append whose every attempt was refused (the
// server proved nothing written: NOT_LEADER, a full disk) is Failed at the
// first; one that may have been written is resent after backoff (false:
// the run ends) unless the mode is Once, and stays Unknown unless a resend
// is acknowledged. An idempotent producer's sequence advances past
// acknowledged records; the cluster refusing it (UNKNOWN_PRODUCER:
// expired or evicted; OUT_OF_ORDER_SEQUENCE) starts a new producer, and the
// records are sent again at once by it if no attempt can have written
// them.
func (w *Workload) resolve(op *history.Op, p *producer, rng *rand.Rand, send func(*logv1.Producer) attempt, backoff func() bool) {
	var pr *logv1.Producer
	if w.cfg.Mode == Idempotent {
		pr = &logv1.Producer{Id: p.id, Sequence: p.next}
	}
	ambiguous := false
	for {
		a := send(pr)
		op.Attempts++
		op.Return = time.Now()
		op.Node = a.node
		if a.err == nil {
			op.Outcome, op.Offset, op.Duplicate, op.Err = history.OK, a.first, a.duplicate, ""
			if pr != nil {
				p.next = pr.Sequence + uint64(len(op.Values))
			}
			return
		}
		op.Err = a.err.Error()
		if info := errorInfo(a.err); info != nil && (info.Reason == reasonUnknownProducer || info.Reason == reasonOutOfOrder) {
			p.restart(rng)
			if info.Reason == reasonUnknownProducer && !ambiguous {
				pr = &logv1.Producer{Id: p.id, Sequence: p.next}
				continue
			}
		} else {
			ambiguous = ambiguous || a.outcome == history.Unknown
			if ambiguous && w.cfg.Mode != Once && backoff() {
				continue
			}
		}
		op.Outcome = history.Failed
		if ambiguous {
			op.Outcome = history.Unknown
		}
		return
	}
}

// The ErrorInfo reasons of idempotent produces the cluster refuses
// (proto/log/v1/log.proto).
const (
	reasonUnknownProducer = "UNKNOWN_PRODUCER"
	reasonOutOfOrder      = "OUT_OF_ORDER_SEQUENCE"
)

// errorInfo is the ErrorInfo in err's status, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
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
		resp, err := w.c.Client(n).Consume(cctx, &logv1.ConsumeRequest{Offset: off, Consistency: logv1.Consistency_CONSISTENCY_LINEARIZABLE, Topic: w.topic(), Partition: w.cfg.Partition})
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
	info := errorInfo(err)
	switch status.Code(err) {
	case codes.FailedPrecondition:
		// NOT_LEADER, or an idempotent produce refused (UNKNOWN_PRODUCER,
		// OUT_OF_ORDER_SEQUENCE): nothing written.
		if info != nil && info.Reason == "NOT_LEADER" {
			// A hint naming a node that is not at that address any
			// more (a node holding no replica names the partition's
			// first replica, which may be a replaced node whose address
			// a fresh node took) is dropped: the next request goes to a
			// random member.
			if l := w.c.ByAddr(info.Metadata["leader_addr"]); l != nil && l.Name == info.Metadata["leader_id"] {
				w.leader.Store(l)
			} else {
				w.leader.CompareAndSwap(n, nil)
			}
		}
		return history.Failed, err.Error()
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.OutOfRange:
		return history.Failed, err.Error()
	case codes.ResourceExhausted:
		// A full disk (LOW_DISK_SPACE) is refused before anything is
		// written; other limits are not expected from this workload.
		if info != nil && info.Reason == "LOW_DISK_SPACE" {
			return history.Failed, err.Error()
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
		// A node holding no replica of the partition (on 5 nodes, two)
		// has nothing to stream.
		replicas, _ := w.c.Replicas(ctx, w.topic(), w.cfg.Partition)
		n := cluster.Random(rng, replicas, func(n *cluster.Node) bool { return n.Running() && !n.Paused() })
		if n == nil {
			time.Sleep(100 * time.Millisecond) // nothing to read from yet
			continue
		}
		s := history.Session{Consumer: k, Node: n.Name, From: next}
		// Each stream lasts a few seconds, so consumers hop between nodes
		// (and onto nodes that just recovered) during the run.
		sctx, cancel := context.WithTimeout(ctx, time.Duration(2+rng.IntN(4))*time.Second)
		stream, err := w.c.Client(n).ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: next, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER, Topic: w.topic(), Partition: w.cfg.Partition})
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
