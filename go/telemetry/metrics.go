package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/internal/netlimit"
)

// latencyBuckets span 100µs (a cached read) to 10s (a slow fsync or a long
// batch); streams that outlive them land in +Inf.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics holds proglog's Prometheus collectors. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg             prometheus.Registerer
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	appendedRecords prometheus.Counter
	appendedBytes   prometheus.Counter
	limits          limitCounters
	recovery        *prometheus.CounterVec
	// Idempotent produces (see log.proto's Producer).
	duplicates *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

// NewMetrics creates the RPC and append collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_rpc_requests_total",
			Help: "RPCs completed, by full method and gRPC status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "proglog_rpc_duration_seconds",
			Help:    "RPC latency (whole stream for streaming RPCs), by full method.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		appendedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proglog_appended_records_total",
			Help: "Records appended to the log.",
		}),
		appendedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proglog_appended_bytes_total",
			Help: "Encoded record bytes appended to the log.",
		}),
		limits: newLimitCounters(),
		recovery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_recovery_actions_total",
			Help: "Repairs made while opening the Raft log at start (index rebuilt, torn tail cut), by log (raft) and action.",
		}, []string{"log", "action"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_produce_duplicates_total",
			Help: "Idempotent produce requests (what) and their records that repeated a batch already written (retries): answered with the original offsets, nothing written.",
		}, []string{"what"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_produce_sequence_refused_total",
			Help: "Idempotent produce requests refused, nothing written, by reason (OUT_OF_ORDER_SEQUENCE, UNKNOWN_PRODUCER).",
		}, []string{"reason"}),
	}
	for _, c := range append([]prometheus.Collector{m.requests, m.latency, m.appendedRecords, m.appendedBytes, m.recovery, m.duplicates, m.refused}, m.limits.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("telemetry: register metrics: %w", err)
		}
	}
	return m, nil
}

// ObserveAppend counts records and their encoded bytes written to the log.
func (m *Metrics) ObserveAppend(records, bytes int) {
	m.appendedRecords.Add(float64(records))
	m.appendedBytes.Add(float64(bytes))
}

// ObserveDuplicate counts an idempotent produce request of records that
// repeated a batch already written.
func (m *Metrics) ObserveDuplicate(records int) {
	m.duplicates.WithLabelValues("requests").Inc()
	m.duplicates.WithLabelValues("records").Add(float64(records))
}

// ObserveSequenceRefused counts an idempotent produce request refused with
// reason (the ErrorInfo reason: OUT_OF_ORDER_SEQUENCE, UNKNOWN_PRODUCER).
func (m *Metrics) ObserveSequenceRefused(reason string) {
	m.refused.WithLabelValues(reason).Inc()
}

// ObserveRecovery counts one repair made while opening a log at start.
func (m *Metrics) ObserveRecovery(log, action string) {
	m.recovery.WithLabelValues(log, action).Inc()
}

// LogStats is a snapshot of the log for gauges.
type LogStats struct {
	SizeBytes    uint64 // store bytes on disk
	Segments     int
	LowestOffset uint64
	NextOffset   uint64
	// Disk is the node's bytes on disk by component (raft_log, which holds
	// the records, snapshots, other).
	Disk map[string]uint64
	// RetentionRemovedRecords counts the records retention removed since
	// the node started.
	RetentionRemovedRecords uint64
	// Producers is the number of idempotent producers the log remembers.
	Producers int
}

// RegisterLogStats registers gauges read from stats at every scrape, so they
// are never stale and cost nothing between scrapes.
func (m *Metrics) RegisterLogStats(stats func() LogStats) error {
	if err := m.reg.Register(&logCollector{stats: stats}); err != nil {
		return fmt.Errorf("telemetry: register log gauges: %w", err)
	}
	return nil
}

var (
	descSize      = prometheus.NewDesc("proglog_log_size_bytes", "Bytes of the log's store files.", nil, nil)
	descSegments  = prometheus.NewDesc("proglog_log_segments", "Segments in the log.", nil, nil)
	descLowest    = prometheus.NewDesc("proglog_log_lowest_offset", "Lowest readable offset.", nil, nil)
	descNext      = prometheus.NewDesc("proglog_log_next_offset", "Offset the next append gets.", nil, nil)
	descDisk      = prometheus.NewDesc("proglog_disk_bytes", "Bytes of the node's files on disk, by component.", []string{"component"}, nil)
	descRemoved   = prometheus.NewDesc("proglog_retention_removed_records_total", "Records removed by retention since the node started.", nil, nil)
	descProducers = prometheus.NewDesc("proglog_producers", "Idempotent producers whose state the log keeps (see --max-producers).", nil, nil)
)

