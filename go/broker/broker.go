package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/replication"
)

// key names a partition replica: the topic's name and creation index
// (a topic created again under the same name is another topic) and the
// partition.
type key struct {
	topic     string
	created   uint64
	partition int
}

func (k key) String() string { return GroupID(k.topic, k.created, k.partition) }

// assignment is what the metadata says about a partition this node holds
// a replica of.
type assignment struct {
	// servers are the partition's replicas with their Raft addresses, in
	// the metadata's order.
	servers []replication.Server
	// bootstrap: the partition is at its creation assignment (epoch 0), so
	// its replicas bootstrap the group with servers.
	bootstrap bool
	retention metadata.Retention
	// epoch is the partition's; adding: this node's replica is in its
	// Adding list, to be reported once caught up.
	epoch  uint64
	adding bool
}

// view is what one reading of the metadata says this node should host.
type view struct {
	want map[key]assignment
	// topics maps every topic's name to its creation index.
	topics map[string]uint64
	// applied is the index of the metadata's last applied command.
	applied uint64
}

// replica is an open partition replica.
type replica struct {
	key
	dir  string
	log  *replication.Log
	clog *replication.CommitLog
	// voterAt is the last log index when this replica first saw itself a
	// voter (caughtUp), 0 before.
	voterAt atomic.Uint64
	// reporting: a ReplicaReady report of this replica is running.
	reporting atomic.Bool
}

// Broker hosts the partition replicas the metadata assigns to this node
// and serves them as a commitlog.Cluster. Its methods are safe for
// concurrent use.
type Broker struct {
	cfg Config
	lg  hclog.Logger

	mu       sync.RWMutex
	replicas map[key]*replica
	closed   bool

	kick chan struct{} // wakes membershipLoop: a local replica became leader
	// ctx is cancelled by Close: it ends the reports running.
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New checks the data directory's layout (CheckLayout), opens the replicas
// the metadata assigns to this node as it is now, and keeps them in step
// with the metadata until Close (see the package documentation). A
// replica that fails to open is logged and tried again after
// RetryInterval.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckLayout(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, topicsDir), 0o700); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b := &Broker{
		cfg:      cfg,
		lg:       cfg.logger(),
		replicas: map[key]*replica{},
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	changed := cfg.Metadata.Changed()
	failed := b.reconcile()
	b.wg.Add(3)
	go b.run(changed, failed)
	go b.membershipLoop()
	go b.leaderLoop()
	if cfg.PreferredLeaderDelay > 0 {
		b.wg.Add(1)
		go b.preferredLoop()
	}
	return b, nil
}

// run reconciles the local replicas with the metadata whenever it changes,
// and again after RetryInterval while a replica fails to open.
func (b *Broker) run(changed <-chan struct{}, failed bool) {
	defer b.wg.Done()
	for {
		var retry <-chan time.Time
		if failed {
			retry = time.After(b.cfg.RetryInterval)
		}
		select {
		case <-b.done:
			return
		case <-changed:
		case <-retry:
		}
		changed = b.cfg.Metadata.Changed()
		failed = b.reconcile()
	}
}

// view reads what the metadata assigns to this node.
func (b *Broker) view() view {
	v := view{want: map[key]assignment{}, topics: map[string]uint64{}}
	b.cfg.Metadata.View(func(s *metadata.State) {
		v.applied = s.Applied
		for name, t := range s.Topics {
			v.topics[name] = t.Created
			for p, part := range t.Partitions {
				if slices.Contains(part.Replicas, b.cfg.NodeID) {
					v.want[key{name, t.Created, p}] = assignment{
						servers:   raftServers(s, part.Replicas),
						bootstrap: part.Epoch == 0,
						retention: t.Config.Retention,
						epoch:     part.Epoch,
						adding:    slices.Contains(part.Adding, b.cfg.NodeID),
					}
				}
			}
		}
	})
	return v
}

// raftServers lists nodes ids with their Raft addresses.
func raftServers(s *metadata.State, ids []string) []replication.Server {
	out := make([]replication.Server, 0, len(ids))
	for _, id := range ids {
		var addr string
		if n := s.Nodes[id]; n != nil {
			addr = n.RaftAddr
		}
		out = append(out, replication.Server{ID: id, RPCAddr: addr})
	}
	return out
}

