package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Scheme is the gRPC target scheme of proglog clusters:
// "proglog://host:port,host2:port" (or "proglog:///host:port,host2:port")
// lists seed servers; the client discovers the rest with GetServers.
const Scheme = "proglog"

// role is what discovery knows of a server.
type role int

const (
	// roleUnknown: discovery could not ask (GetServers refused), so the
	// server is one of the seeds and may or may not be the leader.
	roleUnknown role = iota
	roleFollower
	roleLeader
)

func (r role) String() string {
	return [...]string{"unknown", "follower", "leader"}[r]
}

// serverInfo is the endpoint attribute the balancer routes by.
type serverInfo struct {
	id   string
	role role
}

type serverInfoKey struct{}

func infoOf(ep resolver.Endpoint) serverInfo {
	if v, ok := ep.Attributes.Value(serverInfoKey{}).(serverInfo); ok {
		return v
	}
	return serverInfo{}
}

// ParseTarget returns the seed addresses of target: "host:port" or a
// comma-separated list of them, with or without the "proglog://" or
// "proglog:///" prefix.
func ParseTarget(target string) ([]string, error) {
	rest := target
	for _, prefix := range []string{Scheme + ":///", Scheme + "://"} {
		if s, ok := strings.CutPrefix(rest, prefix); ok {
			rest = s
			break
		}
	}
	var addrs []string
	for a := range strings.SplitSeq(rest, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("proglog: bad address %q in target %q: want host:port", a, target)
		}
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("proglog: target %q names no server", target)
	}
	return addrs, nil
}

// targetAddrs extracts the address list from a parsed gRPC target, which
// keeps it in the URL's host ("proglog://a:1,b:2") or path
// ("proglog:///a:1,b:2").
func targetAddrs(t resolver.Target) string {
	if t.URL.Host != "" {
		return t.URL.Host
	}
	return t.Endpoint()
}

// resolverBuilder builds the discovery resolver of one Client. Each Client
// has its own (grpc.WithResolvers), holding the credentials discovery dials
// with and letting the client pass leader hints to the live resolver.
type resolverBuilder struct {
	creds    credentials.TransportCredentials
	dialOpts []grpc.DialOption
	interval time.Duration
	timeout  time.Duration // one GetServers attempt
	logger   *slog.Logger

	mu        sync.Mutex
	current   *discoveryResolver
	resolved  chan struct{} // closed at the first successful discovery
	failed    chan struct{} // closed at the first failed discovery
	lastErr   error
	firstDone bool
	anyFailed bool
}

func newResolverBuilder(creds credentials.TransportCredentials, dialOpts []grpc.DialOption, interval time.Duration, logger *slog.Logger) *resolverBuilder {
	return &resolverBuilder{
		creds:    creds,
		dialOpts: dialOpts,
		interval: interval,
		timeout:  5 * time.Second,
		logger:   logger,
		resolved: make(chan struct{}),
		failed:   make(chan struct{}),
	}
}

func (b *resolverBuilder) Scheme() string { return Scheme }

// Build starts a resolver that discovers the servers of t's seeds.
func (b *resolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	seeds, err := ParseTarget(targetAddrs(t))
	if err != nil {
		return nil, err
	}
	r := &discoveryResolver{
		b:     b,
		cc:    cc,
		seeds: seeds,
		conns: map[string]*grpc.ClientConn{},
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	b.current = r
	b.mu.Unlock()
	go r.run()
	return r, nil
}

// reported records the outcome of a discovery for waitResolved.
func (b *resolverBuilder) reported(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.lastErr = err
		if !b.anyFailed {
			b.anyFailed = true
			close(b.failed)
		}
		return
	}
	if !b.firstDone {
		b.firstDone = true
		close(b.resolved)
	}
}

// waitResolved waits for the first successful discovery.
func (b *resolverBuilder) waitResolved(ctx context.Context) error {
	select {
	case <-b.resolved:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.lastErr != nil {
			return b.lastErr
		}
		return ctx.Err()
	}
}

