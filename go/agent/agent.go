package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/metadata/group"
	"github.com/proglog/proglog/go/metadata/report"
	"github.com/proglog/proglog/go/mux"
	"github.com/proglog/proglog/go/replication"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	"github.com/proglog/proglog/go/telemetry"
)

// Retry delays of a background join (see the package documentation), and
// how often readiness is recomputed without an event.
const (
	joinRetryMin        = time.Second
	joinRetryMax        = 30 * time.Second
	healthCheckInterval = time.Second
)

// The metadata group's Raft group ID on the shared port, and its directory
// under Config.DataDir (the partitions are under DataDir/topics, see
// go/broker).
const (
	metaGroup = "meta"
	metaDir   = "meta"
)

// Agent is one running proglog node. Its methods are safe for concurrent
// use.
type Agent struct {
	cfg Config
	log *zap.Logger

	tracing    *telemetry.Tracing
	metricsSrv *telemetry.MetricsServer
	mux        *mux.Mux
	addr       string         // advertised address of the API and Raft (one port)
	meta       *group.Group   // the metadata group
	broker     *broker.Broker // the partition replicas this node hosts
	reports    *report.Client // sends the broker's reports to the metadata leader
	srv        *server.Server
	healthLn   net.Listener // Config.HealthAddr or HealthListener; nil if none
	healthSrv  *grpc.Server // serves only grpc.health.v1.Health on healthLn
	membership *discovery.Membership

	// Readiness (see the package documentation), under healthMu.
	healthMu sync.Mutex
	ready    bool
	// metaLeader: this node led the metadata group at the last health
	// check (membership is reconciled when it starts to).
	metaLeader bool
	closing    bool
	changed    chan struct{} // closed and replaced when ready changes

	failOnce sync.Once
	failed   chan struct{} // closed when a serving goroutine fails
	failErr  error

	stopping     chan struct{} // closed by Shutdown: ends the join retries
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error
}

