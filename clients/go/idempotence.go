package client

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// producer is one idempotent producer (log.proto's Producer): a random ID
// and the sequence of its next record. It has at most one request in
// flight: it is taken from the client's pool for one request, all of its
// retries included, and given back once the request succeeded.
type producer struct {
	id  uint64
	seq uint64
}

// newProducer returns a producer with a random non-zero ID at sequence 0.
func newProducer() *producer {
	var b [8]byte
	for {
		if _, err := crand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("proglog: crypto/rand: %v", err)) // crypto/rand.Read does not fail
		}
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return &producer{id: id}
		}
	}
}

// producerSize bounds the bytes a producer adds to a produce request: its
// tag and length, the fixed64 ID and the varint sequence with their tags.
const producerSize = 1 + 1 + (1 + 8) + (1 + 10)

// producerBytes is what a producer adds to this client's produce requests.
func (c *Client) producerBytes() int {
	if c.cfg.idempotence {
		return producerSize
	}
	return 0
}

// producers is the client's pool of idle producers: a request takes one
// (a new one if none is idle) and gives it back after succeeding, so there
// are as many producers as requests were ever in flight at once (one per
// WithMaxInFlight slot for the batcher, one per concurrent ProduceBatch or
// unbatched Produce), each with its own sequence, and the records of one
// producer are written in the order of its requests.
type producers struct {
	mu   sync.Mutex
	idle []*producer
}

func (p *producers) get() *producer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		pr := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return pr
	}
	return newProducer()
}

func (p *producers) put(pr *producer) {
	p.mu.Lock()
	p.idle = append(p.idle, pr)
	p.mu.Unlock()
}

// produce sends a produce request of n records through call, with the
// client's routing and retries, idempotently unless WithIdempotence(false):
// every attempt carries the same producer and sequence, so a retry of a
// request the cluster already wrote is answered with the original offsets
// and writes nothing. call sends one attempt with producer p (nil: not
// idempotent).
//
// A producer whose request failed is dropped (its next sequence is
// unknown); the next request takes a new one. If the cluster has forgotten
// the producer (UNKNOWN_PRODUCER: idle past the server's producer expiry,
// or evicted) and no earlier attempt of the request may have been written
// (each was refused, or never sent), nothing was written and the request
// is sent again at once as a new producer; otherwise the call fails with
// ErrMaybeWritten.
func (c *Client) produce(ctx context.Context, key partKey, n int, call func(context.Context, *logv1.Producer) error) error {
	if !c.cfg.idempotence {
		return c.do(ctx, opProduce, &key, func(ctx context.Context) error { return call(ctx, nil) })
	}
	pool := c.producersFor(key)
	pr := pool.get()
	for {
		lp := &logv1.Producer{Id: pr.id, Sequence: pr.seq}
		ambiguous := false // an attempt may have been written
		err := c.do(ctx, opProduce, &key, func(ctx context.Context) error {
			err := call(ctx, lp)
			ambiguous = ambiguous || mayHaveWritten(ctx, err)
			return err
		})
		switch {
		case err == nil:
			pr.seq += uint64(n)
			pool.put(pr)
			return nil
		case errors.Is(err, ErrUnknownProducer) && !ambiguous:
			c.cfg.logger.Debug("proglog: the cluster forgot this producer; sending again as a new one", "producer", pr.id, "sequence", pr.seq)
			pr = newProducer()
		case errors.Is(err, ErrUnknownProducer):
			return &maybeWrittenError{id: pr.id, cause: err}
		default:
			return err
		}
	}
}

// mayHaveWritten reports whether a failed produce attempt may have been
// written: it was sent, and failed with UNAVAILABLE (a leadership change, a
// commit timeout, a broken connection) or without a status, rather than
// being refused.
func mayHaveWritten(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	ci, _ := ctx.Value(callInfoKey{}).(*callInfo)
	if ci == nil {
		return true
	}
	if _, _, sent := ci.result(); !sent {
		return false
	}
	st, ok := status.FromError(err)
	return !ok || st.Code() == codes.Unavailable
}