// hint tells the live resolver that leaderAddr leads (empty: the leader is
// unknown, re-discover) and returns a channel closed once the hint is
// reflected in the resolver's state.
func (b *resolverBuilder) hint(leaderAddr string) <-chan struct{} {
	b.mu.Lock()
	r := b.current
	b.mu.Unlock()
	if r == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return r.hint(leaderAddr)
}

// learn tells the live resolver of servers the cluster's answers named
// (a NOT_LEADER leader, a partition's replicas, the metadata leader), so
// that calls can reach them while GetServers is refused and discovery
// knows only the seeds; a server it did not know yet also starts a
// discovery. The returned channel is closed once the resolver's state has
// them (at once when it had).
func (b *resolverBuilder) learn(addrs ...string) <-chan struct{} {
	b.mu.Lock()
	r := b.current
	b.mu.Unlock()
	if r == nil {
		return closedChan
	}
	return r.learn(addrs)
}

// refresh asks the live resolver to re-discover soon.
func (b *resolverBuilder) refresh() {
	b.mu.Lock()
	r := b.current
	b.mu.Unlock()
	if r != nil {
		r.ResolveNow(resolver.ResolveNowOptions{})
	}
}

// discoveryResolver keeps the ClientConn's endpoints equal to the cluster's
// servers: it calls GetServers on a known server — the hinted leader, the
// leader, the other servers, then the seeds, until one answers — every
// interval, and soon after ResolveNow (connection failures, no leader) or a
// leader hint. While unsettled (no answer, or no leader) it polls faster.
type discoveryResolver struct {
	b      *resolverBuilder
	cc     resolver.ClientConn
	seeds  []string
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	pending string          // leader hint not yet applied
	waiters []chan struct{} // closed when the pending hint is applied
	// learnt are the servers learn was told of, least recently told
	// first, at most maxLearnt; routed to while static.
	learnt       []string
	learnWaiters []chan struct{} // closed when learnt is applied

	// Owned by run.
	conns   map[string]*grpc.ClientConn
	servers []Server // last discovered, sorted by address
	static  bool     // GetServers refused: endpoints are the seeds
	sent    string   // key of the last state sent
}

func (r *discoveryResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *discoveryResolver) Close() {
	r.cancel()
	<-r.done
	r.mu.Lock()
	for _, w := range append(r.waiters, r.learnWaiters...) {
		close(w)
	}
	r.waiters, r.learnWaiters = nil, nil
	r.mu.Unlock()
}

func (r *discoveryResolver) hint(leaderAddr string) <-chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		close(ch)
		return ch
	}
	if leaderAddr != "" {
		r.pending = leaderAddr
	}
	r.waiters = append(r.waiters, ch)
	r.mu.Unlock()
	r.ResolveNow(resolver.ResolveNowOptions{})
	return ch
}

// maxLearnt bounds the servers learnt from the cluster's answers that a
// client routes to while GetServers is refused (so connects to), beside
// the seeds: past it the least recently named one is dropped.
const maxLearnt = 32

func (r *discoveryResolver) learn(addrs []string) <-chan struct{} {
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return closedChan
	}
	added := false
	for _, a := range addrs {
		if a == "" || slices.Contains(r.seeds, a) {
			continue
		}
		if i := slices.Index(r.learnt, a); i >= 0 {
			r.learnt = slices.Delete(r.learnt, i, i+1)
		} else {
			added = true
		}
		r.learnt = append(r.learnt, a)
	}
	if n := len(r.learnt) - maxLearnt; n > 0 {
		r.learnt = slices.Delete(r.learnt, 0, n)
	}
	if !added {
		r.mu.Unlock()
		return closedChan
	}
	ch := make(chan struct{})
	r.learnWaiters = append(r.learnWaiters, ch)
	r.mu.Unlock()
	r.ResolveNow(resolver.ResolveNowOptions{})
	return ch
}

// Polling delays: minGap between two discoveries; fast polls after a
// wake-up or while unsettled, growing to fastMax; interval otherwise.
const (
	minGap        = 50 * time.Millisecond
	fastMin       = 100 * time.Millisecond
	fastMax       = 2 * time.Second
	fastFollowUps = 6 // polls after a wake-up: 100ms, 200ms, ... 2s
)

