package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/server"
)

func TestProduceConsume(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cl := c.client()
	ctx := ctxT(t)

	for i := range 3 {
		off, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "v%d", i))
		if err != nil || off != uint64(i) {
			t.Fatalf("ProduceValue %d: offset %d, %v", i, off, err)
		}
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	in := &client.Record{Value: []byte("full"), Key: []byte("k"), Headers: []client.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}, Timestamp: ts}
	off, err := cl.Produce(ctx, in)
	if err != nil || off != 3 {
		t.Fatalf("Produce: %d, %v", off, err)
	}
	got, err := cl.Consume(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got.Offset != 3 || string(got.Value) != "full" || string(got.Key) != "k" || !got.Timestamp.Equal(ts) ||
		len(got.Headers) != 2 || got.Headers[1].Key != "a" || string(got.Headers[1].Value) != "2" {
		t.Fatalf("Consume(3) = %+v", got)
	}
	first, err := cl.Consume(ctx, 0)
	if err != nil || string(first.Value) != "v0" || first.Timestamp.IsZero() {
		t.Fatalf("Consume(0) = %+v, %v (want v0 with a server timestamp)", first, err)
	}
	if _, err := cl.Produce(ctx, nil); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("Produce(nil): %v", err)
	}
}

func TestProduceBatch(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cl := c.client()
	ctx := ctxT(t)
	if _, err := cl.ProduceValue(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	batch := []*client.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}
	first, err := cl.ProduceBatch(ctx, batch)
	if err != nil || first != 1 {
		t.Fatalf("ProduceBatch: first %d, %v", first, err)
	}
	for i, want := range []string{"a", "b", "c"} {
		rec, err := cl.Consume(ctx, first+uint64(i))
		if err != nil || string(rec.Value) != want {
			t.Fatalf("Consume(%d) = %v, %v; want %q", first+uint64(i), rec, err, want)
		}
	}
	if _, err := cl.ProduceBatch(ctx, nil); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestRecordsFollowsTheLog(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cl := c.client()
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Records after the last one are produced once the consumer has
	// it, so it waits for them.
	produced := make(chan error, 1)
	var got []string
	for rec, err := range cl.Records(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(2 + len(got)); rec.Offset != want {
			t.Fatalf("offset %d, want %d", rec.Offset, want)
		}
		got = append(got, string(rec.Value))
		if rec.Offset == 4 {
			go func() {
				var err error
				for i := 5; i < 8 && err == nil; i++ {
					_, err = cl.ProduceValue(ctx, fmt.Appendf(nil, "r%d", i))
				}
				produced <- err
			}()
		}
		if len(got) == 6 {
			break
		}
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if want := []string{"r2", "r3", "r4", "r5", "r6", "r7"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	// Cancelling the context ends the sequence with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	var last error
	for rec, err := range cl.Records(cctx, 0) {
		if err != nil {
			last = err
			continue // the sequence must end by itself
		}
		if n++; rec.Offset == 7 {
			cancel()
		}
	}
	if n != 8 || !errors.Is(last, context.Canceled) {
		t.Fatalf("after cancel: %d records, last error %v", n, last)
	}
}

func TestTypedErrors(t *testing.T) {
	c := newCluster(t, clusterOpts{server: func(cfg *server.Config) { cfg.MaxRecordBytes = 1024 }})
	cl := c.client()
	ctx := ctxT(t)
	for range 2 {
		if _, err := cl.ProduceValue(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("offset out of range", func(t *testing.T) {
		_, err := cl.Consume(ctx, 42)
		var oor *client.OffsetOutOfRangeError
		if !errors.As(err, &oor) || !errors.Is(err, client.ErrOffsetOutOfRange) {
			t.Fatalf("Consume(42): %v (%T)", err, err)
		}
		if oor.Offset != 42 || oor.Lowest != 0 || oor.Next != 2 {
			t.Fatalf("fields %+v, want offset 42 in [0, 2)", oor)
		}
		if status.Code(err) != codes.OutOfRange {
			t.Fatalf("status code %v", status.Code(err))
		}
	})
	t.Run("record too large", func(t *testing.T) {
		_, err := cl.ProduceValue(ctx, make([]byte, 2000))
		var tl *client.RecordTooLargeError
		if !errors.As(err, &tl) || !errors.Is(err, client.ErrRecordTooLarge) {
			t.Fatalf("large produce: %v (%T)", err, err)
		}
		if tl.Limit != 1024 || tl.Size <= 2000 || tl.Index != -1 {
			t.Fatalf("fields %+v", tl)
		}
		_, err = cl.ProduceBatch(ctx, []*client.Record{{Value: []byte("ok")}, {Value: make([]byte, 2000)}})
		if !errors.As(err, &tl) || tl.Index != 1 {
			t.Fatalf("large batch record: %v (%+v)", err, tl)
		}
		if rec, err := cl.Consume(ctx, 2); !errors.Is(err, client.ErrOffsetOutOfRange) {
			t.Fatalf("the refused batch was written in part: %v %v", rec, err)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		// nobody may not even list the servers: the client routes to the
		// seeds instead, and the calls themselves are refused.
		nobody := c.client(c.tls("nobody"))
		_, err := nobody.ProduceValue(ctx, []byte("no"))
		mustErr(t, err, client.ErrPermissionDenied)
		_, err = nobody.Consume(ctx, 0)
		mustErr(t, err, client.ErrPermissionDenied)
		_, err = nobody.Servers(ctx)
		mustErr(t, err, client.ErrPermissionDenied)
		for _, err := range nobody.Records(ctx, 0) {
			mustErr(t, err, client.ErrPermissionDenied)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		dctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := cl.ProduceValue(dctx, []byte("late"))
		mustErr(t, err, context.Canceled)
	})
}

func TestUnauthenticated(t *testing.T) {
	c := newCluster(t, clusterOpts{tls: auth.TLSConfig{OptionalClientCert: true}})
	cl := c.client(client.WithTLSFiles(c.certs.CACert, "", ""))
	_, err := cl.ProduceValue(ctxT(t), []byte("anonymous"))
	mustErr(t, err, client.ErrUnauthenticated)
}

func TestServersAndClose(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cl := c.client()
	ctx := ctxT(t)
	servers, err := cl.Servers(ctx)
	if err != nil || len(servers) != 1 || !servers[0].IsLeader || servers[0].RPCAddr != c.nodes[0].addr {
		t.Fatalf("Servers = %+v, %v", servers, err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = cl.ProduceValue(ctx, []byte("x"))
	mustErr(t, err, client.ErrClosed)
	for _, err := range cl.Records(ctx, 0) {
		mustErr(t, err, client.ErrClosed)
	}
}

func TestNewRejectsBadTargetsAndOptions(t *testing.T) {
	ctx := ctxT(t)
	for _, target := range []string{"", "proglog://", "nohost", "a:1,:2"} {
		if _, err := client.New(ctx, target); err == nil {
			t.Errorf("New(%q) succeeded", target)
		}
	}
	if _, err := client.New(ctx, "127.0.0.1:1", client.WithTLSFiles("/nonexistent/ca.pem", "", "")); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := client.New(ctx, "127.0.0.1:1", client.WithBackoff(time.Second, time.Millisecond)); err == nil {
		t.Error("backoff max < initial accepted")
	}
}

// The cluster tests below use the shared-log stand-in of a Raft cluster
// (see cluster); cluster_test.go runs the same scenarios on real Raft.

func TestRoutingLeaderAndFollowers(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	// Seeded with one node only: the others are discovered.
	cl, err := client.New(ctxT(t), c.nodes[2].addr, c.tls("root"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t)
	for i := range 30 {
		if _, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until both followers are connected, so that round-robin is even.
	waitRouting(t, cl, c, 1, 2)
	for _, n := range c.nodes {
		n.reads.Store(0)
	}
	for i := range 40 {
		if _, err := cl.Consume(ctx, uint64(i%30)); err != nil {
			t.Fatal(err)
		}
	}
	a, r := counts(c)
	if a[0] != 30 || a[1] != 0 || a[2] != 0 {
		t.Errorf("appends per node %v, want all 30 on the leader n0", a)
	}
	if r[0] != 0 || r[1] != 20 || r[2] != 20 {
		t.Errorf("reads per node %v, want 0 on the leader and 20 on each follower", r)
	}

	lin := c.client(client.WithConsistency(client.ReadLinearizable))
	if _, err := lin.Consume(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, r := counts(c); r[0] != 1 {
		t.Errorf("linearizable read: reads per node %v, want one on the leader", r)
	}
}

func TestConsumeFromLaggingFollower(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client()
	ctx := ctxT(t)
	if _, err := cl.ProduceValue(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	// Until the follower's connection is ready, reads fall back to the
	// leader; wait for it so the routing below is deterministic.
	waitRouting(t, cl, c, 1)
	c.nodes[1].lagging.Store(true)
	off, err := cl.ProduceValue(ctx, []byte("just written"))
	if err != nil {
		t.Fatal(err)
	}
	_, before := counts(c)
	// The follower has not applied it yet: the client asks the leader.
	rec, err := cl.Consume(ctx, off)
	if err != nil || string(rec.Value) != "just written" {
		t.Fatalf("Consume(%d) = %v, %v", off, rec, err)
	}
	if _, after := counts(c); after[0]-before[0] != 1 || after[1]-before[1] != 1 {
		t.Fatalf("reads per node %v -> %v, want one on the follower then one on the leader", before, after)
	}
	// Past the end everywhere: OUT_OF_RANGE with the leader's bounds.
	_, err = cl.Consume(ctx, off+1)
	var oor *client.OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Next != off+1 {
		t.Fatalf("Consume past the end: %v", err)
	}
}

// waitRouting consumes until each of the nodes idx has served a read.
func waitRouting(t *testing.T, cl *client.Client, c *cluster, idx ...int) {
	t.Helper()
	eventually(t, "reads to reach every follower", 10*time.Second, func() bool {
		if _, err := cl.Consume(ctxT(t), 0); err != nil {
			t.Fatal(err)
		}
		for _, i := range idx {
			if c.nodes[i].reads.Load() == 0 {
				return false
			}
		}
		return true
	})
}

func counts(c *cluster) (appends, reads []int64) {
	for _, n := range c.nodes {
		appends = append(appends, n.appends.Load())
		reads = append(reads, n.reads.Load())
	}
	return appends, reads
}

func TestLeaderChangeRedirects(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	cl := c.client(client.WithDiscoveryInterval(time.Hour)) // only errors refresh
	ctx := ctxT(t)
	if _, err := cl.ProduceValue(ctx, []byte("to n0")); err != nil {
		t.Fatal(err)
	}
	c.setLeader(1)
	off, err := cl.ProduceValue(ctx, []byte("to n1"))
	if err != nil || off != 1 {
		t.Fatalf("produce after the leader change: %d, %v", off, err)
	}
	if a, _ := counts(c); a[0] != 1 || a[1] != 1 {
		t.Fatalf("appends per node %v, want one on n0 then one on n1", a)
	}
	servers, err := cl.Servers(ctx)
	if err != nil || !servers[1].IsLeader {
		t.Fatalf("Servers = %+v, %v", servers, err)
	}

	// An election: no leader until the client was told so. Produce
	// waits and retries.
	select {
	case <-c.noLeader: // an answer from before this election
	default:
	}
	c.setLeader(-1)
	go func() {
		<-c.noLeader
		c.setLeader(2)
	}()
	if off, err := cl.ProduceValue(ctx, []byte("to n2")); err != nil || off != 2 {
		t.Fatalf("produce across an election: %d, %v", off, err)
	}

	// The leader dies and another takes over.
	c.nodes[2].stop()
	c.setLeader(0)
	if off, err := cl.ProduceValue(ctx, []byte("to n0 again")); err != nil || off != 3 {
		t.Fatalf("produce after the leader died: %d, %v", off, err)
	}

	// Only the leader is left: reads fall back to it.
	c.nodes[1].stop()
	eventually(t, "reads to reach the leader", 10*time.Second, func() bool {
		rec, err := cl.Consume(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		return string(rec.Value) == "to n0 again" && c.nodes[0].reads.Load() > 0
	})
}

func TestRecordsSurviveServerShutdown(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	cl := c.client()
	ctx := ctxT(t)
	for i := range 10 {
		if _, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A stream goes to a follower only once the client has a ready
	// connection to one (until then, to the leader): wait until both
	// followers have served reads.
	for c.nodes[1].reads.Load() == 0 || c.nodes[2].reads.Load() == 0 {
		if _, err := cl.Consume(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	stoppedOne := false
	produced := make(chan error, 1)
	for rec, err := range cl.Records(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Offset)
		if rec.Offset == 4 && !stoppedOne {
			// Stop the follower serving the stream; it resumes elsewhere.
			stoppedOne = true
			stopped := 0
			for _, n := range c.nodes[1:] {
				if n.streams.Load() > 0 {
					n.stop()
					stopped++
				}
			}
			if stopped != 1 {
				t.Fatalf("%d followers served the stream, want 1", stopped)
			}
			go func() {
				var err error
				for i := 10; i < 12 && err == nil; i++ {
					_, err = cl.ProduceValue(ctx, fmt.Appendf(nil, "%d", i))
				}
				produced <- err
			}()
		}
		if rec.Offset == 11 {
			break
		}
	}
	// The stream may deliver record 11 before its produce returns: wait
	// for it before the client is closed.
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	for i, off := range got {
		if off != uint64(i) {
			t.Fatalf("offsets %v: want 0..11 without gaps or repeats", got)
		}
	}
}

func TestProduceRetriesAndDuplicates(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	ctx := ctxT(t)

	// By default a produce whose outcome is unknown is retried with the
	// same producer and sequence: the cluster answers with the original
	// offset, and the record is written once.
	cl := c.client()
	c.nodes[0].failAfterAppend.Store(true)
	off, err := cl.ProduceValue(ctx, []byte("once"))
	if err != nil || off != 0 || c.storage.NextOffset() != 1 {
		t.Fatalf("retried produce: %d, %v; %d records; want offset 0, written once", off, err, c.storage.NextOffset())
	}

	// WithIdempotence(false): the retry writes it again (at-least-once).
	dup := c.client(client.WithIdempotence(false))
	c.nodes[0].failAfterAppend.Store(true)
	off, err = dup.ProduceValue(ctx, []byte("twice"))
	if err != nil || off != 2 {
		t.Fatalf("retried produce without idempotence: %d, %v", off, err)
	}
	for i := range uint64(2) {
		if rec, err := cl.Consume(ctx, 1+i); err != nil || !bytes.Equal(rec.Value, []byte("twice")) {
			t.Fatalf("offset %d: %v %v; want the duplicated record", 1+i, rec, err)
		}
	}

	// WithProduceRetries(0): the failure is returned instead (at-most-once).
	once := c.client(client.WithProduceRetries(0))
	c.nodes[0].failAfterAppend.Store(true)
	_, err = once.ProduceValue(ctx, []byte("once"))
	mustErr(t, err, client.ErrUnavailable)
	if next := c.storage.NextOffset(); next != 4 {
		t.Fatalf("next offset %d, want 4: the record written once", next)
	}

	// NOT_LEADER redirects are still made: they cannot duplicate.
	c.setLeader(1)
	if off, err := once.ProduceValue(ctx, []byte("redirected")); err != nil || off != 4 {
		t.Fatalf("redirect with WithProduceRetries(0): %d, %v", off, err)
	}

	// WithRetries(0): no retries at all. The client first learns the
	// leader (a new client would learn the new one from the metadata).
	none := c.client(client.WithRetries(0))
	if _, err := none.ProduceValue(ctx, []byte("learns n1")); err != nil {
		t.Fatal(err)
	}
	c.setLeader(2)
	_, err = none.ProduceValue(ctx, []byte("refused"))
	var nl *client.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderAddr != c.nodes[2].addr || nl.LeaderID != "n2" {
		t.Fatalf("WithRetries(0) after a leader change: %v", err)
	}
}

// A server low on disk space refuses produces with ErrLowDiskSpace (not
// ErrRecordTooLarge, the other RESOURCE_EXHAUSTED), which is not retried;
// reads go on.
func TestLowDiskSpace(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client()
	ctx := ctxT(t)
	if _, err := cl.ProduceValue(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	l := c.leaderNode()
	l.lowDisk.Store(true)
	before := l.appends.Load()
	_, err := cl.ProduceValue(ctx, []byte("full"))
	if !errors.Is(err, client.ErrLowDiskSpace) || errors.Is(err, client.ErrRecordTooLarge) || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("produce on a server low on disk space: %v (%T), want ErrLowDiskSpace", err, err)
	}
	if got := l.appends.Load() - before; got != 1 {
		t.Fatalf("%d appends, want 1: the refusal is not retried", got)
	}
	if rec, err := cl.Consume(ctx, 0); err != nil || string(rec.Value) != "before" {
		t.Fatalf("read from a server low on disk space: %v, %v", rec, err)
	}
	l.lowDisk.Store(false)
	if _, err := cl.ProduceValue(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
}

// Retries go on until the call's deadline, not for a fixed count: a
// produce that a leader refuses as unavailable twenty times in a row
// succeeds.
func TestRetriesFollowTheDeadline(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithBackoff(time.Millisecond, 5*time.Millisecond))
	ctx := ctxT(t)
	l := c.leaderNode()
	l.unavailable.Store(20) // more than the eight retries of the old budget
	if off, err := cl.ProduceValue(ctx, []byte("after")); err != nil || off != 0 {
		t.Fatalf("produce after 20 refusals: %d, %v", off, err)
	}
	if n := l.appends.Load(); n != 21 {
		t.Fatalf("%d attempts, want 21", n)
	}
}

// TLS mistakes fail New at once with ErrTLS naming the problem, instead of
// ErrUnavailable after the dial timeout.
func TestTLSMistakesFailFast(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	other := newCluster(t, clusterOpts{})
	for _, tc := range []struct {
		name, want string
		opt        client.Option
	}{
		{"wrong CA", "is not trusted", other.tls("root")},
		{"no client certificate", "without a client certificate", client.WithTLSFiles(c.certs.CACert, "", "")},
		{"client certificate of another CA", "refused the client certificate", client.WithTLSFiles(c.certs.CACert, other.certs.ClientCert("root"), other.certs.ClientKey("root"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The dial timeout is far away: only the diagnosis ends New
			// before ctx.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := client.New(ctx, c.target(), tc.opt, client.WithDialTimeout(time.Hour))
			mustErr(t, err, client.ErrTLS)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), c.nodes[0].addr) {
				t.Fatalf("error %q does not say %q about %s", err, tc.want, c.nodes[0].addr)
			}
		})
	}
	t.Run("mismatched key", func(t *testing.T) {
		_, err := client.New(ctxT(t), c.target(), client.WithTLSFiles(c.certs.CACert, c.certs.ClientCert("root"), c.certs.ClientKey("nobody")))
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("mismatched key pair: %v", err)
		}
	})
	// A server that is down is not a TLS mistake: New waits for it.
	t.Run("server down", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		_, err = client.New(ctxT(t), addr, c.tls("root"), client.WithDialTimeout(200*time.Millisecond))
		if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrTLS) {
			t.Fatalf("unreachable server: %v", err)
		}
	})
}

// A request over the message limit reports the real sizes: the server's
// limit when it refuses it, the client's (WithMaxMessageBytes) before
// sending; where the client batches, it splits batches to fit.
func TestMessageLimit(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2, server: func(cfg *server.Config) {
		cfg.MaxRecordBytes = 1024
		cfg.MaxRecvMsgBytes = 4096
	}})
	ctx := ctxT(t)
	batch := make([]*client.Record, 10)
	for i := range batch {
		batch[i] = &client.Record{Value: make([]byte, 1000)}
	}

	// The server refuses it.
	cl := c.client()
	_, err := cl.ProduceBatch(ctx, batch)
	var tl *client.RecordTooLargeError
	if !errors.As(err, &tl) || !tl.Request || tl.Limit != 4096 || tl.Size < 10_000 || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("batch over the server's message limit: %v (%+v)", err, tl)
	}

	// The client refuses it before sending.
	limited := c.client(client.WithMaxMessageBytes(4096))
	before := c.leaderNode().appends.Load()
	_, err = limited.ProduceBatch(ctx, batch)
	if !errors.As(err, &tl) || !tl.Request || tl.Limit != 4096 || tl.Size < 10_000 || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("batch over the client's message limit: %v (%+v)", err, tl)
	}
	_, err = limited.ProduceValue(ctx, make([]byte, 5000))
	if !errors.As(err, &tl) || tl.Request || tl.Index != -1 || tl.Limit != 4096 || tl.Size < 5000 {
		t.Fatalf("record over the client's message limit: %v (%+v)", err, tl)
	}
	if n := c.leaderNode().appends.Load(); n != before {
		t.Fatalf("%d requests sent, want none", n-before)
	}

	// Coalesced records are split into requests that fit.
	_, g := holdFirst(t, c, limited)
	var fs []*client.ProduceFuture
	for _, r := range batch {
		fs = append(fs, limited.ProduceAsync(ctx, r))
	}
	open(c, g)
	for _, f := range fs {
		if _, err := f.Result(); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.leaderNode().batchSizes(); !slices.Equal(got[len(got)-4:], []int{1, 4, 4, 2}) {
		t.Fatalf("records per request %v, want ... 1 4 4 2", got)
	}
}

// StopAtEnd ends Records after the records the log held when it was
// called, without an error.
func TestRecordsStopAtEnd(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client()
	ctx := ctxT(t)
	collect := func(from uint64) []string {
		t.Helper()
		var got []string
		for rec, err := range cl.Records(ctx, from, client.StopAtEnd()) {
			if err != nil {
				t.Fatalf("Records(%d, StopAtEnd): %v", from, err)
			}
			got = append(got, string(rec.Value))
		}
		return got
	}
	if got := collect(0); len(got) != 0 {
		t.Fatalf("empty log: %q", got)
	}
	for i := range 5 {
		if _, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := collect(2), []string{"r2", "r3", "r4"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := collect(5); len(got) != 0 {
		t.Fatalf("from the end: %q", got)
	}
}

// Bounds asks the leader (GetBounds, linearizable): Next covers every
// acknowledged produce.
func TestBounds(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	cl := c.client()
	ctx := ctxT(t)
	if b, err := cl.Bounds(ctx); err != nil || b != (client.Bounds{}) {
		t.Fatalf("empty log: %+v, %v", b, err)
	}
	for i := range 3 {
		if _, err := cl.ProduceValue(ctx, fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := c.leaderNode().bounds.Load()
	if b, err := cl.Bounds(ctx); err != nil || b != (client.Bounds{Lowest: 0, Next: 3}) {
		t.Fatalf("after 3 records: %+v, %v; want [0, 3)", b, err)
	}
	if n := c.leaderNode().bounds.Load() - before; n != 1 {
		t.Fatalf("the leader answered %d GetBounds, want 1", n)
	}
}
