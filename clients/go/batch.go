package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// ProduceFuture is the outcome of one ProduceAsync: the record's offset or
// the error that failed it.
type ProduceFuture struct {
	partition uint32
	rec       logv1.Record // built in place: one allocation less a record
	size      int          // encoded size inside a ProduceBatchRequest
	ctx       context.Context
	deadline  time.Time // zero: none
	queuedAt  time.Time
	// done is closed by complete. The futures of Produce calls
	// (batcher.produce) are never handed out and are reused: they have
	// wake (capacity 1) instead, given a value by complete.
	done chan struct{}
	wake chan struct{}
	off  uint64
	err  error
	// seq numbers the record in its batcher (from 1), set when queued;
	// completed is the seq of the last use of the future that has its
	// outcome, for Flush.
	seq       uint64
	completed atomic.Uint64
}

// Partition returns the partition the record was queued for.
func (f *ProduceFuture) Partition() uint32 { return f.partition }

// Done is closed once the outcome is known.
func (f *ProduceFuture) Done() <-chan struct{} { return f.done }

// Result returns the outcome; it blocks until Done is closed.
func (f *ProduceFuture) Result() (uint64, error) {
	<-f.done
	return f.off, f.err
}

// Wait returns the outcome, or ctx's error if ctx ends first (the record
// may still be written then).
func (f *ProduceFuture) Wait(ctx context.Context) (uint64, error) {
	cancel := ctx.Done()
	if cancel == nil { // a plain receive costs less than a select
		<-f.done
		return f.off, f.err
	}
	select {
	case <-f.done:
		return f.off, f.err
	case <-cancel:
		return 0, ctx.Err()
	}
}

// complete gives the future its outcome. A reused future may be reused
// as soon as its wake has the value: nothing may touch it afterwards.
func (f *ProduceFuture) complete(off uint64, err error) {
	f.off, f.err = off, err
	f.completed.Store(f.seq)
	if f.wake != nil {
		f.wake <- struct{}{}
		return
	}
	close(f.done)
}

func failedFuture(err error) *ProduceFuture {
	f := &ProduceFuture{done: make(chan struct{})}
	f.complete(0, err)
	return f
}

// batcher coalesces ProduceAsync (and, with batching on, Produce) records
// into ProduceBatch requests. One goroutine, started by the first record
// and ended by Close, takes batches off the queue and sends them, up to
// maxInFlight at a time (with one, the default, it sends each itself; with
// more, each from a goroutine of its own): the records queued while that
// many are in flight form the next batch, so batches grow with the load
// and a lone record is sent at once (after the linger, if any). Once a
// batch completes, the next one waits (up to rejoinWait) for its callers
// to queue again, so that synchronous callers share one batch instead of
// taking turns in two.
//
// A record costs its caller no lock but b.mu (the batcher is found in a
// sync.Map, the client's queue bound taken with an atomic operation) and
// its future, in which the request's record is built: a new one with its
// channel for ProduceAsync, a reused one for Produce (produce), so that
// Flush waits by sequence number (waitFor) rather than on the futures'
// channels. BenchmarkProduce64 and its neighbours measure it.
type batcher struct {
	c           *Client
	key         partKey // the partition the batches go to
	maxRecords  int
	maxBytes    int
	maxInFlight int
	linger      time.Duration
	rejoinWait  time.Duration

	wake  chan struct{}  // a record was queued (capacity 1)
	flush chan struct{}  // Flush cuts the rejoin wait and the linger short (capacity 1)
	stop  chan struct{}  // closed by Close
	done  chan struct{}  // closed when the loop and the senders end
	slots chan struct{}  // one value per batch in flight
	wg    sync.WaitGroup // senders

	// reused holds the idle futures of Produce calls (produce).
	reused sync.Pool

	mu       sync.Mutex // never held while sending or completing futures
	queue    []*ProduceFuture
	queued   int                         // bytes in queue
	seq      uint64                      // the last record's seq
	inflight map[uint64][]*ProduceFuture // by the seq of the first record
	started  bool
	closed   bool
	// progress is closed (and replaced) when records got their outcome
	// while flushers > 0 Flush calls wait for some (waitFor).
	progress chan struct{}
	flushers int
	// rejoin is the queue length the next batch waits for: when a batch
	// completes, the records then queued plus that batch's (whose callers
	// may queue again at once), lowered as records leave the queue.
	// rejoinWant is that target while waitRejoin waits, 0 otherwise.
	rejoin     int
	rejoinWant int
}

