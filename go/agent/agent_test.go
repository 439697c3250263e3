package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/segment"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

func TestSingleNode(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	cfg := e.config("solo")
	cfg.Bootstrap = true
	n := e.start(cfg)
	n.waitReady()
	if !n.a.Ready() || !n.a.IsLeader() {
		t.Fatal("a bootstrapped single node must lead")
	}
	if st := n.health(ctx); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v", st)
	}
	if off := n.produce(ctx, 0); off != 0 {
		t.Fatalf("first offset %d", off)
	}
	for _, c := range []logv1.Consistency{logv1.Consistency_CONSISTENCY_UNSPECIFIED, logv1.Consistency_CONSISTENCY_LINEARIZABLE, logv1.Consistency_CONSISTENCY_FOLLOWER} {
		got, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: c})
		if err != nil || string(got.Record.Value) != string(value(0)) {
			t.Fatalf("consume %v: %v, %v", c, got, err)
		}
	}
	servers, err := n.log.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil || len(servers.Servers) != 1 {
		t.Fatalf("GetServers: %v, %v", servers, err)
	}
	if s := servers.Servers[0]; s.Id != "solo" || s.RpcAddr != n.a.Addr() || !s.IsLeader {
		t.Fatalf("server %v", s)
	}
	n.checkMetrics(`proglog_rpc_requests_total{code="OK",method="/log.v1.Log/Produce"} 1`, "proglog_log_next_offset 1", "proglog_retention_removed_records_total 0",
		`proglog_partition_next_offset{partition="0",topic="log"} 1`, `proglog_partition_leader{partition="0",topic="log"} 1`)
	if m := n.metrics(); !strings.Contains(m, `proglog_disk_bytes{component="raft_log"} `) {
		t.Error(`metrics lack proglog_disk_bytes{component="raft_log"}`)
	}
	n.checkMetrics("proglog_acl_eval_errors_total 0")
	if strings.Contains(n.metrics(), "proglog_recovery_actions_total{") {
		t.Error("a new node reports recovery actions")
	}

	// Shutdown is idempotent, and the record survives a restart.
	a, logDir := n.a, n.defaultPartitionDir()
	n.stop()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := a.WaitReady(ctx); !errors.Is(err, agent.ErrShutdown) {
		t.Fatalf("WaitReady after Shutdown: %v", err)
	}
	// As after a crash: the Raft log's index is missing. Recovery rebuilds
	// it and the metrics count it.
	if err := os.Remove(segment.IndexPath(filepath.Join(logDir, "raft", "log", "segments"), 1)); err != nil {
		t.Fatal(err)
	}
	n = e.restart(n)
	n.waitReady()
	got, err := n.log.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil || string(got.Record.Value) != string(value(0)) {
		t.Fatalf("after restart: %v, %v", got, err)
	}
	n.checkMetrics(`proglog_recovery_actions_total{action="index_rebuilt",log="raft"} 1`)
}

// metrics returns the node's /metrics page.
func (n *node) metrics() string {
	n.t.Helper()
	resp, err := http.Get("http://" + n.a.MetricsAddr() + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return string(body)
}

// checkMetrics checks that the node's /metrics page has every line.
func (n *node) checkMetrics(lines ...string) {
	n.t.Helper()
	body := n.metrics()
	for _, want := range lines {
		if !strings.Contains(body, want+"\n") {
			n.t.Errorf("metrics lack %q", want)
		}
	}
}

// TestRelaxedSync: a node with a relaxed fsync policy serves appends and
// reads like the default one and keeps its records across a restart (a
// clean stop closes, hence flushes, both logs).
func TestRelaxedSync(t *testing.T) {
	for _, p := range []seglog.SyncPolicy{seglog.SyncInterval, seglog.SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			e := newEnv(t)
			ctx := ctxT(t, time.Minute)
			cfg := e.config("relaxed")
			cfg.Bootstrap = true
			cfg.Sync = p
			cfg.SyncInterval = 20 * time.Millisecond
			n := e.start(cfg)
			n.waitReady()
			for i := range 5 {
				if off := n.produce(ctx, i); off != uint64(i) {
					t.Fatalf("produce %d: offset %d", i, off)
				}
			}
			want := n.readAll(ctx, 5)
			n.stop()
			n = e.restart(n)
			n.waitReady()
			sameRecords(t, ctx, want, n)
		})
	}
}

// TestNotReadyWithoutLeader: a node that neither bootstraps nor joins has
// no leader: NOT_SERVING, appends Unavailable.
func TestNotReadyWithoutLeader(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	n := e.start(e.config("lonely"))
	if st := n.health(ctx); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v, want NOT_SERVING", st)
	}
	_, err := n.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value(0)}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("produce without a leader: %v, want Unavailable", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := n.a.WaitReady(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady: %v", err)
	}
}

