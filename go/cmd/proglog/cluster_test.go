package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// clusterNode is one "proglog serve" process of the cluster test and what
// it keeps across restarts: name, data directory, addresses.
type clusterNode struct {
	name, dataDir string
	addr, serf    string // host:0 until the first start, then the bound addresses
	c             *child
}

func (n *clusterNode) running() bool { return n.c != nil }

// TestClusterSurvivesLeaderKills runs three "proglog serve" processes on
// 127.0.0.1, .2 and .3 while clients produce continuously, kills the
// leader with SIGKILL three times (restarting it on the same data
// directory each time, once the others have gone on without it for a
// while), and then checks that every acknowledged record is
// at its offset exactly once on every node and that the three logs are
// identical.
func TestClusterSurvivesLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	start := time.Now()
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	for _, h := range hosts {
		ln, err := net.Listen("tcp", h+":0")
		if err != nil {
			t.Skipf("cannot listen on %s (no loopback alias): %v", h, err)
		}
		ln.Close()
	}
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), hosts, "p0", "p1", "p2")
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{
		"--tls-ca", files.CACert,
		"--gossip-key-file", keyFile, "--metrics-addr=",
		"--log-level", "info", // the snapshot counts below come from the logs
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--raft-leader-lease-timeout", "250ms",
		// Snapshots and compaction while the test runs, so restarted
		// nodes may have to catch up from one.
		"--raft-snapshot-interval", "250ms", "--raft-snapshot-threshold", "300", "--raft-trailing-logs", "100",
		"--shutdown-timeout", "5s",
	}
	nodes := make([]*clusterNode, len(hosts))
	for i, h := range hosts {
		nodes[i] = &clusterNode{name: fmt.Sprintf("p%d", i), dataDir: filepath.Join(dir, fmt.Sprintf("p%d", i)), addr: h + ":0", serf: h + ":0"}
	}
	launch := func(n *clusterNode, extra ...string) {
		t.Helper()
		args := append([]string{"--node-name", n.name, "--data-dir", n.dataDir, "--addr", n.addr, "--serf-addr", n.serf,
			"--tls-cert", files.NodeCert(n.name), "--tls-key", files.NodeKey(n.name)}, common...)
		n.c = startServe(t, append(args, extra...)...)
		n.addr, n.serf = n.c.addr, n.c.serfAddr
	}
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				if n.c != nil {
					t.Logf("%s stderr (tail):\n%s", n.name, tail(n.c.stderr.String(), 30))
				}
			}
		}
	}()
	launch(nodes[0], "--bootstrap")
	for _, n := range nodes[1:] {
		launch(n, "--join", nodes[0].serf)
	}
	t.Logf("cluster up after %v", time.Since(start).Round(time.Millisecond))

	cc := newClusterClient(t, files, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Producers: each record's value is unique and is sent once, except
	// when the server proves it wrote nothing (NOT_LEADER), so no value can
	// legitimately appear twice.
	const producers = 4
	var (
		mu     sync.Mutex
		acked  = map[uint64]string{} // offset → value acknowledged there
		maybe  = map[string]bool{}   // values whose produce failed ambiguously
		nAcked atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, producers)
	for g := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leader := nodes[g%len(nodes)].addr
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				val := fmt.Sprintf("w%d-%06d", g, seq)
				for {
					off, next, err := cc.produce(ctx, leader, val)
					if err == nil {
						mu.Lock()
						prev, dup := acked[off]
						acked[off] = val
						mu.Unlock()
						if dup {
							errc <- fmt.Errorf("offset %d acknowledged twice: %q and %q", off, prev, val)
							return
						}
						nAcked.Add(1)
						break
					}
					if ctx.Err() != nil {
						errc <- fmt.Errorf("producer %d: %v", g, err)
						return
					}
					leader = next
					if errors.Is(err, errNotWritten) {
						continue // same value, at the leader named
					}
					mu.Lock()
					maybe[val] = true
					mu.Unlock()
					time.Sleep(20 * time.Millisecond) // rate limit while the cluster fails over
					break
				}
			}
		}()
	}
	waitAcks := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for nAcked.Load() < n {
			select {
			case err := <-errc:
				t.Fatal(err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d records acknowledged after 30s, waiting for %d", nAcked.Load(), n)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}

	const kills, progress = 3, 500
	waitAcks(progress)
	var leaders []string
	for k := range kills {
		old := cc.leader(ctx, nil)
		leaders = append(leaders, old.name)
		before := nAcked.Load()
		if err := old.c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if _, ok := old.c.wait(10 * time.Second); !ok {
			t.Fatalf("%s did not die", old.name)
		}
		killedAt := time.Now()
		old.c = nil
		next := cc.leader(ctx, old)
		t.Logf("kill %d: leader %s killed after %d acks; %s leads %v later", k+1, old.name, before, next.name, time.Since(killedAt).Round(time.Millisecond))
		// The cluster goes on without it, past a snapshot and compaction,
		// so that it may have to catch up from a snapshot.
		waitAcks(nAcked.Load() + progress)
		var join []string
		for _, n := range nodes {
			if n != old {
				join = append(join, n.serf)
			}
		}
		launch(old, "--join", strings.Join(join, ","))
		t.Logf("kill %d: %s restarted after %d more acks, serving %v after the kill", k+1, old.name, nAcked.Load()-before, time.Since(killedAt).Round(time.Millisecond))
		waitAcks(nAcked.Load() + progress)
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	leaders = append(leaders, cc.leader(ctx, nil).name)

	// The last record: every node must hold exactly up to it. Raft
	// appends in order, so nothing a producer sent before can follow it.
	var last uint64
	addr := cc.leader(ctx, nil).addr
	for attempt := 0; ; attempt++ {
		val := fmt.Sprintf("final-%d", attempt)
		off, next, err := cc.produce(ctx, addr, val)
		if err == nil {
			last = off
			acked[last] = val
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("final record: %v", err)
		}
		if !errors.Is(err, errNotWritten) {
			maybe[val] = true
			time.Sleep(20 * time.Millisecond) // rate limit, as the producers do
		}
		addr = next
	}

	// Every node, read with follower consistency (which waits for it to
	// converge): the same records, each acknowledged one at its offset,
	// no value twice, nothing unknown.
	var logs [][]*logv1.Record
	for _, n := range nodes {
		recs := cc.readAll(ctx, n, last+1)
		logs = append(logs, recs)
		_, err := cc.client(n.addr).Consume(ctx, &logv1.ConsumeRequest{Offset: last + 1, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER}, grpc.WaitForReady(true))
		if status.Code(err) != codes.OutOfRange {
			t.Errorf("%s has a record after the last one: %v", n.name, err)
		}
	}
	for i, n := range nodes[1:] {
		for off := range logs[0] {
			if !proto.Equal(logs[0][off], logs[i+1][off]) {
				t.Fatalf("offset %d: %s has %v, %s has %v", off, nodes[0].name, logs[0][off], n.name, logs[i+1][off])
			}
		}
	}
	seen := map[string]uint64{}
	unacked := 0
	for off, r := range logs[0] {
		v := string(r.Value)
		if prev, dup := seen[v]; dup {
			t.Fatalf("value %q at offsets %d and %d", v, prev, off)
		}
		seen[v] = uint64(off)
		if want, ok := acked[uint64(off)]; ok {
			if v != want {
				t.Fatalf("offset %d holds %q, but %q was acknowledged there", off, v, want)
			}
		} else if maybe[v] {
			unacked++
		} else {
			t.Fatalf("offset %d holds %q, which no producer sent unacknowledged", off, v)
		}
	}
	changes := 0
	for i := 1; i < len(leaders); i++ {
		if leaders[i] != leaders[i-1] {
			changes++
		}
	}
	var snaps []string
	for _, n := range nodes {
		// This run's process only: restarted nodes log afresh.
		st := n.c.stderr.String()
		snaps = append(snaps, fmt.Sprintf("%s took %d, installed %d", n.name,
			strings.Count(st, "snapshot complete up to"), strings.Count(st, "Installed remote snapshot")))
	}
	t.Logf("%d records acknowledged (plus %d whose produce failed ambiguously but were committed, of %d ambiguous), %d kills, leaders %v (%d changes), 3 logs of %d records identical; snapshots since the last start: %s; %v",
		len(acked), unacked, len(maybe), kills, leaders, changes, last+1, strings.Join(snaps, ", "), time.Since(start).Round(time.Millisecond))
	if changes < kills {
		t.Errorf("%d leader changes for %d kills of the leader", changes, kills)
	}

	// A graceful stop of the whole cluster.
	for _, n := range nodes {
		if err := n.c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err, ok := n.c.wait(30 * time.Second); !ok || err != nil {
			t.Errorf("%s after SIGTERM: exited %v, %v", n.name, ok, err)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errNotWritten marks a produce the server refused before writing
// anything (NOT_LEADER): it may be sent again.
var errNotWritten = errors.New("not written")

// clusterClient talks to the test cluster as the root client, one
// connection per node address, reconnecting quickly after restarts.
type clusterClient struct {
	t     *testing.T
	nodes []*clusterNode
	creds credentials.TransportCredentials
	mu    sync.Mutex
	conns map[string]logv1.LogClient
}

func newClusterClient(t *testing.T, files certs.DevFiles, nodes []*clusterNode) *clusterClient {
	tlsCfg, err := auth.TLSConfig{CertFile: files.ClientCert("root"), KeyFile: files.ClientKey("root"), CAFile: files.CACert}.Client()
	if err != nil {
		t.Fatal(err)
	}
	return &clusterClient{t: t, nodes: nodes, creds: credentials.NewTLS(tlsCfg), conns: map[string]logv1.LogClient{}}
}

func (cc *clusterClient) client(addr string) logv1.LogClient {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if c, ok := cc.conns[addr]; ok {
		return c
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(cc.creds), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 500 * time.Millisecond},
		MinConnectTimeout: time.Second,
	}))
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.t.Cleanup(func() { conn.Close() })
	c := logv1.NewLogClient(conn)
	cc.conns[addr] = c
	return c
}

// produce sends one record to addr. It returns the offset, or the address
// to try next and an error wrapping errNotWritten if the server proved it
// wrote nothing, any other error if the record may have been written.
func (cc *clusterClient) produce(ctx context.Context, addr, val string) (off uint64, next string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := cc.client(addr).Produce(cctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(val)}})
	if err == nil {
		return resp.Offset, addr, nil
	}
	st, _ := status.FromError(err)
	if st.Code() == codes.FailedPrecondition {
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == "NOT_LEADER" && info.Metadata["leader_addr"] != "" {
				return 0, info.Metadata["leader_addr"], fmt.Errorf("%w: %v", errNotWritten, err)
			}
		}
	}
	// Unknown leader, unreachable node, leadership lost mid-append: try
	// the next node.
	for i, n := range cc.nodes {
		if n.addr == addr {
			return 0, cc.nodes[(i+1)%len(cc.nodes)].addr, err
		}
	}
	return 0, cc.nodes[0].addr, err
}