func newBatcher(c *Client, key partKey) *batcher {
	b := &batcher{
		c:           c,
		key:         key,
		maxRecords:  c.cfg.maxBatchRecords,
		maxBytes:    c.cfg.maxBatchBytes,
		maxInFlight: c.cfg.maxInFlight,
		linger:      c.cfg.linger,
		rejoinWait:  c.cfg.rejoinWait,
		inflight:    map[uint64][]*ProduceFuture{},
		progress:    make(chan struct{}),
		wake:        make(chan struct{}, 1),
		flush:       make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if !c.cfg.batching {
		b.maxRecords, b.rejoinWait = 1, 0
	}
	// The request's producer must fit in the message too.
	b.maxBytes = min(b.maxBytes, c.cfg.maxMessageBytes-c.producerBytes())
	b.slots = make(chan struct{}, b.maxInFlight)
	return b
}

// batchRecordSize is rec's size as an element of a ProduceBatchRequest.
func batchRecordSize(rec *logv1.Record) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(recordSize(rec))
}

// recordSize is proto.Size(rec), from its fields: proto.Size goes through
// reflection, whose first use on a new message costs more than the rest
// of queueing it (see BenchmarkProduce64). TestRecordSize checks it
// against proto.Size and fails once Record, Header or Timestamp gains a
// field.
func recordSize(rec *logv1.Record) int {
	n := bytesFieldSize(1, len(rec.Value)) + bytesFieldSize(3, len(rec.Key))
	if rec.Offset != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(rec.Offset)
	}
	for _, h := range rec.Headers {
		hn := bytesFieldSize(1, len(h.Key)) + bytesFieldSize(2, len(h.Value))
		n += protowire.SizeTag(4) + protowire.SizeBytes(hn)
	}
	if ts := rec.Timestamp; ts != nil {
		tn := 0
		if ts.Seconds != 0 {
			tn += protowire.SizeTag(1) + protowire.SizeVarint(uint64(ts.Seconds))
		}
		if ts.Nanos != 0 {
			tn += protowire.SizeTag(2) + protowire.SizeVarint(uint64(int64(ts.Nanos)))
		}
		n += protowire.SizeTag(5) + protowire.SizeBytes(tn)
	}
	return n
}