// New starts a node as described in the package documentation. On error
// everything started so far is stopped again.
func New(cfg Config) (_ *Agent, err error) {
	// The listeners given are the agent's from now on, also when New fails.
	defer func() {
		if err != nil {
			for _, ln := range []net.Listener{cfg.Listener, cfg.HealthListener} {
				if ln != nil {
					ln.Close()
				}
			}
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Before anything is created in the data directory.
	if err := broker.CheckLayout(cfg.DataDir); err != nil {
		return nil, err
	}
	gossipKey, err := DecodeGossipKey(cfg.GossipKey)
	if err != nil {
		return nil, err // checked by Validate
	}
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger.With(zap.String("node", cfg.NodeName)),
		changed:  make(chan struct{}),
		failed:   make(chan struct{}),
		stopping: make(chan struct{}),
	}
	// On failure, undo what was started, in reverse.
	var undo []func()
	defer func() {
		if err != nil {
			close(a.stopping)
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			a.wg.Wait()
		}
	}()

	// 1. Telemetry.
	tcfg := cfg.Tracing
	if tcfg.ServiceName == "" {
		tcfg.ServiceName = "proglog"
	}
	if a.tracing, err = telemetry.NewTracing(context.Background(), tcfg); err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.shutdownTracing() })
	reg := telemetry.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	peerMetrics, err := telemetry.NewPeerMetrics(reg, a.unverifiedMembers)
	if err != nil {
		return nil, err
	}

	// 2. TLS and authorization.
	serverTLS, err := cfg.TLS.Server()
	if err != nil {
		return nil, fmt.Errorf("agent: server TLS: %w", err)
	}
	peerFiles := cfg.TLS
	peerFiles.ServerName = "" // the host of each dialed peer address
	peerTLS, err := peerFiles.Client()
	if err != nil {
		return nil, fmt.Errorf("agent: peer TLS: %w", err)
	}
	authz, err := auth.NewAuthorizer(cfg.ACLModelFile, cfg.ACLPolicyFile, auth.WithLogger(a.log.With(zap.String("component", "acl"))))
	if err != nil {
		return nil, err
	}
	if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "proglog_acl_eval_errors_total",
		Help: "Requests the ACL model failed to evaluate (each was denied).",
	}, func() float64 { return float64(authz.EvalErrors()) })); err != nil {
		return nil, fmt.Errorf("agent: register ACL metrics: %w", err)
	}
	// Ports are bound only once the files above were read: a mistake in
	// them fails New before anything listens.
	if cfg.MetricsAddr != "" {
		if a.metricsSrv, err = telemetry.ListenMetrics(cfg.MetricsAddr, reg); err != nil {
			return nil, err
		}
		undo = append(undo, func() { a.shutdownMetrics() })
	}

	// 3. The shared port.
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.BindAddr); err != nil {
			return nil, fmt.Errorf("agent: listen on %s: %w", cfg.BindAddr, err)
		}
	}
	advertise := cfg.AdvertiseAddr
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	if err := checkOwnCertificate(cfg, serverTLS, advertise); err != nil {
		ln.Close()
		return nil, err
	}
	mc := mux.DefaultConfig()
	mc.ServerTLS = serverTLS
	mc.PeerTLS = peerTLS
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	// The port's cap stays well above the API's, leaving room for Raft
	// and for connections not routed yet.
	mc.MaxConns = max(mc.MaxConns, 2*cfg.MaxConnections)
	mc.AuthorizePeer = authorizePeer
	mc.OnHandshakeFailed = func(err error) { peerMetrics.Rejected(handshakeRejection(err)) }
	mc.OnConnLimit = func() { metrics.ConnectionRejected("port") }
	mc.Logger = hclogToZap(a.log, "mux")
	if a.mux, err = mux.New(ln, mc); err != nil {
		ln.Close()
		return nil, err
	}
	undo = append(undo, func() { a.mux.Close() })
	// The plaintext health port, bound now so that a taken port fails New
	// before the log is opened; served once the gRPC server exists.
	a.healthLn = cfg.HealthListener
	if cfg.HealthAddr != "" {
		if a.healthLn, err = net.Listen("tcp", cfg.HealthAddr); err != nil {
			return nil, fmt.Errorf("agent: listen on %s (health): %w", cfg.HealthAddr, err)
		}
	}
	if a.healthLn != nil {
		undo = append(undo, func() { a.healthLn.Close() })
	}

	// 4. The metadata group and the partitions this node hosts.
	sz := cfg.sizes()
	tc := replication.DefaultTransportConfig()
	tc.OnRefused, tc.Logger = peerMetrics.Rejected, hclogToZap(a.log, "transport")
	raftNet, err := replication.NewTransport(a.mux.DialRaft, a.mux.RaftConns(), tc) // closed with the mux
	if err != nil {
		return nil, err
	}
	metaLayer, err := raftNet.Group(metaGroup)
	if err != nil {
		return nil, err
	}
	a.addr = metaLayer.Addr().String()
	gc := group.DefaultConfig()
	gc.DataDir = filepath.Join(cfg.DataDir, metaDir)
	gc.LocalID = cfg.NodeName
	gc.APIAddr = a.addr
	gc.StreamLayer = metaLayer
	gc.PeerName = peerName
	gc.OnPeerRejected = peerMetrics.Rejected
	gc.Bootstrap = cfg.Bootstrap
	gc.ControllerVoters = cfg.ControllerVoters
	gc.ReplacementDelay = cfg.ReplicaReplacementDelay
	gc.DefaultTopicReplicationFactor = cfg.DefaultReplicationFactor
	setIf(&gc.ControllerInterval, cfg.controllerInterval)
	setIf(&gc.HeartbeatTimeout, cfg.Raft.HeartbeatTimeout)
	setIf(&gc.ElectionTimeout, cfg.Raft.ElectionTimeout)
	setIf(&gc.LeaderLeaseTimeout, cfg.Raft.LeaderLeaseTimeout)
	gc.Logger = hclogToZap(a.log, "metadata")
	// The metadata's ACL rules reach the authorizer as this node's copy
	// applies them; the first call, in Open, hands it those of the
	// restored snapshot, before the API serves.
	gc.ACLActions = auth.Actions()
	aclLog := a.log.With(zap.String("component", "acl"))
	gc.OnACLs = func(rules []commitlog.ACLRule) {
		if err := authz.SetRules(rules); err != nil {
			aclLog.Error("the metadata's ACL rules cannot be used; the previous ones stay in force", zap.Int("rules", len(rules)), zap.Error(err))
			return
		}
		aclLog.Info("ACL rules of the metadata in force", zap.Int("rules", len(rules)))
	}
	meta, err := group.Open(gc)
	if err != nil {
		return nil, err
	}
	a.healthMu.Lock()
	a.meta = meta
	a.healthMu.Unlock()
	undo = append(undo, func() { a.meta.Close() })

	rc := replication.DefaultConfig()
	rc.PeerName = peerName
	rc.OnPeerRejected = peerMetrics.Rejected
	setIf(&rc.HeartbeatTimeout, cfg.Raft.HeartbeatTimeout)
	setIf(&rc.ElectionTimeout, cfg.Raft.ElectionTimeout)
	setIf(&rc.LeaderLeaseTimeout, cfg.Raft.LeaderLeaseTimeout)
	setIf(&rc.CommitTimeout, cfg.Raft.CommitTimeout)
	setIf(&rc.SnapshotInterval, cfg.Raft.SnapshotInterval)
	setIf(&rc.SnapshotThreshold, cfg.Raft.SnapshotThreshold)
	setIf(&rc.TrailingLogs, cfg.Raft.TrailingLogs)
	setIf(&rc.SnapshotThresholdBytes, cfg.Raft.SnapshotThresholdBytes)
	setIf(&rc.TrailingBytes, cfg.Raft.TrailingBytes)
	rc.Retention = cfg.Retention
	setIf(&rc.RaftLog.Segment.MaxStoreBytes, cfg.SegmentBytes)
	rc.MaxRecordBytes = sz.dataRecord
	rc.RaftLog.MaxRecordBytes = sz.raftEntry
	rc.RaftLog.Sync = cfg.Sync
	if cfg.Sync != seglog.SyncAlways {
		setIf(&rc.RaftLog.SyncInterval, cfg.SyncInterval)
	}
	rc.RaftLog.Segment.MaxStoreBytes = max(rc.RaftLog.Segment.MaxStoreBytes, 2*sz.raftEntry)
	rc.MinFreeBytes = cfg.MinFreeBytes
	rc.Producers = cfg.Producers
	rc.Logger = hclogToZap(a.log, "replication")
	bc := broker.DefaultConfig()
	bc.NodeID = cfg.NodeName
	bc.DataDir = cfg.DataDir
	bc.PreferredLeaderDelay = cfg.PreferredLeaderDelay
	repc := report.DefaultConfig()
	repc.TLS = peerTLS
	repc.Leader = func() string { _, addr := meta.Leader(); return addr }
	reports, err := report.New(repc)
	if err != nil {
		return nil, err
	}
	a.reports = reports
	undo = append(undo, func() { a.reports.Close() })
	bc.Metadata = metadataGroup{Group: meta, reports: reports}
	bc.StreamLayers = raftNet
	bc.Replica = rc
	bc.OnOpen = func(topic string, partition int, l *replication.Log) {
		for _, act := range l.Recovery().Actions() { // logged at WARN by replication.New
			metrics.ObserveRecovery(act.Log, act.Action)
		}
	}
	bc.OnLeaderChange = func(topic string, partition int, id, addr string) {
		a.log.Info("leader", zap.String("topic", topic), zap.Int("partition", partition), zap.String("leader_id", id), zap.String("leader_addr", addr))
		a.updateHealth()
	}
	bc.Logger = hclogToZap(a.log, "broker")
	brk, err := broker.New(bc)
	if err != nil {
		return nil, err
	}
	a.healthMu.Lock()
	a.broker = brk
	a.healthMu.Unlock()
	undo = append(undo, func() { a.broker.Close() })
	// The log metrics are the default topic's partition 0, while this node
	// hosts it (zero otherwise).
	if err := metrics.RegisterLogStats(func() telemetry.LogStats {
		replica := a.Replica()
		if replica == nil {
			return telemetry.LogStats{}
		}
		size, segs := replica.DataSize()
		u := replica.DiskUsage()
		return telemetry.LogStats{
			SizeBytes: size, Segments: segs, LowestOffset: replica.LowestOffset(), NextOffset: replica.NextOffset(),
			Disk:                    map[string]uint64{"raft_log": u.RaftLog, "snapshots": u.Snapshots, "other": u.Other},
			RetentionRemovedRecords: replica.RetentionRemoved(),
			Producers:               replica.Producers(),
		}
	}); err != nil {
		return nil, err
	}
	if err := metrics.RegisterPartitionStats(func() []telemetry.PartitionStats {
		hosted := brk.Hosted()
		out := make([]telemetry.PartitionStats, len(hosted))
		for i, h := range hosted {
			out[i] = telemetry.PartitionStats{Topic: h.Topic, Partition: h.Partition,
				LowestOffset: h.Log.LowestOffset(), NextOffset: h.Log.NextOffset(), Leader: h.Log.IsLeader()}
		}
		return out
	}); err != nil {
		return nil, err
	}
	if err := metrics.RegisterDiskStats(func() telemetry.DiskStats {
		var free uint64
		var refusing bool
		if replica := a.Replica(); replica != nil {
			free, refusing = replica.DiskSpace()
		}
		return telemetry.DiskStats{FreeBytes: free, MinFreeBytes: cfg.MinFreeBytes, RefusingWrites: refusing}
	}); err != nil {
		return nil, err
	}

	// 5. The gRPC API.
	scfg := server.DefaultConfig()
	scfg.ID = cfg.NodeName
	scfg.AdvertiseAddr = a.addr
	scfg.TLS = serverTLS
	scfg.Authorizer = authz
	scfg.Servers = clusterServers{meta: a.meta, b: brk}
	scfg.Internal = internalReports{meta: a.meta}
	scfg.ACLs = a.meta
	scfg.ACLPolicyRules = authz.PolicyRules()
	scfg.Groups = a.meta.Groups()
	scfg.DefaultConsistency = cfg.ReadConsistency
	scfg.MaxRecordBytes = cfg.MaxRecordBytes
	scfg.MaxRecvMsgBytes = int(sz.recvMsg)
	scfg.MaxSendMsgBytes = int(sz.recvMsg)
	scfg.ShutdownTimeout = cfg.ShutdownTimeout
	scfg.MaxConnections = cfg.MaxConnections
	scfg.MaxStreams = cfg.MaxStreams
	scfg.Logger = a.log
	scfg.Metrics = metrics
	if cfg.Tracing.Exporter != "" && cfg.Tracing.Exporter != telemetry.ExporterNone {
		scfg.TracerProvider = a.tracing.Provider
	}
	srv, err := server.New(scfg, brk)
	if err != nil {
		return nil, err
	}
	srv.SetServing(false)
	a.healthMu.Lock()
	a.srv = srv
	a.healthMu.Unlock()
	a.updateHealth()
	a.goServe("grpc", func() error { return srv.Serve(a.mux.GRPCListener()) })
	undo = append(undo, func() { srv.Stop() })
	if a.healthLn != nil {
		// No credentials, no interceptors, nothing but the health service
		// (see Config.HealthAddr).
		a.serveHealth(srv, metrics)
		undo = append(undo, func() { a.healthSrv.Stop() })
	}

	// 6. Membership.
	dc := discovery.DefaultConfig()
	dc.NodeName = cfg.NodeName
	dc.BindAddr = cfg.SerfBindAddr
	dc.AdvertiseAddr = cfg.SerfAdvertiseAddr
	dc.EncryptKey = gossipKey
	dc.Profile = cfg.GossipProfile
	dc.Tags = map[string]string{discovery.TagRPCAddr: a.addr, discovery.TagVoter: fmt.Sprint(cfg.Voter)}
	dc.Logger = hclogToZap(a.log, "discovery")
	membership, err := discovery.New(dc, meta)
	if err != nil {
		return nil, err
	}
	a.healthMu.Lock()
	a.membership = membership
	a.healthMu.Unlock()
	undo = append(undo, func() { membership.Close() })
	if join := a.joinAddrs(); len(join) > 0 {
		if _, jerr := membership.Join(join...); jerr != nil {
			a.log.Warn("could not join the cluster yet; retrying in the background", zap.Strings("join", join), zap.Error(jerr))
			a.wg.Add(1)
			go a.retryJoin(join)
		}
	}

	// 7. Route connections.
	a.goServe("mux", a.mux.Serve)
	// Leader changes update health as they happen; this catches what
	// has no event, a state machine that stopped (replication.Log.Failed).
	a.wg.Add(1)
	go a.checkHealth(healthCheckInterval)

	a.log.Info("agent started", zap.String("addr", a.addr), zap.String("serf_addr", membership.Addr()),
		zap.String("health_addr", a.HealthAddr()),
		zap.Bool("bootstrap", cfg.Bootstrap), zap.Bool("voter", cfg.Voter), zap.Strings("join", cfg.StartJoinAddrs),
		zap.Stringer("sync", cfg.Sync))
	return a, nil
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// joinAddrs is StartJoinAddrs without this node's own gossip address.
func (a *Agent) joinAddrs() []string {
	self := map[string]bool{a.membership.Addr(): true, a.cfg.SerfBindAddr: true}
	if a.cfg.SerfAdvertiseAddr != "" {
		self[a.cfg.SerfAdvertiseAddr] = true
	}
	var out []string
	for _, addr := range a.cfg.StartJoinAddrs {
		if !self[strings.TrimSpace(addr)] {
			out = append(out, strings.TrimSpace(addr))
		}
	}
	return out
}

