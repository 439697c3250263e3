package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	client "github.com/proglog/proglog/clients/go"
	logv1 "github.com/proglog/proglog/proto/log/v1"
	"github.com/proglog/proglog/tools/faulttest/cluster"
	"github.com/proglog/proglog/tools/faulttest/history"
)

// GroupConfig sizes a consumer-group workload: Members consumers (the Go
// client's Consumer, each with a client of its own) of one group sharing
// a topic's partitions, members killed and added every ChurnInterval or
// so. The topic's records are produced by ordinary workloads, one per
// partition.
type GroupConfig struct {
	Group, Topic string
	Partitions   int
	Members      int
	// SessionTimeout is the members' session timeout: a killed member's
	// partitions go to the others that long after its last heartbeat.
	SessionTimeout time.Duration
	// AutoCommit is the members' automatic commit interval.
	AutoCommit time.Duration
	// ChurnInterval is the mean time between two member changes: a
	// member killed when Members or more run, else one added (0: none).
	ChurnInterval time.Duration
	Seed          uint64
}

// DefaultGroupConfig is a group of 3 consumers over the 6 partitions of
// topic ft.g, a member killed or added every 4 s or so.
func DefaultGroupConfig() GroupConfig {
	return GroupConfig{Group: "ft.workers", Topic: "ft.g", Partitions: 6, Members: 3,
		SessionTimeout: 2 * time.Second, AutoCommit: 250 * time.Millisecond, ChurnInterval: 4 * time.Second, Seed: 1}
}

// Validate reports the first setting that cannot work.
func (c GroupConfig) Validate() error {
	switch {
	case c.Group == "" || c.Topic == "":
		return errors.New("workload: a group needs a Group and a Topic name")
	case c.Partitions < 1:
		return fmt.Errorf("workload: group topic of %d partitions, want at least 1", c.Partitions)
	case c.Members < 1:
		return fmt.Errorf("workload: group of %d members, want at least 1", c.Members)
	case c.SessionTimeout < client.MinSessionTimeout || c.SessionTimeout > client.MaxSessionTimeout:
		return fmt.Errorf("workload: group SessionTimeout %v, want %v to %v", c.SessionTimeout, client.MinSessionTimeout, client.MaxSessionTimeout)
	case c.AutoCommit <= 0:
		return fmt.Errorf("workload: group AutoCommit %v, want > 0", c.AutoCommit)
	case c.ChurnInterval < 0:
		return fmt.Errorf("workload: group ChurnInterval %v, must not be negative", c.ChurnInterval)
	}
	return nil
}

// Group is a running consumer-group workload.
type Group struct {
	cfg GroupConfig
	c   *cluster.Cluster
	rec *history.GroupRecorder
	rng *rand.Rand // the churn's

	mu       sync.Mutex
	members  []*member
	next     int     // the next member's consumer number
	failures []error // members that ended on their own (Next failed)

	killed, added atomic.Int64
	churnStop     context.CancelFunc
	churnDone     chan struct{}
}

// member is one consumer and its own client: killing it closes the
// client under the consumer, which so neither commits nor leaves (as if
// its process died); its session then expires.
type member struct {
	k      int
	cl     *client.Client
	cons   *client.Consumer
	cancel context.CancelFunc
	done   chan struct{}
}

// StartGroup starts cfg.Members members and the churn; Drain and Close end
// them.
func StartGroup(ctx context.Context, c *cluster.Cluster, rec *history.GroupRecorder, cfg GroupConfig) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg, c: c, rec: rec, rng: rand.New(rand.NewPCG(cfg.Seed, 0x67726f7570)), churnDone: make(chan struct{})}
	for range cfg.Members {
		if err := g.add(ctx); err != nil {
			g.Close(ctx)
			return nil, err
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	g.churnStop = cancel
	go g.churn(cctx)
	return g, nil
}

// Killed and Added count the members killed and added after the start
// (by the churn, and by Drain replacing the killed ones).
func (g *Group) Killed() int { return int(g.killed.Load()) }
func (g *Group) Added() int  { return int(g.added.Load()) }

// Failures are the errors members ended with on their own: a consumer
// that gave up (Next failed other than by a kill or Close).
func (g *Group) Failures() []error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]error(nil), g.failures...)
}

// add starts a member: a client of its own, whose CommitOffsets calls the
// cluster acknowledges are recorded, a consumer of the group, and a loop
// processing (recording) every record its Next returns.
func (g *Group) add(ctx context.Context) error {
	g.mu.Lock()
	k := g.next
	g.next++
	g.mu.Unlock()
	cl, err := g.c.GoClient(ctx, client.WithDialOptions(grpc.WithChainUnaryInterceptor(g.recordCommits)),
		client.WithBackoff(20*time.Millisecond, 300*time.Millisecond))
	if err != nil {
		return err
	}
	cons, err := cl.Consumer(ctx, g.cfg.Group, []string{g.cfg.Topic}, client.WithSessionTimeout(g.cfg.SessionTimeout),
		client.WithAutoCommit(g.cfg.AutoCommit), client.WithClientID(fmt.Sprintf("faulttest-%d", k)))
	if err != nil {
		cl.Close()
		return fmt.Errorf("workload: member %d of group %s: %w", k, g.cfg.Group, err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &member{k: k, cl: cl, cons: cons, cancel: cancel, done: make(chan struct{})}
	go g.process(mctx, m)
	g.mu.Lock()
	g.members = append(g.members, m)
	g.mu.Unlock()
	return nil
}

// process records every record m's Next returns until Next fails. The
// member ID is read around Next: a record returned while the member
// joined again is recorded without one (its member is unknown).
func (g *Group) process(ctx context.Context, m *member) {
	defer close(m.done)
	for {
		before := m.cons.MemberID()
		msg, err := m.cons.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
				g.mu.Lock()
				g.failures = append(g.failures, fmt.Errorf("member %d: %w", m.k, err))
				g.mu.Unlock()
			}
			return
		}
		member := m.cons.MemberID()
		if member != before {
			member = ""
		}
		g.rec.AddProcessed(history.Processed{Consumer: m.k, Member: member, Partition: msg.Partition, Offset: msg.Offset,
			Value: string(msg.Record.Value), At: time.Now()})
	}
}