// bytesFieldSize is the encoded size of a bytes or string field numbered
// num holding n bytes (nothing if empty: proto3 without presence).
func bytesFieldSize(num protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// add queues rec for ProduceAsync and returns its future.
func (b *batcher) add(ctx context.Context, rec *Record) *ProduceFuture {
	f := &ProduceFuture{done: make(chan struct{})}
	if err := b.enqueue(ctx, rec, f); err != nil {
		return failedFuture(err)
	}
	return f
}

// produce queues rec for Produce and waits for its outcome, or for ctx to
// end. Its future is one of b.reused, not handed out: it goes back once
// it has its outcome, so that a Produce allocates neither a future nor a
// channel.
func (b *batcher) produce(ctx context.Context, rec *Record) (uint64, error) {
	f, _ := b.reused.Get().(*ProduceFuture)
	if f == nil {
		f = &ProduceFuture{wake: make(chan struct{}, 1)}
	}
	if err := b.enqueue(ctx, rec, f); err != nil {
		b.reuse(f)
		return 0, err
	}
	if cancel := ctx.Done(); cancel == nil { // a plain receive costs less than a select
		<-f.wake
	} else {
		select {
		case <-f.wake:
		case <-cancel:
			return 0, ctx.Err() // f is left to the batcher, which completes it
		}
	}
	off, err := f.off, f.err
	b.reuse(f)
	return off, err
}

// reuse puts f, a future of produce that has its outcome (or was never
// queued), back in b.reused, without what it referred to.
func (b *batcher) reuse(f *ProduceFuture) {
	f.rec.Value, f.rec.Key, f.rec.Headers, f.rec.Timestamp = nil, nil, nil, nil
	f.ctx, f.err = nil, nil
	b.reused.Put(f)
}

// enqueue queues rec in f, a new or reused future. It reads the clock at
// most once: for the linger, and for WithCallTimeout's deadline when ctx
// has none.
func (b *batcher) enqueue(ctx context.Context, rec *Record, f *ProduceFuture) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.partition, f.ctx = b.key.partition, ctx
	rec.fillProto(&f.rec)
	f.size = batchRecordSize(&f.rec)
	if f.size+b.c.producerBytes() > b.c.cfg.maxMessageBytes {
		return newTooLargeError(f.size+b.c.producerBytes(), b.c.cfg.maxMessageBytes, -1, false)
	}
	d, hasDeadline := ctx.Deadline()
	f.queuedAt, f.deadline = time.Time{}, time.Time{}
	if b.linger > 0 || (!hasDeadline && b.c.cfg.callTimeout > 0) {
		f.queuedAt = time.Now()
	}
	switch {
	case hasDeadline:
		f.deadline = d
	case b.c.cfg.callTimeout > 0:
		f.deadline = f.queuedAt.Add(b.c.cfg.callTimeout)
	}
	if err := b.c.queued.acquire(ctx, b.stop, f.size); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.c.queued.release(f.size)
		return ErrClosed
	}
	b.seq++
	f.seq = b.seq
	b.queue = append(b.queue, f)
	b.queued += f.size
	if !b.started {
		b.started = true
		go b.run()
	}
	// While waitRejoin waits, only the record that ends its wait wakes it.
	wake := b.rejoinWant == 0 || b.rejoinDone()
	b.mu.Unlock()
	if wake {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// run is the batcher's loop.
func (b *batcher) run() {
	defer close(b.done)
	defer b.wg.Wait()
	for {
		select {
		case <-b.stop:
			b.failQueued()
			return
		case <-b.wake:
		}
		for {
			select {
			case <-b.stop:
				b.failQueued()
				return
			case b.slots <- struct{}{}:
			}
			if !b.waitRejoin() || !b.waitLinger() {
				<-b.slots
				b.failQueued()
				return
			}
			batch := b.take()
			if len(batch) == 0 {
				<-b.slots
				break
			}
			if b.maxInFlight == 1 {
				// The only batch in flight: the loop sends it itself
				// rather than hand it to a new goroutine (and grow that
				// goroutine's stack again) for each batch.
				b.send(batch)
				<-b.slots
				continue
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.send(batch)
				<-b.slots
			}()
		}
	}
}

// waitRejoin waits, at most rejoinWait, until the queue is as long as
// b.rejoin (up to a full batch): the callers of the batch that completed,
// if they produce again at once, then join the records queued meanwhile in
// one batch. It returns false if the batcher is stopped.
func (b *batcher) waitRejoin() bool {
	if b.rejoinWait <= 0 {
		return true
	}
	b.mu.Lock()
	b.rejoinWant = min(b.rejoin, b.maxRecords)
	b.rejoin = 0
	if b.rejoinWant == 0 || b.rejoinDone() {
		b.rejoinWant = 0
		b.mu.Unlock()
		return true
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.rejoinWant = 0
		b.mu.Unlock()
	}()
	t := time.NewTimer(b.rejoinWait)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return false
		case <-b.flush:
			if b.linger > 0 {
				// Put it back: Flush cuts the linger that follows short too.
				select {
				case b.flush <- struct{}{}:
				default:
				}
			}
			return true
		case <-t.C:
			return true
		case <-b.wake:
		}
		b.mu.Lock()
		done := b.rejoinDone()
		b.mu.Unlock()
		if done {
			return true
		}
	}
}

// rejoinDone reports whether the queue holds what waitRejoin waits for
// (or a full batch of bytes). b.mu is held.
func (b *batcher) rejoinDone() bool {
	return len(b.queue) >= b.rejoinWant || b.queued >= b.maxBytes
}

// waitLinger waits until the oldest queued record has waited the linger,
// the queue holds a full batch, or Flush is called. It returns false if the
// batcher is stopped.
func (b *batcher) waitLinger() bool {
	if b.linger <= 0 {
		return true
	}
	for {
		b.mu.Lock()
		if len(b.queue) == 0 || len(b.queue) >= b.maxRecords || b.queued >= b.maxBytes {
			b.mu.Unlock()
			return true
		}
		d := time.Until(b.queue[0].queuedAt.Add(b.linger))
		b.mu.Unlock()
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		select {
		case <-b.stop:
			t.Stop()
			return false
		case <-b.flush:
			t.Stop()
			return true
		case <-b.wake: // more records: full yet?
		case <-t.C:
		}
		t.Stop()
	}
}

