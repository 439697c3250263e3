package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Topic is a handle on one topic of the cluster: it places records on
// its partitions and gives the partitions' handles. It is cheap (no call
// is made until used) and safe for concurrent use.
type Topic struct {
	c    *Client
	name string
}

// Topic returns the handle of topic name ("" is DefaultTopic). The topic
// need not exist yet: calls on a topic that does not exist fail with
// ErrUnknownTopic.
func (c *Client) Topic(name string) *Topic {
	if name == "" {
		name = DefaultTopic
	}
	return &Topic{c: c, name: name}
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Partitions returns the topic's number of partitions, from the client's
// metadata (asked of the cluster on first use). A topic that does not
// exist fails with ErrUnknownTopic; one the servers do not describe to
// the caller (it has none of "describe", "produce" or "consume" on it;
// servers before that rule need "describe") with ErrPermissionDenied;
// servers that give no metadata (older than topics) with ErrUnavailable.
func (t *Topic) Partitions(ctx context.Context) (int, error) {
	n, err := t.c.meta.partitions(ctx, t.name)
	switch {
	case err != nil:
		return 0, err
	case n > 0:
		return n, nil
	}
	if err := t.c.meta.refusal(t.name); errors.Is(err, ErrPermissionDenied) {
		return 0, fmt.Errorf("%w (the client needs the metadata of topic %q: \"describe\", \"produce\" or \"consume\" on it)", err, t.name)
	}
	return 0, fmt.Errorf("%w: the servers give no metadata of topic %q (older servers)", ErrUnavailable, t.name)
}

// Partition returns the handle of partition p of the topic.
func (t *Topic) Partition(p uint32) *Partition {
	return &Partition{c: t.c, key: partKey{topic: t.name, partition: p}}
}

// Position is where a record was written: its partition and offset.
type Position struct {
	Partition uint32
	Offset    uint64
}

// Produce appends rec to the partition its key maps to (KeyPartition of
// the topic's partitions: Kafka's default partitioner) and returns where
// it was written; a record without a key goes to the topic's sticky
// partition (see ProduceAsync). It is otherwise Partition.Produce.
func (t *Topic) Produce(ctx context.Context, rec *Record) (Position, error) {
	f := t.ProduceAsync(ctx, rec)
	off, err := f.Wait(ctx)
	return Position{Partition: f.partition, Offset: off}, err
}

// ProduceAsync queues rec for the partition its key maps to, like
// Partition.ProduceAsync; the future's Partition tells which. A record
// without a key (nil or empty) goes to the topic's sticky partition: one
// chosen at random, kept until a batch is sent to it, then chosen again
// (Kafka's KIP-480), so that keyless records form large batches yet
// spread over the partitions. The partitions of a topic are asked of the
// cluster once and refreshed as the client's metadata is; with servers
// that give no metadata, records go to partition 0 of DefaultTopic and
// other topics fail as Partitions says.
func (t *Topic) ProduceAsync(ctx context.Context, rec *Record) *ProduceFuture {
	if rec == nil {
		return failedFuture(fmt.Errorf("%w: ProduceAsync of a nil record", ErrInvalidArgument))
	}
	p, err := t.PartitionFor(ctx, rec.Key)
	if err != nil {
		return failedFuture(err)
	}
	return t.Partition(p).ProduceAsync(ctx, rec)
}

// PartitionFor returns the partition Produce would send a record with
// key to now: KeyPartition(key, partitions) for a non-empty key, the
// topic's current sticky partition for an empty one.
func (t *Topic) PartitionFor(ctx context.Context, key []byte) (uint32, error) {
	n, err := t.c.meta.partitions(ctx, t.name)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		if t.name != DefaultTopic {
			_, err := t.Partitions(ctx)
			return 0, err
		}
		n = 1
	}
	if len(key) > 0 {
		return uint32(KeyPartition(key, n)), nil
	}
	return t.c.stickyPartition(t.name, n), nil
}

// stickyPartition returns topic's sticky partition among n, choosing one
// at random if it has none (or one past n after the topic changed).
func (c *Client) stickyPartition(topic string, n int) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.sticky[topic]
	if !ok || int(p) >= n {
		p = uint32(rand.N(n))
		c.sticky[topic] = p
	}
	return p
}

// batchSent moves key's topic to another sticky partition if key's
// partition was its sticky one (KIP-480: a new sticky partition once a
// batch is sent).
func (c *Client) batchSent(key partKey) {
	n := c.meta.cachedPartitions(key.topic)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.sticky[key.topic]; !ok || p != key.partition || n < 2 {
		return
	}
	next := uint32(rand.N(n - 1))
	if next >= key.partition {
		next++ // any other partition
	}
	c.sticky[key.topic] = next
}

// Partition is a handle on one partition of a topic: its calls go to the
// partition's leader (reads to its followers as the consistency allows),
// from the client's metadata. It is cheap and safe for concurrent use.
type Partition struct {
	c   *Client
	key partKey
}

// Topic returns the partition's topic name.
func (p *Partition) Topic() string { return p.key.topic }

// ID returns the partition's number.
func (p *Partition) ID() uint32 { return p.key.partition }

