package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/clients/go/clienttest"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// topicCluster starts the clienttest double with n servers and connects a
// client to all of them.
func topicCluster(t *testing.T, n int, opts ...client.Option) (*clienttest.Cluster, *client.Client) {
	t.Helper()
	tc, err := clienttest.New(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return topicClientOf(t, tc, opts...)
}

// topicClientOf connects another client to tc.
func topicClientOf(t *testing.T, tc *clienttest.Cluster, opts ...client.Option) (*clienttest.Cluster, *client.Client) {
	t.Helper()
	f := tc.Certs
	all := append([]client.Option{
		client.WithTLSFiles(f.CACert, f.ClientCert("root"), f.ClientKey("root")),
		client.WithDialTimeout(5 * time.Second),
		client.WithBackoff(time.Millisecond, 20*time.Millisecond),
	}, opts...)
	cl, err := client.New(ctxT(t), "proglog://"+strings.Join(tc.Addrs(), ","), all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return tc, cl
}

// callsOf returns server i's calls of method (any method when empty).
func callsOf(tc *clienttest.Cluster, i int, method string) []clienttest.Call {
	return slices.DeleteFunc(tc.Calls(i), func(c clienttest.Call) bool { return method != "" && c.Method != method })
}

func countCalls(tc *clienttest.Cluster, n int, method string) int {
	total := 0
	for i := range n {
		total += len(callsOf(tc, i, method))
	}
	return total
}

func isProduce(c clienttest.Call) bool { return c.Method == "Produce" || c.Method == "ProduceBatch" }

// Keyed records go to KeyPartition(key, P), each partition's requests to
// its leader only; each partition has its own idempotent producer.
func TestTopicRoutesKeysToPartitionLeaders(t *testing.T) {
	tc, cl := topicCluster(t, 3)
	tc.CreateTopic("orders", 3, 2) // partition p led by server p
	ctx := ctxT(t)
	topic := cl.Topic("orders")
	if n, err := topic.Partitions(ctx); err != nil || n != 3 {
		t.Fatalf("Partitions = %d, %v; want 3", n, err)
	}
	want := map[uint32][]string{}
	for i := range 30 {
		key := fmt.Sprintf("customer-%d", i)
		pos, err := topic.Produce(ctx, &client.Record{Key: []byte(key), Value: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		if p := uint32(client.KeyPartition([]byte(key), 3)); pos.Partition != p {
			t.Fatalf("%s went to partition %d, KeyPartition says %d", key, pos.Partition, p)
		}
		if pos.Offset != uint64(len(want[pos.Partition])) {
			t.Fatalf("%s at offset %d of partition %d, want %d", key, pos.Offset, pos.Partition, len(want[pos.Partition]))
		}
		want[pos.Partition] = append(want[pos.Partition], key)
	}
	producers := map[uint64]uint32{}
	for p := range uint32(3) {
		if got := tc.Records("orders", p); !slices.Equal(got, want[p]) {
			t.Errorf("partition %d holds %q, want %q", p, got, want[p])
		}
		for i := range 3 {
			for _, c := range tc.Calls(i) {
				if !isProduce(c) || c.Topic != "orders" || c.Partition != p {
					continue
				}
				if i != int(p) {
					t.Errorf("a produce for partition %d went to server %d, not its leader", p, i)
				}
				if q, ok := producers[c.Producer]; ok && q != p {
					t.Errorf("producer %d used for partitions %d and %d", c.Producer, q, p)
				}
				producers[c.Producer] = p
			}
		}
	}
	if len(producers) < 3 {
		t.Errorf("%d producers for 3 partitions", len(producers))
	}
}

// Reads of a partition go to its followers; linearizable bounds to its
// leader; a stream reads the partition named.
func TestTopicReadsGoToFollowers(t *testing.T) {
	tc, cl := topicCluster(t, 3)
	tc.CreateTopic("events", 2, 2) // partition 1: replicas 1, 2, led by 1
	ctx := ctxT(t)
	part := cl.Topic("events").Partition(1)
	for i := range 3 {
		if _, err := part.Produce(ctx, &client.Record{Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Until the client's connection to the follower is ready, reads fall
	// back to the leader: read until the follower has served one, so the
	// routing below is deterministic.
	for len(callsOf(tc, 2, "Consume")) == 0 {
		if _, err := part.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	var before [3]int
	for i := range before {
		before[i] = len(callsOf(tc, i, "Consume"))
	}
	for off := range uint64(3) {
		rec, err := part.Consume(ctx, off)
		if err != nil || string(rec.Value) != fmt.Sprintf("v%d", off) {
			t.Fatalf("Consume(%d) = %v, %v", off, rec, err)
		}
	}
	var served [3]int
	for i := range served {
		served[i] = len(callsOf(tc, i, "Consume")) - before[i]
	}
	if served[2] != 3 {
		t.Errorf("follower server 2 served %d of 3 reads (server 0: %d, leader 1: %d)", served[2], served[0], served[1])
	}
	b, err := part.Bounds(ctx)
	if err != nil || b.Next != 3 {
		t.Fatalf("Bounds = %+v, %v", b, err)
	}
	if got := callsOf(tc, 1, "GetBounds"); len(got) == 0 || got[0].Topic != "events" || got[0].Partition != 1 {
		t.Errorf("the leader's GetBounds calls: %+v", got)
	}
	var vals []string
	for rec, err := range part.Records(ctx, 1, client.StopAtEnd()) {
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, string(rec.Value))
	}
	if !slices.Equal(vals, []string{"v1", "v2"}) {
		t.Errorf("Records from 1 = %q", vals)
	}
	if len(callsOf(tc, 2, "ConsumeStream")) != 1 {
		t.Errorf("the stream did not go to the follower: %+v", callsOf(tc, 2, "ConsumeStream"))
	}
}

// A stale leader in the metadata costs one NOT_LEADER: the hint routes
// the partition's next calls to the real leader, without asking for the
// metadata more than WithMetadataRefresh allows.
func TestNotLeaderMovesThePartitionOnly(t *testing.T) {
	tc, cl := topicCluster(t, 3, client.WithMetadataRefresh(time.Hour))
	tc.CreateTopic("orders", 3, 3)
	ctx := ctxT(t)
	p1 := cl.Topic("orders").Partition(1)
	if _, err := p1.Produce(ctx, &client.Record{Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	tc.SetLeader("orders", 1, 2, false) // server 1 answers NOT_LEADER naming 2; the metadata still says 1
	before := len(callsOf(tc, 1, "ProduceBatch"))
	for _, v := range []string{"b", "c", "d"} {
		if _, err := p1.Produce(ctx, &client.Record{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(callsOf(tc, 1, "ProduceBatch")) - before; got != 1 {
		t.Errorf("the old leader got %d produces after it lost leadership, want 1 (the NOT_LEADER)", got)
	}
	if got := tc.Records("orders", 1); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("partition 1 holds %q", got)
	}
	// Partition 0 and the default topic still go to their leader, server 0.
	if _, err := cl.Topic("orders").Partition(0).Produce(ctx, &client.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ProduceValue(ctx, []byte("y")); err != nil {
		t.Fatal(err)
	}
	if got := tc.Records("log", 0); !slices.Equal(got, []string{"y"}) {
		t.Errorf("the default topic holds %q", got)
	}
	for _, c := range slices.Concat(tc.Calls(1), tc.Calls(2)) {
		if isProduce(c) && (c.Topic == "log" || c.Partition == 0) {
			t.Errorf("%+v went to a server that does not lead its partition", c)
		}
	}
	if got := countCalls(tc, 3, "GetMetadata"); got != 2 { // "orders" and "log", once each
		t.Errorf("%d GetMetadata calls, want 2 (refresh bounded to once an hour)", got)
	}
}

// A partition or topic the cached metadata does not know is refreshed and
// retried once, then fails typed.
func TestUnknownTopicRefreshesMetadata(t *testing.T) {
	tc, cl := topicCluster(t, 2, client.WithMetadataRefresh(time.Millisecond))
	ctx := ctxT(t)
	_, err := cl.Topic("later").Produce(ctx, &client.Record{Value: []byte("a")})
	if !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("produce to a missing topic: %v, want ErrUnknownTopic", err)
	}
	tc.CreateTopic("later", 1, 2) // created behind the client's back
	if _, err := cl.Topic("later").Produce(ctx, &client.Record{Value: []byte("a")}); err != nil {
		t.Fatalf("produce once the topic exists: %v", err)
	}
	_, err = cl.Topic("later").Partition(7).Produce(ctx, &client.Record{Value: []byte("a")})
	if !errors.Is(err, client.ErrUnknownPartition) {
		t.Fatalf("produce to a missing partition: %v, want ErrUnknownPartition", err)
	}
	// The topic grows behind the client's back: the partition its cached
	// metadata does not list is routed by the leader's NOT_LEADER hint.
	tc.CreateTopic("later", 2, 2)
	if _, err := cl.Topic("later").Partition(1).Produce(ctx, &client.Record{Value: []byte("b")}); err != nil {
		t.Fatalf("produce to the new partition: %v", err)
	}
	if got := tc.Records("later", 1); !slices.Equal(got, []string{"b"}) {
		t.Errorf("the new partition holds %q", got)
	}
}

// A metadata request that no server answers leaves the topic routed by
// its metadata once it answers again: only servers that refuse to give
// metadata (UNIMPLEMENTED, PERMISSION_DENIED) route by discovery's roles.
func TestMetadataOutageIsNotMistakenForOldServers(t *testing.T) {
	tc, cl := topicCluster(t, 2, client.WithRetries(0), client.WithMetadataRefresh(time.Nanosecond))
	tc.CreateTopic("orders", 2, 1)
	ctx := ctxT(t)
	tc.FailMetadata(status.Error(codes.Unavailable, "no server can answer"))
	if _, err := cl.Topic("orders").Produce(ctx, &client.Record{Key: []byte("k"), Value: []byte("a")}); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("produce while the metadata is unavailable: %v", err)
	}
	pos, err := cl.Topic("orders").Produce(ctx, &client.Record{Key: []byte("k"), Value: []byte("a")})
	if err != nil {
		t.Fatalf("produce once the metadata answers again: %v", err)
	}
	if want := uint32(client.KeyPartition([]byte("k"), 2)); pos.Partition != want {
		t.Errorf("went to partition %d, want %d", pos.Partition, want)
	}
	// Servers that give no metadata at all: the default topic goes by discovery.
	tc.FailMetadata(status.Error(codes.Unimplemented, "older server"), status.Error(codes.Unimplemented, "older server"))
	_, cl2 := topicClientOf(t, tc)
	if _, err := cl2.ProduceValue(ctx, []byte("b")); err != nil {
		t.Fatalf("default topic without metadata: %v", err)
	}
	if _, err := cl2.Topic("orders").Produce(ctx, &client.Record{Value: []byte("c")}); err == nil || !strings.Contains(err.Error(), "give no metadata") {
		t.Errorf("another topic without metadata: %v", err)
	}
}

// A topic the servers do not describe to the caller (PERMISSION_DENIED on
// GetMetadata: no "describe", "produce" or "consume" on it) fails a keyed
// or keyless produce with ErrPermissionDenied naming what it needs, not
// ErrUnavailable.
func TestTopicNotDescribedIsPermissionDenied(t *testing.T) {
	tc, cl := topicCluster(t, 1)
	tc.CreateTopic("orders", 2, 1)
	ctx := ctxT(t)
	denied := status.Error(codes.PermissionDenied, `nobody may not describe on "orders"`)
	tc.FailMetadata(denied)
	_, err := cl.Topic("orders").Produce(ctx, &client.Record{Key: []byte("k1"), Value: []byte("a")})
	if !errors.Is(err, client.ErrPermissionDenied) || errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), `"produce"`) {
		t.Fatalf("keyed produce to a topic not described: %v, want ErrPermissionDenied", err)
	}
	tc.FailMetadata(denied)
	_, err = cl.Topic("fresh").Produce(ctx, &client.Record{Value: []byte("b")})
	if !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("keyless produce to a topic not described: %v, want ErrPermissionDenied", err)
	}
}

// Keyless records stick to a partition until a batch is sent to it, then
// move to another one (KIP-480).
func TestKeylessRecordsStickUntilABatchIsSent(t *testing.T) {
	tc, cl := topicCluster(t, 1)
	tc.CreateTopic("logs", 4, 1)
	ctx := ctxT(t)
	topic := cl.Topic("logs")
	var parts []uint32
	for range 12 {
		pos, err := topic.Produce(ctx, &client.Record{Value: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, pos.Partition)
	}
	for i := 1; i < len(parts); i++ {
		if parts[i] == parts[i-1] {
			t.Fatalf("partitions %v: a batch was sent to %d and the next record stayed there", parts, parts[i])
		}
	}
	// Until a batch is sent (here: held by the linger until Flush), every
	// keyless record goes to the same partition, in one request.
	_, lingering := topicClientOf(t, tc, client.WithLinger(time.Hour))
	before := countCalls(tc, 1, "ProduceBatch")
	futures := make([]*client.ProduceFuture, 0, 50)
	for range 50 {
		futures = append(futures, lingering.Topic("logs").ProduceAsync(ctx, &client.Record{Value: []byte("y")}))
	}
	if err := lingering.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range futures {
		if _, err := f.Result(); err != nil {
			t.Fatal(err)
		}
		if f.Partition() != futures[0].Partition() {
			t.Fatalf("records queued before any batch was sent went to partitions %d and %d", futures[0].Partition(), f.Partition())
		}
	}
	if got := countCalls(tc, 1, "ProduceBatch") - before; got != 1 {
		t.Errorf("50 lingering records went in %d requests, want 1", got)
	}
}

// CreateTopic and DeleteTopic go to the metadata leader, following
// NOT_LEADER; their refusals are typed.
func TestTopicAdmin(t *testing.T) {
	tc, cl := topicCluster(t, 3)
	tc.SetMetadataLeader(2)
	ctx := ctxT(t)
	info, err := cl.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 4, ReplicationFactor: 2, RetentionAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "orders" || len(info.Partitions) != 4 || info.Config.ReplicationFactor != 2 || info.Config.RetentionAge != time.Hour {
		t.Fatalf("created %+v", info)
	}
	if p := info.Partitions[1]; len(p.Replicas) != 2 || p.Leader != tc.Addrs()[1] || p.LeaderID != "s1" {
		t.Errorf("partition 1: %+v", p)
	}
	if len(callsOf(tc, 2, "CreateTopic")) != 1 {
		t.Errorf("the metadata leader got %d CreateTopic calls", len(callsOf(tc, 2, "CreateTopic")))
	}
	// The client remembers the metadata leader: its next calls go there
	// first.
	admin := countCalls(tc, 3, "CreateTopic")
	if _, err := cl.CreateTopic(ctx, "orders", client.TopicConfig{}); !errors.Is(err, client.ErrTopicExists) {
		t.Errorf("CreateTopic of an existing topic: %v", err)
	}
	if err := cl.DeleteTopic(ctx, "never-created"); !errors.Is(err, client.ErrUnknownTopic) {
		t.Errorf("DeleteTopic of a missing topic: %v", err)
	}
	if n, m := countCalls(tc, 3, "CreateTopic")-admin, len(callsOf(tc, 2, "DeleteTopic")); n != 1 || m != 1 || countCalls(tc, 3, "DeleteTopic") != 1 {
		t.Errorf("%d CreateTopic and %d DeleteTopic calls (%d to the metadata leader) for one of each", n, countCalls(tc, 3, "DeleteTopic"), m)
	}
	if _, err := cl.CreateTopic(ctx, "big", client.TopicConfig{ReplicationFactor: 5}); !errors.Is(err, client.ErrNotEnoughNodes) {
		t.Errorf("CreateTopic with 5 replicas on 3 servers: %v", err)
	}
	_, err = cl.CreateTopic(ctx, "..", client.TopicConfig{})
	if !errors.Is(err, client.ErrInvalidTopic) || !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("CreateTopic(\"..\"): %v, want ErrInvalidTopic and ErrInvalidArgument", err)
	}
	topics, err := cl.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range topics {
		names = append(names, ti.Name)
	}
	if !slices.Equal(names, []string{"log", "orders"}) {
		t.Errorf("Topics = %q", names)
	}
	if d, err := cl.Describe(ctx, "orders"); err != nil || len(d.Partitions) != 4 {
		t.Errorf("Describe = %+v, %v", d, err)
	}
	if err := cl.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Describe(ctx, "orders"); !errors.Is(err, client.ErrUnknownTopic) {
		t.Errorf("Describe of a deleted topic: %v", err)
	}
	if err := cl.DeleteTopic(ctx, "orders"); !errors.Is(err, client.ErrUnknownTopic) {
		t.Errorf("DeleteTopic of a deleted topic: %v", err)
	}
}

// WithMaxQueuedBytes bounds the records queued for all partitions
// together, not each partition's.
func TestQueueBoundSpansPartitions(t *testing.T) {
	tc, cl := topicCluster(t, 1, client.WithMaxQueuedBytes(250), client.WithLinger(time.Hour))
	tc.CreateTopic("orders", 2, 1)
	ctx := ctxT(t)
	orders := cl.Topic("orders")
	// Held by the linger: about 104 bytes each, two fit.
	fs := []*client.ProduceFuture{
		orders.Partition(0).ProduceAsync(ctx, &client.Record{Value: make([]byte, 100)}),
		orders.Partition(0).ProduceAsync(ctx, &client.Record{Value: make([]byte, 100)}),
	}
	cctx, cancel := context.WithCancel(ctx)
	wctx := &watchedCtx{Context: cctx, waiting: make(chan struct{})}
	returned := make(chan *client.ProduceFuture, 1)
	go func() { returned <- orders.Partition(1).ProduceAsync(wctx, &client.Record{Value: make([]byte, 100)}) }()
	var f *client.ProduceFuture
	select {
	case <-wctx.waiting: // waits for room: cancel it
		cancel()
		f = <-returned
	case f = <-returned:
		cancel()
	}
	select {
	case <-f.Done(): // refused for want of room, not queued
	default:
		t.Fatal("a record for partition 1 was queued while partition 0's records hold the bound")
	}
	if _, err := f.Result(); !errors.Is(err, context.Canceled) {
		t.Fatalf("a record for partition 1 while partition 0 holds the bound: %v, want it to wait for room", err)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fs = append(fs, orders.Partition(1).ProduceAsync(ctx, &client.Record{Value: make([]byte, 100)}))
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if _, err := f.Result(); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(tc.Records("orders", 1)); got != 1 {
		t.Errorf("partition 1 holds %d records, want 1", got)
	}
}

// A server whose copy of the metadata lags the metadata leader's answers
// that a topic just created is unknown: the client that created the topic
// (or knows it from an earlier answer) takes one such answer as the
// server's lag, and believes the second: a topic deleted behind its back
// becomes unknown.
func TestLaggingMetadataKeepsAKnownTopic(t *testing.T) {
	tc, cl := topicCluster(t, 2, client.WithMetadataRefresh(time.Nanosecond))
	ctx := ctxT(t)
	_, err := cl.Describe(ctx, "fresh")
	st, ok := status.FromError(err)
	if !errors.Is(err, client.ErrUnknownTopic) || !ok {
		t.Fatalf("Describe of a missing topic: %v", err)
	}
	lagging := st.Err() // what a server answers before it learns the topic

	if _, err := cl.CreateTopic(ctx, "fresh", client.TopicConfig{Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	tc.FailMetadata(lagging)
	if n, err := cl.Topic("fresh").Partitions(ctx); err != nil || n != 2 {
		t.Fatalf("Partitions of the topic just created, from a lagging server = %d, %v", n, err)
	}
	pos, err := cl.Topic("fresh").Produce(ctx, &client.Record{Key: []byte("k"), Value: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	// A client that never saw the topic asks a lagging server: it asks
	// again before it believes the topic unknown.
	_, other := topicClientOf(t, tc)
	tc.FailMetadata(lagging)
	if info, err := other.Describe(ctx, "fresh"); err != nil || len(info.Partitions) != 2 {
		t.Fatalf("Describe from a lagging server = %+v, %v", info, err)
	}
	_, third := topicClientOf(t, tc)
	tc.FailMetadata(lagging)
	if _, err := third.Topic("fresh").Produce(ctx, &client.Record{Key: []byte("k"), Value: []byte("c")}); err != nil {
		t.Fatalf("keyed produce, the metadata from a lagging server: %v", err)
	}

	// Deleted by another client: unknown once two fetches say so.
	if err := other.DeleteTopic(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Topic("fresh").Partition(pos.Partition).Produce(ctx, &client.Record{Value: []byte("d")}); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("produce to the deleted topic: %v, want ErrUnknownTopic", err)
	}
	if _, err := cl.Topic("fresh").Partitions(ctx); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("Partitions of the deleted topic: %v, want ErrUnknownTopic", err)
	}
}

// Metadata older than WithMetadataMaxAge is asked for again on the next
// call, though no call failed: a replica that replaced another gets the
// reads at once, and the server that no longer holds one gets none.
func TestMetadataMaxAgeLearnsMovedReplicas(t *testing.T) {
	tc, cl := topicCluster(t, 3, client.WithMetadataMaxAge(time.Nanosecond))
	tc.CreateTopic("events", 1, 2) // replicas 0 (leader) and 1
	ctx := ctxT(t)
	part := cl.Topic("events").Partition(0)
	if _, err := part.Produce(ctx, &client.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	for len(callsOf(tc, 1, "Consume")) == 0 { // until the follower's connection is ready
		if _, err := part.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Server 2 replaces server 1 (a replacement after a failure).
	tc.SetReplicas("events", 0, []int{0, 2})
	before := len(callsOf(tc, 1, "Consume"))
	for len(callsOf(tc, 2, "Consume")) == 0 {
		if _, err := part.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(callsOf(tc, 1, "Consume")) - before; n != 0 {
		t.Errorf("the replaced server got %d reads after the move; the metadata was not refreshed before them", n)
	}
}

// With the default max age the metadata is not asked for again while no
// call fails: the same move is learned from the old replica's NOT_LEADER.
func TestMetadataMaxAgeDefault(t *testing.T) {
	tc, cl := topicCluster(t, 3)
	tc.CreateTopic("events", 1, 2)
	ctx := ctxT(t)
	part := cl.Topic("events").Partition(0)
	if _, err := part.Produce(ctx, &client.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	for len(callsOf(tc, 1, "Consume")) == 0 {
		if _, err := part.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	fetched := countCalls(tc, 3, "GetMetadata")
	for range 5 {
		if _, err := part.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := countCalls(tc, 3, "GetMetadata") - fetched; n != 0 {
		t.Errorf("%d GetMetadata calls while nothing failed, within the default max age", n)
	}
	if _, err := client.New(ctx, tc.Addrs()[0], client.WithMetadataMaxAge(0)); err == nil || !strings.Contains(err.Error(), "WithMetadataMaxAge(0s): must be positive") {
		t.Errorf("WithMetadataMaxAge(0): %v", err)
	}
}

// A partition whose replicas are mostly on failed servers cannot elect a
// leader: the client returns the servers' NO_LEADER answer at once, as a
// *NoLeaderError naming them, instead of retrying until the deadline.
// During an ordinary election (fewer unreachable) it retries.
// TestNoLeaderIsRetriedAndNamesTheUnreachable: NO_LEADER is retried like
// any unavailability, also when the answering server finds a majority of
// the replicas unreachable (it may be the one cut off), and the error
// after the last retry names them.
func TestNoLeaderIsRetriedAndNamesTheUnreachable(t *testing.T) {
	tc, cl := topicCluster(t, 3, client.WithRetries(3))
	tc.CreateTopic("orders", 1, 3) // replicas 0, 1, 2
	ctx := ctxT(t)
	part := cl.Topic("orders").Partition(0)
	if _, err := part.Produce(ctx, &client.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	tc.SetNoLeader("orders", 0)
	tc.SetServerState(1, logv1.ServerState_SERVER_STATE_FAILED)

	produces := countCalls(tc, 3, "Produce") + countCalls(tc, 3, "ProduceBatch")
	_, err := part.Produce(ctx, &client.Record{Value: []byte("w")})
	var nl *client.NoLeaderError
	if !errors.As(err, &nl) || nl.QuorumLost() || !slices.Equal(nl.Unreachable, []string{"s1"}) {
		t.Fatalf("one of three failed: %v", err)
	}
	if n := countCalls(tc, 3, "Produce") + countCalls(tc, 3, "ProduceBatch") - produces; n != 4 {
		t.Errorf("one of three failed: %d attempts, want 4 (WithRetries(3))", n)
	}

	tc.SetServerState(2, logv1.ServerState_SERVER_STATE_FAILED)
	produces = countCalls(tc, 3, "Produce") + countCalls(tc, 3, "ProduceBatch")
	_, err = part.Produce(ctx, &client.Record{Value: []byte("w")})
	if !errors.As(err, &nl) || !nl.QuorumLost() || nl.Topic != "orders" || nl.Partition != 0 || nl.Replicas != 3 ||
		!slices.Equal(nl.Unreachable, []string{"s1", "s2"}) || !errors.Is(err, client.ErrNoLeader) || !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("two of three failed: %#v", err)
	}
	if msg := err.Error(); msg != "proglog: partition orders/0 has no leader: 2 of its 3 replicas are unreachable" {
		t.Errorf("message %q", msg)
	}
	if n := countCalls(tc, 3, "Produce") + countCalls(tc, 3, "ProduceBatch") - produces; n != 4 {
		t.Errorf("two of three failed: %d attempts, want 4 (WithRetries(3))", n)
	}
}

// A client whose ACL refuses GetServers knows only its seeds, yet reaches
// every server the cluster's answers name: a partition's replicas from
// GetMetadata, a partition leader from a NOT_LEADER answer, and the
// metadata leader from an admin call's NOT_LEADER answer.
func TestRoutingWithoutGetServers(t *testing.T) {
	tc, err := clienttest.New(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	tc.RefuseGetServers(true)
	tc.CreateTopic("orders", 2, 1) // partition p on server p
	seed := func() *client.Client {
		f := tc.Certs
		cl, err := client.New(ctxT(t), tc.Addrs()[0],
			client.WithTLSFiles(f.CACert, f.ClientCert("root"), f.ClientKey("root")),
			client.WithBackoff(time.Millisecond, 20*time.Millisecond),
			client.WithMetadataRefresh(time.Hour), // only the answers move routes
			client.WithCallTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	cl := seed()
	ctx := ctxT(t)
	orders1 := cl.Topic("orders").Partition(1)
	if _, err := orders1.Produce(ctx, &client.Record{Value: []byte("a")}); err != nil {
		t.Fatalf("produce to a partition led by a server the metadata names: %v", err)
	}
	// The leader moves to a server the client has never heard of; the
	// metadata still names the old one (and is not asked again).
	tc.SetLeader("orders", 1, 2, false)
	if _, err := orders1.Produce(ctx, &client.Record{Value: []byte("b")}); err != nil {
		t.Fatalf("produce after NOT_LEADER names an unknown server: %v", err)
	}
	if got := tc.Records("orders", 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("orders/1 holds %q", got)
	}
	if n := len(callsOf(tc, 2, "Produce")) + len(callsOf(tc, 2, "ProduceBatch")); n == 0 {
		t.Errorf("server 2 received no produce")
	}
	// Admin calls follow the metadata leader's NOT_LEADER answer.
	tc.SetMetadataLeader(2)
	if _, err := seed().CreateTopic(ctx, "billing", client.TopicConfig{Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create a topic through a seed that is not the metadata leader: %v", err)
	}
}
