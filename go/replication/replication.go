package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/internal/raftutil"
	"github.com/proglog/proglog/go/seglog"
)

// Log is a replicated log: one node's Raft replica, whose Raft log is its
// record log. Its methods are safe for concurrent use.
type Log struct {
	cfg    Config
	lg     hclog.Logger
	raft   *raft.Raft
	fsm    *fsm
	store  *LogStore
	stable *StableStore
	disk   *diskspace.Guard
	prop   *proposer
	// lowSpace: the last append was refused for lack of disk space (to log
	// the change only).
	lowSpace atomic.Bool
	trans    *raft.NetworkTransport
	// gate is trans as Raft uses it: requests to a peer known down wait
	// for it (peergate.go).
	gate *PeerGate
	// recovery is what opening the logs repaired (immutable after New).
	recovery Recovery
	// observer feeds watchLeader; nil without Config.OnLeaderChange.
	observer *raft.Observer
	// heartbeats tracks, while this node leads, the followers whose last
	// heartbeat failed (Reachable).
	heartbeats  *raft.Observer
	peersMu     sync.Mutex
	unreachable map[raft.ServerID]bool
	// guardRaft is raft, for the peer checks (peerGuard), which start
	// before raft.NewRaft returns.
	guardRaft atomic.Pointer[raft.Raft]
	// unverified holds the members Join could not verify (verifyMember).
	unverifiedMu sync.Mutex
	unverified   map[string]bool

	leaderMu sync.Mutex
	lost     chan struct{} // closed when this node's current leadership ends; nil if not leader
	changed  chan struct{} // closed and replaced when lost is set or cleared

	// readyTerm is the last term in which this node knew a commit index
	// covering an entry of that term (catchup.go).
	readyTerm atomic.Uint64
	// snapshotNow asks compactionLoop for a snapshot (snapshotSoon).
	snapshotNow chan struct{}

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Server is a member of the Raft configuration.
type Server struct {
	ID string
	// RPCAddr is the server's Raft address, which is also its gRPC address.
	RPCAddr  string
	IsLeader bool
	Voter    bool
}

// New opens (or creates) the replica in cfg.DataDir and starts Raft. With
// cfg.Bootstrap and no existing state it starts a group of
// cfg.InitialServers (default: this node alone); other nodes are added by
// the leader's Join.
func New(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.logger()
	if err := refuseOldLayout(cfg.DataDir); err != nil {
		return nil, err
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	// Private (0700), snapshots/ too: Raft's snapshot store would create
	// it, and the snapshots in it, readable by everyone.
	if err := os.MkdirAll(filepath.Join(raftDir, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	l := &Log{cfg: cfg, lg: lg, done: make(chan struct{}), changed: make(chan struct{}), snapshotNow: make(chan struct{}, 1), unreachable: map[raft.ServerID]bool{}}
	ok := false
	var closers []func() error
	defer func() {
		if !ok {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	dc := diskspace.DefaultConfig()
	dc.Dir, dc.MinFreeBytes, dc.Statfs = cfg.DataDir, cfg.MinFreeBytes, cfg.statfs
	if cfg.diskRefresh > 0 {
		dc.RefreshInterval = cfg.diskRefresh
	}
	disk, err := diskspace.New(dc)
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	l.disk = disk
	if l.store, err = openRecordStore(filepath.Join(raftDir, "log"), cfg.RaftLog); err != nil {
		return nil, err
	}
	l.store.disk, l.store.onReserve = disk, l.lowOnSpace
	closers = append(closers, l.store.Close)
	if l.stable, err = OpenStableStore(filepath.Join(raftDir, "stable")); err != nil {
		return nil, err
	}
	fss, err := raft.NewFileSnapshotStoreWithLogger(raftDir, cfg.SnapshotRetain, lg.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("replication: snapshot store: %w", err)
	}
	l.fsm = newFSM(l.store, lg.Named("fsm"), l.done)
	l.fsm.beforeApply = cfg.beforeApply
	l.fsm.afterRestore = cfg.afterRestore
	snaps := &snapshotStore{FileSnapshotStore: fss, fsm: l.fsm, store: l.store, stale: l.snapshotSoon}
	l.recovery = Recovery{RaftLog: l.store.l.Recovery()}
	l.recovery.log(lg)
	// Raft replays only the entries after the latest snapshot, onto the
	// state it holds (see the package documentation, "State machine").
	if _, err := snaps.restoreLatest(); err != nil {
		return nil, err
	}

	rc := cfg.raftConfig()
	rc.Logger = lg.Named("raft")
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	hasState, err := raft.HasExistingState(l.store, l.stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("replication: inspect raft state: %w", err)
	}
	var stream raft.StreamLayer = cfg.StreamLayer
	if cfg.PeerName != nil {
		stream = &peerGuard{StreamLayer: cfg.StreamLayer, name: cfg.PeerName, self: cfg.LocalID, onReject: cfg.OnPeerRejected,
			lg: lg.Named("peers"), servers: latestServers(&l.guardRaft)}
	}
	l.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.TransportTimeout,
		Logger:  lg.Named("transport"),
	})
	l.gate = NewPeerGate(l.trans)
	closers = append(closers, l.gate.Close)
	// No raft.LogCache in front of the store: a snapshot install rewrites
	// entries under it (LogStore.install), which would leave the cache
	// serving the old ones.
	r, err := raft.NewRaft(rc, l.fsm, l.store, l.stable, snaps, l.gate)
	if err != nil {
		return nil, fmt.Errorf("replication: start raft: %w", err)
	}
	l.raft = r
	l.guardRaft.Store(r)
	closers = append(closers, func() error { return r.Shutdown().Error() })
	if cfg.Bootstrap && !hasState {
		f := r.BootstrapCluster(cfg.bootstrapConfiguration(l.trans.LocalAddr()))
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("replication: bootstrap: %w", err)
		}
	}
	// A channel-less observer: Raft calls its filter synchronously for
	// every observation, so none is dropped.
	l.heartbeats = raft.NewObserver(nil, false, l.observeHeartbeat)
	r.RegisterObserver(l.heartbeats)
	l.prop = newProposer(l)
	l.wg.Add(2)
	go l.prop.run()
	go l.watchLeadership(notify)
	if cfg.retains() {
		l.wg.Add(1)
		go l.retentionLoop()
	}
	l.wg.Add(1)
	go l.compactionLoop()
	if cfg.OnLeaderChange != nil {
		// Not blocking: Raft drops an observation rather than wait for us;
		// watchLeader reads the current leader on every one it gets, so it
		// still ends up reporting the latest state.
		obs := make(chan raft.Observation, 16)
		l.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		})
		r.RegisterObserver(l.observer)
		l.wg.Add(1)
		go l.watchLeader(obs)
	}
	ok = true
	return l, nil
}

// watchLeader reports the leader this node knows of to
// Config.OnLeaderChange whenever it changes.
func (l *Log) watchLeader(obs <-chan raft.Observation) {
	defer l.wg.Done()
	last := "\x00" // nothing reported yet; an unknown leader is not news
	report := func() {
		id, addr := l.Leader()
		if key := id + "\x00" + addr; key != last {
			last = key
			l.cfg.OnLeaderChange(id, addr)
		}
	}
	report()
	for {
		select {
		case <-l.done:
			return
		case <-obs:
			report()
		}
	}
}

// watchLeadership tracks this node's leadership for reads and reports it.
func (l *Log) watchLeadership(notify <-chan bool) {
	defer l.wg.Done()
	for {
		select {
		case <-l.done:
			return
		case isLeader := <-notify:
			l.leaderMu.Lock()
			if isLeader && l.lost == nil {
				l.lost = make(chan struct{})
				l.forgetHeartbeats()
			} else if !isLeader && l.lost != nil {
				close(l.lost)
				l.lost = nil
			}
			close(l.changed)
			l.changed = make(chan struct{})
			l.leaderMu.Unlock()
			l.lg.Info("leadership changed", "leader", isLeader)
			if l.cfg.OnLeadershipChange != nil {
				l.cfg.OnLeadershipChange(isLeader)
			}
		}
	}
}

// leadership returns a channel closed when the current leadership ends, or
// nil if this node is not the leader. Raft reports a new leadership on
// NotifyCh just after its state turns to Leader; in that window this waits
// for the report rather than call the leader a follower.
func (l *Log) leadership(ctx context.Context) <-chan struct{} {
	for {
		l.leaderMu.Lock()
		lost, changed := l.lost, l.changed
		l.leaderMu.Unlock()
		if lost != nil {
			return lost
		}
		if l.raft.State() != raft.Leader {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		case <-l.done:
			return nil
		}
	}
}

func (l *Log) notLeader() error {
	addr, id := l.raft.LeaderWithID()
	return &commitlog.NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// mapRaftErr translates Raft's errors to this package's.
func (l *Log) mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNotVoter):
		return l.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w (%v)", ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	default:
		return fmt.Errorf("replication: raft: %w", err)
	}
}