// retryJoin retries joining until it succeeds or Shutdown starts.
func (a *Agent) retryJoin(addrs []string) {
	defer a.wg.Done()
	delay := joinRetryMin
	for attempt := 2; ; attempt++ {
		t := time.NewTimer(delay)
		select {
		case <-a.stopping:
			t.Stop()
			return
		case <-t.C:
		}
		_, err := a.membership.Join(addrs...)
		if err == nil {
			a.log.Info("joined the cluster", zap.Strings("join", addrs), zap.Int("attempt", attempt))
			return
		}
		delay = min(2*delay, joinRetryMax)
		a.log.Warn("join failed; retrying", zap.Strings("join", addrs), zap.Duration("in", delay), zap.Error(err))
	}
}

// goServe runs a serving loop; an error from it (other than after
// Shutdown) marks the agent failed.
func (a *Agent) goServe(what string, serve func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := serve(); err != nil {
			select {
			case <-a.stopping:
				return
			default:
			}
			a.log.Error("serving failed", zap.String("what", what), zap.Error(err))
			a.failOnce.Do(func() {
				a.failErr = fmt.Errorf("agent: %s: %w", what, err)
				close(a.failed)
			})
		}
	}()
}

// checkHealth recomputes readiness every interval until Shutdown.
func (a *Agent) checkHealth(interval time.Duration) {
	defer a.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-a.stopping:
			return
		case <-t.C:
			a.updateHealth()
		}
	}
}

