package client_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/server"
)

// holdFirst makes the leader hold the next append and returns once a
// record sent with ProduceAsync is held there, with its future and the
// gate to open.
func holdFirst(t *testing.T, c *cluster, cl *client.Client) (*client.ProduceFuture, *gate) {
	t.Helper()
	g := newGate()
	l := c.leaderNode()
	l.gate.Store(g)
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	f := cl.ProduceAsync(ctxT(t), &client.Record{Value: []byte("first")})
	<-g.entered
	return f, g
}

func open(c *cluster, g *gate) {
	c.leaderNode().gate.Store(nil)
	close(g.release)
}

// Records queued while a batch is in flight go out together in the next
// request, each with its own offset, in call order (one batch in flight).
func TestProduceAsyncCoalesces(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithMaxInFlight(1))
	ctx := ctxT(t)
	first, g := holdFirst(t, c, cl)

	var fs []*client.ProduceFuture
	for i := range 50 {
		fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: fmt.Appendf(nil, "r%d", i)}))
	}
	open(c, g)
	if off, err := first.Wait(ctx); err != nil || off != 0 {
		t.Fatalf("first: %d, %v", off, err)
	}
	for i, f := range fs {
		if off, err := f.Result(); err != nil || off != uint64(i+1) {
			t.Fatalf("record %d: offset %d, %v; want %d", i, off, err, i+1)
		}
	}
	if got := c.leaderNode().batchSizes(); !slices.Equal(got, []int{1, 50}) {
		t.Fatalf("records per request %v, want [1 50]", got)
	}
	rec, err := cl.Consume(ctx, 50)
	if err != nil || string(rec.Value) != "r49" {
		t.Fatalf("Consume(50) = %v, %v", rec, err)
	}
}

// WithMaxInFlight(n) lets n batches be in flight at once; records queue
// behind them.
func TestMaxInFlight(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithMaxInFlight(2))
	ctx := ctxT(t)
	first, g := holdFirst(t, c, cl)
	second := cl.ProduceAsync(ctx, &client.Record{Value: []byte("second")})
	<-g.entered // the second batch is in flight beside the first
	var queued []*client.ProduceFuture
	for range 5 {
		queued = append(queued, cl.ProduceAsync(ctx, &client.Record{Value: []byte("queued")}))
	}
	open(c, g)
	for _, f := range append([]*client.ProduceFuture{first, second}, queued...) {
		if _, err := f.Result(); err != nil {
			t.Fatal(err)
		}
	}
	got := c.leaderNode().batchSizes()
	if len(got) < 3 || got[0] != 1 || got[1] != 1 {
		t.Fatalf("records per request %v, want two single records, then the queued ones", got)
	}
	if c.storage.NextOffset() != 7 {
		t.Fatalf("next offset %d, want 7", c.storage.NextOffset())
	}
}

// Concurrent Produce calls through the batcher each get their own offset.
func TestConcurrentProduceOwnOffsets(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client()
	ctx := ctxT(t)
	const callers = 64
	var wg sync.WaitGroup
	offs := make([]uint64, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { offs[i], errs[i] = cl.ProduceValue(ctx, []byte("x")) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	slices.Sort(offs)
	for i, off := range offs {
		if off != uint64(i) {
			t.Fatalf("offsets %v: want 0..%d, each once", offs, callers-1)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	ctx := ctxT(t)

	t.Run("records", func(t *testing.T) {
		cl := c.client(client.WithMaxBatchRecords(10), client.WithMaxInFlight(1))
		before := len(c.leaderNode().batchSizes())
		_, g := holdFirst(t, c, cl)
		var fs []*client.ProduceFuture
		for range 25 {
			fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: []byte("x")}))
		}
		open(c, g)
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if _, err := f.Result(); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.leaderNode().batchSizes()[before:]; !slices.Equal(got, []int{1, 10, 10, 5}) {
			t.Fatalf("records per request %v, want [1 10 10 5]", got)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		// Each 100-byte value takes a few bytes more in the request.
		cl := c.client(client.WithMaxBatchBytes(350), client.WithMaxInFlight(1))
		before := len(c.leaderNode().batchSizes())
		_, g := holdFirst(t, c, cl)
		var fs []*client.ProduceFuture
		for range 7 {
			fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: make([]byte, 100)}))
		}
		fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: make([]byte, 1000)}))
		open(c, g)
		for _, f := range fs {
			if _, err := f.Result(); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.leaderNode().batchSizes()[before:]; !slices.Equal(got, []int{1, 3, 3, 1, 1}) {
			t.Fatalf("records per request %v, want [1 3 3 1 1] (a record over the bound alone)", got)
		}
	})
}

