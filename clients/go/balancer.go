package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// balancerName is the load-balancing policy that routes by server role.
const balancerName = "proglog_leader"

// serviceConfig selects it; the resolver sends it with every state.
const serviceConfig = `{"loadBalancingConfig":[{"` + balancerName + `":{}}]}`

func init() { balancer.Register(balancerBuilder{}) }

// route is where a call must go.
type route int

const (
	routeDefault  route = iota // by method: appends to the leader, reads to followers, the rest anywhere
	routeLeader                // the leader (appends; linearizable reads)
	routeFollower              // a follower, round-robin; the leader when there is none
	routeAny                   // any server, round-robin
)

// callInfo travels in a call's context: the route the client wants, and
// what the picker did, which tells the client whether a failed produce may
// have been written.
type callInfo struct {
	route route
	// part, when set, is the partition's own route (its leader and
	// replicas), taken before route when the picker knows its servers.
	part *partRoute
	// avoid is a server that just failed the call: routeAny picks
	// another when there is one.
	avoid string

	mu     sync.Mutex
	picked bool
	addr   string
	role   role
	sent   bool
}

type callInfoKey struct{}

func withCallInfo(ctx context.Context, ci *callInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, ci)
}

// result returns where the call went and whether any of it was sent.
func (ci *callInfo) result() (addr string, ro role, sent bool) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return ci.addr, ci.role, ci.sent
}

func routeForMethod(fullMethod string) route {
	switch strings.TrimPrefix(fullMethod, "/log.v1.Log/") {
	case "Produce", "ProduceBatch", "ProduceStream":
		return routeLeader
	case "Consume", "ConsumeStream":
		return routeFollower
	default:
		return routeAny
	}
}

type balancerBuilder struct{}

func (balancerBuilder) Name() string { return balancerName }

func (balancerBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &leaderBalancer{cc: cc, subConns: map[string]*subConn{}}
}

// subConn is one server's connection and what the balancer knows of it.
type subConn struct {
	sc    balancer.SubConn
	addr  string
	info  serverInfo
	state connectivity.State
	err   error
}

// leaderBalancer keeps one SubConn per discovered server and builds
// pickers that route by role. gRPC calls its methods serially.
type leaderBalancer struct {
	cc          balancer.ClientConn
	subConns    map[string]*subConn
	resolverErr error
}

func (b *leaderBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	seen := map[string]bool{}
	for _, ep := range s.ResolverState.Endpoints {
		if len(ep.Addresses) == 0 {
			continue
		}
		addr := ep.Addresses[0]
		seen[addr.Addr] = true
		if e, ok := b.subConns[addr.Addr]; ok {
			e.info = infoOf(ep)
			continue
		}
		e := &subConn{addr: addr.Addr, info: infoOf(ep), state: connectivity.Idle}
		sc, err := b.cc.NewSubConn([]resolver.Address{addr}, balancer.NewSubConnOptions{
			StateListener: func(st balancer.SubConnState) { b.updateSubConnState(e, st) },
		})
		if err != nil {
			continue
		}
		e.sc = sc
		b.subConns[addr.Addr] = e
		sc.Connect()
	}
	for addr, e := range b.subConns {
		if !seen[addr] {
			e.sc.Shutdown()
			delete(b.subConns, addr)
		}
	}
	if len(b.subConns) == 0 {
		b.resolverErr = errors.New("discovery found no servers")
		b.updatePicker()
		return balancer.ErrBadResolverState
	}
	b.resolverErr = nil
	b.updatePicker()
	return nil
}

func (b *leaderBalancer) ResolverError(err error) {
	b.resolverErr = err
	if len(b.subConns) == 0 {
		b.updatePicker()
	}
}

func (b *leaderBalancer) updateSubConnState(e *subConn, st balancer.SubConnState) {
	if b.subConns[e.addr] != e {
		return // removed
	}
	s := st.ConnectivityState
	switch {
	case s == connectivity.Idle:
		e.sc.Connect()
	case s == connectivity.TransientFailure:
		e.err = st.ConnectionError
		// A server went away: maybe the leader. Ask discovery.
		b.cc.ResolveNow(resolver.ResolveNowOptions{})
	}
	if e.state == connectivity.TransientFailure && s == connectivity.Connecting {
		// Stay in failure while reconnecting, so a dead server does not keep
		// the channel CONNECTING.
		return
	}
	e.state = s
	b.updatePicker()
}

// UpdateSubConnState is not used: every SubConn has a StateListener.
func (b *leaderBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *leaderBalancer) ExitIdle() {
	for _, e := range b.subConns {
		if e.state == connectivity.Idle {
			e.sc.Connect()
		}
	}
}

func (b *leaderBalancer) Close() {
	for addr, e := range b.subConns {
		e.sc.Shutdown()
		delete(b.subConns, addr)
	}
}

// updatePicker publishes the aggregate state and a picker over the ready
// servers.
func (b *leaderBalancer) updatePicker() {
	var ready, connecting bool
	var errs []string
	for _, e := range b.subConns {
		switch e.state {
		case connectivity.Ready:
			ready = true
		case connectivity.Idle, connectivity.Connecting:
			connecting = true
		case connectivity.TransientFailure:
			if e.err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", e.addr, e.err))
			}
		}
	}
	switch {
	case ready:
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: b.newPicker()})
	case connecting:
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Connecting, Picker: b.newPicker()})
	default:
		slices.Sort(errs)
		msg := "no proglog server reachable"
		if len(errs) > 0 {
			msg += ": " + strings.Join(errs, "; ")
		}
		if b.resolverErr != nil {
			msg += "; discovery: " + b.resolverErr.Error()
		}
		b.cc.UpdateState(balancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            errPicker{status.Error(codes.Unavailable, msg)},
		})
	}
}