// await waits for a Raft future, giving up when ctx is done (the operation
// may still complete).
func await(ctx context.Context, f raft.Future) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Log) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return l.cfg.ApplyTimeout
}

// Append replicates record and returns its offset once a quorum stored it
// and this node applied it. See AppendBatch.
func (l *Log) Append(ctx context.Context, record []byte) (uint64, error) {
	return l.AppendBatch(ctx, [][]byte{record})
}

// AppendBatch replicates records as one Raft entry: they get consecutive
// offsets, all or none, and the first is returned. Only the leader accepts
// appends; elsewhere it fails with *commitlog.NotLeaderError naming the
// leader (appends are not forwarded). A record longer than
// Config.MaxRecordBytes, or a batch whose entry would not fit in the Raft
// log (RaftLog.MaxRecordBytes), fails with seglog.ErrRecordTooLarge
// (wrapped) before anything is replicated, and so does every append while
// the free disk space is below Config.MinFreeBytes, with
// *diskspace.LowSpaceError (wrapped). If ctx ends first the call returns
// ctx.Err(), but the append may still be committed; so may one that fails
// with ErrLeadershipLost.
func (l *Log) AppendBatch(ctx context.Context, records [][]byte) (uint64, error) {
	first, _, err := l.AppendIdempotent(ctx, Producer{}, records)
	return first, err
}

