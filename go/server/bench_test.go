package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/proglog/proglog/go/seglog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// The sync policy of the benchmarked logs: "never" (default) measures what
// the server adds on top of the engine; "always" shows durable throughput.
var benchSync = flag.String("proglog.sync", "never", "storage sync policy for benchmarks: never, interval or always")

func benchSyncPolicy(b *testing.B) seglog.SyncPolicy {
	switch *benchSync {
	case "never":
		return seglog.SyncNever
	case "interval":
		return seglog.SyncInterval
	case "always":
		return seglog.SyncAlways
	}
	b.Fatalf("-proglog.sync=%q: want never, interval or always", *benchSync)
	return 0
}

var benchSizes = []struct {
	name string
	size int
}{{"100B", 100}, {"1KiB", 1024}}

const benchBatch = 100

// benchRecord is a record with a value of n bytes and a fixed timestamp, so
// the server stores exactly what the raw baseline appends.
func benchRecord(n int) *logv1.Record {
	return &logv1.Record{Value: bytes.Repeat([]byte{'v'}, n), Timestamp: timestamppb.New(time.Unix(1700000000, 0))}
}

// latencies collects per-call durations and reports p50/p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(l[len(l)/2]), "p50-µs")
	b.ReportMetric(us(l[len(l)*99/100]), "p99-µs")
}

// rate reports records/s and, against the raw baseline for the same size
// measured in this run, the fraction of the engine's rate achieved.
func rate(b *testing.B, records int, baseline map[string]float64, key string) float64 {
	r := float64(records) / b.Elapsed().Seconds()
	b.ReportMetric(r, "records/s")
	if base, ok := baseline[key]; ok && base > 0 {
		b.ReportMetric(r/base, "x-raw-append")
	}
	return r
}

