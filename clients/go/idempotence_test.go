package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/commitlog"
)

// checkWrittenOnce checks that the log holds exactly want[off] at every
// offset: each record once, at the offset its producer got.
func checkWrittenOnce(t *testing.T, c *cluster, cl *client.Client, want map[uint64]string) {
	t.Helper()
	if next := c.storage.NextOffset(); next != uint64(len(want)) {
		t.Fatalf("the log holds %d records, %d were produced", next, len(want))
	}
	for off, v := range want {
		rec, err := cl.Consume(ctxT(t), off)
		if err != nil || !bytes.Equal(rec.Value, []byte(v)) {
			t.Fatalf("offset %d: %v, %v; want %q", off, rec, err, v)
		}
	}
}

// A produce whose response is lost after the record was written is
// retried with the same producer and sequence: the log holds the record
// once, at the offset the client got. Unbatched Produce and ProduceBatch.
func TestIdempotentRetriesWriteOnce(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	cl := c.client(client.WithBatching(false))
	ctx := ctxT(t)
	l := c.leaderNode()
	l.lostResponses.Store(1)
	off, err := cl.ProduceValue(ctx, []byte("a"))
	if err != nil || off != 0 {
		t.Fatalf("Produce = %d, %v; want 0", off, err)
	}
	l.lostResponses.Store(2)
	first, err := cl.ProduceBatch(ctx, []*client.Record{{Value: []byte("b")}, {Value: []byte("c")}})
	if err != nil || first != 1 {
		t.Fatalf("ProduceBatch = %d, %v; want 1", first, err)
	}
	checkWrittenOnce(t, c, cl, map[uint64]string{0: "a", 1: "b", 2: "c"})
	// Every retry repeated its request's producer and sequence; the idle
	// producer is reused, its sequence past the records written.
	prods := l.producers()
	if len(prods) != 5 {
		t.Fatalf("%d appends, want 5 (two retried, one twice): %v", len(prods), prods)
	}
	p := prods[0]
	want := []commitlog.Producer{p, p, {ID: p.ID, Sequence: 1}, {ID: p.ID, Sequence: 1}, {ID: p.ID, Sequence: 1}}
	if p.ID == 0 || fmt.Sprint(prods) != fmt.Sprint(want) {
		t.Fatalf("producers %v, want %v", prods, want)
	}
}

