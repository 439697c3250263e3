package client_test

// Consumer groups against three real nodes (go/agent: the metadata group
// coordinating the group, the partitions' replicas, mutual TLS).

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	client "github.com/proglog/proglog/clients/go"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// commits records the CommitOffsets a client's consumers made that the
// cluster accepted, in the order they returned.
type commits struct {
	mu  sync.Mutex
	all []map[client.TopicPartition]uint64
}

func (c *commits) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if r, ok := req.(*logv1.CommitOffsetsRequest); ok && err == nil {
		m := map[client.TopicPartition]uint64{}
		for _, o := range r.GetOffsets() {
			m[client.TopicPartition{Topic: o.GetTopic(), Partition: o.GetPartition()}] = o.GetOffset()
		}
		c.mu.Lock()
		c.all = append(c.all, m)
		c.mu.Unlock()
	}
	return err
}

// TestClusterConsumerGroup: three consumers share a topic of six
// partitions while records are produced; members are killed (their
// client closed under them: no commit, no leave, so their sessions
// expire) and added. Every record is processed at least once (none
// skipped: each partition's processed offsets cover [0, end)), and the
// commits the cluster accepted are monotonic per partition, ending at
// each partition's end.
func TestClusterConsumerGroup(t *testing.T) {
	const (
		topic      = "events"
		group      = "workers"
		partitions = 6
	)
	c := newRaftCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	producer := c.client()
	if _, err := producer.CreateTopic(ctx, topic, client.TopicConfig{Partitions: partitions, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}

	var (
		accepted commits
		mu       sync.Mutex
		seen     = map[client.TopicPartition]map[uint64]int{}
		wg       sync.WaitGroup
	)
	type member struct {
		cl   *client.Client
		cons *client.Consumer
	}
	// start adds a consumer with its own client (killed by closing it)
	// and a goroutine processing its records until Next fails.
	start := func(name string) member {
		cl := c.client(client.WithDialOptions(grpc.WithChainUnaryInterceptor(accepted.intercept)))
		cons, err := cl.Consumer(ctx, group, []string{topic}, client.WithSessionTimeout(time.Second),
			client.WithAutoCommit(50*time.Millisecond), client.WithClientID(name))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := cons.Next(ctx)
				if err != nil {
					return
				}
				tp := client.TopicPartition{Topic: m.Topic, Partition: m.Partition}
				mu.Lock()
				if seen[tp] == nil {
					seen[tp] = map[uint64]int{}
				}
				seen[tp][m.Offset]++
				mu.Unlock()
			}
		}()
		return member{cl, cons}
	}
	ends := make([]uint64, partitions)
	produce := func(n int) {
		t.Helper()
		for i := range n {
			p := uint32(i % partitions)
			if _, err := producer.Topic(topic).Partition(p).Produce(ctx, &client.Record{Value: fmt.Appendf(nil, "%d-%d", p, ends[p])}); err != nil {
				t.Fatal(err)
			}
			ends[p]++
		}
	}
	processedAll := func(what string) {
		t.Helper()
		eventually(t, what, time.Minute, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for p, end := range ends {
				for off := range end {
					if seen[client.TopicPartition{Topic: topic, Partition: uint32(p)}][off] == 0 {
						return false
					}
				}
			}
			return true
		})
	}

	m1, m2, m3 := start("c1"), start("c2"), start("c3")
	produce(120)
	processedAll("the first records processed by three members")
	m1.cl.Close() // killed: its partitions are re-read from its last commit once its session expires
	produce(120)
	m4 := start("c4")
	produce(120)
	processedAll("the records processed after c1 died and c4 joined")
	m2.cl.Close()
	produce(120)
	processedAll("the records processed after c2 died")
	// Records c2 processed but did not commit are re-read from its last
	// commit once its session expires: then the group has committed
	// everything.
	eventually(t, "every partition committed at its end", time.Minute, func() bool {
		offs, err := producer.FetchOffsets(ctx, group)
		if err != nil || len(offs) != partitions {
			return false
		}
		for _, o := range offs {
			if o.Offset != ends[o.Partition] {
				return false
			}
		}
		return true
	})
	for _, m := range []member{m3, m4} {
		if err := m.cons.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	m1.cons.Close(ctx) // end the killed ones' goroutines
	m2.cons.Close(ctx)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	redelivered := 0
	for _, offs := range seen {
		for _, n := range offs {
			redelivered += n - 1
		}
	}
	t.Logf("%d records, %d delivered again after a member died", 480, redelivered)
	last := map[client.TopicPartition]uint64{}
	accepted.mu.Lock()
	for i, cm := range accepted.all {
		for tp, off := range cm {
			if prev, ok := last[tp]; ok && off < prev {
				t.Errorf("commit %d: %v at %d after %d: not monotonic", i, tp, off, prev)
			}
			last[tp] = off
		}
	}
	accepted.mu.Unlock()
	offs, err := producer.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != partitions {
		t.Fatalf("committed offsets %+v, want the %d partitions", offs, partitions)
	}
	for _, o := range offs {
		if !o.Committed || o.Offset != ends[o.Partition] {
			t.Errorf("%v committed at %d (%v), want its end %d", o.TopicPartition, o.Offset, o.Committed, ends[o.Partition])
		}
	}
	if _, err := producer.DescribeGroup(ctx, group); err != nil {
		t.Errorf("DescribeGroup: %v", err)
	}
}

// gatedCalls holds a client's calls of one method between hold and
// release (each until its context ends): a member whose heartbeats are
// held is a member that stalled.
type gatedCalls struct {
	method string
	mu     sync.Mutex
	open   chan struct{} // nil: not held
}

func (g *gatedCalls) hold() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedCalls) release() {
	g.mu.Lock()
	close(g.open)
	g.open = nil
	g.mu.Unlock()
}

func (g *gatedCalls) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open != nil && method == g.method {
		select {
		case <-open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// TestClusterConsumerRejoins: a member whose heartbeats stop for longer
// than its session is removed by the cluster; when they get through again
// it is told UNKNOWN_MEMBER, joins again as a new member and reads from
// the committed offsets: the record it returned after its last commit is
// delivered again, nothing is skipped.
func TestClusterConsumerRejoins(t *testing.T) {
	c := newRaftCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	producer := c.client()
	if _, err := producer.CreateTopic(ctx, "events", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := producer.Topic("events").Partition(0).Produce(ctx, &client.Record{Value: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	gate := &gatedCalls{method: "/log.v1.Log/Heartbeat"}
	cl := c.client(client.WithDialOptions(grpc.WithChainUnaryInterceptor(gate.intercept)))
	cons, err := cl.Consumer(ctx, "g", []string{"events"}, client.WithSessionTimeout(time.Second), client.WithAutoCommit(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	read := func() uint64 {
		t.Helper()
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.Offset
	}
	read()
	if err := cons.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if off := read(); off != 1 {
		t.Fatalf("second record at %d", off)
	}
	old := cons.MemberID()
	gate.hold()
	eventually(t, "the cluster to remove the stalled member", 30*time.Second, func() bool {
		info, err := producer.DescribeGroup(ctx, "g")
		return err == nil && len(info.Members) == 0
	})
	gate.release()
	eventually(t, "the consumer to join again", 30*time.Second, func() bool { return cons.MemberID() != old && cons.MemberID() != "" })
	for want := uint64(1); want < 4; want++ {
		if off := read(); off != want {
			t.Fatalf("after joining again read offset %d, want %d (from the committed offset 1 on)", off, want)
		}
	}
}