// Produce appends rec to the partition and returns its offset; see
// Client.Produce.
func (p *Partition) Produce(ctx context.Context, rec *Record) (uint64, error) {
	c := p.c
	if rec == nil {
		return 0, fmt.Errorf("%w: Produce of a nil record", ErrInvalidArgument)
	}
	if c.cfg.batching {
		if c.closed.Load() {
			return 0, ErrClosed
		}
		b, err := c.batcherFor(p.key)
		if err != nil {
			return 0, err
		}
		return b.produce(ctx, rec)
	}
	req := &logv1.ProduceRequest{Record: rec.toProto(), Topic: p.key.topic, Partition: p.key.partition}
	if size := proto.Size(req) + c.producerBytes(); size > c.cfg.maxMessageBytes {
		return 0, newTooLargeError(size, c.cfg.maxMessageBytes, -1, false)
	}
	var off uint64
	err := c.produce(ctx, p.key, 1, func(ctx context.Context, pr *logv1.Producer) error {
		req.Producer = pr
		resp, err := c.log.Produce(ctx, req)
		if err == nil {
			off = resp.GetOffset()
		}
		return err
	})
	return off, err
}

// ProduceAsync queues rec for the partition; see Client.ProduceAsync.
// Each partition has its own batches, in-flight requests and idempotent
// producers.
func (p *Partition) ProduceAsync(ctx context.Context, rec *Record) *ProduceFuture {
	if rec == nil {
		return failedFuture(fmt.Errorf("%w: ProduceAsync of a nil record", ErrInvalidArgument))
	}
	if p.c.closed.Load() {
		return failedFuture(ErrClosed)
	}
	b, err := p.c.batcherFor(p.key)
	if err != nil {
		return failedFuture(err)
	}
	return b.add(ctx, rec)
}

// ProduceBatch appends recs atomically to the partition; see
// Client.ProduceBatch.
func (p *Partition) ProduceBatch(ctx context.Context, recs []*Record) (first uint64, err error) {
	c := p.c
	if len(recs) == 0 {
		return 0, fmt.Errorf("%w: ProduceBatch of no records", ErrInvalidArgument)
	}
	req := &logv1.ProduceBatchRequest{Records: make([]*logv1.Record, len(recs)), Topic: p.key.topic, Partition: p.key.partition}
	for i, r := range recs {
		if r == nil {
			return 0, fmt.Errorf("%w: ProduceBatch: records[%d] is nil", ErrInvalidArgument, i)
		}
		req.Records[i] = r.toProto()
	}
	if size := proto.Size(req) + c.producerBytes(); size > c.cfg.maxMessageBytes {
		return 0, newTooLargeError(size, c.cfg.maxMessageBytes, -1, true)
	}
	return c.produceBatch(ctx, p.key, req)
}

func (c *Client) produceBatch(ctx context.Context, key partKey, req *logv1.ProduceBatchRequest) (first uint64, err error) {
	err = c.produce(ctx, key, len(req.Records), func(ctx context.Context, pr *logv1.Producer) error {
		req.Producer = pr
		resp, err := c.log.ProduceBatch(ctx, req)
		if err == nil {
			first = resp.GetFirstOffset()
		}
		return err
	})
	return first, err
}

// Consume reads the record at offset of the partition; see
// Client.Consume.
func (p *Partition) Consume(ctx context.Context, offset uint64) (*Record, error) {
	c := p.c
	req := &logv1.ConsumeRequest{Offset: offset, Consistency: c.cfg.consistency.proto(), Topic: p.key.topic, Partition: p.key.partition}
	var rec *Record
	err := c.do(ctx, opRead, &p.key, func(ctx context.Context) error {
		resp, err := c.log.Consume(ctx, req)
		if err == nil {
			rec = recordFromProto(resp.GetRecord())
		}
		return err
	})
	return rec, err
}

// Records streams the partition from offset from on; see Client.Records.
func (p *Partition) Records(ctx context.Context, from uint64, opts ...RecordsOption) iter.Seq2[*Record, error] {
	return p.c.records(ctx, p, from, opts)
}

// Bounds asks the partition's leader for its bounds; see Client.Bounds.
func (p *Partition) Bounds(ctx context.Context) (Bounds, error) {
	c := p.c
	var b Bounds
	req := &logv1.GetBoundsRequest{Consistency: logv1.Consistency_CONSISTENCY_LINEARIZABLE, Topic: p.key.topic, Partition: p.key.partition}
	err := c.do(ctx, opBounds, &p.key, func(ctx context.Context) error {
		resp, err := c.log.GetBounds(ctx, req)
		if err == nil {
			b = Bounds{Lowest: resp.GetLowest(), Next: resp.GetNext()}
		}
		return err
	})
	return b, err
}

// batcherFor returns key's batcher, made on first use. A batcher found
// after Close refuses records itself (batcher.add).
func (c *Client) batcherFor(key partKey) (*batcher, error) {
	if b, ok := c.batchers.Load(key); ok {
		return b.(*batcher), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Close sets closed before allBatchers takes c.mu: a batcher stored
	// here is either refused or closed by it.
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if b, ok := c.batchers.Load(key); ok {
		return b.(*batcher), nil
	}
	b := newBatcher(c, key)
	c.batchers.Store(key, b)
	return b, nil
}

// allBatchers returns the batchers made so far.
func (c *Client) allBatchers() []*batcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bs []*batcher
	for _, b := range c.batchers.Range {
		bs = append(bs, b.(*batcher))
	}
	return bs
}

// producersFor returns key's pool of idle idempotent producers: a
// producer's sequences belong to one partition.
func (c *Client) producersFor(key partKey) *producers {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.producers[key]
	if !ok {
		p = &producers{}
		c.producers[key] = p
	}
	return p
}
