package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// instantLog is a LogClient whose ProduceBatch answers at once, without a
// connection, so that a benchmark measures the client's own per-record
// cost: queueing, waking the sender, building the request, completing the
// callers. It counts the requests and the records, and the time from each
// answer to the next request (the callers' turnaround). Its other calls
// answer UNIMPLEMENTED, so the client routes without topic metadata.
type instantLog struct {
	logv1.LogClient // nil: calls not overridden panic

	mu         sync.Mutex
	next       uint64
	requests   int
	answeredAt time.Time     // zero before the first answer
	turnaround time.Duration // summed over the requests after the first
}

func (l *instantLog) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest, _ ...grpc.CallOption) (*logv1.ProduceBatchResponse, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.answeredAt.IsZero() {
		l.turnaround += now.Sub(l.answeredAt)
	}
	first := l.next
	l.next += uint64(len(req.GetRecords()))
	l.requests++
	l.answeredAt = time.Now()
	return &logv1.ProduceBatchResponse{FirstOffset: first}, nil
}

func (l *instantLog) GetMetadata(context.Context, *logv1.GetMetadataRequest, ...grpc.CallOption) (*logv1.GetMetadataResponse, error) {
	return nil, status.Error(codes.Unimplemented, "instantLog has no metadata")
}

// report adds the records per request and the mean turnaround to b's
// metrics.
func (l *instantLog) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.requests > 1 {
		b.ReportMetric(float64(l.next)/float64(l.requests), "records/request")
		b.ReportMetric(float64(l.turnaround.Microseconds())/float64(l.requests-1), "µs-turnaround")
	}
}

// newInstantClient is a Client (default options but opts) over an
// instantLog; its batchers are closed when b ends.
func newInstantClient(b *testing.B, opts ...Option) (*Client, *instantLog) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		b.Fatal(err)
	}
	l := &instantLog{}
	c := &Client{
		cfg: cfg, log: l,
		batchers:  map[partKey]*batcher{},
		producers: map[partKey]*producers{},
		sticky:    map[string]uint32{},
		queued:    newQueueBound(cfg.maxQueuedBytes),
	}
	c.meta = &metadataCache{c: c, topics: map[string]*topicEntry{}}
	c.def = c.Topic(DefaultTopic).Partition(0)
	b.Cleanup(func() {
		c.closed.Store(true)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, bt := range c.batchers {
			bt.close()
		}
	})
	return c, l
}

// BenchmarkProduceCallers is Produce from 1 and 64 goroutines (one record
// a call, 100 B, a context without deadline as in tools/bench's
// BenchmarkConcurrentProduceRatio) against a server that answers at once:
// ns/op is the wall time per record, allocs/op and B/op the client's
// allocations per record, µs-turnaround the time from an answer to the
// next request (64 callers: their wake-up and next Produce, the batcher's
// wake-up and request building). Compare runs made back to back.
func BenchmarkProduceCallers(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			c, l := newInstantClient(b)
			ctx := context.Background()
			value := make([]byte, 100)
			var ops atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range callers {
				wg.Go(func() {
					for ops.Add(1) <= int64(b.N) {
						if _, err := c.Produce(ctx, &Record{Value: value}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			l.report(b)
		})
	}
}

// BenchmarkProduceAsync is ProduceAsync from one goroutine, waiting for
// every 1000th record: the per-record cost of queueing and completing
// without a caller's wake-up.
func BenchmarkProduceAsync(b *testing.B) {
	c, l := newInstantClient(b)
	ctx := context.Background()
	value := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
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
	l.report(b)
}