// AppendIdempotent is AppendBatch for producer p (log.proto's Producer; an
// ID of 0 is AppendBatch itself): the leader's proposer decides from its
// producer table (go/producer), including the batches it proposed that
// are not applied yet, whether the records are appended, or repeat a batch
// p already wrote — then nothing is written and the original first offset
// is returned with duplicate true, once that batch is applied — or are
// refused with a *producer.SequenceError (wrapped; errors.Is matches
// producer.ErrOutOfOrderSequence, producer.ErrUnknownProducer or
// producer.ErrTooManyProducers), without a Raft entry. So a call retried
// after an ambiguous failure (ErrLeadershipLost, a timeout, a lost
// response) writes its records at most once.
func (l *Log) AppendIdempotent(ctx context.Context, p Producer, records [][]byte) (first uint64, duplicate bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if l.closed() {
		return 0, false, ErrClosed
	}
	if len(records) == 0 {
		return l.fsm.next.Load(), false, nil
	}
	limit := l.cfg.maxRecordBytes()
	for i, r := range records {
		if uint64(len(r)) > limit {
			return 0, false, fmt.Errorf("replication: records[%d] is %d bytes, at most %d fit: %w", i, len(r), limit, seglog.ErrRecordTooLarge)
		}
	}
	if p.ID != 0 && p.Sequence > ^uint64(0)-uint64(len(records)) {
		return 0, false, fmt.Errorf("replication: sequence %d of %d records overflows", p.Sequence, len(records))
	}
	if size, max := commandSize(records), l.store.maxRecordBytes(); uint64(size+maxEntryOverhead) > max {
		return 0, false, fmt.Errorf("replication: batch of %d records is up to %d bytes encoded, at most %d fit in a raft entry: %w",
			len(records), size, max-maxEntryOverhead, seglog.ErrRecordTooLarge)
	}
	if l.raft.State() != raft.Leader {
		return 0, false, l.notLeader()
	}
	if err := l.disk.Check(); err != nil {
		if l.lowSpace.CompareAndSwap(false, true) {
			l.lg.Warn("refusing appends until disk space is freed", "error", err)
			l.lowOnSpace()
		}
		return 0, false, fmt.Errorf("replication: append refused: %w", err)
	}
	if l.lowSpace.CompareAndSwap(true, false) {
		l.lg.Info("disk space freed; accepting appends again", "free_bytes", l.disk.Free())
	}
	r := l.propose(ctx, &proposal{p: p, recs: records})
	first, err = l.awaitProposed(ctx, r)
	if err != nil {
		return 0, false, err
	}
	return first, r.duplicate, nil
}

