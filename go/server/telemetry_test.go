package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/telemetry"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// scrape fetches /metrics and parses the text exposition into series → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsEndpointAndTraces(t *testing.T) {
	traceFile := filepath.Join(t.TempDir(), "spans.jsonl")
	tracing, err := telemetry.NewTracing(context.Background(), telemetry.TraceConfig{Exporter: telemetry.ExporterFile, File: traceFile})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.TracerProvider = tracing.Provider }})
	ms, err := telemetry.ListenMetrics("127.0.0.1:0", f.reg)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Shutdown(context.Background())

	before := scrape(t, ms.Addr())
	c := f.client("root")
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec(fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("b1"), rec("b2"), rec("b3")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 1000}) // OutOfRange
	_, _ = f.client("nobody").Produce(ctx, &logv1.ProduceRequest{Record: rec("no")})
	after := scrape(t, ms.Addr())

	delta := func(series string) float64 { return after[series] - before[series] }
	checks := []struct {
		series string
		want   float64
	}{
		{`proglog_rpc_requests_total{code="OK",method="/log.v1.Log/Produce"}`, 5},
		{`proglog_rpc_requests_total{code="OK",method="/log.v1.Log/ProduceBatch"}`, 1},
		{`proglog_rpc_requests_total{code="OK",method="/log.v1.Log/Consume"}`, 1},
		{`proglog_rpc_requests_total{code="OutOfRange",method="/log.v1.Log/Consume"}`, 1},
		// Refused before the call started (see Server.admit): counted
		// apart, neither in the RPC metrics nor traced.
		{`proglog_rejected_requests_total{reason="permission_denied"}`, 1},
		{`proglog_rpc_requests_total{code="PermissionDenied",method="/log.v1.Log/Produce"}`, 0},
		{`proglog_rpc_duration_seconds_count{method="/log.v1.Log/Produce"}`, 5},
		{`proglog_appended_records_total`, 8},
		{`proglog_log_next_offset`, 8},
	}
	for _, c := range checks {
		if got := delta(c.series); got != c.want {
			t.Errorf("%s moved by %v, want %v", c.series, got, c.want)
		}
	}
	if d := delta("proglog_appended_bytes_total"); d < 8*float64(len("m0")) {
		t.Errorf("appended bytes moved by %v", d)
	}
	if after["proglog_log_size_bytes"] <= before["proglog_log_size_bytes"] || after["proglog_log_segments"] < 1 {
		t.Errorf("log gauges: size %v→%v, segments %v", before["proglog_log_size_bytes"], after["proglog_log_size_bytes"], after["proglog_log_segments"])
	}

	// Spans are flushed when the server is done and tracing shuts down.
	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tracing.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := readSpans(t, traceFile)
	for name, want := range map[string]int{"log.v1.Log/Produce": 5, "log.v1.Log/ProduceBatch": 1, "log.v1.Log/Consume": 2} {
		if got := len(spans[name]); got != want {
			t.Errorf("%d spans named %s, want %d (all: %v)", got, name, want, keys(spans))
		}
	}
	for _, s := range spans["log.v1.Log/Consume"] {
		if s.SpanKind != 2 { // trace.SpanKindServer
			t.Errorf("consume span kind %d, want server", s.SpanKind)
		}
	}
}

type span struct {
	Name     string
	SpanKind int
}

func readSpans(t *testing.T, file string) map[string][]span {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	out := map[string][]span{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s span
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("bad span %q: %v", sc.Text(), err)
		}
		out[s.Name] = append(out[s.Name], s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
