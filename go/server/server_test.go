package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

func rec(v string) *logv1.Record { return &logv1.Record{Value: []byte(v)} }

func TestProduceConsume(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)

	before := time.Now().Add(-time.Second)
	sent := &logv1.Record{
		Value:   []byte("hello"),
		Key:     []byte("k1"),
		Headers: []*logv1.Header{{Key: "content-type", Value: []byte("text/plain")}, {Key: "trace", Value: []byte{0, 1}}},
		Offset:  999, // ignored: the server assigns offsets
	}
	resp, err := c.Produce(ctx, &logv1.ProduceRequest{Record: sent})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Offset != 0 {
		t.Fatalf("first offset = %d, want 0", resp.Offset)
	}
	got, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	r := got.Record
	if r.Offset != 0 || string(r.Value) != "hello" || string(r.Key) != "k1" || len(r.Headers) != 2 ||
		r.Headers[0].Key != "content-type" || !bytes.Equal(r.Headers[1].Value, []byte{0, 1}) {
		t.Fatalf("consumed %v", r)
	}
	// Unset timestamp: the server stamps its clock.
	if ts := r.Timestamp.AsTime(); ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
		t.Fatalf("server timestamp %v not around now", ts)
	}

	// A producer-set timestamp is kept as is.
	fixed := timestamppb.New(time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC))
	resp, err = c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("old"), Timestamp: fixed}})
	if err != nil || resp.Offset != 1 {
		t.Fatalf("second produce: %v, %v", resp, err)
	}
	got, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Record.Timestamp, fixed) {
		t.Fatalf("timestamp %v, want %v", got.Record.Timestamp, fixed)
	}
	if f.storage.NextOffset() != 2 {
		t.Fatalf("storage next = %d", f.storage.NextOffset())
	}
}

func TestProduceBatch(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("x")}); err != nil {
		t.Fatal(err)
	}
	var recs []*logv1.Record
	for i := range 50 {
		recs = append(recs, rec(fmt.Sprint("b", i)))
	}
	resp, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if resp.FirstOffset != 1 || resp.Count != 50 {
		t.Fatalf("batch response %v", resp)
	}
	for i := range 50 {
		got, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(1 + i)})
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Record.Value) != fmt.Sprint("b", i) || got.Record.Offset != uint64(1+i) || got.Record.Timestamp == nil {
			t.Fatalf("offset %d: %v", 1+i, got.Record)
		}
	}
}

func TestProduceStream(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	stream, err := c.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	// Send everything first, then read: responses arrive in order.
	go func() {
		for i := range n {
			if err := stream.Send(&logv1.ProduceRequest{Record: rec(fmt.Sprint("s", i))}); err != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	for i := range n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if resp.Offset != uint64(i) {
			t.Fatalf("response %d has offset %d", i, resp.Offset)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}
	got, err := c.Consume(ctxT(t), &logv1.ConsumeRequest{Offset: n - 1})
	if err != nil || string(got.Record.Value) != fmt.Sprint("s", n-1) {
		t.Fatalf("consume last: %v %v", got, err)
	}
}

// Requests that queue while an append runs are written as one group, and
// still acknowledged one by one, in order.
func TestProduceStreamGroupCommit(t *testing.T) {
	const n = 51
	gate := make(chan struct{})
	f := newFixture(t, fixtureOpts{gate: gate})
	// The first append is held at the gate until the other 50 are queued
	// (or all 51, if the handler had not taken the first one yet: then
	// they are one group).
	allQueued := make(chan struct{})
	var received atomic.Int64
	t.Cleanup(server.SetProduceQueuedHook(func() {
		if received.Add(1) == n {
			close(allQueued)
		}
	}))
	stream, err := f.client("root").ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := stream.Send(&logv1.ProduceRequest{Record: rec(fmt.Sprint("g", i))}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-allQueued:
	case <-ctxT(t).Done():
		t.Fatalf("%d of %d requests received", received.Load(), n)
	}
	close(gate)
	for i := range n {
		resp, err := stream.Recv()
		if err != nil || resp.Offset != uint64(i) {
			t.Fatalf("ack %d: %v %v", i, resp, err)
		}
	}
	if w := f.clog.writes.Load(); w > 3 {
		t.Fatalf("%d writes for %d pipelined records; want them grouped", w, n)
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	c := f.client("root")
	for i := range n {
		got, err := c.Consume(ctxT(t), &logv1.ConsumeRequest{Offset: uint64(i)})
		if err != nil || string(got.Record.Value) != fmt.Sprint("g", i) {
			t.Fatalf("offset %d: %v %v", i, got, err)
		}
	}
}

func recvValues(t *testing.T, s logv1.Log_ConsumeStreamClient, n int, firstOffset uint64, prefix string) {
	t.Helper()
	for i := range n {
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		want := firstOffset + uint64(i)
		if resp.Record.Offset != want || string(resp.Record.Value) != fmt.Sprint(prefix, want) {
			t.Fatalf("got offset %d value %q, want %d %q", resp.Record.Offset, resp.Record.Value, want, fmt.Sprint(prefix, want))
		}
	}
}

func TestConsumeStreamCatchesUpAndFollows(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	for i := range 3 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec(fmt.Sprint("r", i))}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	recvValues(t, stream, 2, 1, "r") // history
	// The consumer is now parked at the end; new records must reach it.
	eventually(t, 5*time.Second, "consumer waiting", func() bool { return f.clog.waiting.Load() == 1 })
	for i := 3; i < 6; i++ {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec(fmt.Sprint("r", i))}); err != nil {
			t.Fatal(err)
		}
	}
	recvValues(t, stream, 3, 3, "r")
	// A batch arriving while it waits is delivered whole, in order.
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{rec("r6"), rec("r7")}}); err != nil {
		t.Fatal(err)
	}
	recvValues(t, stream, 2, 6, "r")
}