// reconcile closes the replicas no longer assigned to this node (deleting
// their data), opens those newly assigned, and removes the directories of
// deleted topics. It reports whether a replica failed to open.
func (b *Broker) reconcile() (failed bool) {
	v := b.view()
	b.mu.Lock()
	var gone []*replica
	for k, r := range b.replicas {
		if _, ok := v.want[k]; !ok {
			gone = append(gone, r)
			delete(b.replicas, k)
		}
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range gone {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.retire(r) // in parallel: a leader's Close may wait for a leadership transfer
		}()
	}
	wg.Wait()
	var open []key
	b.mu.RLock()
	for k := range v.want {
		if b.replicas[k] == nil {
			open = append(open, k)
		}
	}
	b.mu.RUnlock()
	sort.Slice(open, func(i, j int) bool {
		if open[i].topic != open[j].topic {
			return open[i].topic < open[j].topic
		}
		return open[i].partition < open[j].partition
	})
	for _, k := range open {
		if err := b.open(k, v.want[k]); err != nil {
			if errors.Is(err, ErrClosed) {
				return false
			}
			b.lg.Error("opening partition replica failed; retrying", "group", k.String(), "in", b.cfg.RetryInterval, "error", err)
			failed = true
		}
	}
	b.sweep(v)
	return failed
}

// open opens the replica of k as assigned by a.
func (b *Broker) open(k key, a assignment) error {
	gid := k.String()
	sl, err := b.cfg.StreamLayers.Group(gid)
	if err != nil {
		return fmt.Errorf("broker: stream layer of %s: %w", gid, err)
	}
	rc := b.cfg.Replica
	rc.DataDir = PartitionDir(b.cfg.DataDir, k.topic, k.created, k.partition)
	rc.LocalID = b.cfg.NodeID
	rc.StreamLayer = sl
	// A replica added later (epoch above 0) waits for the partition's
	// leader to add it; bootstrapping it would start a second group.
	rc.Bootstrap = a.bootstrap
	if a.bootstrap {
		rc.InitialServers = a.servers
	}
	if a.retention.MaxBytes > 0 {
		rc.Retention.MaxBytes = uint64(a.retention.MaxBytes)
	}
	if a.retention.MaxAge > 0 {
		rc.Retention.MaxAge = a.retention.MaxAge
	}
	onLeadership := rc.OnLeadershipChange
	rc.OnLeadershipChange = func(isLeader bool) {
		if onLeadership != nil {
			onLeadership(isLeader)
		}
		if isLeader {
			b.wake()
		}
	}
	if f := b.cfg.OnLeaderChange; f != nil {
		rc.OnLeaderChange = func(id, addr string) { f(k.topic, k.partition, id, addr) }
	}
	base := rc.Logger
	if base == nil {
		base = b.lg
	}
	rc.Logger = base.With("topic", k.topic, "partition", k.partition)
	l, err := replication.New(rc)
	if err != nil {
		_ = sl.Close()
		return fmt.Errorf("broker: open %s: %w", gid, err)
	}
	if b.cfg.OnOpen != nil {
		b.cfg.OnOpen(k.topic, k.partition, l)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = l.Close()
		return ErrClosed
	}
	b.replicas[k] = &replica{key: k, dir: rc.DataDir, log: l, clog: replication.NewCommitLog(l)}
	b.mu.Unlock()
	b.lg.Info("partition replica opened", "group", gid, "bootstrap", a.bootstrap)
	b.wake()
	return nil
}

// retire closes a replica no longer assigned to this node and deletes its
// data. If the partition still exists (the replica moved away) and this
// node leads it, the replicas listed now are added first, so that Close's
// leadership transfer has somewhere to go and no replica is left waiting
// for a leader that is gone.
func (b *Broker) retire(r *replica) {
	if servers, moved := b.partitionServers(r.key); moved && r.log.IsLeader() {
		b.reconcileGroup(r, servers)
	}
	if err := r.log.Close(); err != nil {
		b.lg.Warn("closing partition replica", "group", r.key.String(), "error", err)
	}
	if err := os.RemoveAll(r.dir); err != nil {
		b.lg.Error("removing partition replica's data", "dir", r.dir, "error", err)
		return
	}
	removeEmptyParents(r.dir, filepath.Join(b.cfg.DataDir, topicsDir))
	b.lg.Info("partition replica closed and its data removed", "group", r.key.String())
}