// Producers is the number of idempotent producers this node's state
// machine remembers (for metrics).
func (l *Log) Producers() int { return int(l.fsm.producerCount.Load()) }

// Read returns the record at offset with consistency c (see Consistency).
// Offsets outside [LowestOffset, NextOffset) fail with
// *seglog.OffsetOutOfRangeError; one past the end only once this node has caught up (see readCaughtUp), so an
// acknowledged record is never reported past the end.
func (l *Log) Read(ctx context.Context, offset uint64, c Consistency) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.closed() {
		return nil, ErrClosed
	}
	switch c {
	case ReadFollower:
		return l.readCaughtUp(ctx, offset)
	case ReadLinearizable:
		if err := l.readBarrier(ctx); err != nil {
			return nil, err
		}
		return l.fsm.read(offset)
	default:
		return nil, fmt.Errorf("replication: unknown consistency %d", c)
	}
}

// Bounds returns the agreed lowest offset and the applied end with consistency
// c: ReadFollower is this node's as they are (committed records only,
// possibly lagging); ReadLinearizable is served by the leader after the
// same barrier as a linearizable Read, so next covers every acknowledged
// append.
func (l *Log) Bounds(ctx context.Context, c Consistency) (lowest, next uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if l.closed() {
		return 0, 0, ErrClosed
	}
	switch c {
	case ReadFollower:
	case ReadLinearizable:
		if err := l.readBarrier(ctx); err != nil {
			return 0, 0, err
		}
	default:
		return 0, 0, fmt.Errorf("replication: unknown consistency %d", c)
	}
	return l.fsm.lowest.Load(), l.fsm.next.Load(), nil
}

// readBarrier makes a linearizable read safe: it records the leader's last
// index (every acknowledged append is in a leader's log, and entries are
// only ever acknowledged by the leader of their term), confirms with a
// quorum that this node is still the leader of the same term, then waits
// until every command up to that index is applied. The last index is used
// rather than the commit index because a newly elected leader's commit
// index lags until the first entry of its term commits.
func (l *Log) readBarrier(ctx context.Context) error {
	lost := l.leadership(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	if lost == nil || l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	term := l.raft.CurrentTerm()
	target := l.raft.LastIndex()
	if err := await(ctx, l.raft.VerifyLeader()); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return l.mapRaftErr(err)
	}
	if l.raft.State() != raft.Leader || l.raft.CurrentTerm() != term {
		return l.notLeader()
	}
	return l.waitApplied(ctx, target, lost)
}

