package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestLoggingInterceptorsRecordEveryRPC(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	unary, stream := LoggingInterceptors(zap.New(core), func(context.Context) string { return "root" })
	_, _ = unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/log.v1.Log/Produce"}, func(context.Context, any) (any, error) {
		return nil, nil
	})
	_, _ = unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/log.v1.Log/Consume"}, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.PermissionDenied, "no")
	})
	_ = stream(nil, &nopStream{}, &grpc.StreamServerInfo{FullMethod: "/log.v1.Log/ConsumeStream"}, func(any, grpc.ServerStream) error {
		return status.Error(codes.Internal, "boom")
	})
	entries := logs.All()
	if len(entries) != 3 {
		t.Fatalf("got %d log entries, want 3", len(entries))
	}
	want := []struct {
		method, code string
		level        zapcore.Level
	}{
		{"/log.v1.Log/Produce", "OK", zapcore.DebugLevel},
		{"/log.v1.Log/Consume", "PermissionDenied", zapcore.WarnLevel},
		{"/log.v1.Log/ConsumeStream", "Internal", zapcore.ErrorLevel},
	}
	for i, e := range entries {
		f := e.ContextMap()
		if f["method"] != want[i].method || f["code"] != want[i].code || f["principal"] != "root" || e.Level != want[i].level {
			t.Errorf("entry %d = %v %v, want %+v", i, e.Level, f, want[i])
		}
		if _, ok := f["latency"]; !ok {
			t.Errorf("entry %d has no latency", i)
		}
	}
	// At info, the default, a successful call and a normal refusal such as
	// OUT_OF_RANGE log nothing: per-call lines are debug.
	core, logs = observer.New(zapcore.InfoLevel)
	unary, _ = LoggingInterceptors(zap.New(core), nil)
	for _, err := range []error{nil, status.Error(codes.OutOfRange, "past the end")} {
		_, _ = unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/log.v1.Log/Consume"}, func(context.Context, any) (any, error) {
			return nil, err
		})
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d lines at info for ordinary calls, want 0: %v", n, logs.All())
	}
	if _, err := NewLogger("loud"); !errors.Is(err, ErrBadLogLevel) {
		t.Errorf("NewLogger(loud) err = %v", err)
	}
	if l, err := NewLogger("warn"); err != nil || l.Core().Enabled(zapcore.InfoLevel) {
		t.Errorf("NewLogger(warn): %v", err)
	}
}

type nopStream struct{ grpc.ServerStream }

func (nopStream) Context() context.Context { return context.Background() }

func TestMetricsAndEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterLogStats(func() LogStats {
		return LogStats{SizeBytes: 4096, Segments: 2, LowestOffset: 3, NextOffset: 10,
			Disk: map[string]uint64{"data_log": 5000, "raft_log": 7000}, RetentionRemovedRecords: 3}
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterPartitionStats(func() []PartitionStats {
		return []PartitionStats{{Topic: "log", Partition: 0, LowestOffset: 3, NextOffset: 10, Leader: true}, {Topic: "orders", Partition: 7, NextOffset: 2}}
	}); err != nil {
		t.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/log.v1.Log/Produce"}
	for range 3 {
		_, _ = m.UnaryServerInterceptor()(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, nil })
	}
	_ = m.StreamServerInterceptor()(nil, nopStream{}, &grpc.StreamServerInfo{FullMethod: "/log.v1.Log/ConsumeStream"}, func(any, grpc.ServerStream) error {
		return status.Error(codes.Canceled, "bye")
	})
	m.ObserveAppend(5, 500)
	m.ObserveRecovery("raft", "torn_tail_cut")

	srv, err := ListenMetrics("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`proglog_rpc_requests_total{code="OK",method="/log.v1.Log/Produce"} 3`,
		`proglog_rpc_duration_seconds_count{method="/log.v1.Log/Produce"} 3`,
		`proglog_rpc_requests_total{code="Canceled",method="/log.v1.Log/ConsumeStream"} 1`,
		`proglog_appended_records_total 5`,
		`proglog_appended_bytes_total 500`,
		`proglog_recovery_actions_total{action="torn_tail_cut",log="raft"} 1`,
		`proglog_log_size_bytes 4096`,
		`proglog_log_segments 2`,
		`proglog_log_next_offset 10`,
		`proglog_disk_bytes{component="data_log"} 5000`,
		`proglog_disk_bytes{component="raft_log"} 7000`,
		`proglog_retention_removed_records_total 3`,
		`proglog_partition_lowest_offset{partition="0",topic="log"} 3`,
		`proglog_partition_next_offset{partition="0",topic="log"} 10`,
		`proglog_partition_leader{partition="0",topic="log"} 1`,
		`proglog_partition_next_offset{partition="7",topic="orders"} 2`,
		`proglog_partition_leader{partition="7",topic="orders"} 0`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTracingFileExporter(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spans.json")
	tr, err := NewTracing(context.Background(), TraceConfig{Exporter: ExporterFile, File: file, ServiceName: "proglog-test"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "unit-span")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s struct{ Name string }
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("bad span line %q: %v", sc.Text(), err)
		}
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != "unit-span" {
		t.Fatalf("spans = %v", names)
	}
}

func TestTraceConfigValidate(t *testing.T) {
	cases := []struct {
		c    TraceConfig
		want error
	}{
		{TraceConfig{}, nil},
		{DefaultTraceConfig(), nil},
		{TraceConfig{Exporter: ExporterOTLP}, ErrMissingTraceTarget},
		{TraceConfig{Exporter: ExporterFile}, ErrMissingTraceTarget},
		{TraceConfig{Exporter: "jaeger"}, ErrUnknownExporter},
		{TraceConfig{Exporter: ExporterOTLP, Endpoint: "127.0.0.1:4317"}, nil},
	}
	for _, tc := range cases {
		if err := tc.c.Validate(); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%+v: err = %v, want %v", tc.c, err, tc.want)
		}
	}
	// The OTLP exporter connects lazily, so building one needs no collector.
	tr, err := NewTracing(context.Background(), TraceConfig{Exporter: ExporterOTLP, Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tr.Shutdown(ctx) // nothing to flush; must not hang past ctx
}
