package client_test

// Three real nodes (go/agent: Raft replication, gossip membership, the gRPC
// server, mutual TLS) on loopback, and the client in front of them.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/discovery"
)

type raftCluster struct {
	t      *testing.T
	certs  certs.DevFiles
	agents []*agent.Agent
	down   map[int]bool
}

func newRaftCluster(t *testing.T, n int) *raftCluster {
	t.Helper()
	dir := t.TempDir()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil, names...)
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	c := &raftCluster{t: t, certs: files, down: map[int]bool{}}
	for i := range n {
		cfg := agent.DefaultConfig()
		cfg.NodeName = names[i]
		cfg.DataDir = filepath.Join(dir, cfg.NodeName)
		cfg.BindAddr, cfg.SerfBindAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.GossipKey = key
		cfg.GossipProfile = discovery.ProfileLocal
		cfg.TLS = auth.TLSConfig{CertFile: files.NodeCert(cfg.NodeName), KeyFile: files.NodeKey(cfg.NodeName), CAFile: files.CACert}
		cfg.ShutdownTimeout = 5 * time.Second
		cfg.Raft = agent.RaftConfig{
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.StartJoinAddrs = []string{c.agents[0].SerfAddr()}
		}
		a, err := agent.New(cfg)
		if err != nil {
			t.Fatalf("agent %s: %v", cfg.NodeName, err)
		}
		c.agents = append(c.agents, a)
		idx := i
		t.Cleanup(func() { c.stop(idx) })
	}
	for _, a := range c.agents {
		if err := a.WaitReady(ctxT(t)); err != nil {
			t.Fatalf("%s not ready: %v", a.NodeName(), err)
		}
	}
	// Every node, not just the leader: GetServers answers from the node's
	// own copy of the configuration, which followers learn a little later.
	eventually(t, "every node in every node's Raft configuration", 30*time.Second, func() bool {
		for _, a := range c.agents {
			r := a.Replica() // nil until the default topic's replica is open here
			if r == nil {
				return false
			}
			if ss, err := r.GetServers(); err != nil || len(ss) != n {
				return false
			}
		}
		return true
	})
	return c
}

func (c *raftCluster) stop(i int) {
	if c.down[i] {
		return
	}
	c.down[i] = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.agents[i].Shutdown(ctx); err != nil {
		c.t.Errorf("shutdown %d: %v", i, err)
	}
}