// waitApplied waits until every command with an index <= target is applied.
// Entries the FSM never sees (no-ops, barriers) do not count: it waits for
// the newest command at or below target.
func (l *Log) waitApplied(ctx context.Context, target uint64, lost <-chan struct{}) error {
	for {
		changed := l.fsm.appliedChanged()
		applied := l.fsm.applied.Load()
		if applied >= target {
			return nil
		}
		need := uint64(0)
		var e raft.Log
		for i := target; i > applied; i-- {
			if err := l.store.GetLog(i, &e); err != nil {
				break // compacted: covered by a snapshot, hence applied
			}
			if e.Type == raft.LogCommand {
				need = i
				break
			}
		}
		if need == 0 {
			return nil
		}
		target = need
		select {
		case <-changed:
		case <-lost:
			return l.notLeader()
		case <-l.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Wait blocks until the record at offset exists on this node (nil), ctx is
// done (ctx.Err()) or the log closes (seglog.ErrClosed).
func (l *Log) Wait(ctx context.Context, offset uint64) error { return l.fsm.wait(ctx, offset) }

// LowestOffset is the agreed lowest offset as this node applied it: the
// oldest record it serves.
func (l *Log) LowestOffset() uint64 { return l.fsm.lowest.Load() }

// NextOffset is the offset the next record applied on this node gets.
func (l *Log) NextOffset() uint64 { return l.fsm.next.Load() }

// Failed returns the error that stopped this node's state machine, nil
// while it works: after finding its Raft log diverged (ErrDiverged, saying
// which entry) it applies nothing more and serves no reads (ErrFailed)
// until the node is restarted.
func (l *Log) Failed() error {
	if p := l.fsm.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// DataSize is the size of this node's record log, its Raft log: bytes of
// its store files and number of segments (for metrics).
func (l *Log) DataSize() (bytes uint64, segments int) {
	sl, _, _ := l.store.bounds()
	return sl.Size()
}

// DiskSpace reports the free bytes of the file system holding DataDir (as
// last measured, see go/diskspace) and whether appends are refused for
// lack of it (Config.MinFreeBytes), for metrics.
func (l *Log) DiskSpace() (free uint64, refusing bool) {
	return l.disk.Free(), l.disk.Refusing()
}

// Join adds server id at addr (its Raft and gRPC address) to the cluster, as
// a voter or not. It is idempotent: a server already there with the same
// address and role is left alone; a changed address or role is updated.
// Only the leader can do it (*commitlog.NotLeaderError elsewhere). Join implements
// discovery.Handler.
//
// With Config.PeerName, a server not yet in the configuration at addr is
// added only after it proved to be id (verifyMember): gossip names and
// addresses are hints. One that does not is not added, Join returns nil,
// and it is logged once and listed by UnverifiedMembers until it proves
// itself (a later Join, from discovery's periodic Reconcile) or leaves.
func (l *Log) Join(id, addr string, voter bool) error {
	if l.closed() {
		return ErrClosed
	}
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	cf := l.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return l.mapRaftErr(err)
	}
	sid, saddr := raft.ServerID(id), raft.ServerAddress(addr)
	known := slices.ContainsFunc(cf.Configuration().Servers, func(s raft.Server) bool { return s.ID == sid && s.Address == saddr })
	if !known && !l.verifyMember(id, addr) {
		return nil // logged once and counted; the next Reconcile tries again
	}
	for _, s := range cf.Configuration().Servers {
		switch {
		case s.ID == sid && s.Address == saddr && (s.Suffrage == raft.Voter) == voter:
			return nil // already there
		case s.ID == sid && !voter && s.Suffrage == raft.Voter:
			// A voter becoming a non-voter: demote first (AddNonvoter
			// does not demote); the address is updated below.
			if err := l.raft.DemoteVoter(sid, 0, l.cfg.ApplyTimeout).Error(); err != nil {
				return l.mapRaftErr(err)
			}
		case s.ID != sid && s.Address == saddr:
			// Another ID at this address: a node that came back renamed.
			if err := l.raft.RemoveServer(s.ID, 0, l.cfg.ApplyTimeout).Error(); err != nil {
				return l.mapRaftErr(err)
			}
		}
	}
	var f raft.IndexFuture
	if voter {
		f = l.raft.AddVoter(sid, saddr, 0, l.cfg.ApplyTimeout)
	} else {
		f = l.raft.AddNonvoter(sid, saddr, 0, l.cfg.ApplyTimeout)
	}
	if err := f.Error(); err != nil {
		return l.mapRaftErr(err)
	}
	l.lg.Info("server joined", "id", id, "addr", addr, "voter", voter)
	return nil
}

// Leave removes server id from the cluster; removing one that is not there
// succeeds. Only the leader can do it (*commitlog.NotLeaderError elsewhere). Leave
// implements discovery.Handler. It also forgets id as an unverified member.
func (l *Log) Leave(id string) error {
	if l.closed() {
		return ErrClosed
	}
	l.forgetUnverified(id)
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	cf := l.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return l.mapRaftErr(err)
	}
	var addr raft.ServerAddress
	found := false
	for _, s := range cf.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			found, addr = true, s.Address
		}
	}
	if !found {
		return nil
	}
	if err := l.raft.RemoveServer(raft.ServerID(id), 0, l.cfg.ApplyTimeout).Error(); err != nil {
		return l.mapRaftErr(err)
	}
	// Raft no longer replicates to it: a request held for it, if it is
	// down, ends now rather than at Close.
	l.gate.Forget(addr)
	l.lg.Info("server left", "id", id)
	return nil
}

// observeHeartbeat notes the followers whose heartbeats from this node,
// as leader, fail, and those that answer again. It never passes an
// observation on.
func (l *Log) observeHeartbeat(o *raft.Observation) bool {
	switch h := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		l.peersMu.Lock()
		l.unreachable[h.PeerID] = true
		l.peersMu.Unlock()
	case raft.ResumedHeartbeatObservation:
		l.peersMu.Lock()
		delete(l.unreachable, h.PeerID)
		l.peersMu.Unlock()
	}
	return false
}

// forgetHeartbeats clears what an earlier leadership noted: a follower
// that answers every heartbeat of this one is never reported resumed.
func (l *Log) forgetHeartbeats() {
	l.peersMu.Lock()
	clear(l.unreachable)
	l.peersMu.Unlock()
}

