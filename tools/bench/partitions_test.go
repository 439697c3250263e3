package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/seglog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Issue 17's measurements: produce throughput of one topic by partitions
// (beside JetStream by streams) and the idle cost of partitions per node.
// See README.md ("Topics and partitions") for the commands.

var (
	idleStages        = flag.String("idle-partitions", "100,1000", "BenchmarkIdlePartitions: partitions per node to measure, in increasing order")
	idleCommitTimeout = flag.Duration("idle-commit-timeout", 0, "BenchmarkIdlePartitions: the agents' CommitTimeout (0: go/agent's default)")
)

// partitionShapeTime is how long each shape of BenchmarkPartitionsProduce
// runs per iteration; idleWindow how long BenchmarkIdlePartitions measures
// per iteration.
const (
	partitionShapeTime = 2 * time.Second
	idleWindow         = 5 * time.Second
)

// Producers of each shape of BenchmarkPartitionsProduce: unbatched
// goroutines each have one record in flight (the Go client coalesces them
// per partition); batched goroutines each send 100 keyed records and wait
// for all of them.
const (
	unbatchedProducers = 64
	batchedProducers   = 4
	batchRecords       = 100
)

// BenchmarkPartitionsProduce measures the aggregate produce throughput of
// one topic of 1, 3 and 6 partitions on a 3-node proglog cluster (R = 3,
// fsync before the ack), beside JetStream (3 servers, file storage,
// sync_interval always) with 1 and 3 streams of 3 replicas, 100 B records
// with random 16-byte keys (murmur2 picks the partition in proglog's
// client and, by the same function, the stream in JetStream's). Each
// iteration runs every shape for partitionShapeTime, one after the other
// and starting at another shape each time: unbatched (64 goroutines × one
// record per call) and batched (4 goroutines × 100 asynchronous produces,
// then a wait for all of them). It reports the medians over the iterations
// of each shape's records/s, CPU of the process (cores) and, for proglog,
// records per Raft entry; the ratios to the one-partition (one-stream)
// shape of the same iteration and proglog ÷ JetStream at 1 and 3; and,
// measured before the iterations, the disk's fsync rate with one go/seglog
// log and with one per partition of the largest topic.
//
//	go test -run '^$' -bench PartitionsProduce -benchtime 3x -timeout 30m ./tools/bench/
func BenchmarkPartitionsProduce(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	pki, err := certs.EnsureDev(filepath.Join(dir, "pki"), nil)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := startProglog(ctx, filepath.Join(dir, "proglog"), pki, 3, durSync)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	parts := []int{1, 3, 6}
	for _, p := range parts {
		if _, err := pc.client.CreateTopic(ctx, partTopic(p), client.TopicConfig{Partitions: p, ReplicationFactor: 3}); err != nil {
			b.Fatal(err)
		}
	}
	if err := waitHosted(ctx, pc, 1+1+3+6, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	jsT, err := newJSTLS(pki)
	if err != nil {
		b.Fatal(err)
	}
	jc, err := startJetStream(ctx, filepath.Join(dir, "jetstream"), jsT, 3, durSync)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { jc.Close() })
	streams := []int{1, 3}
	for _, n := range streams {
		for i := range n {
			if err := createStream(ctx, jc, jsSubjectOf(n, i)); err != nil {
				b.Fatal(err)
			}
		}
	}

	type shape struct {
		name    string
		op      func(keys, vals [][]byte) error // produces len(keys) records
		conc    int
		entries func() uint64 // proglog: the Raft entries of the topic so far
	}
	var shapes []shape
	for _, batched := range []bool{false, true} {
		conc, suffix := unbatchedProducers, "b1"
		if batched {
			conc, suffix = batchedProducers, "b100"
		}
		for _, p := range parts {
			t := pc.client.Topic(partTopic(p))
			shapes = append(shapes, shape{name: fmt.Sprintf("proglog-p%d-%s", p, suffix), conc: conc, op: func(keys, vals [][]byte) error {
				return proglogProduce(ctx, t, keys, vals)
			}, entries: func() uint64 { return topicEntries(b, pc, partTopic(p), p) }})
		}
		for _, s := range streams {
			shapes = append(shapes, shape{name: fmt.Sprintf("js-s%d-%s", s, suffix), conc: conc, op: func(keys, vals [][]byte) error {
				return jsProduce(ctx, jc.js, s, keys, vals)
			}})
		}
	}
	// The disk's fsync rate, one log and one log per partition of the
	// largest topic, each appended to (and fsynced) by its own goroutine.
	fsync1, err := fsyncRate(b.TempDir(), 1)
	if err != nil {
		b.Fatal(err)
	}
	fsyncN, err := fsyncRate(b.TempDir(), parts[len(parts)-1])
	if err != nil {
		b.Fatal(err)
	}
	rates, perEntry, cores := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	b.ResetTimer()
	for i := range b.N {
		// Each iteration starts at another shape, so that load drifting
		// during an iteration does not always hit the same shapes.
		for j := range shapes {
			s := shapes[(i+j)%len(shapes)]
			batch := 1
			if strings.HasSuffix(s.name, "b100") {
				batch = batchRecords
			}
			var e0 uint64
			if s.entries != nil {
				e0 = s.entries()
			}
			cpu0 := cpuTime()
			n, d := shapeRun(b, s.conc, batch, s.op)
			rates[s.name] = append(rates[s.name], n/d.Seconds())
			cores[s.name] = append(cores[s.name], (cpuTime()-cpu0).Seconds()/d.Seconds())
			if s.entries != nil {
				perEntry[s.name] = append(perEntry[s.name], n/float64(s.entries()-e0))
			}
		}
	}
	b.StopTimer()
	ratio := func(num, den string) float64 {
		out := make([]float64, len(rates[num]))
		for i := range out {
			out[i] = rates[num][i] / rates[den][i]
		}
		return median(out)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(fsync1, "fsync-1log/s")
	b.ReportMetric(fsyncN, fmt.Sprintf("fsync-%dlogs/s", parts[len(parts)-1]))
	for _, s := range shapes {
		b.ReportMetric(median(rates[s.name]), s.name+"-rec/s")
		b.ReportMetric(median(cores[s.name]), s.name+"-cpu-cores")
		if s.entries != nil {
			b.ReportMetric(median(perEntry[s.name]), s.name+"-rec/entry")
		}
	}
	for _, suffix := range []string{"b1", "b100"} {
		for _, p := range parts[1:] {
			b.ReportMetric(ratio(fmt.Sprintf("proglog-p%d-%s", p, suffix), "proglog-p1-"+suffix), fmt.Sprintf("proglog-p%d/p1-%s", p, suffix))
		}
		b.ReportMetric(ratio("js-s3-"+suffix, "js-s1-"+suffix), "js-s3/s1-"+suffix)
		b.ReportMetric(ratio("proglog-p1-"+suffix, "js-s1-"+suffix), "proglog/js-1-"+suffix)
		b.ReportMetric(ratio("proglog-p3-"+suffix, "js-s3-"+suffix), "proglog/js-3-"+suffix)
	}
}

// topicEntries is the number of Raft entries of topic's partitions: per
// partition the highest last_log_index of its replicas (the leader's),
// summed.
func topicEntries(b *testing.B, pc *proglogCluster, topic string, partitions int) uint64 {
	var sum uint64
	for p := range partitions {
		var hi uint64
		for _, a := range pc.agents {
			r := a.Broker().Replica(topic, p)
			if r == nil {
				continue
			}
			n, err := strconv.ParseUint(r.Stats()["last_log_index"], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			hi = max(hi, n)
		}
		sum += hi
	}
	return sum
}

// fsyncRate appends 100 B records to n go/seglog logs in dir (fsync before
// each append returns), one goroutine each, for partitionShapeTime, and
// returns the appends (fsyncs) per second of all of them together.
func fsyncRate(dir string, n int) (float64, error) {
	cfg := seglog.DefaultConfig()
	cfg.Sync = seglog.SyncAlways
	logs := make([]*seglog.Log, n)
	for i := range logs {
		l, err := seglog.Open(filepath.Join(dir, strconv.Itoa(i)), cfg)
		if err != nil {
			return 0, err
		}
		defer l.Close()
		logs[i] = l
	}
	var count atomic.Int64
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(partitionShapeTime)
	for i, l := range logs {
		wg.Go(func() {
			rec := newPayloads(1, 100)[0]
			for time.Now().Before(end) {
				if _, err := l.Append(rec); err != nil {
					errs[i] = err
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(count.Load()) / time.Since(t0).Seconds(), errors.Join(errs...)
}

func partTopic(p int) string { return fmt.Sprintf("bench-p%d", p) }

// jsSubjectOf names stream i of the set of n streams (and its subject).
func jsSubjectOf(n, i int) string { return fmt.Sprintf("bench-s%d-%d", n, i) }

func createStream(ctx context.Context, jc *jsCluster, name string) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := jc.js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{name}, Storage: jetstream.FileStorage, Replicas: 3,
		})
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(cctx)
		}
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2 && allCurrent(info.Cluster.Replicas) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stream %s: %w", name, errors.Join(err, ctx.Err()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proglogProduce sends keyed records through the topic: one Produce, or
// ProduceAsync of each and a wait for all (the client batches them per
// partition).
func proglogProduce(ctx context.Context, t *client.Topic, keys, vals [][]byte) error {
	if len(keys) == 1 {
		_, err := t.Produce(ctx, &client.Record{Key: keys[0], Value: vals[0]})
		return err
	}
	futs := make([]*client.ProduceFuture, len(keys))
	for i := range keys {
		futs[i] = t.ProduceAsync(ctx, &client.Record{Key: keys[i], Value: vals[i]})
	}
	var errs []error
	for _, f := range futs {
		if _, err := f.Wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// jsProduce publishes keyed records to the stream of n that murmur2 maps
// each key to: one Publish, or PublishAsync of each and a wait for all acks.
func jsProduce(ctx context.Context, js jetstream.JetStream, n int, keys, vals [][]byte) error {
	if len(keys) == 1 {
		_, err := js.Publish(ctx, jsSubjectOf(n, client.KeyPartition(keys[0], n)), vals[0])
		return err
	}
	futs := make([]jetstream.PubAckFuture, 0, len(keys))
	for i := range keys {
		f, err := js.PublishAsync(jsSubjectOf(n, client.KeyPartition(keys[i], n)), vals[i])
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	var errs []error
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// shapeRun runs op from conc goroutines, each with its own batch of keyed
// 100 B records (fresh random keys per call), for partitionShapeTime and
// returns the records acknowledged and the time taken.
func shapeRun(b *testing.B, conc, batch int, op func(keys, vals [][]byte) error) (float64, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(partitionShapeTime)
	for range conc {
		wg.Go(func() {
			vals := newPayloads(batch, 100)
			for time.Now().Before(end) {
				keys := newPayloads(batch, 16)
				if err := op(keys, vals); err != nil {
					b.Error(err)
					return
				}
				n.Add(int64(batch))
			}
		})
	}
	wg.Wait()
	return float64(n.Load()), time.Since(t0)
}

// waitHosted waits until every agent hosts want partition replicas, each
// knowing its leader.
func waitHosted(ctx context.Context, pc *proglogCluster, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		counts := make([]int, len(pc.agents))
		done := true
		for i, a := range pc.agents {
			for _, h := range a.Broker().Hosted() {
				if id, _ := h.Log.Leader(); id != "" {
					counts[i]++
				}
			}
			done = done && counts[i] >= want
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %v the nodes host %v replicas with a known leader, want %d each", timeout, counts, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkIdlePartitions measures what idle partitions cost on a 3-node
// cluster (R = 3, so every node hosts a replica of every partition): CPU,
// goroutines, RSS, the live heap (after a collection that follows each
// window) and the Raft RPCs the leaders send (heartbeats and the
// AppendEntries hashicorp/raft sends every CommitTimeout even when there
// is nothing to append), counted by a go-metrics sink. It first measures
// the cluster with only the default topic (the baseline), then creates
// topics of up to 100 partitions until each node hosts every stage of
// -idle-partitions (default 100 and 1000) and measures again, each stage a
// sub-benchmark; every iteration is an idleWindow of nothing but the
// cluster (no client calls), and each figure is the median over the
// iterations. All three nodes run in this process, so CPU and RSS are the
// three nodes' together. A stage whose partitions do not all get a leader
// within 10 minutes fails, and stops the later ones.
//
//	go test -run '^$' -bench IdlePartitions -benchtime 3x -timeout 60m ./tools/bench/
func BenchmarkIdlePartitions(b *testing.B) {
	var stages []int
	for _, f := range splitList(*idleStages) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			b.Fatalf("-idle-partitions: bad number %q", f)
		}
		stages = append(stages, n)
	}
	counter := installRaftCounter()
	ctx := context.Background()
	dir := b.TempDir()
	pki, err := certs.EnsureDev(filepath.Join(dir, "pki"), nil)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := startProglog(ctx, filepath.Join(dir, "proglog"), pki, 3, durSync, func(c *agent.Config) {
		c.Raft.CommitTimeout = *idleCommitTimeout
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })

	var base idleSample
	measure := func(b *testing.B, partitions int) idleSample {
		var samples []idleSample
		b.ResetTimer()
		for range b.N {
			samples = append(samples, measureIdle(counter, idleWindow))
		}
		b.StopTimer()
		s := medianSample(samples)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(s.cpu, "cpu-cores")
		b.ReportMetric(float64(s.goroutines), "goroutines")
		b.ReportMetric(s.rssMB, "rss-MB")
		b.ReportMetric(s.heapMB, "heap-MB")
		b.ReportMetric(s.heartbeats, "heartbeats/s")
		b.ReportMetric(s.appends, "appends/s")
		if partitions > 0 {
			extra := float64(3 * partitions) // replicas in the process beyond the baseline's
			rpcs := s.heartbeats + s.appends - base.heartbeats - base.appends
			b.ReportMetric(s.cpu/base.cpu, "cpu-ratio")
			b.ReportMetric(float64(s.goroutines-base.goroutines)/extra, "goroutines/replica")
			b.ReportMetric((s.rssMB-base.rssMB)*1024/extra, "rss-KB/replica")
			b.ReportMetric((s.heapMB-base.heapMB)*1024/extra, "heap-KB/replica")
			b.ReportMetric((s.heartbeats-base.heartbeats)/float64(partitions), "heartbeats/s/partition")
			b.ReportMetric((s.appends-base.appends)/float64(partitions), "appends/s/partition")
			if rpcs > 0 {
				b.ReportMetric((s.cpu-base.cpu)/rpcs*1e6, "cpu-µs/rpc")
			}
		}
		return s
	}
	b.Run("partitions=0", func(b *testing.B) { base = measure(b, 0) })
	created := 0 // partitions of the topics created so far
	for _, stage := range stages {
		ok := b.Run(fmt.Sprintf("partitions=%d", stage), func(b *testing.B) {
			for created < stage {
				p := min(100, stage-created)
				name := fmt.Sprintf("idle-%d", created)
				// The client retries a create whose answer was lost, so
				// the topic may exist by its own first attempt.
				if _, err := pc.client.CreateTopic(ctx, name, client.TopicConfig{Partitions: p, ReplicationFactor: 3}); err != nil && !errors.Is(err, client.ErrTopicExists) {
					b.Fatalf("create %s: %v", name, err)
				}
				created += p
			}
			t0 := time.Now()
			if err := waitHosted(ctx, pc, 1+stage, 10*time.Minute); err != nil {
				b.Fatal(err)
			}
			b.Logf("%d partitions per node open with leaders %v after the last create", stage, time.Since(t0).Round(time.Millisecond))
			measure(b, stage)
		})
		if !ok {
			break
		}
	}
}

// idleSample is one idle window's measurement of the whole process.
type idleSample struct {
	cpu        float64 // cores: CPU time ÷ wall time
	goroutines int
	rssMB      float64
	heapMB     float64 // live heap after a garbage collection
	heartbeats float64 // per second, sent by all leaders
	appends    float64 // AppendEntries other than heartbeats, per second
}

func measureIdle(c *raftCounter, window time.Duration) idleSample {
	hb0, ap0 := c.heartbeats.Load(), c.appends.Load()
	cpu0 := cpuTime()
	t0 := time.Now()
	time.Sleep(window)
	d := time.Since(t0)
	cpu := cpuTime() - cpu0
	hb, ap := c.heartbeats.Load()-hb0, c.appends.Load()-ap0
	// After the window, so that the collection is not measured: RSS moves
	// with the garbage collector's pace, the live heap does not.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return idleSample{
		cpu:        cpu.Seconds() / d.Seconds(),
		goroutines: runtime.NumGoroutine(),
		rssMB:      rssMB(),
		heapMB:     float64(ms.HeapAlloc) / (1 << 20),
		heartbeats: float64(hb) / d.Seconds(),
		appends:    float64(ap) / d.Seconds(),
	}
}

// medianSample takes the median of each figure separately.
func medianSample(s []idleSample) idleSample {
	pick := func(f func(idleSample) float64) float64 {
		v := make([]float64, len(s))
		for i := range s {
			v[i] = f(s[i])
		}
		return median(v)
	}
	return idleSample{
		cpu:        pick(func(x idleSample) float64 { return x.cpu }),
		goroutines: int(pick(func(x idleSample) float64 { return float64(x.goroutines) })),
		rssMB:      pick(func(x idleSample) float64 { return x.rssMB }),
		heapMB:     pick(func(x idleSample) float64 { return x.heapMB }),
		heartbeats: pick(func(x idleSample) float64 { return x.heartbeats }),
		appends:    pick(func(x idleSample) float64 { return x.appends }),
	}
}

// cpuTime is the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMB is the process's resident set (VmRSS) in MiB, 0 if unknown.
func rssMB() float64 {
	for _, line := range strings.Split(readFile("/proc/self/status"), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// raftCounter is a go-metrics sink that counts the RPCs hashicorp/raft's
// leaders send: a sample of raft.replication.heartbeat per heartbeat, one
// of raft.replication.appendEntries.rpc per other AppendEntries (those
// keys without the peer ID: raft emits both forms unless its legacy
// telemetry is off). Everything else is dropped.
type raftCounter struct {
	heartbeats, appends atomic.Int64
}

var (
	raftCounterOnce sync.Once
	theRaftCounter  *raftCounter
)

// installRaftCounter makes the process's go-metrics sink a raftCounter
// (once: go-metrics has one global sink) and returns it.
func installRaftCounter() *raftCounter {
	raftCounterOnce.Do(func() {
		theRaftCounter = &raftCounter{}
		cfg := metrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false
		if _, err := metrics.NewGlobal(cfg, theRaftCounter); err != nil {
			panic(err) // only a bad configuration fails
		}
	})
	return theRaftCounter
}

func (c *raftCounter) AddSampleWithLabels(key []string, _ float32, _ []metrics.Label) {
	c.AddSample(key, 0)
}

func (c *raftCounter) AddSample(key []string, _ float32) {
	switch {
	case hasSuffix(key, "raft", "replication", "heartbeat"):
		c.heartbeats.Add(1)
	case hasSuffix(key, "raft", "replication", "appendEntries", "rpc"):
		c.appends.Add(1)
	}
}

func (*raftCounter) SetGauge([]string, float32)                               {}
func (*raftCounter) SetGaugeWithLabels([]string, float32, []metrics.Label)    {}
func (*raftCounter) EmitKey([]string, float32)                                {}
func (*raftCounter) IncrCounter([]string, float32)                            {}
func (*raftCounter) IncrCounterWithLabels([]string, float32, []metrics.Label) {}

// hasSuffix reports whether key ends with the elements of suffix.
func hasSuffix(key []string, suffix ...string) bool {
	return len(key) >= len(suffix) && slices.Equal(key[len(key)-len(suffix):], suffix)
}

// TestRaftCounter: the sink counts hashicorp/raft's labelled heartbeat and
// AppendEntries samples, not the legacy per-peer copies nor other keys.
func TestRaftCounter(t *testing.T) {
	var c raftCounter
	c.AddSampleWithLabels([]string{"raft", "replication", "heartbeat"}, 1, []metrics.Label{{Name: "peer_id", Value: "n1"}})
	c.AddSample([]string{"raft", "replication", "heartbeat", "n1"}, 1)
	c.AddSampleWithLabels([]string{"svc", "raft", "replication", "appendEntries", "rpc"}, 1, nil)
	c.AddSampleWithLabels([]string{"svc", "raft", "replication", "appendEntries", "rpc"}, 1, nil)
	c.AddSample([]string{"raft", "replication", "appendEntries", "rpc", "n1"}, 1)
	c.AddSample([]string{"raft", "rpc", "appendEntries"}, 1)
	c.IncrCounter([]string{"raft", "replication", "heartbeat"}, 1)
	if hb, ap := c.heartbeats.Load(), c.appends.Load(); hb != 1 || ap != 2 {
		t.Fatalf("counted %d heartbeats and %d appends, want 1 and 2", hb, ap)
	}
}

// deliveryCommitTimeouts are BenchmarkFollowerDelivery's settings.
var deliveryCommitTimeouts = flag.String("delivery-commit-timeouts", "5ms,50ms", "BenchmarkFollowerDelivery: the CommitTimeouts to compare, one cluster each")

// BenchmarkFollowerDelivery measures what a longer CommitTimeout costs a
// consumer: the delay from a produce's acknowledgement to a follower's
// ConsumeStream delivering the record, for each CommitTimeout of
// -delivery-commit-timeouts (default 5ms and 50ms), each on its own 3-node
// cluster (R = 3, fsync before the ack), all started in the same run. A
// ConsumeStream to a follower of partition 0 of each cluster's default
// topic follows it (the run fails if that node becomes the leader, which
// would deliver at the ack); every iteration produces one 100 B
// record to each cluster in turn (starting at another cluster each time)
// and waits until its stream delivers it before the next, so every record
// is the last of its burst: a follower learns that it is committed from
// the leader's next AppendEntries, which with nothing more to append comes
// after CommitTimeout to 2×CommitTimeout. Reports per setting the p50 and
// p99 of that delay and of the produce's own latency (send to ack).
//
//	go test -run '^$' -bench FollowerDelivery -benchtime 400x -timeout 20m ./tools/bench/
func BenchmarkFollowerDelivery(b *testing.B) {
	type setting struct {
		name        string
		pc          *proglogCluster
		follower    *agent.Agent // the node streaming
		delivered   chan time.Time
		delay, rtt  []time.Duration
		streamError chan error
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dir := b.TempDir()
	pki, err := certs.EnsureDev(filepath.Join(dir, "pki"), nil)
	if err != nil {
		b.Fatal(err)
	}
	var settings []*setting
	for _, f := range splitList(*deliveryCommitTimeouts) {
		ct, err := time.ParseDuration(f)
		if err != nil || ct <= 0 {
			b.Fatalf("-delivery-commit-timeouts: bad duration %q", f)
		}
		pc, err := startProglog(ctx, filepath.Join(dir, "ct-"+f), pki, 3, durSync, func(c *agent.Config) {
			c.Raft.CommitTimeout = ct
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		s := &setting{name: "ct" + f, pc: pc, delivered: make(chan time.Time, 1), streamError: make(chan error, 1)}
		for _, a := range pc.agents {
			if r := a.Replica(); r != nil && !r.IsLeader() {
				s.follower = a
			}
		}
		if s.follower == nil {
			b.Fatalf("%s: no follower of the default partition", s.name)
		}
		next, err := pc.client.Bounds(ctx)
		if err != nil {
			b.Fatal(err)
		}
		tlsCfg, err := auth.TLSConfig{CertFile: pki.ClientCert("root"), KeyFile: pki.ClientKey("root"), CAFile: pki.CACert}.Client()
		if err != nil {
			b.Fatal(err)
		}
		conn, err := grpc.NewClient(s.follower.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		stream, err := logv1.NewLogClient(conn).ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: next.Next})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					s.streamError <- err
					return
				}
				s.delivered <- time.Now()
			}
		}()
		settings = append(settings, s)
	}
	payload := newPayloads(1, 100)[0]
	b.ResetTimer()
	for i := range b.N {
		for j := range settings {
			s := settings[(i+j)%len(settings)]
			t0 := time.Now()
			if _, err := s.pc.client.Produce(ctx, &client.Record{Value: payload}); err != nil {
				b.Fatal(err)
			}
			acked := time.Now()
			select {
			case at := <-s.delivered:
				s.delay = append(s.delay, at.Sub(acked))
				s.rtt = append(s.rtt, acked.Sub(t0))
			case err := <-s.streamError:
				b.Fatalf("%s: stream: %v", s.name, err)
			case <-time.After(30 * time.Second):
				b.Fatalf("%s: the stream did not deliver record %d within 30s", s.name, i)
			}
		}
	}
	b.StopTimer()
	for _, s := range settings {
		if s.follower.Replica().IsLeader() {
			b.Fatalf("%s: the streaming node %s became the partition's leader during the run", s.name, s.follower.NodeName())
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op")
	for _, s := range settings {
		delay, rtt := newLatencies(s.delay), newLatencies(s.rtt)
		b.ReportMetric(ms(delay.p50()), s.name+"-ack-to-follower-p50-ms")
		b.ReportMetric(ms(delay.p99()), s.name+"-ack-to-follower-p99-ms")
		b.ReportMetric(ms(rtt.p50()), s.name+"-produce-p50-ms")
		b.ReportMetric(ms(rtt.p99()), s.name+"-produce-p99-ms")
	}
}