// cluster3 starts n0 (bootstrapping) and n1, n2 joining it by gossip, and
// waits until all three are voters and ready.
func cluster3(t *testing.T, e *env) []*node {
	t.Helper()
	c0 := e.config("n0")
	c0.Bootstrap = true
	n0 := e.start(c0)
	n0.waitReady()
	nodes := []*node{n0}
	for _, name := range []string{"n1", "n2"} {
		c := e.config(name)
		// n0's own address is in the list too: a node skips itself, so
		// every node can be given the same list.
		c.StartJoinAddrs = []string{n0.a.SerfAddr()}
		nodes = append(nodes, e.start(c))
	}
	testutil.Eventually(t, "three voters", 30*time.Second, func() bool {
		s := n0.servers()
		return len(s) == 3 && s["n0"] && s["n1"] && s["n2"]
	})
	for _, n := range nodes {
		n.waitReady()
	}
	return nodes
}

func TestClusterReplicatesAndReads(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	nodes := cluster3(t, e)
	leader, f1, f2 := nodes[0], nodes[1], nodes[2]
	if !leader.a.IsLeader() {
		t.Fatal("n0 lost leadership while nodes joined")
	}
	for _, n := range nodes {
		if st := n.health(ctx); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s health %v", n.name(), st)
		}
		if id, addr := n.a.Leader(); id != "n0" || addr != leader.a.Addr() {
			t.Fatalf("%s knows leader %s at %s", n.name(), id, addr)
		}
	}

	// GetServers says each server's liveness (gossip's) and metadata role.
	resp, err := f1.log.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.Servers {
		if s.State != logv1.ServerState_SERVER_STATE_ALIVE || !s.MetadataVoter {
			t.Errorf("server %s: state %v, metadata voter %v; want alive voters", s.Id, s.State, s.MetadataVoter)
		}
	}

	// Records produced over the API reach every node, identical.
	const first = 50
	var want []*logv1.Record
	for i := range first {
		if off := leader.produce(ctx, i); off != uint64(i) {
			t.Fatalf("offset %d for record %d", off, i)
		}
	}
	want = leader.readAll(ctx, first)
	sameRecords(t, ctx, want, f1, f2)

	// Appends and linearizable reads need the leader; followers say where
	// it is. Follower reads are served.
	for _, f := range []*node{f1, f2} {
		_, err := f.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
		info := notLeaderInfo(t, err)
		if info.Metadata["leader_addr"] != leader.a.Addr() || info.Metadata["leader_id"] != "n0" {
			t.Fatalf("NOT_LEADER points to %v", info.Metadata)
		}
		for _, c := range []logv1.Consistency{logv1.Consistency_CONSISTENCY_UNSPECIFIED, logv1.Consistency_CONSISTENCY_LINEARIZABLE} {
			_, err := f.log.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: c})
			if info := notLeaderInfo(t, err); info.Metadata["leader_addr"] != leader.a.Addr() {
				t.Fatalf("NOT_LEADER points to %v", info.Metadata)
			}
		}
		got, err := f.log.Consume(ctx, &logv1.ConsumeRequest{Offset: 3, Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER})
		if err != nil || string(got.Record.Value) != string(value(3)) {
			t.Fatalf("follower read on %s: %v, %v", f.name(), got, err)
		}
	}

	// Linearizable reads on the leader never miss an acknowledged record:
	// a reader running alongside the producer asks for the newest offset
	// acknowledged before each of its calls started. Follower reads never
	// see a record before its produce was even issued (nothing
	// uncommitted), and eventually see every one.
	const more = 150
	var acked atomic.Int64  // offsets [0, acked) were acknowledged
	var issued atomic.Int64 // offsets >= issued were not produced yet
	acked.Store(first)
	issued.Store(first)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var reads, streamed atomic.Int64
	errc := make(chan error, 4)
	wg.Add(2)
	go func() { // linearizable reader on the leader, own connection
		defer wg.Done()
		lc := logv1.NewLogClient(e.dial(leader.a.Addr(), "root"))
		for {
			select {
			case <-done:
				return
			default:
			}
			off := acked.Load() - 1
			got, err := lc.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(off), Consistency: logv1.Consistency_CONSISTENCY_LINEARIZABLE})
			if err != nil {
				errc <- err
				return
			}
			if string(got.Record.Value) != string(value(int(off))) {
				errc <- errors.New("linearizable read returned the wrong record")
				return
			}
			reads.Add(1)
		}
	}()
	go func() { // follower stream: in order, never ahead of the producer
		defer wg.Done()
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := f1.log.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: first, Consistency: logv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			errc <- err
			return
		}
		for want := int64(first); want < first+more; want++ {
			resp, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			off := int64(resp.Record.Offset)
			if off != want || off >= issued.Load() || string(resp.Record.Value) != string(value(int(off))) {
				errc <- errors.New("follower stream sent a record out of order, before it was produced, or wrong")
				return
			}
			streamed.Add(1)
		}
	}()
	for i := first; i < first+more; i++ {
		check := i%10 == 0
		if check {
			// Not produced yet, so not committed: a follower cannot have it.
			_, err := f2.log.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i), Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER})
			if !isOutOfRange(err) {
				t.Fatalf("follower read of offset %d before its produce: %v", i, err)
			}
		}
		issued.Store(int64(i) + 1)
		if off := leader.produce(ctx, i); off != uint64(i) {
			t.Fatalf("offset %d for record %d", off, i)
		}
		acked.Store(int64(i) + 1)
		got, err := leader.log.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i)}) // default: linearizable
		if err != nil || string(got.Record.Value) != string(value(i)) {
			t.Fatalf("read-your-write at %d: %v, %v", i, got, err)
		}
		if check {
			testutil.Eventually(t, "the follower to apply the record", 10*time.Second, func() bool {
				got, err := f2.log.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i), Consistency: logv1.Consistency_CONSISTENCY_FOLLOWER})
				if err != nil && !isOutOfRange(err) {
					t.Fatalf("follower read: %v", err)
				}
				return err == nil && string(got.Record.Value) == string(value(i))
			})
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if streamed.Load() != more || reads.Load() == 0 {
		t.Fatalf("streamed %d of %d, %d concurrent linearizable reads", streamed.Load(), more, reads.Load())
	}
	t.Logf("%d concurrent linearizable reads", reads.Load())
	want = leader.readAll(ctx, first+more)
	sameRecords(t, ctx, want, f1, f2)
}