// Reachable reports whether, while this node leads, server id answered
// its last heartbeat (a follower not heard of yet counts as reachable
// until a heartbeat to it fails, a fraction of HeartbeatTimeout after
// leadership starts). It is meaningful on the leader only.
func (l *Log) Reachable(id string) bool {
	l.peersMu.Lock()
	defer l.peersMu.Unlock()
	return !l.unreachable[raft.ServerID(id)]
}

// TransferLeadership hands this node's leadership to server id at addr
// (raft.LeadershipTransferToServer): Raft first brings id's log up to
// date, then asks it to start an election at once. It fails, and this node
// stays leader, if id does not catch up and win within an election
// timeout. Only the leader can do it (*commitlog.NotLeaderError
// elsewhere), ErrLeadershipLost if another transfer is in progress, and
// Raft's error (a timeout) if the transfer failed.
func (l *Log) TransferLeadership(id, addr string) error {
	if l.closed() {
		return ErrClosed
	}
	if l.raft.State() != raft.Leader {
		return l.notLeader()
	}
	if err := l.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error(); err != nil {
		return l.mapRaftErr(err)
	}
	l.lg.Info("leadership transferred", "to", id)
	return nil
}

// GetServers returns the servers of the latest Raft configuration as this
// node knows it, marking the leader.
func (l *Log) GetServers() ([]Server, error) {
	cf := l.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, l.mapRaftErr(err)
	}
	_, leader := l.raft.LeaderWithID()
	var out []Server
	for _, s := range cf.Configuration().Servers {
		out = append(out, Server{
			ID:       string(s.ID),
			RPCAddr:  string(s.Address),
			IsLeader: s.ID == leader,
			Voter:    s.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

// Leader returns the leader's ID and address, empty if none is known.
func (l *Log) Leader() (id, addr string) {
	a, i := l.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node is the leader.
func (l *Log) IsLeader() bool { return l.raft.State() == raft.Leader }

// Addr is this node's Raft (and gRPC) address.
func (l *Log) Addr() string { return string(l.trans.LocalAddr()) }

// WaitForLeader blocks until a leader is known (returning its ID and
// address) or ctx is done. It polls Raft's leader every 10ms.
func (l *Log) WaitForLeader(ctx context.Context) (id, addr string, err error) {
	return raftutil.WaitForLeader(ctx, l.done, ErrClosed, l.Leader)
}

// Snapshot takes a Raft snapshot now (compacting the Raft log down to
// TrailingLogs entries), as Raft does by itself every SnapshotThreshold
// entries.
func (l *Log) Snapshot() error {
	if err := l.raft.Snapshot().Error(); err != nil {
		return l.mapRaftErr(err)
	}
	return nil
}

// Stats returns Raft's statistics (state, term, indexes, ...).
func (l *Log) Stats() map[string]string { return l.raft.Stats() }

func (l *Log) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close stops this replica: it takes a snapshot (see the package
// documentation, "State machine"); if it is the leader of a cluster with
// other voters it then hands leadership over (so the cluster does not wait an
// election timeout), then closes the transport (and the stream layer,
// releasing a request held for a peer that is down), shuts Raft down and
// closes the logs; it waits at most raftutil.ShutdownTimeout for
// Raft's goroutines. It does not remove the node from the cluster:
// call the leader's Leave (discovery does, on a graceful leave). Close is
// idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		// The state machine's small state as of now, so that the next
		// start replays nothing and serves every applied record before
		// it hears from a leader.
		raftutil.SnapshotNow(l.raft, l.lg)
		raftutil.HandOver(l.raft, l.cfg.LocalID, l.lg)
		if l.observer != nil {
			l.raft.DeregisterObserver(l.observer)
		}
		l.raft.DeregisterObserver(l.heartbeats)
		close(l.done)
		// Before Raft's shutdown, which waits for a replication goroutine
		// the gate may hold for a peer that is down.
		var errs []error
		if err := l.gate.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport: %w", err))
		}
		errs = append(errs, raftutil.Shutdown(l.raft, l.lg))
		l.wg.Wait()
		errs = append(errs, l.store.Close(), l.stable.Close())
		if err := errors.Join(errs...); err != nil {
			l.closeErr = fmt.Errorf("replication: close: %w", err)
		}
	})
	return l.closeErr
}
