package server

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/producer"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// ProduceStream implements logv1.LogServer.
//
// The stream's partition is the first request's topic and partition,
// authorized and resolved when that request arrives (the tap handle only
// checked that the caller may produce to some topic); later requests name
// the same or leave both empty, else the stream ends with InvalidArgument
// after the valid requests before it are written and acknowledged.
//
// Group commit: a receiver goroutine queues requests while the handler
// appends, and the handler writes everything queued with one Append —
// one write and at most one fsync for many records — before acknowledging
// each in order. An acknowledged record is written; on any error the stream
// ends and nothing after the last acknowledgement was written (a failing
// record's valid predecessors in its group are written and acknowledged
// first).
func (s *Server) ProduceStream(stream logv1.Log_ProduceStreamServer) error {
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	var t *target // the stream's partition, from its first request
	q := newProduceQueue(s.cfg.MaxRecvMsgBytes)
	stopWake := context.AfterFunc(ctx, q.close)
	defer stopWake()
	defer q.close()
	// Recv does not watch our context (shutdown), so it runs apart; it
	// returns once gRPC ends the stream after this handler returns.
	go q.receive(stream)

	for {
		reqs, recvErr, closed := q.take(s.cfg.MaxBatchRecords)
		if closed {
			return s.streamEnd(ctx, ctx.Err())
		}
		if len(reqs) > 0 {
			if t == nil {
				first, err := s.resolve(ctx, auth.ActionProduce, reqs[0].GetTopic(), reqs[0].GetPartition())
				if err != nil {
					return err
				}
				t = &first
			}
			if err := s.produceGroup(ctx, stream, *t, reqs); err != nil {
				return err
			}
			continue
		}
		if errors.Is(recvErr, io.EOF) {
			return nil
		}
		return recvErr
	}
}

// produceGroup validates reqs in order, appends the valid prefix to t, and
// acknowledges it, and returns the first validation error if any. The
// prefix is appended in runs: consecutive requests without a producer
// (ID 0) go in one Append, as do consecutive requests of one producer
// whose sequences follow on (one idempotent batch).
func (s *Server) produceGroup(ctx context.Context, stream logv1.Log_ProduceStreamServer, t target, reqs []*logv1.ProduceRequest) error {
	now := timestamppb.Now()
	recs := make([]*logv1.Record, 0, len(reqs))
	prods := make([]commitlog.Producer, 0, len(reqs))
	sizes := make([]int, 0, len(reqs))
	sent := make([][]byte, 0, len(reqs)) // idempotent records as sent, for the checksum; nil for plain ones
	var invalid error
	for _, req := range reqs {
		if err := t.names(req.GetTopic(), req.GetPartition()); err != nil {
			invalid = err
			break
		}
		p, err := producerOf(req.GetProducer(), 1)
		if err != nil {
			invalid = err
			break
		}
		var enc [][]byte // nil for a plain produce
		if p.ID != 0 {
			if enc, err = sentEncodings([]*logv1.Record{req.GetRecord()}); err != nil {
				invalid = err
				break
			}
		} else {
			enc = [][]byte{nil}
		}
		size, err := s.prepare(req.GetRecord(), -1, now)
		if err != nil {
			invalid = err
			break
		}
		recs = append(recs, req.GetRecord())
		prods = append(prods, p)
		sizes = append(sizes, size)
		sent = append(sent, enc...)
	}
	for start := 0; start < len(recs); {
		end, total := start+1, sizes[start]
		for end < len(recs) && prods[end].ID == prods[start].ID &&
			(prods[end].ID == 0 || prods[end].Sequence == prods[end-1].Sequence+1) {
			total += sizes[end]
			end++
		}
		p := prods[start]
		if p.ID != 0 {
			p.Checksum = producer.Checksum(sent[start:end])
		}
		a, err := s.appendRecords(ctx, t, p, recs[start:end], total)
		if err != nil {
			return s.streamEnd(ctx, err)
		}
		for i := range end - start {
			if err := stream.Send(&logv1.ProduceResponse{Offset: a.First + uint64(i), Duplicate: a.Duplicate}); err != nil {
				return err
			}
		}
		start = end
	}
	return invalid
}

// names checks that a request of t's ProduceStream names t's topic and
// partition, or neither (topic empty and partition 0).
func (t target) names(topic string, partition uint32) error {
	if topic == "" && partition == 0 {
		return nil
	}
	if topic == "" {
		topic = commitlog.DefaultTopic
	}
	if topic != t.topic || partition != t.partition {
		return status.Errorf(codes.InvalidArgument,
			"this ProduceStream writes to topic %q partition %d (its first request's); a request names topic %q partition %d; open a stream per partition",
			t.topic, t.partition, topic, partition)
	}
	return nil
}

// produceQueue hands requests from the receiving goroutine to the handler.
// It holds at most about maxBytes of requests (plus one), so a fast producer
// cannot make the server buffer without bound.
type produceQueue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	maxBytes int
	items    []*logv1.ProduceRequest
	sizes    []int // encoded size of each item
	bytes    int   // sum of sizes
	recvErr  error // io.EOF or the error that ended receiving
	closed   bool  // the handler is gone or the stream's context ended
}

func newProduceQueue(maxBytes int) *produceQueue {
	q := &produceQueue{maxBytes: maxBytes}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// produceQueuedHook, when set (by tests) before a stream starts, is called
// by the receiving goroutine each time it has queued a request.
var produceQueuedHook func()

func (q *produceQueue) receive(stream logv1.Log_ProduceStreamServer) {
	hook := produceQueuedHook
	for {
		req, err := stream.Recv()
		q.mu.Lock()
		for q.bytes >= q.maxBytes && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		if err != nil {
			q.recvErr = err
		} else {
			size := proto.Size(req)
			q.items = append(q.items, req)
			q.sizes = append(q.sizes, size)
			q.bytes += size
		}
		q.cond.Broadcast()
		q.mu.Unlock()
		if err != nil {
			return
		}
		if hook != nil {
			hook()
		}
	}
}

// take waits for requests and returns up to max of them; with none queued
// it returns the receive error that ended the stream, or closed.
func (q *produceQueue) take(max int) (reqs []*logv1.ProduceRequest, recvErr error, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && q.recvErr == nil && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, nil, true
	}
	if len(q.items) == 0 {
		return nil, q.recvErr, false
	}
	n := min(len(q.items), max)
	reqs = q.items[:n:n]
	for _, size := range q.sizes[:n] {
		q.bytes -= size
	}
	q.items, q.sizes = q.items[n:], q.sizes[n:]
	if len(q.items) == 0 {
		q.items, q.sizes = nil, nil // let the backing arrays go
	}
	q.cond.Broadcast()
	return reqs, nil, false
}

func (q *produceQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