type logCollector struct{ stats func() LogStats }

func (c *logCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSize
	ch <- descSegments
	ch <- descLowest
	ch <- descNext
	ch <- descDisk
	ch <- descRemoved
	ch <- descProducers
}

func (c *logCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(s.SizeBytes))
	ch <- prometheus.MustNewConstMetric(descSegments, prometheus.GaugeValue, float64(s.Segments))
	ch <- prometheus.MustNewConstMetric(descLowest, prometheus.GaugeValue, float64(s.LowestOffset))
	ch <- prometheus.MustNewConstMetric(descNext, prometheus.GaugeValue, float64(s.NextOffset))
	for component, n := range s.Disk {
		ch <- prometheus.MustNewConstMetric(descDisk, prometheus.GaugeValue, float64(n), component)
	}
	ch <- prometheus.MustNewConstMetric(descRemoved, prometheus.CounterValue, float64(s.RetentionRemovedRecords))
	ch <- prometheus.MustNewConstMetric(descProducers, prometheus.GaugeValue, float64(s.Producers))
}

// PartitionStats is one partition replica this node hosts.
type PartitionStats struct {
	Topic        string
	Partition    int
	LowestOffset uint64
	NextOffset   uint64
	// Leader: this node's replica leads the partition.
	Leader bool
}

// RegisterPartitionStats registers per-partition gauges, labelled by topic
// and partition, read from stats at every scrape: one series per replica
// the node hosts at that moment.
func (m *Metrics) RegisterPartitionStats(stats func() []PartitionStats) error {
	if err := m.reg.Register(&partitionCollector{stats: stats}); err != nil {
		return fmt.Errorf("telemetry: register partition gauges: %w", err)
	}
	return nil
}

var (
	partitionLabels     = []string{"topic", "partition"}
	descPartitionLowest = prometheus.NewDesc("proglog_partition_lowest_offset", "Lowest readable offset of a partition replica this node hosts.", partitionLabels, nil)
	descPartitionNext   = prometheus.NewDesc("proglog_partition_next_offset", "Offset the next record applied to a partition replica this node hosts gets.", partitionLabels, nil)
	descPartitionLeader = prometheus.NewDesc("proglog_partition_leader", "1 if this node leads the partition, else 0.", partitionLabels, nil)
)

type partitionCollector struct{ stats func() []PartitionStats }

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPartitionLowest
	ch <- descPartitionNext
	ch <- descPartitionLeader
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		p := strconv.Itoa(s.Partition)
		leader := 0.0
		if s.Leader {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(descPartitionLowest, prometheus.GaugeValue, float64(s.LowestOffset), s.Topic, p)
		ch <- prometheus.MustNewConstMetric(descPartitionNext, prometheus.GaugeValue, float64(s.NextOffset), s.Topic, p)
		ch <- prometheus.MustNewConstMetric(descPartitionLeader, prometheus.GaugeValue, leader, s.Topic, p)
	}
}

// UnaryServerInterceptor counts and times unary RPCs.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, start, err)
		return resp, err
	}
}

// StreamServerInterceptor counts and times streaming RPCs.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, start, err)
		return err
	}
}

func (m *Metrics) observe(method string, start time.Time, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// ready for NewMetrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Bounds of the metrics port: scrapers are few and send small requests.
// Connections over MetricsMaxConns are closed at once.
const (
	MetricsMaxConns       = 16
	MetricsMaxHeaderBytes = 8 << 10
)

// MetricsServer serves /metrics over plain HTTP on its own listener.
type MetricsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error

	once    sync.Once
	stopErr error
}

// ListenMetrics listens on addr (use port 0 for any) and serves g at /metrics
// in the background until Shutdown.
func ListenMetrics(addr string, g prometheus.Gatherer) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s := &MetricsServer{
		// Timeouts keep slow or idle scrapers from pinning goroutines.
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    MetricsMaxHeaderBytes,
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	limited := netlimit.NewListener(ln, netlimit.Config{MaxConns: MetricsMaxConns})
	go func() { s.done <- s.srv.Serve(limited) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting scrapes and waits for running ones until ctx
// ends. Later calls return the first call's result.
func (s *MetricsServer) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		err := s.srv.Shutdown(ctx)
		if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		if err != nil {
			s.stopErr = fmt.Errorf("telemetry: shut down metrics server: %w", err)
		}
	})
	return s.stopErr
}
