package group

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/raftutil"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/replication"
	"github.com/proglog/proglog/go/seglog"
)

// RaftGroup is the metadata group's ID on the node's shared port: the
// agent passes the stream layer replication.Transport.Group(RaftGroup)
// gives as Config.StreamLayer. A partition's group ID holds a '/'
// (broker.GroupID), so it never names this one.
const RaftGroup = "meta"

// ErrCommandTooLarge: a proposal's command is larger than
// Config.MaxCommandBytes (CreateTopic returns it wrapped with
// metadata.ErrInvalidTopic).
var ErrCommandTooLarge = errors.New("metadata group: command too large")

// entryOverhead is room for what the LogStore adds to a command (its entry
// encoding) above Config.MaxCommandBytes.
const entryOverhead = 1 << 10

// ErrClosed: the Group was closed. It wraps commitlog.ErrUnavailable.
var ErrClosed = fmt.Errorf("metadata group: closed: %w", commitlog.ErrUnavailable)

// Group is this node's member of the metadata Raft group: the replicated
// metadata.FSM, membership (Join, Leave), the proposals (CreateTopic,
// DeleteTopic, Reassign, ReplicaReady) and, while this node leads the
// group, the controller. Its methods are safe for concurrent use.
type Group struct {
	cfg    Config
	lg     hclog.Logger
	fsm    *metadata.FSM
	raft   *raft.Raft
	trans  *replication.PeerGate // see replication's "Catching up after a restart"
	store  *replication.LogStore
	stable *replication.StableStore
	// guardRaft is raft, for the peer checks, which start before
	// raft.NewRaft returns.
	guardRaft atomic.Pointer[raft.Raft]

	// decideMu makes each decision and its proposal one step: a command
	// decided against the state is applied before the next is decided.
	decideMu sync.Mutex
	// unverified holds the nodes Join could not verify (logged once).
	unverifiedMu sync.Mutex
	unverified   map[string]bool

	coord *Coordinator

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the group's state in cfg.DataDir, starts Raft
// and the goroutine that runs the controller while this node leads. With
// cfg.Bootstrap and no state it starts the group with this node as its
// only voter.
func Open(cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.logger()
	// Private (0700), snapshots/ too: Raft's snapshot store would create it
	// readable by everyone.
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("metadata group: %w", err)
	}
	g := &Group{cfg: cfg, lg: lg, fsm: metadata.NewFSM(), done: make(chan struct{})}
	ok := false
	var closers []func() error
	defer func() {
		if !ok {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	lc := seglog.DefaultConfig()
	lc.MaxRecordBytes = cfg.MaxCommandBytes + entryOverhead
	var err error
	if g.store, err = replication.OpenLogStore(filepath.Join(cfg.DataDir, "log"), lc); err != nil {
		return nil, fmt.Errorf("metadata group: %w", err)
	}
	closers = append(closers, g.store.Close)
	if g.stable, err = replication.OpenStableStore(filepath.Join(cfg.DataDir, "stable")); err != nil {
		return nil, fmt.Errorf("metadata group: %w", err)
	}
	closers = append(closers, g.stable.Close)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, lg.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("metadata group: snapshot store: %w", err)
	}
	stream := cfg.StreamLayer
	if cfg.PeerName != nil {
		stream = replication.GuardStreamLayer(stream, cfg.PeerName, cfg.LocalID, &g.guardRaft, cfg.OnPeerRejected, lg.Named("peers"))
	}
	g.trans = replication.NewPeerGate(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.TransportTimeout,
		Logger:  lg.Named("transport"),
	}))
	closers = append(closers, g.trans.Close)
	hasState, err := raft.HasExistingState(g.store, g.stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("metadata group: inspect raft state: %w", err)
	}
	rc := cfg.raftConfig()
	rc.Logger = lg.Named("raft")
	// Raft blocks on NotifyCh; the controller goroutine drains it.
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	r, err := raft.NewRaft(rc, g.fsm, g.store, g.stable, snaps, g.trans)
	if err != nil {
		return nil, fmt.Errorf("metadata group: start raft: %w", err)
	}
	g.raft = r
	g.guardRaft.Store(r)
	closers = append(closers, func() error { return r.Shutdown().Error() })
	if cfg.Bootstrap && !hasState {
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: g.trans.LocalAddr(), Suffrage: raft.Voter,
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("metadata group: bootstrap: %w", err)
		}
	}
	if cfg.OnACLs != nil {
		// The state restored from the latest snapshot is there: its
		// rules reach the node before it serves.
		rules, at := g.acls()
		cfg.OnACLs(rules)
		g.wg.Add(1)
		go g.watchACLs(at)
	}
	c := &controller{g: g}
	g.wg.Add(1)
	go c.run(notify)
	g.coord = newCoordinator(g)
	g.coord.start()
	ok = true
	return g, nil
}