// A record the server refuses as too large fails alone; the others of its
// batch are written.
func TestBatchRecordTooLargeFailsAlone(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2, server: func(cfg *server.Config) { cfg.MaxRecordBytes = 1024 }})
	cl := c.client(client.WithMaxInFlight(1))
	ctx := ctxT(t)
	_, g := holdFirst(t, c, cl)
	a := cl.ProduceAsync(ctx, &client.Record{Value: []byte("a")})
	big := cl.ProduceAsync(ctx, &client.Record{Value: make([]byte, 2000)})
	b := cl.ProduceAsync(ctx, &client.Record{Value: []byte("b")})
	open(c, g)
	var tl *client.RecordTooLargeError
	if _, err := big.Result(); !errors.As(err, &tl) || tl.Index != -1 || tl.Limit != 1024 || tl.Size <= 2000 {
		t.Fatalf("large record: %v (%+v)", err, tl)
	}
	for i, f := range []*client.ProduceFuture{a, b} {
		if off, err := f.Result(); err != nil || off != uint64(i+1) {
			t.Fatalf("record %d: %d, %v", i, off, err)
		}
	}
}

// A failure of the request fails every record of it.
func TestBatchErrorGoesToEveryRecord(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithMaxInFlight(1))
	ctx := ctxT(t)
	first, g := holdFirst(t, c, cl)
	c.leaderNode().lowDisk.Store(true)
	var fs []*client.ProduceFuture
	for range 5 {
		fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: []byte("x")}))
	}
	open(c, g)
	for _, f := range append(fs, first) {
		if _, err := f.Result(); !errors.Is(err, client.ErrLowDiskSpace) {
			t.Fatalf("record of a refused batch: %v", err)
		}
	}
	if got := c.leaderNode().batchSizes(); !slices.Equal(got, []int{1, 5}) {
		t.Fatalf("records per request %v, want [1 5]", got)
	}
}

// A record whose context ends while it is queued is not sent.
func TestProduceAsyncCancelledWhileQueued(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithMaxInFlight(1))
	ctx := ctxT(t)
	_, g := holdFirst(t, c, cl)
	cctx, cancel := context.WithCancel(ctx)
	dropped := cl.ProduceAsync(cctx, &client.Record{Value: []byte("dropped")})
	kept := cl.ProduceAsync(ctx, &client.Record{Value: []byte("kept")})
	cancel()
	open(c, g)
	if _, err := dropped.Result(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled record: %v", err)
	}
	if off, err := kept.Result(); err != nil || off != 1 {
		t.Fatalf("kept record: %d, %v", off, err)
	}
	if got := c.leaderNode().batchSizes(); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("records per request %v, want [1 1]", got)
	}
}

// A Produce whose context ends while its record is in flight returns the
// context's error; the record is still written, and the next Produce calls
// get their own offsets (the future of the abandoned call, completed
// later, is not reused for them).
func TestProduceCancelledInFlight(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client()
	ctx := ctxT(t)
	g := newGate()
	c.leaderNode().gate.Store(g)
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	cctx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		_, err := cl.Produce(cctx, &client.Record{Value: []byte("abandoned")})
		got <- err
	}()
	<-g.entered // its record is held at the leader
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Produce with its context cancelled in flight: %v", err)
	}
	open(c, g)
	for i := 1; i <= 5; i++ {
		if off, err := cl.Produce(ctx, &client.Record{Value: fmt.Appendf(nil, "r%d", i)}); err != nil || off != uint64(i) {
			t.Fatalf("Produce %d after the abandoned one: offset %d, %v; want %d", i, off, err, i)
		}
	}
	if rec, err := cl.Consume(ctx, 0); err != nil || string(rec.Value) != "abandoned" {
		t.Fatalf("Consume(0) = %v, %v", rec, err)
	}
}

