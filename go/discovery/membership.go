package discovery

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Handler is told about other nodes joining and leaving; the replication
// layer implements it. Calls come from one goroutine, one at a time, and
// never for the local node. An error is logged (see the package
// documentation for the leader-only convention); the event is not retried.
type Handler interface {
	// Join: node id, reachable at rpcAddr, joined (or changed its tags) and
	// should be a Raft server, a voter if voter.
	Join(id, rpcAddr string, voter bool) error
	// Leave: node id left the cluster (gracefully, or was reaped after
	// failing) and should be removed from the Raft configuration.
	Leave(id string) error
}

// Status is a member's state as gossip sees it.
type Status int

// Member statuses (the same as Serf's).
const (
	StatusNone Status = iota
	StatusAlive
	StatusLeaving
	StatusLeft
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	default:
		return "none"
	}
}

// Member is one node of the cluster as gossip sees it.
type Member struct {
	Name    string
	Addr    string // gossip host:port
	Tags    map[string]string
	Status  Status
	RPCAddr string // Tags[TagRPCAddr]
	Voter   bool   // Tags[TagVoter] == "true"
}

// Membership is this node's view of the cluster. Its methods are safe for
// concurrent use.
type Membership struct {
	cfg     Config
	handler Handler
	log     hclog.Logger
	serf    *serf.Serf
	events  chan serf.Event

	reconcileMu sync.Mutex // one Reconcile at a time, and not with an event
	done        chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once
	closeErr    error
}

// New starts gossip and, if cfg.StartJoinAddrs is set, joins the cluster
// through them (failing with ErrJoin if no other node can be joined). Events are
// handed to handler until Close.
func New(cfg Config, handler Handler) (*Membership, error) {
	if handler == nil {
		return nil, ErrNilHandler
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:     cfg,
		handler: handler,
		log:     cfg.logger(),
		events:  make(chan serf.Event, 256),
		done:    make(chan struct{}),
	}
	sc, err := m.serfConfig()
	if err != nil {
		return nil, err
	}
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("discovery: start serf on %s: %w", cfg.BindAddr, err)
	}
	m.serf = s
	m.wg.Add(2)
	go m.eventLoop()
	go m.reconcileLoop()
	if len(cfg.StartJoinAddrs) > 0 {
		if _, err := m.Join(cfg.StartJoinAddrs...); err != nil {
			_ = m.Close()
			return nil, err
		}
	}
	return m, nil
}

func (m *Membership) serfConfig() (*serf.Config, error) {
	c := m.cfg
	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = c.NodeName
	maps.Copy(sc.Tags, c.Tags)
	sc.EventCh = m.events
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.ReapInterval = c.ReapInterval
	sc.LogOutput = nil
	std := m.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true, InferLevelsWithTimestamp: true})
	sc.Logger = std

	ml := memberlist.DefaultLANConfig()
	if c.Profile == ProfileLocal {
		ml = memberlist.DefaultLocalConfig()
		ml.GossipInterval = 50 * time.Millisecond
		ml.ProbeInterval = 500 * time.Millisecond
		ml.PushPullInterval = 5 * time.Second
		sc.LeavePropagateDelay = 100 * time.Millisecond
	}
	host, port, _ := splitHostPort(c.BindAddr)
	ml.BindAddr = host
	ml.BindPort = port
	ml.AdvertisePort = port
	if c.AdvertiseAddr != "" {
		ah, ap, _ := splitHostPort(c.AdvertiseAddr)
		ml.AdvertiseAddr, ml.AdvertisePort = ah, ap
	}
	ml.Logger = std
	ml.LogOutput = nil
	if len(c.EncryptKey) > 0 {
		ml.SecretKey = append([]byte(nil), c.EncryptKey...)
		ml.GossipVerifyIncoming = true
		ml.GossipVerifyOutgoing = true
	}
	sc.MemberlistConfig = ml
	return sc, nil
}

// Join joins the cluster through addrs (gossip addresses of existing
// members) and returns how many it reached. It fails with ErrJoin if none
// could be joined, or if the only node reached was this one: an address
// can name this node in a way the caller cannot tell (a DNS name, while
// the others' names do not resolve yet), and a caller that retries until
// Join succeeds must go on retrying then.
func (m *Membership) Join(addrs ...string) (int, error) {
	n, err := m.serf.Join(addrs, true)
	if n > 0 && !m.knowsAnotherMember() {
		n, err = 0, errors.Join(err, errOnlySelf)
	}
	if n == 0 {
		if err == nil {
			err = errors.New("no address given")
		}
		return 0, fmt.Errorf("%w: via %v: %v", ErrJoin, addrs, err)
	}
	if err != nil {
		m.log.Warn("joined through some addresses only", "joined", n, "error", err)
	}
	return n, nil
}

// errOnlySelf: a join reached no node but this one.
var errOnlySelf = errors.New("reached only this node")

// knowsAnotherMember reports whether gossip knows a live node other than
// this one.
func (m *Membership) knowsAnotherMember() bool {
	self := m.serf.LocalMember().Name
	for _, mem := range m.serf.Members() {
		if mem.Name != self && mem.Status == serf.StatusAlive {
			return true
		}
	}
	return false
}