func TestConsumeStreamWaitsOnEmptyLog(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		resp, err := stream.Recv()
		if err == nil && string(resp.Record.Value) != "first" {
			err = fmt.Errorf("got %q", resp.Record.Value)
		}
		got <- err
	}()
	eventually(t, 5*time.Second, "consumer waiting", func() bool { return f.clog.waiting.Load() == 1 })
	select {
	case err := <-got:
		t.Fatalf("stream yielded before any produce: %v", err)
	default:
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("first")}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestConsumeStreamCancellationEndsHandler(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx, cancel := context.WithCancel(ctxT(t))
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "consumer waiting", func() bool { return f.clog.waiting.Load() == 1 })
	start := time.Now()
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("client recv after cancel: %v", err)
	}
	// The server side leaves Wait and finishes the RPC promptly.
	eventually(t, 2*time.Second, "server handler to return", func() bool {
		return f.clog.waiting.Load() == 0 && counter(t, f.reg, "proglog_rpc_requests_total", map[string]string{"method": "/log.v1.Log/ConsumeStream", "code": "Canceled"}) == 1
	})
	t.Logf("server-side stream ended %v after cancel", time.Since(start))
}

func TestShutdownEndsStreams(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	ctx := ctxT(t)
	consume, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	produce, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := produce.Send(&logv1.ProduceRequest{Record: rec("p")}); err != nil {
		t.Fatal(err)
	}
	if resp, err := produce.Recv(); err != nil || resp.Offset != 0 {
		t.Fatalf("produce stream: %v %v", resp, err)
	}
	if resp, err := consume.Recv(); err != nil || string(resp.Record.Value) != "p" {
		t.Fatalf("consume stream: %v %v", resp, err)
	}
	eventually(t, 5*time.Second, "consumer waiting", func() bool { return f.clog.waiting.Load() == 1 })

	start := time.Now()
	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Both streams were open and idle, yet shutdown did not wait for the
	// 5 s ShutdownTimeout: it ended them.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := consume.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("consume stream after shutdown: %v", err)
	}
	if _, err := produce.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("produce stream after shutdown: %v", err)
	}
}

// Health Watch streams (what gRPC client-side health checking uses) must not
// hold shutdown up either.
func TestShutdownEndsHealthWatch(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	watch, err := healthpb.NewHealthClient(f.conn(f.clientTLS("root"))).Watch(ctxT(t), &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := watch.Recv(); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", h, err)
	}
	start := time.Now()
	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	for {
		h, err := watch.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("watch ended with %v, want Unavailable", err)
			}
			break
		}
		if h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("watch update %v", h.Status)
		}
	}
}