// take moves the next batch from the queue to inflight: the oldest records
// up to maxRecords and maxBytes (at least one). Records whose context ended
// while queued are failed with its error, unsent.
func (b *batcher) take() []*ProduceFuture {
	b.mu.Lock()
	var batch, dropped []*ProduceFuture
	bytes, i, left := 0, 0, b.queued
	for ; i < len(b.queue) && len(batch) < b.maxRecords; i++ {
		f := b.queue[i]
		if f.ctx.Err() != nil {
			dropped = append(dropped, f)
			b.queued -= f.size
			continue
		}
		if len(batch) > 0 && bytes+f.size > b.maxBytes {
			break
		}
		batch = append(batch, f)
		bytes += f.size
		b.queued -= f.size
	}
	b.queue = b.queue[i:]
	b.rejoin = max(b.rejoin-i, 0)
	if len(b.queue) == 0 {
		b.queue = nil // let the backing array go
	}
	if len(batch) > 0 {
		b.inflight[batch[0].seq] = batch
	}
	left -= b.queued
	b.mu.Unlock()
	b.c.queued.release(left)
	if len(batch) > 0 {
		b.c.batchSent(b.key)
	}
	for _, f := range dropped {
		f.complete(0, f.ctx.Err())
	}
	if len(dropped) > 0 {
		b.progressed()
	}
	return batch
}

// send produces batch and completes its futures. A record the server
// refuses as too large fails alone and the rest is sent again; any other
// error fails every record of the batch.
func (b *batcher) send(batch []*ProduceFuture) {
	defer func(key uint64) {
		b.mu.Lock()
		delete(b.inflight, key)
		b.mu.Unlock()
		b.progressed()
	}(batch[0].seq)
	ctx, cancel := b.batchContext(batch)
	defer cancel()
	for len(batch) > 0 {
		req := &logv1.ProduceBatchRequest{Records: make([]*logv1.Record, len(batch)), Topic: b.key.topic, Partition: b.key.partition}
		for i, f := range batch {
			req.Records[i] = &f.rec
		}
		first, err := b.c.produceBatch(ctx, b.key, req)
		var tl *RecordTooLargeError
		if err != nil && errors.As(err, &tl) && tl.Index >= 0 && tl.Index < len(batch) {
			batch[tl.Index].complete(0, &RecordTooLargeError{Size: tl.Size, Limit: tl.Limit, Index: -1, st: tl.st})
			batch = append(batch[:tl.Index:tl.Index], batch[tl.Index+1:]...)
			continue
		}
		if b.rejoinWait > 0 {
			b.mu.Lock()
			b.rejoin = max(b.rejoin, len(b.queue)+len(batch))
			b.mu.Unlock()
		}
		for i, f := range batch {
			if err != nil {
				f.complete(0, err)
			} else {
				f.complete(first+uint64(i), nil)
			}
		}
		break
	}
}

// batchContext bounds a batch by the latest deadline of its records (none
// if one has none) and carries the values (metadata, trace) of its first
// record's context.
func (b *batcher) batchContext(batch []*ProduceFuture) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(batch[0].ctx)
	var latest time.Time
	for _, f := range batch {
		if f.deadline.IsZero() {
			return context.WithCancel(ctx)
		}
		if f.deadline.After(latest) {
			latest = f.deadline
		}
	}
	return context.WithDeadline(ctx, latest)
}

func (b *batcher) failQueued() {
	b.mu.Lock()
	q, bytes := b.queue, b.queued
	b.queue, b.queued = nil, 0
	b.mu.Unlock()
	b.c.queued.release(bytes)
	for _, f := range q {
		f.complete(0, ErrClosed)
	}
	b.progressed()
}

// progressed wakes the Flush calls waiting for records to get their
// outcome (waitFor); records completed before the call are seen by them.
func (b *batcher) progressed() {
	b.mu.Lock()
	if b.flushers > 0 {
		close(b.progress)
		b.progress = make(chan struct{})
	}
	b.mu.Unlock()
}

// pendingRecord is a record queued or in flight when Flush was called:
// its future, and its seq then (a future of Produce is reused).
type pendingRecord struct {
	f   *ProduceFuture
	seq uint64
}

// pending returns the records queued or in flight.
func (b *batcher) pending() []pendingRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]pendingRecord, 0, len(b.queue))
	for _, f := range b.queue {
		out = append(out, pendingRecord{f, f.seq})
	}
	for _, batch := range b.inflight {
		for _, f := range batch {
			out = append(out, pendingRecord{f, f.seq})
		}
	}
	return out
}

// waitFor waits until every record of recs has its outcome, or ctx ends.
func (b *batcher) waitFor(ctx context.Context, recs []pendingRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushers++
	defer func() { b.flushers-- }()
	for {
		recs = slices.DeleteFunc(recs, func(r pendingRecord) bool { return r.f.completed.Load() >= r.seq })
		if len(recs) == 0 {
			return nil
		}
		progress := b.progress
		b.mu.Unlock()
		select {
		case <-progress:
			b.mu.Lock()
		case <-ctx.Done():
			b.mu.Lock()
			return ctx.Err()
		}
	}
}