// updateHealth recomputes readiness: the metadata group has a leader,
// the default topic exists, every replica assigned to this node is open,
// and, if this node hosts the default topic's partition 0, that replica
// knows its leader and its state machine works. It also reconciles
// membership when this node starts to lead the metadata group.
func (a *Agent) updateHealth() {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	if a.meta == nil || a.broker == nil || a.srv == nil {
		return
	}
	if lead := a.meta.IsLeader(); lead != a.metaLeader {
		a.metaLeader = lead
		a.log.Info("metadata leadership changed", zap.Bool("leader", lead))
		if lead && a.membership != nil {
			m := a.membership
			go func() {
				if err := m.Reconcile(); err != nil && !errors.Is(err, discovery.ErrClosed) {
					a.log.Warn("reconciling membership", zap.Error(err))
				}
			}()
		}
	}
	metaLeader, _ := a.meta.Leader()
	id, why := metaLeader, "no metadata leader"
	var failed error
	switch {
	case metaLeader == "":
	case !a.hasDefaultTopic():
		id, why = "", "no default topic yet"
	case !a.broker.Ready():
		id, why = "", "replicas opening"
	default:
		why = ""
		if r := a.broker.Replica(commitlog.DefaultTopic, 0); r != nil {
			if id, _ = r.Leader(); id == "" {
				why = "no leader of the default topic"
			}
			failed = r.Failed()
		}
	}
	ready := why == "" && !a.closing && failed == nil
	a.srv.SetServing(ready)
	if ready != a.ready {
		a.log.Info("readiness changed", zap.Bool("ready", ready), zap.String("leader", id), zap.String("waiting_for", why), zap.Bool("closing", a.closing), zap.Error(failed))
		a.ready = ready
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

// hasDefaultTopic reports whether the local metadata has the default
// topic.
func (a *Agent) hasDefaultTopic() bool {
	var ok bool
	a.meta.FSM().View(func(s *metadata.State) { ok = s.Topics[commitlog.DefaultTopic] != nil })
	return ok
}

// Ready reports whether the node knows a leader and serves (health
// SERVING).
func (a *Agent) Ready() bool {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	return a.ready
}

// WaitReady blocks until the node is ready (nil), ctx is done (ctx.Err()),
// the agent fails (its error) or shuts down (ErrShutdown).
func (a *Agent) WaitReady(ctx context.Context) error {
	for {
		a.healthMu.Lock()
		ready, closing, changed := a.ready, a.closing, a.changed
		a.healthMu.Unlock()
		switch {
		case ready:
			return nil
		case closing:
			return ErrShutdown
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-a.failed:
			return a.failErr
		case <-a.stopping:
			return ErrShutdown
		}
	}
}

// Failed is closed if a serving loop (gRPC, the mux, the health port)
// fails; Err then says why. The node should be shut down.
func (a *Agent) Failed() <-chan struct{} { return a.failed }

// Err is the failure that closed Failed, nil before.
func (a *Agent) Err() error {
	select {
	case <-a.failed:
		return a.failErr
	default:
		return nil
	}
}

// NodeName is the node's name (Raft ID, Serf name).
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Addr is the advertised address of the gRPC API and Raft.
func (a *Agent) Addr() string { return a.addr }

// SerfAddr is the gossip address other nodes join through.
func (a *Agent) SerfAddr() string { return a.membership.Addr() }

// MetricsAddr is the address of the /metrics endpoint, empty if none.
func (a *Agent) MetricsAddr() string {
	if a.metricsSrv == nil {
		return ""
	}
	return a.metricsSrv.Addr()
}

// HealthAddr is the address of the plaintext health port, empty if none.
func (a *Agent) HealthAddr() string {
	if a.healthLn == nil {
		return ""
	}
	return a.healthLn.Addr().String()
}

// Leader returns the ID and address of the default topic's partition 0's
// leader as this node's replica knows it, empty if none is known or this
// node hosts no replica of it.
func (a *Agent) Leader() (id, addr string) {
	if r := a.Replica(); r != nil {
		return r.Leader()
	}
	return "", ""
}

// IsLeader reports whether this node leads the default topic's partition
// 0.
func (a *Agent) IsLeader() bool {
	r := a.Replica()
	return r != nil && r.IsLeader()
}

// Metadata is the node's member of the metadata group.
func (a *Agent) Metadata() *group.Group { return a.meta }

// Broker is the node's broker: the partition replicas it hosts.
func (a *Agent) Broker() *broker.Broker { return a.broker }

// Members returns the cluster as gossip sees it.
func (a *Agent) Members() []discovery.Member { return a.membership.Members() }

// unverifiedMembers is the proglog_membership_unverified_members gauge.
func (a *Agent) unverifiedMembers() int {
	a.healthMu.Lock()
	m := a.meta
	a.healthMu.Unlock()
	if m == nil {
		return 0
	}
	return len(m.UnverifiedMembers())
}

// Replica is the node's replica of the default topic's partition 0, for
// inspection and operations (GetServers, Snapshot, Stats) beyond the gRPC
// API; nil while this node hosts none.
func (a *Agent) Replica() *replication.Log {
	a.healthMu.Lock()
	b := a.broker
	a.healthMu.Unlock()
	if b == nil {
		return nil
	}
	return b.Replica(commitlog.DefaultTopic, 0)
}

// Shutdown stops the node as described in the package documentation,
// within ctx (and Config.ShutdownTimeout for running calls). It returns
// the first call's result on later calls.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		a.healthMu.Lock()
		a.closing = true
		a.healthMu.Unlock()
		a.updateHealth()
		close(a.stopping)
		var errs []error
		add := func(what string, err error) {
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
			}
		}
		// Leave first: the leader removes this node from Raft while it
		// still answers, and no new member events reach this replica.
		if err := a.membership.Leave(); err != nil {
			a.log.Warn("leaving the cluster", zap.Error(err))
		}
		add("close membership", a.membership.Close())
		// The health port reported NOT_SERVING from the start of Shutdown;
		// now it closes, Watch streams and all.
		if a.healthSrv != nil {
			a.healthSrv.Stop()
		}
		if err := a.srv.Shutdown(ctx); err != nil {
			a.log.Warn("gRPC shutdown", zap.Error(err))
		}
		add("close partition replicas", a.broker.Close())
		add("close reports", a.reports.Close())
		add("close metadata group", a.meta.Close())
		add("close mux", a.mux.Close())
		a.wg.Wait()
		add("metrics", a.shutdownMetrics())
		add("tracing", a.shutdownTracing())
		a.shutdownErr = errors.Join(errs...)
		a.log.Info("agent stopped", zap.Error(a.shutdownErr))
	})
	return a.shutdownErr
}

func (a *Agent) shutdownMetrics() error {
	if a.metricsSrv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.metricsSrv.Shutdown(ctx)
}

func (a *Agent) shutdownTracing() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.tracing.Shutdown(ctx)
}