func newBenchLog(b *testing.B) *seglog.Log {
	cfg := seglog.DefaultConfig()
	cfg.Sync = benchSyncPolicy(b)
	l, err := seglog.Open(b.TempDir(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func newBenchServer(b *testing.B) *fixture {
	policy := benchSyncPolicy(b)
	f := newFixture(b, fixtureOpts{storage: func(c *seglog.Config) { c.Sync = policy }})
	return f
}

// warmAppend writes one record before the timer starts: a fresh log's first
// append pays one-off costs (file growth, page faults of the mapped index)
// that would otherwise dominate a short run.
func warmAppend(b *testing.B, l *seglog.Log, rec []byte) {
	if _, err := l.Append(rec); err != nil {
		b.Fatal(err)
	}
}

// benchClient returns a connected root client: one call before the timer
// starts keeps the TLS handshake out of the measurement.
func benchClient(b *testing.B, f *fixture) logv1.LogClient {
	c := f.client("root")
	if _, err := c.GetServers(context.Background(), &logv1.GetServersRequest{}); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkProduce measures appends over gRPC+TLS on loopback — one op is
// one record — next to the engine's raw Append on the same machine.
func BenchmarkProduce(b *testing.B) {
	for _, sz := range benchSizes {
		baseline := map[string]float64{}
		rec := benchRecord(sz.size)
		encoded, _ := proto.Marshal(rec)

		b.Run("raw-append/"+sz.name, func(b *testing.B) {
			l := newBenchLog(b)
			warmAppend(b, l, encoded)
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			var lat latencies = make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := l.Append(encoded); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.report(b)
			baseline[sz.name] = rate(b, b.N, nil, "")
		})

		b.Run("raw-batch100/"+sz.name, func(b *testing.B) {
			l := newBenchLog(b)
			warmAppend(b, l, encoded)
			batch := make([][]byte, benchBatch)
			for i := range batch {
				batch[i] = encoded
			}
			b.SetBytes(int64(len(encoded)))
			b.ResetTimer()
			for done := 0; done < b.N; done += benchBatch {
				if _, err := l.AppendBatch(batch[:min(benchBatch, b.N-done)]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			rate(b, b.N, baseline, sz.name)
		})

		b.Run("unary/"+sz.name, func(b *testing.B) {
			f := newBenchServer(b)
			warmAppend(b, f.storage, encoded)
			c := benchClient(b, f)
			ctx := context.Background()
			req := &logv1.ProduceRequest{Record: rec}
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			var lat latencies = make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := c.Produce(ctx, req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.report(b)
			rate(b, b.N, baseline, sz.name)
			checkNext(b, f, b.N+1)
		})

		b.Run("batch100/"+sz.name, func(b *testing.B) {
			f := newBenchServer(b)
			warmAppend(b, f.storage, encoded)
			c := benchClient(b, f)
			ctx := context.Background()
			recs := make([]*logv1.Record, benchBatch)
			for i := range recs {
				recs[i] = rec
			}
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			var lat latencies // per batch call
			b.ResetTimer()
			for done := 0; done < b.N; done += benchBatch {
				start := time.Now()
				if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs[:min(benchBatch, b.N-done)]}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.report(b)
			rate(b, b.N, baseline, sz.name)
			checkNext(b, f, b.N+1)
		})

		b.Run("stream/"+sz.name, func(b *testing.B) {
			f := newBenchServer(b)
			warmAppend(b, f.storage, encoded)
			c := benchClient(b, f)
			stream, err := c.ProduceStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			req := &logv1.ProduceRequest{Record: rec}
			sent := make([]time.Time, b.N)
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			var lat latencies = make([]time.Duration, 0, b.N)
			b.ResetTimer()
			// Pipelined: the sender runs ahead; latency is send → ack.
			errc := make(chan error, 1)
			go func() {
				for i := range b.N {
					sent[i] = time.Now()
					if err := stream.Send(req); err != nil {
						errc <- err
						return
					}
				}
				errc <- stream.CloseSend()
			}()
			for i := range b.N {
				if _, err := stream.Recv(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(sent[i]))
			}
			b.StopTimer()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			lat.report(b)
			rate(b, b.N, baseline, sz.name)
			checkNext(b, f, b.N+1)
		})
	}
}

func checkNext(b *testing.B, f *fixture, n int) {
	if got := f.storage.NextOffset(); got != uint64(n) {
		b.Fatalf("log holds %d records after %d produced", got, n)
	}
}

// BenchmarkConsume measures reads of preloaded records over gRPC+TLS next to
// the engine's raw Read.
func BenchmarkConsume(b *testing.B) {
	for _, sz := range benchSizes {
		baseline := map[string]float64{}
		encoded, _ := proto.Marshal(benchRecord(sz.size))
		preload := func(b *testing.B, l *seglog.Log) {
			batch := make([][]byte, benchBatch)
			for i := range batch {
				batch[i] = encoded
			}
			for done := 0; done < b.N; done += benchBatch {
				if _, err := l.AppendBatch(batch[:min(benchBatch, b.N-done)]); err != nil {
					b.Fatal(err)
				}
			}
		}

		b.Run("raw-read/"+sz.name, func(b *testing.B) {
			l := newBenchLog(b)
			preload(b, l)
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := l.Read(uint64(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			baseline[sz.name] = rate(b, b.N, nil, "")
		})

		b.Run("unary/"+sz.name, func(b *testing.B) {
			f := newBenchServer(b)
			preload(b, f.storage)
			c := benchClient(b, f)
			ctx := context.Background()
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			var lat latencies = make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i)}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			lat.report(b)
			rateVsRead(b, baseline, sz.name)
		})

		b.Run("stream/"+sz.name, func(b *testing.B) {
			f := newBenchServer(b)
			preload(b, f.storage)
			c := benchClient(b, f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.SetBytes(int64(len(encoded)))
			b.ReportAllocs()
			b.ResetTimer()
			stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
			if err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				resp, err := stream.Recv()
				if err != nil {
					b.Fatal(err)
				}
				if resp.Record.Offset != uint64(i) {
					b.Fatal(fmt.Sprintf("offset %d, want %d", resp.Record.Offset, i))
				}
			}
			b.StopTimer()
			rateVsRead(b, baseline, sz.name)
		})
	}
}

// rateVsRead reports records/s and the fraction of the raw Read rate.
func rateVsRead(b *testing.B, baseline map[string]float64, key string) {
	r := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(r, "records/s")
	if base, ok := baseline[key]; ok && base > 0 {
		b.ReportMetric(r/base, "x-raw-read")
	}
}