// Flush waits for the records of Produce calls too.
func TestFlushWaitsForProduce(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client()
	ctx := ctxT(t)
	g := newGate()
	c.leaderNode().gate.Store(g)
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	got := make(chan error, 1)
	go func() {
		_, err := cl.Produce(ctx, &client.Record{Value: []byte("held")})
		got <- err
	}()
	<-g.entered
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := cl.Flush(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a Produce in flight and an ended context: %v; want it to wait, and fail with the context's error", err)
	}
	open(c, g)
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// WithLinger holds a lone record back for more; Flush sends it at once.
func TestLingerAndFlush(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithLinger(time.Hour))
	ctx := ctxT(t)
	var fs []*client.ProduceFuture
	for range 3 {
		fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: []byte("x")}))
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		select {
		case <-f.Done():
		default:
			t.Fatalf("record %d not done after Flush", i)
		}
		if off, err := f.Result(); err != nil || off != uint64(i) {
			t.Fatalf("record %d: %d, %v", i, off, err)
		}
	}
	if got := c.leaderNode().batchSizes(); !slices.Equal(got, []int{3}) {
		t.Fatalf("records per request %v, want [3]", got)
	}
	// Flush ends with its context.
	g := newGate()
	c.leaderNode().gate.Store(g)
	held := cl.ProduceAsync(ctx, &client.Record{Value: []byte("held")})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := cl.Flush(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a cancelled context: %v", err)
	}
	open(c, g)
	if _, err := held.Result(); err != nil {
		t.Fatal(err)
	}
}

// Once a batch completes, the next one waits for that batch's callers to
// queue again: a caller answered by the first batch joins the records
// queued meanwhile instead of taking a turn of its own after them.
func TestRejoinWaitMergesTurns(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	// No timer decides here: only records (or Flush) end the wait.
	cl := c.client(client.WithRejoinWait(time.Hour))
	ctx := ctxT(t)
	first, g1 := holdFirst(t, c, cl)
	var queued []*client.ProduceFuture
	for range 3 {
		queued = append(queued, cl.ProduceAsync(ctx, &client.Record{Value: []byte("queued")}))
	}
	g2 := newGate() // holds the next batch, to read its size
	c.leaderNode().gate.Store(g2)
	close(g1.release)
	if off, err := first.Wait(ctx); err != nil || off != 0 {
		t.Fatalf("first: %d, %v", off, err)
	}
	again := cl.ProduceAsync(ctx, &client.Record{Value: []byte("again")})
	<-g2.entered
	open(c, g2)
	for i, f := range append(queued, again) {
		if off, err := f.Result(); err != nil || off != uint64(i+1) {
			t.Fatalf("record %d: offset %d, %v; want %d", i, off, err, i+1)
		}
	}
	if got := c.leaderNode().batchSizes(); !slices.Equal(got, []int{1, 4}) {
		t.Fatalf("records per request %v, want [1 4]: the first caller's next record joins the queued ones", got)
	}
}

// The wait never delays a lone caller (its own next record ends it), and
// Flush cuts it short.
func TestRejoinWaitLoneCallerAndFlush(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithRejoinWait(time.Hour))
	ctx := ctxT(t)
	for i := range 5 {
		if off, err := cl.ProduceValue(ctx, []byte("x")); err != nil || off != uint64(i) {
			t.Fatalf("produce %d: %d, %v", i, off, err)
		}
	}
	// The next batch waits for the first caller's next record, which does
	// not come, until Flush.
	first, g := holdFirst(t, c, cl)
	second := cl.ProduceAsync(ctx, &client.Record{Value: []byte("second")})
	open(c, g)
	if off, err := first.Result(); err != nil || off != 5 {
		t.Fatalf("first: %d, %v; want 5", off, err)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if off, err := second.Result(); err != nil || off != 6 {
		t.Fatalf("second: %d, %v; want 6", off, err)
	}
}