// The same with batching on and several batches in flight, each from its
// own producer: every acknowledged record is in the log once.
func TestIdempotentRetriesWriteOnceBatched(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	cl := c.client(client.WithMaxInFlight(4))
	l := c.leaderNode()
	// Four batches held in flight at once, one record each.
	g := newGate()
	l.gate.Store(g)
	var futures []*client.ProduceFuture
	for i := range 4 {
		futures = append(futures, cl.ProduceAsync(ctxT(t), &client.Record{Value: []byte(fmt.Sprint("held-", i))}))
		<-g.entered
	}
	l.lostResponses.Store(4) // every one of them written, its answer lost
	open(c, g)
	want := map[uint64]string{}
	for i, f := range futures {
		off, err := f.Result()
		if err != nil {
			t.Fatalf("held record %d: %v", i, err)
		}
		want[off] = fmt.Sprint("held-", i)
	}
	ids := map[uint64]bool{}
	for _, p := range l.producers() {
		ids[p.ID] = true
	}
	if len(ids) != 4 {
		t.Fatalf("%d producers for 4 batches in flight at once, want 4", len(ids))
	}

	// Many concurrent producers, some answers lost.
	l.lostResponses.Store(10)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var fs []*client.ProduceFuture
			for i := range 25 {
				fs = append(fs, cl.ProduceAsync(ctxT(t), &client.Record{Value: []byte(fmt.Sprintf("g%d-%d", g, i))}))
			}
			for i, f := range fs {
				off, err := f.Result()
				mu.Lock()
				if err != nil {
					t.Errorf("g%d-%d: %v", g, i, err)
				} else if prev, dup := want[off]; dup {
					t.Errorf("offset %d given to %q and g%d-%d", off, prev, g, i)
				}
				want[off] = fmt.Sprintf("g%d-%d", g, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if l.lostResponses.Load() > 0 {
		t.Fatalf("%d lost responses left: fewer appends than expected", l.lostResponses.Load())
	}
	checkWrittenOnce(t, c, cl, want)
}

// A cluster that forgot the producer (UNKNOWN_PRODUCER) wrote nothing of
// that attempt: if no earlier attempt may have been written (none, or a
// NOT_LEADER refusal), the client sends the request again as a new
// producer. After an attempt whose answer was lost it may have been
// written: the call fails with ErrMaybeWritten.
func TestUnknownProducer(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	cl := c.client(client.WithBatching(false))
	ctx := ctxT(t)
	l := c.leaderNode()
	if _, err := cl.ProduceValue(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	l.forgetProducer.Store(1)
	if off, err := cl.ProduceValue(ctx, []byte("b")); err != nil || off != 1 {
		t.Fatalf("Produce after the cluster forgot the producer = %d, %v; want 1", off, err)
	}
	prods := l.producers()
	if len(prods) != 3 || prods[1].ID != prods[0].ID || prods[1].Sequence != 1 || prods[2].ID == prods[0].ID || prods[2].Sequence != 0 {
		t.Fatalf("producers %v: want the second request sent again as a new producer at 0", prods)
	}

	// Redirected by a NOT_LEADER answer, then forgotten by the leader.
	c.setLeader(1)
	c.nodes[1].forgetProducer.Store(1)
	if off, err := cl.ProduceValue(ctx, []byte("c")); err != nil || off != 2 {
		t.Fatalf("Produce redirected, then refused as an unknown producer = %d, %v; want 2", off, err)
	}
	if prods := c.nodes[1].producers(); len(prods) != 2 || prods[1].ID == prods[0].ID || prods[1].Sequence != 0 {
		t.Fatalf("producers at the new leader %v: want the request sent again as a new producer at 0", prods)
	}

	l = c.nodes[1]
	l.forgetAfterLoss.Store(true)
	l.lostResponses.Store(1)
	_, err := cl.ProduceValue(ctx, []byte("d"))
	if !errors.Is(err, client.ErrMaybeWritten) || !errors.Is(err, client.ErrUnknownProducer) || status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("retry refused as unknown producer: %v, want ErrMaybeWritten", err)
	}
	// The message does not contradict itself with the refusal's own
	// "nothing was written".
	if msg := err.Error(); strings.Contains(msg, "nothing was written") || !strings.Contains(msg, "may or may not have been written") {
		t.Fatalf("ErrMaybeWritten's message: %q", msg)
	}
	checkWrittenOnce(t, c, cl, map[uint64]string{0: "a", 1: "b", 2: "c", 3: "d"})
}

// A new producer refused because the cluster keeps too many active ones
// fails with ErrTooManyProducers at once (not retried: nothing was written,
// and the cluster's eviction window is longer than a call's deadline).
func TestTooManyProducers(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 2})
	cl := c.client(client.WithBatching(false))
	l := c.leaderNode()
	l.tooManyProducers.Store(true)
	before := l.appends.Load()
	_, err := cl.ProduceValue(ctxT(t), []byte("x"))
	if !errors.Is(err, client.ErrTooManyProducers) || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("produce refused for too many producers: %v, want ErrTooManyProducers", err)
	}
	if got := l.appends.Load() - before; got != 1 {
		t.Fatalf("%d appends, want 1: the refusal is not retried", got)
	}
	l.tooManyProducers.Store(false)
	if off, err := cl.ProduceValue(ctxT(t), []byte("y")); err != nil || off != 0 {
		t.Fatalf("produce once producers are accepted = %d, %v; want 0", off, err)
	}
}