func TestMembership(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 3*time.Minute)
	nodes := cluster3(t, e)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	count := 0
	produce := func(leader *node, k int) {
		for range k {
			if off := leader.produce(ctx, count); off != uint64(count) {
				t.Fatalf("offset %d for record %d", off, count)
			}
			count++
		}
	}
	produce(n0, 10)

	// A node with another gossip key is not admitted, though its TLS
	// certificate is valid: it never joins, never becomes a Raft server.
	other, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	ci := e.config("intruder")
	ci.GossipKey = other
	ci.StartJoinAddrs = []string{n0.a.SerfAddr()}
	intruder := e.start(ci)
	// A legitimate node joining after it is admitted; by then the intruder
	// would have been too.
	c3 := e.config("n3")
	c3.StartJoinAddrs = []string{n1.a.SerfAddr()}
	n3 := e.start(c3)
	// n3 is registered in the metadata; the default topic keeps its three
	// replicas (n0, n1, n2).
	testutil.Eventually(t, "n3 to be registered", 30*time.Second, func() bool { in, _ := n0.registered("n3"); return in })
	n3.waitReady()
	if in, _ := n0.registered("intruder"); in {
		t.Fatal("the intruder is registered")
	}
	if _, in := n0.servers()["intruder"]; in {
		t.Fatal("the intruder is a Raft server")
	}
	for _, m := range n0.a.Members() {
		if m.Name == "intruder" {
			t.Fatalf("the intruder is a gossip member: %+v", m)
		}
	}
	if len(intruder.a.Members()) != 1 || intruder.a.Ready() {
		t.Fatalf("the intruder joined someone: %+v, ready %v", intruder.a.Members(), intruder.a.Ready())
	}
	if st := intruder.health(ctx); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("intruder health %v", st)
	}
	intruder.stop()

	// A node that leaves holding no replica is removed from the metadata.
	produce(n0, 5)
	n3.stop()
	testutil.Eventually(t, "n3 to be removed", 30*time.Second, func() bool { in, _ := n0.registered("n3"); return !in })

	// A replica's node that leaves is marked leaving but keeps its
	// replicas (they move only after the replacement delay); restarted
	// after the leader compacted its log past what it has, it catches up
	// from a snapshot.
	n2.stop()
	testutil.Eventually(t, "n2 to be marked leaving", 30*time.Second, func() bool { _, leaving := n0.registered("n2"); return leaving })
	produce(n0, 100)
	// Both members snapshot and compact: whichever leads when n2 comes
	// back (leadership may move under load) has only the snapshot for it.
	want := n0.readAll(ctx, count)
	sameRecords(t, ctx, want, n1)
	for _, n := range []*node{n0, n1} {
		if err := n.a.Replica().Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	n2 = e.restart(n2, n0.a.SerfAddr(), n1.a.SerfAddr())
	testutil.Eventually(t, "n2 to be back", 30*time.Second, func() bool { in, leaving := n0.registered("n2"); return in && !leaving })
	n2.waitReady()
	want = n0.readAll(ctx, count)
	sameRecords(t, ctx, want, n1, n2)
	// Raft records the installed snapshot's index just after the FSM has
	// restored its records, so the records can be read a moment before
	// the index shows; a node that caught up from the log never shows one.
	testutil.Eventually(t, "n2 to have installed a snapshot", 30*time.Second, func() bool {
		snap := n2.a.Replica().Stats()["last_snapshot_index"]
		return snap != "" && snap != "0"
	})

	// The leader leaves: it hands leadership over, and the others go on.
	n0.stop()
	var leader *node
	testutil.Eventually(t, "a new leader", 30*time.Second, func() bool {
		for _, n := range []*node{n1, n2} {
			if n.a.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	n1.waitReady()
	n2.waitReady()
	produce(leader, 5)
	want = leader.readAll(ctx, count)
	sameRecords(t, ctx, want, n1, n2)
}

// TestTopicsOverTheCluster: a topic created through one node's broker is
// placed by the metadata group, every replica opens its partition's group
// over the shared port with the nodes' peer checks, and each partition
// elects a leader that replicates to the others; deleting it closes the
// replicas and removes their data on every node.
func TestTopicsOverTheCluster(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	nodes := cluster3(t, e)
	var metaLeader *node
	testutil.Eventually(t, "a metadata leader", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.Metadata().IsLeader() {
				metaLeader = n
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		if n != metaLeader {
			_, err := n.a.Broker().CreateTopic(ctx, "elsewhere", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1})
			var nl *commitlog.NotLeaderError
			if !errors.As(err, &nl) || nl.LeaderAddr != metaLeader.a.Addr() {
				t.Fatalf("CreateTopic on %s (not the metadata leader): %v, want NOT_LEADER naming %s", n.name(), err, metaLeader.a.Addr())
			}
			break
		}
	}
	info, err := metaLeader.a.Broker().CreateTopic(ctx, "orders", commitlog.TopicConfig{Partitions: 2, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	for p := range info.Partitions {
		var leader commitlog.Partition
		testutil.Eventually(t, fmt.Sprintf("a leader of orders/%d", p), 30*time.Second, func() bool {
			for _, n := range nodes {
				if r := n.a.Broker().Replica("orders", p); r != nil && r.IsLeader() {
					leader, err = n.a.Broker().Partition("orders", p)
					return err == nil
				}
			}
			return false
		})
		off, err := leader.Append(ctx, [][]byte{value(p)})
		if err != nil || off != 0 {
			t.Fatalf("append to orders/%d: %d, %v", p, off, err)
		}
		for _, n := range nodes {
			part, err := n.a.Broker().Partition("orders", p)
			if err != nil {
				t.Fatalf("%s: orders/%d: %v", n.name(), p, err)
			}
			if err := part.Wait(ctx, 0); err != nil {
				t.Fatal(err)
			}
			got, err := part.Read(ctx, 0, commitlog.ConsistencyFollower)
			if err != nil || string(got) != string(value(p)) {
				t.Fatalf("%s: orders/%d offset 0 = %q, %v", n.name(), p, got, err)
			}
		}
	}
	if err := metaLeader.a.Broker().DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		dir := filepath.Join(n.cfg.DataDir, "topics", "orders")
		testutil.Eventually(t, n.name()+" removing the deleted topic's data", 30*time.Second, func() bool {
			_, err := os.Stat(dir)
			return errors.Is(err, os.ErrNotExist)
		})
	}
}

// TestGracefulStopLogsNoErrors: a node that stops cleanly logs nothing at
// error level while it stops (Raft's "transport shutdown", the leadership
// hand-over's "peer has newer term", resets from peers are expected then),
// and says it stopped.
func TestGracefulStopLogsNoErrors(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	var nodes []*node
	var logs []*observer.ObservedLogs
	for i, name := range []string{"n0", "n1", "n2"} {
		c := e.config(name)
		core, l := observer.New(zapcore.InfoLevel)
		c.Logger = zap.New(zapcore.NewTee(core, c.Logger.Core())).Named(name)
		if i == 0 {
			c.Bootstrap = true
		} else {
			c.StartJoinAddrs = []string{nodes[0].a.SerfAddr()}
		}
		n := e.start(c)
		n.waitReady()
		nodes, logs = append(nodes, n), append(logs, l)
	}
	testutil.Eventually(t, "three voters", 30*time.Second, func() bool { return len(nodes[0].servers()) == 3 })
	for i := range 10 {
		nodes[0].produce(ctx, i)
	}
	for i, n := range nodes {
		before := logs[i].Len()
		n.stop()
		stopped := false
		for _, entry := range logs[i].All()[before:] {
			if entry.Level >= zapcore.ErrorLevel {
				t.Errorf("%s logged while stopping: %s %q %v", n.name(), entry.Level, entry.Message, entry.ContextMap())
			}
			stopped = stopped || entry.Message == "agent stopped"
		}
		if !stopped {
			t.Errorf("%s did not log that it stopped", n.name())
		}
	}
}
