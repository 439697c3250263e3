package client

import (
	"context"
	"iter"
	"math"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Records streams the log from offset from on, in order, and then follows
// it: after the last record it waits for new ones, until ctx ends.
//
//	for rec, err := range c.Records(ctx, 0) {
//		if err != nil {
//			return err // ctx's error once ctx is done
//		}
//		process(rec)
//	}
//
// Breaking out of the loop ends the stream. The sequence ends after
// yielding an error: ctx's error (errors.Is(err, context.Canceled) or
// context.DeadlineExceeded) when ctx is done, or a failure that retrying
// cannot fix — an *OffsetOutOfRangeError when from is below the oldest
// retained record, ErrPermissionDenied, ... When a server goes away, loses
// leadership or shuts down, the stream resumes on another server after the
// last record yielded, so no record is skipped or repeated; by default it
// keeps trying until ctx ends, and WithRetries(n) bounds the reconnections
// made without receiving a record in between.
// Streams go round-robin to the followers (the leader when there are
// none): every server streams the records it has committed, so a stream
// never yields an uncommitted record, and may run slightly behind the
// leader.
//
// With StopAtEnd the sequence ends, without an error, after the last
// record the log held when Records was called.
//
// Records reads partition 0 of DefaultTopic; Partition.Records reads
// another.
func (c *Client) Records(ctx context.Context, from uint64, opts ...RecordsOption) iter.Seq2[*Record, error] {
	return c.records(ctx, c.def, from, opts)
}

func (c *Client) records(ctx context.Context, p *Partition, from uint64, opts []RecordsOption) iter.Seq2[*Record, error] {
	var o recordsOptions
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(*Record, error) bool) {
		if c.closed.Load() {
			yield(nil, ErrClosed)
			return
		}
		end := uint64(math.MaxUint64)
		if o.stopAtEnd {
			b, err := p.Bounds(ctx)
			if err != nil {
				yield(nil, err)
				return
			}
			end = b.Next
		}
		next := from
		if next >= end {
			return
		}
		r := retrier{c: c, op: opStream, key: &p.key, route: c.routeFor(opStream)}
		for {
			ci := &callInfo{route: r.route, part: r.partRoute(ctx)}
			sctx, cancel := context.WithCancel(ctx)
			err := c.stream(withCallInfo(sctx, ci), p.key, next, func(rec *Record) bool {
				next = rec.Offset + 1
				r.retries = 0 // progress: the retry budget starts again
				return yield(rec, nil) && next < end
			})
			cancel()
			if err == nil {
				return // the consumer stopped
			}
			if err := r.next(ctx, err, ci); err != nil {
				yield(nil, err)
				return
			}
		}
	}
}

// stream runs one ConsumeStream from offset, handing records to yield. It
// returns nil when yield returns false, or the error that ended the stream.
func (c *Client) stream(ctx context.Context, key partKey, offset uint64, yield func(*Record) bool) error {
	s, err := c.log.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: offset, Topic: key.topic, Partition: key.partition})
	if err != nil {
		return err
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if !yield(recordFromProto(resp.GetRecord())) {
			return nil
		}
	}
}

// A RecordsOption changes how Records streams.
type RecordsOption func(*recordsOptions)

type recordsOptions struct{ stopAtEnd bool }

// StopAtEnd makes Records end after the last record the log holds when it
// is called (its next offset then, asked of the leader), instead of
// waiting for new ones.
func StopAtEnd() RecordsOption { return func(o *recordsOptions) { o.stopAtEnd = true } }

// Bounds is a log's readable range: offsets [Lowest, Next). Every record
// below Next is committed.
type Bounds struct {
	Lowest uint64 // oldest retained record
	Next   uint64 // offset the next record produced gets
}

// Bounds asks the leader of partition 0 of DefaultTopic for its bounds
// (GetBounds, linearizable): Next covers every record whose produce was
// acknowledged before the call. It is retried like the client's other
// calls.
func (c *Client) Bounds(ctx context.Context) (Bounds, error) {
	return c.def.Bounds(ctx)
}