func (r *discoveryResolver) run() {
	defer close(r.done)
	defer func() {
		for _, c := range r.conns {
			c.Close()
		}
	}()
	followUps, failures := 0, 0
	var last time.Time
	for {
		if gap := time.Since(last); gap < minGap {
			if !r.sleep(minGap - gap) {
				return
			}
		}
		last = time.Now()
		r.mu.Lock()
		hint := r.pending
		r.pending = ""
		waiters, learnWaiters := r.waiters, r.learnWaiters
		r.waiters, r.learnWaiters = nil, nil
		r.mu.Unlock()

		if len(learnWaiters) > 0 {
			// New servers learnt: routed to at once while static;
			// otherwise discovery lists the servers.
			if r.static {
				r.setStatic()
			}
			for _, w := range learnWaiters {
				close(w)
			}
		}
		if hint != "" {
			// The hint takes effect at once; discovery then confirms it.
			r.applyHint(hint)
			for _, w := range waiters {
				close(w)
			}
			waiters = nil
		}
		err := r.discover(hint)
		for _, w := range waiters {
			close(w)
		}
		r.b.reported(err)

		settled := err == nil && (r.static || slices.ContainsFunc(r.servers, func(s Server) bool { return s.IsLeader }))
		var wait time.Duration
		switch {
		case !settled:
			failures++
			followUps = 0
			wait = min(fastMin<<min(failures-1, 10), fastMax)
		case followUps > 0:
			failures = 0
			wait = min(fastMin<<(fastFollowUps-followUps), fastMax)
			followUps--
		default:
			failures = 0
			wait = r.b.interval
		}
		timer := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			timer.Stop()
			return
		case <-r.wake:
			followUps = fastFollowUps
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (r *discoveryResolver) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// applyHint marks addr as the leader in the current state at once, before
// discovery confirms it, so that retries go there without waiting.
func (r *discoveryResolver) applyHint(addr string) {
	found := false
	next := make([]Server, 0, len(r.servers)+1)
	for _, s := range r.servers {
		s.IsLeader = s.RPCAddr == addr
		found = found || s.IsLeader
		next = append(next, s)
	}
	if !found {
		next = append(next, Server{RPCAddr: addr, IsLeader: true})
	}
	if r.servers == nil && r.static {
		// Static mode starts from the seeds.
		for _, s := range r.seeds {
			if s != addr {
				next = append(next, Server{RPCAddr: s})
			}
		}
	}
	r.b.logger.Info("proglog: leader hint", "leader", addr)
	r.servers = sortServers(next)
	r.push()
}

// discover asks the known servers for the list and pushes it. It returns
// nil once the state is current: a server answered, or refused to answer
// (static mode).
func (r *discoveryResolver) discover(prefer string) error {
	var errs []error
	for _, addr := range r.candidates(prefer) {
		servers, err := r.getServers(addr)
		if err == nil {
			if len(servers) == 0 {
				errs = append(errs, fmt.Errorf("%s listed no servers", addr))
				continue
			}
			if r.static {
				r.b.logger.Info("proglog: GetServers answered again; routing by discovered roles")
			}
			r.static = false
			r.setServers(servers)
			r.gc()
			return nil
		}
		switch status.Code(err) {
		case codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
			// The server is up but will not list the cluster (an ACL without
			// "servers", say): every server answers alike. Route by the seeds
			// and NOT_LEADER hints instead.
			if !r.static {
				r.b.logger.Warn("proglog: GetServers refused; routing to the seed servers and following leader hints", "server", addr, "error", err)
				r.static = true
				r.servers = nil
			}
			r.setStatic()
			r.gc()
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	err := errors.Join(errs...)
	r.b.logger.Warn("proglog: discovery failed", "error", err)
	if r.sent == "" {
		r.cc.ReportError(err)
	}
	return err
}

// candidates orders the addresses to ask: prefer, the leader, the other
// known servers, the seeds.
func (r *discoveryResolver) candidates(prefer string) []string {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(prefer)
	for _, s := range r.servers {
		if s.IsLeader {
			add(s.RPCAddr)
		}
	}
	for _, s := range r.servers {
		add(s.RPCAddr)
	}
	for _, s := range r.seeds {
		add(s)
	}
	return out
}

func (r *discoveryResolver) getServers(addr string) ([]Server, error) {
	conn, ok := r.conns[addr]
	if !ok {
		opts := append(slices.Clone(r.b.dialOpts), grpc.WithTransportCredentials(r.b.creds))
		c, err := grpc.NewClient("passthrough:///"+addr, opts...)
		if err != nil {
			return nil, err
		}
		r.conns[addr], conn = c, c
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.b.timeout)
	defer cancel()
	resp, err := logv1.NewLogClient(conn).GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		return nil, err
	}
	return serversFromProto(resp.GetServers()), nil
}

// gc closes discovery connections to servers that are gone.
func (r *discoveryResolver) gc() {
	keep := r.candidates("")
	for addr, c := range r.conns {
		if !slices.Contains(keep, addr) {
			c.Close()
			delete(r.conns, addr)
		}
	}
}

func sortServers(s []Server) []Server {
	slices.SortFunc(s, func(a, b Server) int { return strings.Compare(a.RPCAddr, b.RPCAddr) })
	return slices.CompactFunc(s, func(a, b Server) bool { return a.RPCAddr == b.RPCAddr })
}

func (r *discoveryResolver) setServers(servers []Server) {
	servers = sortServers(slices.DeleteFunc(slices.Clone(servers), func(s Server) bool { return s.RPCAddr == "" }))
	oldLeader, newLeader := leaderOf(r.servers), leaderOf(servers)
	if oldLeader != newLeader {
		r.b.logger.Info("proglog: leader changed", "from", oldLeader, "to", newLeader)
	}
	r.servers = servers
	r.push()
}

// setStatic routes to the seeds and the servers learnt, keeping a hinted
// leader.
func (r *discoveryResolver) setStatic() {
	leader := leaderOf(r.servers)
	r.mu.Lock()
	addrs := append(slices.Clone(r.seeds), r.learnt...)
	r.mu.Unlock()
	var servers []Server
	for _, s := range addrs {
		servers = append(servers, Server{RPCAddr: s, IsLeader: s == leader})
	}
	if leader != "" && !slices.Contains(addrs, leader) {
		servers = append(servers, Server{RPCAddr: leader, IsLeader: true})
	}
	r.servers = sortServers(servers)
	r.push()
}

func leaderOf(servers []Server) string {
	for _, s := range servers {
		if s.IsLeader {
			return s.RPCAddr
		}
	}
	return ""
}

// push sends the servers to the ClientConn as endpoints, unless unchanged.
func (r *discoveryResolver) push() {
	var key strings.Builder
	eps := make([]resolver.Endpoint, 0, len(r.servers))
	for _, s := range r.servers {
		ro := roleFollower
		switch {
		case s.IsLeader:
			ro = roleLeader
		case r.static:
			ro = roleUnknown
		}
		host, _, err := net.SplitHostPort(s.RPCAddr)
		if err != nil {
			host = s.RPCAddr
		}
		eps = append(eps, resolver.Endpoint{
			// ServerName: the TLS name to verify is each server's own host,
			// not the authority of the whole "proglog:///a,b,c" target.
			Addresses:  []resolver.Address{{Addr: s.RPCAddr, ServerName: host}},
			Attributes: attributes.New(serverInfoKey{}, serverInfo{id: s.ID, role: ro}),
		})
		fmt.Fprintf(&key, "%s|%s|%d;", s.RPCAddr, s.ID, ro)
	}
	if key.String() == r.sent {
		return
	}
	state := resolver.State{Endpoints: eps, ServiceConfig: r.cc.ParseServiceConfig(serviceConfig)}
	if err := r.cc.UpdateState(state); err != nil {
		r.b.logger.Warn("proglog: resolver state rejected", "error", err)
		r.sent = ""
		return
	}
	r.sent = key.String()
}
