package client

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// benchLog is a LogClient whose ProduceBatch answers without a connection,
// after roundTrip (a timer: no CPU), so that a benchmark measures the
// client's own cost: queueing, waking the sender, building the request,
// completing the callers. It counts the requests and the records, and the
// time from each answer to the next request (the callers' turnaround).
// Its other calls answer UNIMPLEMENTED, so the client routes without
// topic metadata.
type benchLog struct {
	logv1.LogClient // nil: calls not overridden panic
	roundTrip       time.Duration

	mu         sync.Mutex
	next       uint64
	requests   int
	answeredAt time.Time     // zero before the first answer
	turnaround time.Duration // summed over the requests after the first
}

func (l *benchLog) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest, _ ...grpc.CallOption) (*logv1.ProduceBatchResponse, error) {
	l.mu.Lock()
	if !l.answeredAt.IsZero() {
		l.turnaround += time.Since(l.answeredAt)
	}
	l.mu.Unlock()
	if l.roundTrip > 0 {
		t := time.NewTimer(l.roundTrip)
		<-t.C
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next
	l.next += uint64(len(req.GetRecords()))
	l.requests++
	l.answeredAt = time.Now()
	return &logv1.ProduceBatchResponse{FirstOffset: first}, nil
}

func (l *benchLog) GetMetadata(context.Context, *logv1.GetMetadataRequest, ...grpc.CallOption) (*logv1.GetMetadataResponse, error) {
	return nil, status.Error(codes.Unimplemented, "benchLog has no metadata")
}

// report adds the records per request and the mean turnaround to b's
// metrics.
func (l *benchLog) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.requests > 1 {
		b.ReportMetric(float64(l.next)/float64(l.requests), "records/request")
		b.ReportMetric(float64(l.turnaround.Microseconds())/float64(l.requests-1), "µs-turnaround")
	}
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newBenchClient is a Client with default options over a benchLog
// answering after roundTrip; its batchers are closed when b ends.
func newBenchClient(b *testing.B, roundTrip time.Duration) (*Client, *benchLog) {
	cfg := defaultConfig()
	if err := cfg.validate(); err != nil {
		b.Fatal(err)
	}
	l := &benchLog{roundTrip: roundTrip}
	c := &Client{
		cfg: cfg, log: l,
		producers: map[partKey]*producers{},
		sticky:    map[string]uint32{},
		queued:    newQueueBound(cfg.maxQueuedBytes),
	}
	c.meta = &metadataCache{c: c, topics: map[string]*topicEntry{}}
	c.def = c.Topic(DefaultTopic).Partition(0)
	b.Cleanup(func() {
		c.closed.Store(true)
		for _, bt := range c.allBatchers() {
			bt.close()
		}
	})
	return c, l
}

// benchRoundTrip is the simulated round trip of BenchmarkProduce64:
// about a request's on tools/bench's one dev node (an fsync), far longer
// than the callers' turnaround, so that every caller queues its next
// record before the answer, as there.
const benchRoundTrip = 500 * time.Microsecond

// BenchmarkProduce64 is Produce from 64 goroutines (one record a call,
// 100 B, a context without deadline, default options, as in tools/bench's
// BenchmarkConcurrentProduceRatio) against an in-process server answering
// after benchRoundTrip. cpu-ns/op is the process's CPU time per record
// (all of it the client's, and steadier than wall time on a shared
// machine), allocs/op and B/op the allocations per record, µs-turnaround
// the time from an answer to the next request: the 64 callers' wake-up
// and next Produce and the batcher's wake-up and request building, which
// adds to every round trip (ns/op is the wall time per record: round trip
// and turnaround over the records per request). The callers start
// together and stop once b.N records are produced.
func BenchmarkProduce64(b *testing.B) {
	benchProduce(b, 64, benchRoundTrip)
}

// BenchmarkProduce1 is Produce from one goroutine against a server
// answering at once: the whole path of a lone call (the figures as in
// BenchmarkProduce64).
func BenchmarkProduce1(b *testing.B) {
	benchProduce(b, 1, 0)
}

func benchProduce(b *testing.B, callers int, roundTrip time.Duration) {
	c, l := newBenchClient(b, roundTrip)
	ctx := context.Background()
	value := make([]byte, 100)
	var ops atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			for ops.Add(1) <= int64(b.N) {
				if _, err := c.Produce(ctx, &Record{Value: value}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	close(start)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	l.report(b)
}

// BenchmarkProduceAsync is ProduceAsync from one goroutine against a
// server answering at once, waiting for every 1000th record: the
// per-record cost of queueing and completing without a caller's wake-up
// (the figures as in BenchmarkProduce64).
func BenchmarkProduceAsync(b *testing.B) {
	c, l := newBenchClient(b, 0)
	ctx := context.Background()
	value := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	var f *ProduceFuture
	for i := range b.N {
		f = c.ProduceAsync(ctx, &Record{Value: value})
		if i%1000 == 999 {
			if _, err := f.Result(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := f.Result(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	l.report(b)
}