// partitionServers returns the replicas of k's partition with their Raft
// addresses, false if the partition is gone.
func (b *Broker) partitionServers(k key) (servers []replication.Server, ok bool) {
	b.cfg.Metadata.View(func(s *metadata.State) {
		t := s.Topics[k.topic]
		if t == nil || t.Created != k.created || k.partition >= len(t.Partitions) {
			return
		}
		servers, ok = raftServers(s, t.Partitions[k.partition].Replicas), true
	})
	return servers, ok
}

// removeEmptyParents removes dir's parents up to (not including) root
// while they are empty.
func removeEmptyParents(dir, root string) {
	for d := filepath.Dir(dir); d != root && len(d) > len(root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
	}
}

// sweep removes the directories of topics deleted while no replica of
// them was open here (the node was down, or the replica never opened).
// Only a topic the local metadata knows to be gone is removed: its
// creation index is at or below the last applied command and no topic of
// that name has it. A directory of a live topic whose partition is not
// assigned here is left alone, since a metadata copy that lags (a node
// restarting) may not list an assignment yet.
func (b *Broker) sweep(v view) {
	root := filepath.Join(b.cfg.DataDir, topicsDir)
	topics, err := os.ReadDir(root)
	if err != nil {
		b.lg.Warn("listing partition directories", "dir", root, "error", err)
		return
	}
	for _, t := range topics {
		if !t.IsDir() {
			continue
		}
		tdir := filepath.Join(root, t.Name())
		gens, err := os.ReadDir(tdir)
		if err != nil {
			continue
		}
		for _, g := range gens {
			created, err := strconv.ParseUint(g.Name(), 10, 64)
			if err != nil || created > v.applied {
				continue
			}
			if c, ok := v.topics[t.Name()]; ok && c == created {
				continue
			}
			dir := filepath.Join(tdir, g.Name())
			if err := os.RemoveAll(dir); err != nil {
				b.lg.Error("removing a deleted topic's data", "dir", dir, "error", err)
				continue
			}
			b.lg.Info("removed a deleted topic's data", "dir", dir)
		}
		_ = os.Remove(tdir) // if empty
	}
}

// wake asks membershipLoop for a pass.
func (b *Broker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Ready reports whether every replica the local metadata assigns to this
// node is open.
func (b *Broker) Ready() bool {
	v := b.view()
	b.mu.RLock()
	defer b.mu.RUnlock()
	for k := range v.want {
		if b.replicas[k] == nil {
			return false
		}
	}
	return true
}

// Replica returns this node's open replica of topic's partition, nil if
// it has none.
func (b *Broker) Replica(topic string, partition int) *replication.Log {
	created, ok := uint64(0), false
	b.cfg.Metadata.View(func(s *metadata.State) {
		if t := s.Topics[topic]; t != nil {
			created, ok = t.Created, true
		}
	})
	if !ok {
		return nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if r := b.replicas[key{topic, created, partition}]; r != nil {
		return r.log
	}
	return nil
}

// Hosted is an open replica this node hosts.
type Hosted struct {
	Topic     string
	Partition int
	Log       *replication.Log
}

// Hosted lists the replicas open now, sorted by topic and partition.
func (b *Broker) Hosted() []Hosted {
	b.mu.RLock()
	out := make([]Hosted, 0, len(b.replicas))
	for k, r := range b.replicas {
		out = append(out, Hosted{Topic: k.topic, Partition: k.partition, Log: r.log})
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Close stops reconciling and closes every local replica (keeping their
// data). It is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		rs := b.replicas
		b.replicas = map[key]*replica{}
		b.mu.Unlock()
		close(b.done)
		b.cancel()
		b.wg.Wait()
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, r := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.log.Close(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", r.key, err))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.closeErr = fmt.Errorf("broker: close: %w", err)
		}
	})
	return b.closeErr
}