// leader polls the running nodes (but not except) until one says it is the
// leader, and returns it.
func (cc *clusterClient) leader(ctx context.Context, except *clusterNode) *clusterNode {
	cc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range cc.nodes {
			if n == except || !n.running() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := cc.client(n.addr).GetServers(cctx, &logv1.GetServersRequest{})
			cancel()
			if err != nil {
				continue
			}
			for _, s := range resp.Servers {
				if s.IsLeader && s.Id == n.name {
					return n
				}
			}
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	cc.t.Fatal("no leader within 30s")
	return nil
}

// readAll reads offsets [0, count) from n with a ConsumeStream (follower
// reads, waiting for records n has not applied yet).
func (cc *clusterClient) readAll(ctx context.Context, n *clusterNode, count uint64) []*logv1.Record {
	cc.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Wait for ready: the connection may still be backing off from the
	// node's last restart.
	stream, err := cc.client(n.addr).ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0}, grpc.WaitForReady(true))
	if err != nil {
		cc.t.Fatal(err)
	}
	out := make([]*logv1.Record, 0, count)
	for uint64(len(out)) < count {
		resp, err := stream.Recv()
		if err != nil {
			cc.t.Fatalf("%s: stream after %d of %d records: %v", n.name, len(out), count, err)
		}
		if resp.Record.Offset != uint64(len(out)) {
			cc.t.Fatalf("%s: stream sent offset %d, want %d", n.name, resp.Record.Offset, len(out))
		}
		out = append(out, resp.Record)
	}
	return out
}