// Addr returns the gossip address other nodes join through (with the port
// actually bound when BindAddr's port was 0).
func (m *Membership) Addr() string {
	lm := m.serf.Memberlist().LocalNode()
	return net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
}

// Members returns every node gossip knows, this one included, with
// failed and left nodes until they are reaped.
func (m *Membership) Members() []Member {
	sm := m.serf.Members()
	out := make([]Member, 0, len(sm))
	for _, s := range sm {
		out = append(out, member(s))
	}
	return out
}

// LocalMember returns this node.
func (m *Membership) LocalMember() Member { return member(m.serf.LocalMember()) }

func member(s serf.Member) Member {
	return Member{
		Name:    s.Name,
		Addr:    net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(s.Port))),
		Tags:    maps.Clone(s.Tags),
		Status:  Status(s.Status),
		RPCAddr: s.Tags[TagRPCAddr],
		Voter:   s.Tags[TagVoter] == "true",
	}
}

// Reconcile hands every other known member to the handler again: alive
// ones to Join, left ones to Leave (failed and leaving ones are skipped, and
// so are alive members sharing an RPC address, see sharedAddr). Call it
// when this node becomes the Raft leader; it also runs every
// ReconcileInterval. It returns the handler's errors, joined, or nil at
// once if the handler says this node is not the leader.
func (m *Membership) Reconcile() error {
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	local := m.cfg.NodeName
	members := m.Members()
	var errs []error
	for _, mem := range members {
		if mem.Name == local {
			continue
		}
		var err error
		switch {
		case mem.Status == StatusAlive && sharedAddr(members, mem) != "":
			continue
		case mem.Status == StatusAlive:
			err = m.handler.Join(mem.Name, mem.RPCAddr, mem.Voter)
		case mem.Status == StatusLeft:
			err = m.handler.Leave(mem.Name)
		default:
			continue
		}
		if isNotLeader(err) {
			return nil // the leader reconciles
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s (%s): %w", mem.Name, mem.Status, err))
		}
	}
	return errors.Join(errs...)
}

// sharedAddr returns the name of another alive member with mem's RPC
// address, or "". That happens when a node is replaced at the same address
// (a new name, an empty disk) before gossip has noticed that the old one
// died: handing either to the handler would make it swap the other out,
// and back. Both wait until gossip marks the old one failed; the periodic
// Reconcile then adds the new one.
func sharedAddr(members []Member, mem Member) string {
	for _, o := range members {
		if o.Name != mem.Name && o.Status == StatusAlive && o.RPCAddr == mem.RPCAddr {
			return o.Name
		}
	}
	return ""
}

func isNotLeader(err error) bool {
	var nl interface{ NotLeader() bool }
	return errors.As(err, &nl) && nl.NotLeader()
}

// reconcileLoop runs Reconcile every ReconcileInterval until Close.
func (m *Membership) reconcileLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			if err := m.Reconcile(); err != nil && !errors.Is(err, ErrClosed) {
				m.log.Warn("periodic reconcile", "error", err)
			}
		}
	}
}

func (m *Membership) eventLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case e := <-m.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue // user events and queries: not used
			}
			m.handle(me)
		}
	}
}

func (m *Membership) handle(e serf.MemberEvent) {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	for _, s := range e.Members {
		if s.Name == m.cfg.NodeName {
			continue
		}
		mem := member(s)
		var err error
		switch e.Type {
		case serf.EventMemberJoin, serf.EventMemberUpdate:
			if other := sharedAddr(m.Members(), mem); other != "" {
				m.log.Info("member shares its RPC address with another alive member; waiting for gossip to mark one failed",
					"member", mem.Name, "other", other, "rpc_addr", mem.RPCAddr)
				continue
			}
			err = m.handler.Join(mem.Name, mem.RPCAddr, mem.Voter)
		case serf.EventMemberLeave, serf.EventMemberReap:
			err = m.handler.Leave(mem.Name)
		case serf.EventMemberFailed:
			m.log.Warn("member failed; it stays a Raft server until reaped", "member", mem.Name, "reap_after", m.cfg.ReconnectTimeout)
			continue
		default:
			continue
		}
		m.logHandlerError(e.Type.String(), mem.Name, err)
	}
}

// logHandlerError logs err at debug level if it says this node is not the
// leader (expected everywhere but on the leader), at error level otherwise.
func (m *Membership) logHandlerError(event, member string, err error) {
	if err == nil {
		m.log.Debug("handled member event", "event", event, "member", member)
		return
	}
	if isNotLeader(err) {
		m.log.Debug("member event left to the leader", "event", event, "member", member, "error", err)
		return
	}
	m.log.Error("member event handler failed", "event", event, "member", member, "error", err)
}

// Leave announces that this node is leaving, so that the others hand it to
// their handlers' Leave (rather than seeing it fail), and waits for the
// announcement to spread. Call Close afterwards.
func (m *Membership) Leave() error {
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	if err := m.serf.Leave(); err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	return nil
}

// Close stops gossip and event delivery, waiting for a handler call in
// progress. Without a Leave first the others see this node fail. Close is
// idempotent.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		close(m.done)
		if err := m.serf.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("discovery: shutdown: %w", err)
		}
		m.wg.Wait()
	})
	return m.closeErr
}