// FSM returns the group's state machine: this node's copy of the
// metadata (View, Changed). It lags the leader's by the time an entry
// takes to reach this node.
func (g *Group) FSM() *metadata.FSM { return g.fsm }

// IsLeader reports whether this node leads the group (and so runs the
// controller and takes proposals).
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Leader returns the group leader's ID and API address (its Raft address
// while its node record is not known here), empty if no leader is known.
func (g *Group) Leader() (id, apiAddr string) {
	addr, sid := g.raft.LeaderWithID()
	id, apiAddr = string(sid), string(addr)
	if id == "" {
		return "", ""
	}
	g.fsm.View(func(s *metadata.State) {
		if n := s.Nodes[id]; n != nil {
			apiAddr = n.APIAddr
		}
	})
	return id, apiAddr
}

// WaitForLeader blocks until a leader is known (returning its ID and API
// address) or ctx is done. It polls Raft's leader every 10ms.
func (g *Group) WaitForLeader(ctx context.Context) (id, apiAddr string, err error) {
	return raftutil.WaitForLeader(ctx, g.done, ErrClosed, g.Leader)
}

// notLeader is the error of a call that needs the leader.
func (g *Group) notLeader() error {
	id, addr := g.Leader()
	return &commitlog.NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

// mapRaftErr translates Raft's errors to go/commitlog's.
func (g *Group) mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNotVoter):
		return g.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("metadata group: %w (%v)", commitlog.ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("metadata group: %w: %v", commitlog.ErrUnavailable, err)
	default:
		return fmt.Errorf("metadata group: raft: %w", err)
	}
}

// propose applies c through Raft and returns the index it took and the
// command's own error (metadata's sentinels), or Raft's (mapped). Only the
// leader can.
func (g *Group) propose(ctx context.Context, c metadata.Command) (uint64, error) {
	if g.closed() {
		return 0, ErrClosed
	}
	if !g.IsLeader() {
		return 0, g.notLeader()
	}
	b, err := metadata.EncodeCommand(c)
	if err != nil {
		return 0, err
	}
	// A larger entry would fail the leader's LogStore, not the proposal.
	if uint64(len(b)) > g.cfg.MaxCommandBytes {
		return 0, fmt.Errorf("%w: %s of %d bytes, more than %d", ErrCommandTooLarge, c.Op, len(b), g.cfg.MaxCommandBytes)
	}
	timeout := g.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := g.raft.Apply(b, timeout)
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		return 0, fmt.Errorf("metadata group: %s: %w (it may still be applied)", c.Op, ctx.Err())
	}
	if err != nil {
		return 0, g.mapRaftErr(err)
	}
	if err, _ := f.Response().(error); err != nil {
		return f.Index(), err
	}
	return f.Index(), nil
}

func (g *Group) closed() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// Close stops the controller and this member: if it leads a group with
// other voters it first hands leadership over, then closes the transport
// (and the stream layer), shuts Raft down and closes the stores. It does not
// remove the node from the group (the leader's Leave does). Idempotent.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		raftutil.HandOver(g.raft, g.cfg.LocalID, g.lg)
		close(g.done)
		// A snapshot of what this node applied, restored when it starts
		// again: its metadata (and the replicas its broker opens) is
		// there before the group elects a leader, which a node restarted
		// on a full disk cannot help do.
		raftutil.SnapshotNow(g.raft, g.lg)
		// The transport first: Raft's shutdown waits for a replication
		// goroutine the PeerGate may hold for a peer that is down.
		var errs []error
		if err := g.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport: %w", err))
		}
		errs = append(errs, raftutil.Shutdown(g.raft, g.lg))
		g.wg.Wait()
		errs = append(errs, g.store.Close(), g.stable.Close())
		if err := errors.Join(errs...); err != nil {
			g.closeErr = fmt.Errorf("metadata group: close: %w", err)
		}
	})
	return g.closeErr
}