func (b *leaderBalancer) newPicker() *picker {
	p := &picker{
		resolveNow: func() { b.cc.ResolveNow(resolver.ResolveNowOptions{}) },
		connecting: map[string]bool{},
		ready:      map[string]*target{},
	}
	addrs := make([]string, 0, len(b.subConns))
	for addr := range b.subConns {
		addrs = append(addrs, addr)
		if st := b.subConns[addr].state; st == connectivity.Idle || st == connectivity.Connecting {
			p.connecting[addr] = true
		}
	}
	slices.Sort(addrs) // a stable round-robin order
	for _, addr := range addrs {
		e := b.subConns[addr]
		if e.info.role == roleLeader {
			p.leaderKnown = true
		}
		if e.state != connectivity.Ready {
			continue
		}
		t := &target{sc: e.sc, addr: e.addr, role: e.info.role}
		p.ready[addr] = t
		p.all = append(p.all, t)
		switch e.info.role {
		case roleLeader:
			p.leader = t
		case roleFollower:
			p.followers = append(p.followers, t)
		default:
			p.unknown = append(p.unknown, t)
		}
	}
	return p
}

type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}

// target is a ready server in a picker.
type target struct {
	sc   balancer.SubConn
	addr string
	role role
}

// picker routes appends to the leader, reads round-robin over the
// followers (the leader when there are none), and anything else
// round-robin over every ready server. Without a known leader (an election,
// or discovery refused) appends go round-robin over the servers of unknown
// role, or wait for discovery to find a leader. A call for a partition
// (callInfo.part) goes by the partition's route instead (see pickPartition),
// as long as discovery knows its servers.
type picker struct {
	connecting  map[string]bool    // the servers (re)connecting, by address
	ready       map[string]*target // the ready ones
	rrPart      atomic.Uint32
	leader      *target
	leaderKnown bool // a leader exists, ready or not
	followers   []*target
	unknown     []*target
	all         []*target
	rrFollower  atomic.Uint32
	rrUnknown   atomic.Uint32
	rrAll       atomic.Uint32
	resolveNow  func()
}

func roundRobin(ts []*target, n *atomic.Uint32) *target {
	return ts[int(n.Add(1)-1)%len(ts)]
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var ci *callInfo
	if info.Ctx != nil {
		ci, _ = info.Ctx.Value(callInfoKey{}).(*callInfo)
	}
	rt := routeForMethod(info.FullMethodName)
	if ci != nil && ci.route != routeDefault {
		rt = ci.route
	}
	var t *target
	if ci != nil && ci.part != nil {
		var wait bool
		if t, wait = p.pickPartition(ci.part, rt); wait {
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
	}
	switch {
	case t != nil:
	case rt == routeLeader:
		switch {
		case p.leader != nil:
			t = p.leader
		case !p.leaderKnown && len(p.unknown) > 0:
			t = roundRobin(p.unknown, &p.rrUnknown)
		default:
			// The leader is (re)connecting, or unknown during an election:
			// wait for a new picker, and make sure discovery runs.
			p.resolveNow()
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
	case rt == routeFollower:
		switch {
		case len(p.followers) > 0:
			t = roundRobin(p.followers, &p.rrFollower)
		case len(p.unknown) > 0:
			t = roundRobin(p.unknown, &p.rrUnknown)
		case p.leader != nil:
			t = p.leader
		}
	case len(p.all) > 0:
		t = roundRobin(p.all, &p.rrAll)
		if ci != nil && t.addr == ci.avoid && len(p.all) > 1 {
			t = roundRobin(p.all, &p.rrAll)
		}
	}
	if t == nil {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	return p.picked(ci, t), nil
}

// pickPartition picks by a partition's route: rt routeFollower takes its
// ready replicas other than the leader round-robin, then the leader; any
// other route the leader, or with no leader known any ready replica
// (which answers NOT_LEADER naming the leader). wait is true when the
// server wanted is known but not ready yet (connecting): the pick waits
// for the next picker. It returns nil, false when discovery knows none of
// the partition's servers, so the call goes by rt's role instead.
func (p *picker) pickPartition(pr *partRoute, rt route) (t *target, wait bool) {
	if rt == routeFollower {
		var fs []*target
		for _, a := range pr.replicas {
			if t := p.ready[a]; t != nil && a != pr.leader {
				fs = append(fs, t)
			}
		}
		if len(fs) > 0 {
			return roundRobin(fs, &p.rrPart), false
		}
	}
	if pr.leader != "" {
		if t := p.ready[pr.leader]; t != nil {
			return t, false
		}
		if p.connecting[pr.leader] {
			return nil, true
		}
	}
	var rs []*target
	for _, a := range pr.replicas {
		if t := p.ready[a]; t != nil {
			rs = append(rs, t)
		}
	}
	if len(rs) > 0 {
		return roundRobin(rs, &p.rrPart), false
	}
	return nil, false
}

// picked returns the result of picking t, recording it in ci.
func (p *picker) picked(ci *callInfo, t *target) balancer.PickResult {
	res := balancer.PickResult{SubConn: t.sc}
	if ci != nil {
		ci.mu.Lock()
		ci.picked, ci.addr, ci.role = true, t.addr, t.role
		ci.mu.Unlock()
		res.Done = func(d balancer.DoneInfo) {
			ci.mu.Lock()
			ci.sent = ci.sent || d.BytesSent
			ci.mu.Unlock()
		}
	}
	return res
}
