package client_test

// The client's topics against three real nodes (go/agent: the metadata
// group, the broker's partition replicas, the gRPC server, mutual TLS).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
)

// attempt is one gRPC request the client sent: its method, the server that
// answered, the partition it named and its status code.
type attempt struct {
	method    string
	server    string
	topic     string
	partition uint32
	code      codes.Code
}

// attempts records every unary request a client sends (each retry is its
// own attempt), through a client interceptor.
type attempts struct {
	mu  sync.Mutex
	all []attempt
}

func (a *attempts) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var p peer.Peer
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
	at := attempt{method: method[len("/log.v1.Log/"):], code: status.Code(err)}
	if p.Addr != nil {
		at.server = p.Addr.String()
	}
	if r, ok := req.(interface {
		GetTopic() string
		GetPartition() uint32
	}); ok {
		at.topic, at.partition = r.GetTopic(), r.GetPartition()
	}
	a.mu.Lock()
	a.all = append(a.all, at)
	a.mu.Unlock()
	return err
}

// since returns the attempts made after the first n, and the count now.
func (a *attempts) since(n int) ([]attempt, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.all[n:]), len(a.all)
}

func (a *attempts) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.all)
}

// metaLeader returns the index of the metadata group's leader.
func (c *raftCluster) metaLeader() int {
	c.t.Helper()
	idx := -1
	eventually(c.t, "a metadata leader", 30*time.Second, func() bool {
		for i, a := range c.agents {
			if !c.down[i] && a.Metadata().IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// partitionLeader returns the index of the node leading topic's partition,
// waiting for one among the running nodes.
func (c *raftCluster) partitionLeader(topic string, p int) int {
	c.t.Helper()
	idx := -1
	eventually(c.t, fmt.Sprintf("a leader of %s/%d", topic, p), 30*time.Second, func() bool {
		for i, a := range c.agents {
			if r := a.Broker().Replica(topic, p); !c.down[i] && r != nil && r.IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// terms returns the Raft term of each of topic's partitions (the highest
// its running replicas know): equal terms before and after a step mean no
// election happened in between, so the leaders found before it held.
func (c *raftCluster) terms(topic string, partitions int) []string {
	out := make([]string, partitions)
	for p := range partitions {
		for i, a := range c.agents {
			if r := a.Broker().Replica(topic, p); !c.down[i] && r != nil {
				if t := r.Stats()["term"]; len(t) > len(out[p]) || (len(t) == len(out[p]) && t > out[p]) {
					out[p] = t
				}
			}
		}
	}
	return out
}

func (c *raftCluster) index(addr string) int {
	for i, a := range c.agents {
		if a.Addr() == addr {
			return i
		}
	}
	return -1
}

// TestClusterTopics: a topic of six partitions replicated three times;
// keyed records land on KeyPartition's partition through its leader and
// read back in order from leaders and followers; unknown topics and
// partitions fail with their errors; the default topic keeps the old API.
// Then a node leading some partitions stops while records keep coming:
// every acknowledged record is in its partition exactly once.
func TestClusterTopics(t *testing.T) {
	const (
		topic      = "orders"
		partitions = 6
		keys       = 24
	)
	c := newRaftCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var calls attempts
	cl := c.client(client.WithDialOptions(grpc.WithChainUnaryInterceptor(calls.intercept)))

	info, err := cl.CreateTopic(ctx, topic, client.TopicConfig{Partitions: partitions, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Partitions) != partitions {
		t.Fatalf("CreateTopic = %+v, want %d partitions", info, partitions)
	}
	for _, p := range info.Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("partition %d has replicas %+v, want 3", p.Partition, p.Replicas)
		}
	}
	if _, err := cl.CreateTopic(ctx, topic, client.TopicConfig{Partitions: partitions}); !errors.Is(err, client.ErrTopicExists) {
		t.Fatalf("CreateTopic again: %v, want ErrTopicExists", err)
	}
	leaders := make([]int, partitions)
	// findLeaders sets leaders and returns the terms they lead in.
	findLeaders := func() []string {
		for {
			terms := c.terms(topic, partitions)
			for p := range partitions {
				leaders[p] = c.partitionLeader(topic, p)
			}
			if now := c.terms(topic, partitions); slices.Equal(now, terms) {
				return terms
			}
		}
	}
	terms := findLeaders()

	// Keyed records, produced concurrently (batched, idempotent).
	orders := cl.Topic(topic)
	type produced struct {
		key, value string
		pos        client.Position
	}
	var (
		mu    sync.Mutex
		acked []produced
	)
	produce := func(from, n int) {
		t.Helper()
		futures := make([]*client.ProduceFuture, n)
		for i := range n {
			k := fmt.Sprintf("customer-%d", (from+i)%keys)
			futures[i] = orders.ProduceAsync(ctx, &client.Record{Key: []byte(k), Value: fmt.Appendf(nil, "%s/%d", k, from+i)})
		}
		for i, f := range futures {
			off, err := f.Wait(ctx)
			if err != nil {
				t.Fatalf("record %d: %v", from+i, err)
			}
			k := fmt.Sprintf("customer-%d", (from+i)%keys)
			if want := uint32(client.KeyPartition([]byte(k), partitions)); f.Partition() != want {
				t.Fatalf("key %s went to partition %d, KeyPartition says %d", k, f.Partition(), want)
			}
			mu.Lock()
			acked = append(acked, produced{key: k, value: fmt.Sprintf("%s/%d", k, from+i), pos: client.Position{Partition: f.Partition(), Offset: off}})
			mu.Unlock()
		}
	}
	// checkRouted checks the ProduceBatch attempts since start went to the
	// partitions' leaders (a leader may answer UNAVAILABLE, retried), but
	// for up to redirects NOT_LEADER answers per partition — when no
	// election happened meanwhile (terms unchanged); a loaded machine may
	// hold one, which moves leaders at any time.
	checkRouted := func(what string, start int, terms []string, redirects int) {
		t.Helper()
		if now := c.terms(topic, partitions); !slices.Equal(now, terms) {
			t.Logf("%s: an election (terms %v, then %v): routing not checked", what, terms, now)
			return
		}
		sent, _ := calls.since(start)
		seen := map[uint32]int{}
		for _, a := range sent {
			if a.method != "ProduceBatch" {
				continue
			}
			atLeader := c.index(a.server) == leaders[a.partition]
			// A replica that has not heard from the new leader yet answers
			// UNAVAILABLE (NO_LEADER) rather than NOT_LEADER: a redirect too.
			if (a.code == codes.FailedPrecondition || a.code == codes.Unavailable) && !atLeader {
				if seen[a.partition]++; seen[a.partition] <= redirects {
					continue
				}
			}
			if a.topic != topic || !atLeader || (a.code != codes.OK && a.code != codes.Unavailable) {
				t.Fatalf("%s: a produce went to %s (n%d) for %s/%d with %v; the partition's leader is n%d", what, a.server, c.index(a.server), a.topic, a.partition, a.code, leaders[a.partition])
			}
		}
	}
	// CreateTopic's answer names no leaders (none is elected yet): a
	// partition's first request may go to another replica, which answers
	// NOT_LEADER naming the leader; every later one goes to the leader.
	start := calls.count()
	produce(0, 240)
	checkRouted("first records", start, terms, 1)

	lin := c.client(client.WithConsistency(client.ReadLinearizable))
	// checkLog reads every partition to its end: each acknowledged record
	// at its offset, exactly once, and each key's records in produce order.
	checkLog := func(reader *client.Client) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		want := map[client.Position]string{}
		for _, r := range acked {
			want[r.pos] = r.value
		}
		for p := range partitions {
			seen := map[string]uint64{}
			last := map[string]int{}
			for rec, err := range reader.Topic(topic).Partition(uint32(p)).Records(ctx, 0, client.StopAtEnd()) {
				if err != nil {
					t.Fatalf("partition %d: %v", p, err)
				}
				v := string(rec.Value)
				if off, ok := seen[v]; ok {
					t.Fatalf("partition %d holds %q twice (offsets %d and %d)", p, v, off, rec.Offset)
				}
				seen[v] = rec.Offset
				if w, ok := want[client.Position{Partition: uint32(p), Offset: rec.Offset}]; ok && v != w {
					t.Fatalf("partition %d offset %d holds %q, acknowledged %q", p, rec.Offset, v, w)
				}
				var i int
				k := string(rec.Key)
				if _, err := fmt.Sscanf(v[len(k)+1:], "%d", &i); err != nil || v[:len(k)] != k {
					t.Fatalf("partition %d offset %d: record %q with key %q", p, rec.Offset, v, k)
				}
				if want := client.KeyPartition(rec.Key, partitions); want != p {
					t.Fatalf("key %q is in partition %d, KeyPartition says %d", k, p, want)
				}
				if j, ok := last[k]; ok && j >= i {
					t.Fatalf("partition %d: key %q's record %d after its record %d", p, k, i, j)
				}
				last[k] = i
			}
			for pos, v := range want {
				if int(pos.Partition) == p {
					if _, ok := seen[v]; !ok {
						t.Fatalf("acknowledged %q at %d/%d is not in the partition", v, p, pos.Offset)
					}
				}
			}
		}
		// Single reads, from followers (the default) and leaders.
		for _, r := range acked {
			for _, rd := range []*client.Client{reader, lin} {
				rec, err := rd.Topic(topic).Partition(r.pos.Partition).Consume(ctx, r.pos.Offset)
				if err != nil || string(rec.Value) != r.value {
					t.Fatalf("Consume(%d/%d) = %v, %v; acknowledged %q", r.pos.Partition, r.pos.Offset, rec, err, r.value)
				}
			}
		}
	}
	checkLog(cl)

	// Each partition streams (Records follows it) to a new client.
	reader := c.client()
	var wg sync.WaitGroup
	errs := make(chan error, partitions)
	for p := range partitions {
		mu.Lock()
		n := 0
		for _, r := range acked {
			if r.pos.Partition == uint32(p) {
				n++
			}
		}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			if n == 0 {
				return
			}
			for rec, err := range reader.Topic(topic).Partition(uint32(p)).Records(ctx, 0) {
				if err != nil {
					errs <- fmt.Errorf("stream of partition %d: %w", p, err)
					return
				}
				if client.KeyPartition(rec.Key, partitions) != p {
					errs <- fmt.Errorf("stream of partition %d: key %q", p, rec.Key)
					return
				}
				if got++; got == n {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Unknown topics and partitions.
	if _, err := cl.Topic("no-such-topic").Produce(ctx, &client.Record{Key: []byte("k"), Value: []byte("v")}); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("produce to an unknown topic: %v, want ErrUnknownTopic", err)
	}
	if _, err := cl.Topic("no-such-topic").Partition(0).Consume(ctx, 0); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("consume of an unknown topic: %v, want ErrUnknownTopic", err)
	}
	if _, err := orders.Partition(partitions).Produce(ctx, &client.Record{Value: []byte("v")}); !errors.Is(err, client.ErrUnknownPartition) {
		t.Fatalf("produce to partition %d of %d: %v, want ErrUnknownPartition", partitions, partitions, err)
	}
	if _, err := orders.Partition(partitions).Consume(ctx, 0); !errors.Is(err, client.ErrUnknownPartition) {
		t.Fatalf("consume of partition %d of %d: %v, want ErrUnknownPartition", partitions, partitions, err)
	}

	// The default topic, with the API of the single log.
	off, err := cl.ProduceValue(ctx, []byte("default"))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := cl.Consume(ctx, off); err != nil || string(rec.Value) != "default" {
		t.Fatalf("Consume(%d) = %v, %v", off, rec, err)
	}
	if rec, err := cl.Topic("").Partition(0).Consume(ctx, off); err != nil || string(rec.Value) != "default" {
		t.Fatalf("the default topic's partition 0 at %d = %v, %v", off, rec, err)
	}

	// A node that leads some of the partitions stops while records keep
	// coming: the client follows the new leaders, and idempotence keeps
	// every acknowledged record exactly once per partition.
	victim := -1
	for _, l := range leaders {
		if l != c.metaLeader() {
			victim = l
			break
		}
	}
	if victim < 0 {
		victim = leaders[0]
	}
	// stale learns the metadata before the change and is idle during it.
	var staleCalls attempts
	stale := c.client(client.WithDialOptions(grpc.WithChainUnaryInterceptor(staleCalls.intercept)))
	if _, err := stale.Topic(topic).Partitions(ctx); err != nil {
		t.Fatal(err)
	}
	before := calls.count()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c.stop(victim)
	}()
	produce(240, 240)
	<-stopped
	produce(480, 120)
	during, _ := calls.since(before)
	var failed []string
	for _, a := range during {
		if a.code != codes.OK {
			failed = append(failed, fmt.Sprintf("%s %s/%d n%d:%v", a.method, a.topic, a.partition, c.index(a.server), a.code))
		}
	}
	t.Logf("failed attempts across the change: %v", failed)
	checkLog(cl)

	// The client has found the new leaders: its produces go to them (one
	// NOT_LEADER per partition allowed, for an election that ended after
	// the client's last request to the partition).
	terms = findLeaders()
	start = calls.count()
	produce(600, partitions*keys/partitions)
	checkRouted("after the change", start, terms, 1)
	t.Logf("stopped n%d; leaders now %v", victim, leaders)

	start = staleCalls.count()
	for p := range partitions {
		if _, err := stale.Topic(topic).Partition(uint32(p)).Produce(ctx, &client.Record{Value: []byte("stale")}); err != nil {
			t.Fatal(err)
		}
	}
	// A client whose metadata predates the change: a NOT_LEADER or a
	// stopped server costs a retry at the leader and a metadata refresh,
	// nothing else.
	if now := c.terms(topic, partitions); !slices.Equal(now, terms) {
		t.Logf("the stale client: an election (terms %v, then %v): routing not checked", terms, now)
		return
	}
	sent, _ := staleCalls.since(start)
	tries := map[uint32][]string{}
	refreshes := 0
	for _, a := range sent {
		switch a.method {
		case "ProduceBatch", "Produce":
			if c.index(a.server) == leaders[a.partition] && a.code == codes.Unavailable {
				continue // the leader's own retry
			}
			tries[a.partition] = append(tries[a.partition], fmt.Sprintf("n%d:%v", c.index(a.server), a.code))
		case "GetMetadata":
			refreshes++
		}
	}
	moved := 0
	for p := range partitions {
		got, last := tries[uint32(p)], fmt.Sprintf("n%d:%v", leaders[p], codes.OK)
		if len(got) == 0 || len(got) > 2 || got[len(got)-1] != last {
			t.Errorf("the stale client's produce to partition %d: attempts %v, want at most one failure then %s", p, got, last)
		}
		moved += len(got) - 1
	}
	if refreshes > moved {
		t.Errorf("the stale client asked for the metadata %d times for %d redirected produces", refreshes, moved)
	}
}

// TestClusterTopicAdmin: CreateTopic and DeleteTopic sent to a server that
// does not lead the metadata group follow its NOT_LEADER answer, and the
// client's next ones go to the metadata leader at once.
func TestClusterTopicAdmin(t *testing.T) {
	c := newRaftCluster(t, 3)
	ctx := ctxT(t)
	meta := c.metaLeader()
	newClient := func(calls *attempts) *client.Client {
		t.Helper()
		// Seeded with a follower of the metadata group.
		cl, err := client.New(ctx, c.agents[(meta+1)%3].Addr(),
			client.WithTLSFiles(c.certs.CACert, c.certs.ClientCert("root"), c.certs.ClientKey("root")),
			client.WithBackoff(20*time.Millisecond, 300*time.Millisecond),
			client.WithRetries(30),
			client.WithDialOptions(grpc.WithChainUnaryInterceptor(calls.intercept)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	// tries returns the servers and codes of method's attempts since
	// start.
	tries := func(calls *attempts, method string, start int) []string {
		sent, _ := calls.since(start)
		var got []string
		for _, a := range sent {
			if a.method == method {
				got = append(got, fmt.Sprintf("n%d:%v", c.index(a.server), a.code))
			}
		}
		return got
	}

	// A new client knows no metadata leader: its first admin call goes to
	// any server. Until one goes to a follower: a NOT_LEADER, followed.
	followed := false
	for i := 0; i < 30 && !followed; i++ {
		var calls attempts
		cl := newClient(&calls)
		if err := cl.DeleteTopic(ctx, "never-created"); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("DeleteTopic of a missing topic: %v, want ErrUnknownTopic", err)
		}
		got := tries(&calls, "DeleteTopic", 0)
		last := fmt.Sprintf("n%d:%v", meta, codes.NotFound)
		if len(got) == 0 || got[len(got)-1] != last || len(got) > 2 || (len(got) == 2 && !strings.HasSuffix(got[0], ":"+codes.FailedPrecondition.String())) {
			t.Fatalf("DeleteTopic attempts %v, want at most one NOT_LEADER then %s", got, last)
		}
		followed = len(got) == 2
		cl.Close()
	}
	if !followed {
		t.Fatal("no DeleteTopic of 30 new clients went to a follower first")
	}

	var calls attempts
	cl := newClient(&calls)
	start := calls.count()
	if _, err := cl.CreateTopic(ctx, "admin", client.TopicConfig{Partitions: 2, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	if got := tries(&calls, "CreateTopic", start); len(got) == 0 || got[len(got)-1] != fmt.Sprintf("n%d:%v", meta, codes.OK) {
		t.Fatalf("CreateTopic attempts %v, want the last at n%d", got, meta)
	}
	if n, err := cl.Topic("admin").Partitions(ctx); err != nil || n != 2 {
		t.Fatalf("Partitions = %d, %v", n, err)
	}
	start = calls.count()
	if err := cl.DeleteTopic(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteTopic(ctx, "admin"); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("DeleteTopic of a deleted topic: %v, want ErrUnknownTopic", err)
	}
	if got, want := tries(&calls, "DeleteTopic", start), []string{fmt.Sprintf("n%d:%v", meta, codes.OK), fmt.Sprintf("n%d:%v", meta, codes.NotFound)}; !slices.Equal(got, want) {
		t.Errorf("DeleteTopic attempts %v, want %v: the client knows the metadata leader", got, want)
	}
	if err := cl.DeleteTopic(ctx, client.DefaultTopic); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("DeleteTopic of the default topic: %v, want ErrInvalidArgument", err)
	}
	eventually(t, "the deleted topic unknown", 10*time.Second, func() bool {
		_, err := cl.Describe(ctx, "admin")
		return errors.Is(err, client.ErrUnknownTopic)
	})
}