// recordCommits is the members' clients' unary interceptor: it records
// every CommitOffsets attempt the cluster acknowledged.
func (g *Group) recordCommits(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	call := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	if r, ok := req.(*logv1.CommitOffsetsRequest); ok && err == nil {
		ret := time.Now()
		for _, o := range r.GetOffsets() {
			g.rec.AddCommit(history.Commit{Member: r.GetMemberId(), Generation: r.GetGeneration(), Partition: o.GetPartition(), Offset: o.GetOffset(), Call: call, Return: ret})
		}
	}
	return err
}

// kill kills a random member: its client closed under it.
func (g *Group) kill() {
	g.mu.Lock()
	if len(g.members) == 0 {
		g.mu.Unlock()
		return
	}
	i := g.rng.IntN(len(g.members))
	m := g.members[i]
	g.members = append(g.members[:i], g.members[i+1:]...)
	g.mu.Unlock()
	m.cancel() // first: its Next ends on the cancellation, not as a failure
	m.cl.Close()
	<-m.done
	g.killed.Add(1)
}

// churn kills a member when Members or more run, else adds one, every
// ChurnInterval on average, until stopped. Members that ended on their
// own are replaced first.
func (g *Group) churn(ctx context.Context) {
	defer close(g.churnDone)
	if g.cfg.ChurnInterval == 0 {
		return
	}
	for {
		d := time.Duration((0.5 + g.rng.Float64()) * float64(g.cfg.ChurnInterval))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		g.reap()
		g.mu.Lock()
		n := len(g.members)
		g.mu.Unlock()
		if n >= g.cfg.Members {
			g.kill()
			continue
		}
		if err := g.add(ctx); err == nil {
			g.added.Add(1)
		} // else: the cluster is down for now; the next turn tries again
	}
}

// reap drops the members whose loop ended on their own (their client
// closed).
func (g *Group) reap() {
	g.mu.Lock()
	defer g.mu.Unlock()
	kept := g.members[:0]
	for _, m := range g.members {
		select {
		case <-m.done:
			m.cl.Close()
		default:
			kept = append(kept, m)
		}
	}
	g.members = kept
}

// Drain stops the churn, brings the group back to Members members and
// waits until its committed offset of every partition of the topic is
// ends[partition] (the partition's end after the last record), or
// timeout.
func (g *Group) Drain(ctx context.Context, ends []uint64, timeout time.Duration) error {
	g.churnStop()
	<-g.churnDone
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	g.reap()
	for {
		g.mu.Lock()
		n := len(g.members)
		g.mu.Unlock()
		if n >= g.cfg.Members {
			break
		}
		if err := g.add(ctx); err != nil {
			return fmt.Errorf("workload: drain group %s: %w", g.cfg.Group, err)
		}
		g.added.Add(1)
	}
	admin, err := g.c.GoClient(ctx)
	if err != nil {
		return err
	}
	defer admin.Close()
	var last []client.PartitionOffset
	for {
		offs, err := admin.FetchOffsets(ctx, g.cfg.Group)
		if err == nil {
			last = offs
			if drained(offs, g.cfg.Topic, ends) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workload: group %s not drained within %v: committed %v, ends %v (%v)", g.cfg.Group, timeout, last, ends, err)
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

// drained reports whether offs commit every partition of topic at ends.
func drained(offs []client.PartitionOffset, topic string, ends []uint64) bool {
	n := 0
	for _, o := range offs {
		if o.Topic == topic && o.Committed && int(o.Partition) < len(ends) && o.Offset == ends[o.Partition] {
			n++
		}
	}
	return n == len(ends)
}

// Close stops the churn and closes every member (commit and leave).
func (g *Group) Close(ctx context.Context) error {
	if g.churnStop != nil {
		g.churnStop()
		<-g.churnDone
	}
	g.mu.Lock()
	ms := g.members
	g.members = nil
	g.mu.Unlock()
	var errs []error
	for _, m := range ms {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := m.cons.Close(cctx); err != nil && !errors.Is(err, client.ErrClosed) {
			errs = append(errs, fmt.Errorf("workload: close member %d: %w", m.k, err))
		}
		cancel()
		m.cancel()
		<-m.done
		m.cl.Close()
	}
	return errors.Join(errs...)
}
