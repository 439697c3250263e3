package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	var s []time.Duration
	for i := 1000; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Microsecond)
	}
	l := newLatencies(s)
	if l.p50() != 500*time.Microsecond || l.p99() != 990*time.Microsecond || l.p999() != 999*time.Microsecond {
		t.Fatalf("p50 %v p99 %v p99.9 %v", l.p50(), l.p99(), l.p999())
	}
	if (latencies{}).p99() != -1 {
		t.Fatal("empty sample must have no quantile")
	}
}

func TestStamp(t *testing.T) {
	b := make([]byte, 16)
	stamp(b)
	if d := time.Since(epoch) - stampOf(b); d < 0 || d > time.Second {
		t.Fatalf("stamp round trip off by %v", d)
	}
	if stampOf([]byte{1}) != -1 {
		t.Fatal("short record has no stamp")
	}
}

func TestFlags(t *testing.T) {
	t.Setenv("BUILD_WORKING_DIRECTORY", "/work")
	o, err := parseFlags([]string{"--quick"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.out != "" || o.duration != time.Second || len(o.sizes) != 1 || len(o.producers) != 2 || len(o.durabilities) != 1 || o.repeat != 1 {
		t.Fatalf("quick: %+v", o)
	}
	o, err = parseFlags([]string{"--full"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.out != "/work/docs" || len(o.sizes) != 2 || len(o.producers) != 3 || len(o.durabilities) != 2 || len(o.nodes) != 2 || o.repeat != 2 {
		t.Fatalf("full: %+v", o)
	}
	for _, bad := range [][]string{{"--quick", "--full"}, {"--systems", "kafka"}, {"--sizes", "8"}, {"--durability", "maybe"}, {"--producers", "0"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMountOf(t *testing.T) {
	dev, fs, _ := mountOf(t.TempDir())
	if dev == "unknown" || fs == "unknown" || dev == "" || fs == "" {
		t.Fatalf("mount of a temp dir: %q %q", dev, fs)
	}
}

// fakeResults is a small run: two pairs, one per replication factor.
func fakeResults(t *testing.T, out string) *results {
	o, err := parseFlags([]string{"--quick", "--out", out}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	res := &results{opts: o, machine: probeMachine(t.TempDir()), started: time.Now(), elapsed: time.Minute, loadEnd: "1 1 1"}
	for _, n := range []int{1, 3} {
		w := workload{nodes: n, size: 100, producers: 4, batch: 1, durability: durSync}
		for i, sys := range []string{sysProglog, sysJetStream} {
			lat := newLatencies([]time.Duration{time.Millisecond, time.Duration(2+i) * time.Millisecond})
			res.rows = append(res.rows, &rowResult{system: sys, w: w, runs: []runResult{{
				produced: 1000 * (2 - i), produceTime: time.Second, lat: lat, consumed: 1000, consumeTime: time.Second / 2,
			}}})
		}
	}
	res.ceilings = []ceiling{{name: "gRPC health Check, 1 caller(s)", opsPerS: 100, recPerS: 100, p50: time.Microsecond, p99: time.Millisecond}}
	return res
}

func TestReport(t *testing.T) {
	out := t.TempDir()
	res := fakeResults(t, out)
	if n := res.missingCells(); n != 0 {
		t.Fatalf("%d missing cells", n)
	}
	md := renderMarkdown(res)
	for _, want := range []string{
		"| proglog | 3 | 100 B | 4 | 1 | sync | 2000 | 0.20 | 1.00ms | 2.00ms | 2.00ms | 2000 | 2.00 | 0.67 | 1.00 |",
		"| JetStream | 3 | 100 B | 4 | 1 | sync | 1000 | 0.10 | 1.00ms | 3.00ms | 3.00ms | 2000 | 2.00 | 0.67 | 1.00 |",
		"more throughput than JetStream on 1 of 1 row pairs and a p99 no higher on 1 of 1",
		"| gRPC health Check, 1 caller(s) | 100 | – | 1µs | 1.00ms |",
		handWrittenMarker,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// The hand-written part of an existing file survives a rewrite.
	old := "old generated part\n" + handWrittenMarker + "\n## Profiles\n\nkept\n"
	if err := os.WriteFile(filepath.Join(out, "benchmarks.md"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	md = renderMarkdown(res)
	if !strings.HasSuffix(md, handWrittenMarker+"\n## Profiles\n\nkept\n") || strings.Contains(md, "old generated part") {
		t.Fatalf("hand-written part not kept:\n%s", md)
	}
}

func TestChart(t *testing.T) {
	res := fakeResults(t, t.TempDir())
	b, err := renderChart(res)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() < 600 || r.Dy() < 600 {
		t.Fatalf("chart is %v", r)
	}
}

// TestQuickSmoke runs a tiny --quick (few records, no ceilings) against
// real in-process clusters of both systems and checks that every row is
// filled. It asserts nothing about speed.
func TestQuickSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six clusters")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--quick", "--records", "200", "--duration", "300ms", "--ceilings=false", "--data-dir", t.TempDir()}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("bench %v: %v\n%s", args, err, stderr.String())
	}
	rows := 0
	row := regexp.MustCompile(`^\| (proglog|JetStream) \| [0-9]+ \|`)
	for _, line := range strings.Split(stdout.String(), "\n") {
		if row.MatchString(line) {
			rows++
			if strings.Contains(line, "| |") || strings.Contains(line, "failed") {
				t.Errorf("row not filled: %s", line)
			}
		}
	}
	if rows != 16 {
		t.Fatalf("%d rows, want 16:\n%s", rows, stdout.String())
	}
}