// WithBatching(false): each Produce is its own request, sent at once,
// concurrently with others.
func TestBatchingOff(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithBatching(false))
	ctx := ctxT(t)
	g := newGate()
	c.leaderNode().gate.Store(g)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := cl.ProduceValue(ctx, []byte("x")); err != nil {
				t.Error(err)
			}
		})
	}
	<-g.entered
	<-g.entered // both held at once: not serialized behind one another
	open(c, g)
	wg.Wait()
}

// Close fails queued records with ErrClosed and ends the client's
// goroutines.
func TestCloseEndsBatching(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	ctx := ctxT(t)
	// Let the servers' and the test's own goroutines settle first.
	base := runtime.NumGoroutine()
	cl := c.client()
	_, g := holdFirst(t, c, cl)
	queued := cl.ProduceAsync(ctx, &client.Record{Value: []byte("queued")})
	closed := make(chan error, 1)
	go func() { closed <- cl.Close() }()
	if _, err := queued.Result(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("queued record after Close: %v", err)
	}
	open(c, g)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ProduceAsync(ctx, &client.Record{Value: []byte("late")}).Result(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("ProduceAsync after Close: %v", err)
	}
	eventually(t, "the client's goroutines to end", 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= base
	})
}

func TestBatchOptionsValidated(t *testing.T) {
	ctx := ctxT(t)
	for name, opt := range map[string]client.Option{
		"records 0":     client.WithMaxBatchRecords(0),
		"records 10001": client.WithMaxBatchRecords(client.ServerMaxBatchRecords + 1),
		"bytes 0":       client.WithMaxBatchBytes(0),
		"linger":        client.WithLinger(-time.Second),
		"rejoin":        client.WithRejoinWait(-time.Second),
		"message 0":     client.WithMaxMessageBytes(0),
		"in flight 0":   client.WithMaxInFlight(0),
		"queued 0":      client.WithMaxQueuedBytes(0),
	} {
		if _, err := client.New(ctx, "127.0.0.1:1", opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	_, err := client.New(ctx, "127.0.0.1:1", client.WithMaxMessageBytes(1000), client.WithMaxBatchBytes(2000))
	if err == nil {
		t.Error("batch bytes over the message limit accepted")
	}
}

// WithMaxQueuedBytes bounds the queue: ProduceAsync waits for room, until
// its context ends.
func TestQueueBounded(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithMaxQueuedBytes(250))
	ctx := ctxT(t)
	_, g := holdFirst(t, c, cl)
	var fs []*client.ProduceFuture
	for range 2 { // about 104 bytes each: two fit
		fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: make([]byte, 100)}))
	}
	cctx, cancel := context.WithCancel(ctx)
	wctx := &watchedCtx{Context: cctx, waiting: make(chan struct{})}
	returned := make(chan *client.ProduceFuture, 1)
	go func() { returned <- cl.ProduceAsync(wctx, &client.Record{Value: make([]byte, 100)}) }()
	var f *client.ProduceFuture
	select {
	case <-wctx.waiting: // ProduceAsync waits on its context: cancel it
		cancel()
		f = <-returned
	case f = <-returned:
		cancel()
	}
	select {
	case <-f.Done(): // refused for want of room, not queued behind the held request
	default:
		t.Fatal("ProduceAsync queued a record beyond WithMaxQueuedBytes")
	}
	if _, err := f.Result(); !errors.Is(err, context.Canceled) {
		t.Fatalf("ProduceAsync on a full queue: %v", err)
	}
	// Once the queue drains there is room again.
	open(c, g)
	fs = append(fs, cl.ProduceAsync(ctx, &client.Record{Value: make([]byte, 100)}))
	for _, f := range fs {
		if _, err := f.Result(); err != nil {
			t.Fatal(err)
		}
	}
}

// watchedCtx closes waiting when Done is first called: when a call starts
// waiting on the context.
type watchedCtx struct {
	context.Context
	waiting chan struct{}
	once    sync.Once
}

func (w *watchedCtx) Done() <-chan struct{} {
	w.once.Do(func() { close(w.waiting) })
	return w.Context.Done()
}