// leader returns the index of the leader, waiting for one.
func (c *raftCluster) leader() int {
	c.t.Helper()
	idx := -1
	eventually(c.t, "a leader", 30*time.Second, func() bool {
		for i, a := range c.agents {
			if !c.down[i] && a.IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func (c *raftCluster) addrs() string {
	s := ""
	for i, a := range c.agents {
		if i > 0 {
			s += ","
		}
		s += a.Addr()
	}
	return s
}

func (c *raftCluster) client(opts ...client.Option) *client.Client {
	c.t.Helper()
	all := append([]client.Option{
		client.WithTLSFiles(c.certs.CACert, c.certs.ClientCert("root"), c.certs.ClientKey("root")),
		client.WithBackoff(20*time.Millisecond, 300*time.Millisecond),
		client.WithRetries(30),
	}, opts...)
	cl, err := client.New(ctxT(c.t), c.agents[0].Addr(), all...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

var rpcCount = regexp.MustCompile(`proglog_rpc_requests_total\{code="OK",method="/log\.v1\.Log/(\w+)"\} (\d+)`)

// calls scrapes node i's metrics: successful calls per method.
func (c *raftCluster) calls(i int) map[string]int {
	c.t.Helper()
	resp, err := http.Get("http://" + c.agents[i].MetricsAddr() + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := rpcCount.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[2])
			out[m[1]] += n
		}
	}
	return out
}

func TestClusterRouting(t *testing.T) {
	c := newRaftCluster(t, 3)
	cl := c.client()
	ctx := ctxT(t)
	leader := c.leader()

	servers, err := cl.Servers(ctx)
	if err != nil || len(servers) != 3 {
		t.Fatalf("Servers = %+v, %v", servers, err)
	}
	for _, s := range servers {
		if s.IsLeader != (s.RPCAddr == c.agents[leader].Addr()) {
			t.Fatalf("Servers = %+v; the leader is %s", servers, c.agents[leader].Addr())
		}
	}

	before := []map[string]int{c.calls(0), c.calls(1), c.calls(2)}
	for i := range 30 {
		if _, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		// Produce calls go out as ProduceBatch requests (batching is on).
		got := c.calls(i)["ProduceBatch"] - before[i]["ProduceBatch"]
		if want := map[bool]int{true: 30, false: 0}[i == leader]; got != want {
			t.Errorf("n%d served %d produces, want %d (leader n%d)", i, got, want, leader)
		}
	}

	// Consumes go round-robin over the two followers once both are
	// connected.
	eventually(t, "reads on both followers", 10*time.Second, func() bool {
		if _, err := cl.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range 3 {
			if i != leader && c.calls(i)["Consume"] > 0 {
				n++
			}
		}
		return n == 2
	})
	for i := range 3 {
		before[i] = c.calls(i)
	}
	for i := range 40 {
		rec, err := cl.Consume(ctx, uint64(i%30))
		if err != nil || string(rec.Value) != fmt.Sprintf("r%d", i%30) {
			t.Fatalf("Consume(%d) = %v, %v", i%30, rec, err)
		}
	}
	for i := range 3 {
		got := c.calls(i)["Consume"] - before[i]["Consume"]
		if want := map[bool]int{true: 0, false: 20}[i == leader]; got != want {
			t.Errorf("n%d served %d consumes, want %d (leader n%d)", i, got, want, leader)
		}
	}

	// Linearizable reads go to the leader.
	lin := c.client(client.WithConsistency(client.ReadLinearizable))
	before[leader] = c.calls(leader)
	for i := range 5 {
		if _, err := lin.Consume(ctx, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.calls(leader)["Consume"] - before[leader]["Consume"]; got != 5 {
		t.Errorf("the leader served %d linearizable reads, want 5", got)
	}
}

func TestClusterSurvivesLeaderChange(t *testing.T) {
	c := newRaftCluster(t, 3)
	cl := c.client()
	ctx := ctxT(t)

	// A producer keeps appending while the leader goes away; every
	// acknowledged record must be readable afterwards.
	var (
		mu    sync.Mutex
		acked = map[uint64]string{}
		stop  = make(chan struct{})
		done  = make(chan error, 1)
	)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			v := fmt.Sprintf("v%d", i)
			off, err := cl.ProduceValue(ctx, []byte(v))
			if err != nil {
				done <- fmt.Errorf("produce %s: %w", v, err)
				return
			}
			mu.Lock()
			acked[off] = v
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, "records before the change", 10*time.Second, func() bool { return count() >= 20 })

	old := c.leader()
	c.stop(old)
	atChange := count()
	eventually(t, "a new leader", 30*time.Second, func() bool { return c.leader() != old })
	eventually(t, "records after the change", 30*time.Second, func() bool { return count() >= atChange+20 })
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	for off, v := range acked {
		rec, err := cl.Consume(ctx, off)
		if err != nil {
			t.Fatalf("acknowledged offset %d: %v", off, err)
		}
		if string(rec.Value) != v {
			t.Fatalf("offset %d holds %q, acknowledged as %q", off, rec.Value, v)
		}
	}
	// A stream from the start sees every acknowledged record, in order.
	seen := 0
	var last uint64
	for rec, err := range cl.Records(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := acked[rec.Offset]; ok {
			if string(rec.Value) != v {
				t.Fatalf("stream offset %d holds %q, want %q", rec.Offset, rec.Value, v)
			}
			seen++
		}
		if last = rec.Offset; seen == len(acked) {
			break
		}
	}
	// Idempotent retries: no record is in the log twice.
	times := map[string]int{}
	for rec, err := range cl.Records(ctx, 0, client.StopAtEnd()) {
		if err != nil {
			t.Fatal(err)
		}
		if times[string(rec.Value)]++; times[string(rec.Value)] > 1 {
			t.Fatalf("%q is in the log twice (offset %d)", rec.Value, rec.Offset)
		}
	}
	t.Logf("%d records acknowledged across the leader change (leader n%d stopped, %d after it); stream reached offset %d", len(acked), old, len(acked)-atChange, last)
}
