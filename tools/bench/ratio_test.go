package main

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/certs"
)

// BenchmarkConcurrentProduceRatio measures issue 15's batching goal in one
// run: 64 goroutines calling Produce (one record each call) against one
// goroutine calling ProduceBatch(100), on one node with fsync before the
// ack (go/agent's defaults), 100 B records, one shared client each. Every
// iteration runs each shape for ratioShapeTime, alternately: ProduceBatch,
// Produce with the default client, Produce with WithRejoinWait(0). It
// reports the medians over the iterations: records/s of each shape, the
// ratios to ProduceBatch(100) in the same iteration (the goal: ratio ≥ 0.6)
// and the records per Raft entry of the 64 callers. Run it with
// -benchtime=Nx for N rounds, e.g.
//
//	go test -run '^$' -bench ConcurrentProduceRatio -benchtime 7x ./tools/bench/
func BenchmarkConcurrentProduceRatio(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	pki, err := certs.EnsureDev(filepath.Join(dir, "pki"), nil)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := startProglog(ctx, filepath.Join(dir, "data"), pki, 1, durSync)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	noRejoin, err := client.New(ctx, pc.agents[0].Addr(),
		client.WithTLSFiles(pki.CACert, pki.ClientCert("root"), pki.ClientKey("root")), client.WithRejoinWait(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { noRejoin.Close() })

	batch := make([]*client.Record, 100)
	for i, v := range newPayloads(len(batch), 100) {
		batch[i] = &client.Record{Value: v}
	}
	one := newPayloads(1, 100)[0]
	raftIndex := func() float64 {
		n, err := strconv.ParseUint(pc.agents[0].Replica().Stats()["last_log_index"], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return float64(n)
	}
	produce64 := func(c *client.Client) (perSec, perEntry float64) {
		i0 := raftIndex()
		n, d := ratioRun(b, 64, func() (int, error) {
			_, err := c.Produce(ctx, &client.Record{Value: one})
			return 1, err
		})
		return n / d.Seconds(), n / (raftIndex() - i0)
	}
	var batched, rejoin, off, perEntry, perEntryOff []float64
	b.ResetTimer()
	for range b.N {
		n, d := ratioRun(b, 1, func() (int, error) {
			_, err := pc.client.ProduceBatch(ctx, batch)
			return len(batch), err
		})
		batched = append(batched, n/d.Seconds())
		r, e := produce64(pc.client)
		rejoin, perEntry = append(rejoin, r), append(perEntry, e)
		r, e = produce64(noRejoin)
		off, perEntryOff = append(off, r), append(perEntryOff, e)
	}
	ratio := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i := range xs {
			out[i] = xs[i] / batched[i]
		}
		return out
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(batched), "batch100-rec/s")
	b.ReportMetric(median(rejoin), "produce64-rec/s")
	b.ReportMetric(median(ratio(rejoin)), "ratio")
	b.ReportMetric(median(perEntry), "produce64-rec/entry")
	b.ReportMetric(median(off), "norejoin-rec/s")
	b.ReportMetric(median(ratio(off)), "norejoin-ratio")
	b.ReportMetric(median(perEntryOff), "norejoin-rec/entry")
}

// ratioShapeTime is how long each shape runs per iteration.
const ratioShapeTime = 2 * time.Second

// ratioRun runs op from conc goroutines for ratioShapeTime and returns the
// records it reported and the time taken.
func ratioRun(b *testing.B, conc int, op func() (int, error)) (float64, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(ratioShapeTime)
	for range conc {
		wg.Go(func() {
			for time.Now().Before(end) {
				k, err := op()
				if err != nil {
					b.Error(err)
					return
				}
				n.Add(int64(k))
			}
		})
	}
	wg.Wait()
	return float64(n.Load()), time.Since(t0)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