// MaxConcurrentStreams bounds the calls one connection may have open: the
// next one waits for a slot.
func TestMaxConcurrentStreams(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *server.Config) { c.MaxConcurrentStreams = 2 }})
	c := f.client("root")
	ctx := ctxT(t)
	for range 2 {
		if _, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "two consumers waiting", func() bool { return f.clog.waiting.Load() == 2 })
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.GetServers(short, &logv1.GetServersRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third call on a full connection: %v, want DeadlineExceeded", err)
	}
	// Another connection has its own quota.
	if _, err := f.client("root").GetServers(ctx, &logv1.GetServersRequest{}); err != nil {
		t.Fatal(err)
	}
}

// outOfRangeDetails asserts err is OutOfRange with the documented details.
func outOfRangeDetails(t *testing.T, err error, offset, lowest, next string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.OutOfRange {
		t.Fatalf("err = %v, want OutOfRange", err)
	}
	var info *errdetails.ErrorInfo
	var msg *errdetails.LocalizedMessage
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.LocalizedMessage:
			msg = d
		}
	}
	if info == nil || msg == nil {
		t.Fatalf("details = %v, want ErrorInfo and LocalizedMessage", st.Details())
	}
	if info.Reason != "OFFSET_OUT_OF_RANGE" || info.Domain != "proglog" ||
		info.Metadata["offset"] != offset || info.Metadata["lowest"] != lowest || info.Metadata["next"] != next {
		t.Fatalf("ErrorInfo = %v", info)
	}
	if msg.Locale != "en-US" || msg.Message == "" {
		t.Fatalf("LocalizedMessage = %v", msg)
	}
}

func TestOutOfRange(t *testing.T) {
	f := newFixture(t, fixtureOpts{storage: func(c *seglog.Config) { c.InitialOffset = 100 }})
	c := f.client("root")
	ctx := ctxT(t)
	_, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 100})
	outOfRangeDetails(t, err, "100", "100", "100") // empty log
	for range 2 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("v")}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 102})
	outOfRangeDetails(t, err, "102", "100", "102")
	_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 7})
	outOfRangeDetails(t, err, "7", "100", "102")

	// A stream may start at or past the end (it waits), not below lowest.
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	outOfRangeDetails(t, err, "3", "100", "102")
}

func TestGetServersAndHealth(t *testing.T) {
	f := newFixture(t, fixtureOpts{server: func(c *server.Config) { c.ID = "node-a" }})
	ctx := ctxT(t)
	conn := f.conn(f.clientTLS("root"))
	resp, err := logv1.NewLogClient(conn).GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &logv1.Server{Id: "node-a", RpcAddr: f.addr, IsLeader: true}
	if len(resp.Servers) != 1 || !proto.Equal(resp.Servers[0], want) {
		t.Fatalf("servers = %v, want [%v]", resp.Servers, want)
	}

	health := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "log.v1.Log"} {
		h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v", svc, h, err)
		}
	}
	// Once the log is closed the server reports Unavailable and stops
	// claiming to serve.
	if err := f.storage.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = logv1.NewLogClient(conn).Produce(ctx, &logv1.ProduceRequest{Record: rec("late")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("produce on closed log: %v", err)
	}
	h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after close: %v %v", h, err)
	}
}

func TestGetBounds(t *testing.T) {
	f := newFixture(t, fixtureOpts{storage: func(c *seglog.Config) { c.InitialOffset = 100 }})
	c := f.client("root")
	ctx := ctxT(t)
	bounds := func(cons logv1.Consistency) (uint64, uint64) {
		t.Helper()
		resp, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Consistency: cons})
		if err != nil {
			t.Fatalf("GetBounds(%v): %v", cons, err)
		}
		return resp.GetLowest(), resp.GetNext()
	}
	if lo, next := bounds(logv1.Consistency_CONSISTENCY_UNSPECIFIED); lo != 100 || next != 100 {
		t.Fatalf("empty log: bounds [%d, %d), want [100, 100)", lo, next)
	}
	for range 2 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: rec("v")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, cons := range []logv1.Consistency{logv1.Consistency_CONSISTENCY_LINEARIZABLE, logv1.Consistency_CONSISTENCY_FOLLOWER} {
		if lo, next := bounds(cons); lo != 100 || next != 102 {
			t.Fatalf("%v: bounds [%d, %d), want [100, 102)", cons, lo, next)
		}
	}
	if _, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Consistency: 42}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetBounds(42): %v, want InvalidArgument", err)
	}
}
