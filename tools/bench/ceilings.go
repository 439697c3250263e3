package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/seglog"
)

// ceiling is a limit the end-to-end figures are seen against.
type ceiling struct {
	name     string
	what     string
	opsPerS  float64 // operations (appends, calls) per second
	recPerS  float64 // records per second (ops * batch)
	mbPerS   float64 // record bytes per second, 0 if not meaningful
	p50, p99 time.Duration
	err      error
}

func measureCeilings(ctx context.Context, base string, pki certs.DevFiles, t *jsTLS, o *options, logw io.Writer) []ceiling {
	d := o.duration / 3
	var out []ceiling
	add := func(c ceiling) {
		out = append(out, c)
		if c.err != nil {
			fmt.Fprintf(logw, "  %-44s FAILED: %v\n", c.name, c.err)
			return
		}
		fmt.Fprintf(logw, "  %-44s %10.0f rec/s  p50 %-9v p99 %v\n", c.name, c.recPerS, fmtDur(c.p50), fmtDur(c.p99))
	}
	for _, sync := range []seglog.SyncPolicy{seglog.SyncAlways, seglog.SyncNever} {
		for _, size := range o.sizes {
			for _, batch := range o.batches {
				add(logAppendCeiling(base, sync, size, batch, d))
			}
		}
	}
	for _, conc := range []int{1, 16} {
		add(grpcNoopCeiling(ctx, base, pki, conc, d))
	}
	for _, conc := range []int{1, 16} {
		add(natsNoopCeiling(ctx, base, t, conc, d))
	}
	return out
}

// logAppendCeiling appends to a go/seglog Log (default configuration, the
// given sync policy) in this process for d: the storage engine's raw rate,
// with no network, Raft or protobuf.
func logAppendCeiling(base string, sync seglog.SyncPolicy, size, batch int, d time.Duration) ceiling {
	c := ceiling{
		name: fmt.Sprintf("go/seglog append %s %dB batch %d", syncName(sync), size, batch),
		what: "in-process append to the storage engine, one goroutine",
	}
	dir, err := os.MkdirTemp(base, "log-ceiling-")
	if err != nil {
		c.err = err
		return c
	}
	defer os.RemoveAll(dir)
	cfg := seglog.DefaultConfig()
	cfg.Sync = sync
	l, err := seglog.Open(filepath.Join(dir, "log"), cfg)
	if err != nil {
		c.err = err
		return c
	}
	defer l.Close()
	recs := newPayloads(batch, size)
	var lat []time.Duration
	n := 0
	t0 := time.Now()
	for time.Since(t0) < d {
		s := time.Now()
		if batch == 1 {
			_, err = l.Append(recs[0])
		} else {
			_, err = l.AppendBatch(recs)
		}
		if err != nil {
			c.err = err
			return c
		}
		lat = append(lat, time.Since(s))
		n++
	}
	el := time.Since(t0)
	c.opsPerS = float64(n) / el.Seconds()
	c.recPerS = c.opsPerS * float64(batch)
	c.mbPerS = c.recPerS * float64(size) / 1e6
	ls := newLatencies(lat)
	c.p50, c.p99 = ls.p50(), ls.p99()
	return c
}

func syncName(p seglog.SyncPolicy) string {
	switch p {
	case seglog.SyncAlways:
		return "fsync"
	case seglog.SyncNever:
		return "no-fsync"
	}
	return p.String()
}

// concurrently runs op from conc goroutines for d and returns calls/s and
// the call latencies.
func concurrently(conc int, d time.Duration, op func() error) (float64, latencies, error) {
	var (
		mu    sync.Mutex
		all   []time.Duration
		calls atomic.Int64
		first atomic.Pointer[error]
		wg    sync.WaitGroup
	)
	t0 := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for time.Since(t0) < d {
				s := time.Now()
				if err := op(); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				lat = append(lat, time.Since(s))
				calls.Add(1)
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	if e := first.Load(); e != nil {
		return 0, nil, *e
	}
	return float64(calls.Load()) / el.Seconds(), newLatencies(all), nil
}

// grpcNoopCeiling calls the health service's Check of a one-node proglog
// over the same mutual TLS: the cost of a gRPC round trip with nothing
// behind it.
func grpcNoopCeiling(ctx context.Context, base string, pki certs.DevFiles, conc int, d time.Duration) ceiling {
	c := ceiling{
		name: fmt.Sprintf("gRPC health Check, %d caller(s)", conc),
		what: "no-op round trip to a one-node proglog over mutual TLS, one connection",
	}
	dir, err := os.MkdirTemp(base, "grpc-ceiling-")
	if err != nil {
		c.err = err
		return c
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	pc, err := startProglog(sctx, dir, pki, 1, durSync)
	cancel()
	if err != nil {
		c.err = err
		return c
	}
	defer pc.Close()
	tlsCfg, err := auth.TLSConfig{CertFile: pki.ClientCert("root"), KeyFile: pki.ClientKey("root"), CAFile: pki.CACert}.Client()
	if err != nil {
		c.err = err
		return c
	}
	conn, err := grpc.NewClient(pc.agents[0].Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		c.err = err
		return c
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	check := func() error {
		_, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(); err != nil {
		c.err = err
		return c
	}
	rate, lat, err := concurrently(conc, d, check)
	c.opsPerS, c.recPerS, c.p50, c.p99, c.err = rate, rate, lat.p50(), lat.p99(), err
	return c
}

// natsNoopCeiling is JetStream's counterpart: a core NATS request to a
// subscriber that replies at once, through one nats-server over mutual TLS.
func natsNoopCeiling(ctx context.Context, base string, t *jsTLS, conc int, d time.Duration) ceiling {
	c := ceiling{
		name: fmt.Sprintf("core NATS request/reply, %d caller(s)", conc),
		what: "no-op round trip through one nats-server over mutual TLS (requester and responder connections)",
	}
	dir, err := os.MkdirTemp(base, "nats-ceiling-")
	if err != nil {
		c.err = err
		return c
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	jc, err := startJetStream(sctx, dir, t, 1, durSync)
	cancel()
	if err != nil {
		c.err = err
		return c
	}
	defer jc.Close()
	resp, _, err := jsConnect(jc.servers[0].ClientURL(), t)
	if err != nil {
		c.err = err
		return c
	}
	defer resp.Close()
	sub, err := resp.Subscribe("noop", func(m *nats.Msg) { _ = m.Respond(nil) })
	if err != nil {
		c.err = err
		return c
	}
	defer sub.Unsubscribe()
	if err := resp.Flush(); err != nil {
		c.err = err
		return c
	}
	req := func() error {
		_, err := jc.nc.Request("noop", nil, 10*time.Second)
		return err
	}
	if err := req(); err != nil {
		c.err = err
		return c
	}
	rate, lat, err := concurrently(conc, d, req)
	c.opsPerS, c.recPerS, c.p50, c.p99, c.err = rate, rate, lat.p50(), lat.p99(), err
	return c
}