// close stops the sender (the caller has closed the connection, so a batch
// in flight fails with ErrClosed) and waits for it.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	started := b.started
	b.mu.Unlock()
	close(b.stop)
	if started {
		<-b.done
	}
}

// queueBound bounds the bytes of the records queued in all of a client's
// batchers (WithMaxQueuedBytes). Taking room is one atomic operation while
// there is room; the lock is for the callers that wait for it.
type queueBound struct {
	max   int64
	bytes atomic.Int64

	mu      sync.Mutex
	waiters int           // acquire calls waiting for room
	room    chan struct{} // closed (and replaced) when bytes are released while waiters > 0
}

func newQueueBound(max int) *queueBound {
	return &queueBound{max: int64(max), room: make(chan struct{})}
}

// tryAcquire counts size bytes if they fit under the bound (or nothing is
// queued: a record larger than the bound goes alone).
func (q *queueBound) tryAcquire(size int) bool {
	for {
		n := q.bytes.Load()
		if n != 0 && n+int64(size) > q.max {
			return false
		}
		if q.bytes.CompareAndSwap(n, n+int64(size)) {
			return true
		}
	}
}

// acquire waits until size bytes fit under the bound, then counts them.
// It fails with ctx's error, or ErrClosed once stop is closed.
func (q *queueBound) acquire(ctx context.Context, stop <-chan struct{}, size int) error {
	if q.tryAcquire(size) {
		return nil
	}
	q.mu.Lock()
	q.waiters++
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.waiters--
		q.mu.Unlock()
	}()
	for {
		// Take the channel before trying: a release after the try closes it.
		q.mu.Lock()
		room := q.room
		q.mu.Unlock()
		if q.tryAcquire(size) {
			return nil
		}
		select {
		case <-room:
		case <-stop:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release uncounts n bytes that left a queue and wakes the waiters.
func (q *queueBound) release(n int) {
	if n == 0 {
		return
	}
	q.bytes.Add(-int64(n))
	q.mu.Lock()
	if q.waiters > 0 {
		close(q.room)
		q.room = make(chan struct{})
	}
	q.mu.Unlock()
}

// newTooLargeError reports a record (index, -1 for a single one) or a whole
// request (request) of size bytes over limit, found by the client before
// sending.
func newTooLargeError(size, limit, index int, request bool) *RecordTooLargeError {
	what := "record"
	if request {
		what = "request"
	}
	st := status.Newf(codes.ResourceExhausted, "%s of %d bytes encoded is over the message limit of %d bytes", what, size, limit)
	return &RecordTooLargeError{Size: size, Limit: limit, Index: index, Request: request, st: st}
}

// ProduceAsync queues rec for producing to partition 0 of DefaultTopic
// and returns; the future gives its offset or error. It returns at once
// unless WithMaxQueuedBytes of records are already queued (for any
// partition): then it waits for room (or for ctx to end, returning a
// future failed with ctx's error). Records queued while a batch is in
// flight are sent together in the next ProduceBatch (see
// WithMaxBatchRecords, WithMaxBatchBytes, WithLinger), one batch at a
// time, so the records of one goroutine's ProduceAsync calls get
// increasing offsets in call order. ctx bounds the record: if it ends
// before the record is sent, the record is not sent and the future fails
// with ctx's error; its deadline (or WithCallTimeout) bounds the batch's
// retries. A record over the message limit (WithMaxMessageBytes) fails at
// once with a *RecordTooLargeError.
func (c *Client) ProduceAsync(ctx context.Context, rec *Record) *ProduceFuture {
	return c.def.ProduceAsync(ctx, rec)
}

// Flush waits until every record queued by ProduceAsync or Produce (of
// any topic and partition) before the call has its outcome, or until ctx
// ends (returning its error). It cuts a linger short. The records' errors
// are in their futures.
func (c *Client) Flush(ctx context.Context) error {
	bs := c.allBatchers()
	pending := make([][]pendingRecord, len(bs))
	for i, b := range bs {
		select {
		case b.flush <- struct{}{}:
		default:
		}
		pending[i] = b.pending()
	}
	for i, b := range bs {
		if err := b.waitFor(ctx, pending[i]); err != nil {
			return err
		}
	}
	return nil
}
