package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// fakeServers answers GetServers from a list the test changes, on
// loopback without TLS.
type fakeServers struct {
	logv1.UnimplementedLogServer
	addr string
	srv  *grpc.Server

	mu      sync.Mutex
	servers []*logv1.Server
	refuse  codes.Code
	calls   int
}

func startFake(t *testing.T) *fakeServers {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServers{addr: lis.Addr().String(), srv: grpc.NewServer()}
	logv1.RegisterLogServer(f.srv, f)
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeServers) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.refuse != codes.OK {
		return nil, status.Error(f.refuse, "refused")
	}
	return &logv1.GetServersResponse{Servers: slices.Clone(f.servers)}, nil
}

func (f *fakeServers) set(servers ...*logv1.Server) {
	f.mu.Lock()
	f.servers = servers
	f.mu.Unlock()
}

func (f *fakeServers) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// srv builds a listed server; leader marks it.
func srv(addr string, leader bool) *logv1.Server {
	return &logv1.Server{Id: "id-" + addr, RpcAddr: addr, IsLeader: leader}
}

// fakeCC records the resolver's states.
type fakeCC struct {
	resolver.ClientConn
	states chan resolver.State
	errs   chan error
}

func newFakeCC() *fakeCC {
	return &fakeCC{states: make(chan resolver.State, 100), errs: make(chan error, 100)}
}

func (cc *fakeCC) UpdateState(s resolver.State) error { cc.states <- s; return nil }
func (cc *fakeCC) ReportError(err error)              { cc.errs <- err }
func (cc *fakeCC) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

// describe renders a state as "addr=role,..." sorted by address.
func describe(s resolver.State) string {
	var parts []string
	for _, ep := range s.Endpoints {
		parts = append(parts, ep.Addresses[0].Addr+"="+infoOf(ep).role.String())
	}
	return strings.Join(parts, ",")
}

// next waits for the next state.
func (cc *fakeCC) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-cc.states:
		return describe(s)
	case <-time.After(10 * time.Second):
		t.Fatal("no resolver state within 10s")
		return ""
	}
}

// await waits for a state equal to want, skipping others.
func (cc *fakeCC) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last string
	for {
		select {
		case s := <-cc.states:
			if last = describe(s); last == want {
				return
			}
		case <-deadline:
			t.Fatalf("no resolver state %q within 10s; last %q", want, last)
		}
	}
}

func buildResolver(t *testing.T, target string, interval time.Duration) (*resolverBuilder, *fakeCC, resolver.Resolver) {
	t.Helper()
	rb := newResolverBuilder(insecure.NewCredentials(), nil, interval, slog.New(slog.DiscardHandler))
	cc := newFakeCC()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rb.Build(resolver.Target{URL: *u}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return rb, cc, r
}

func TestResolverDiscoversAndRefreshes(t *testing.T) {
	a, b, c := startFake(t), startFake(t), startFake(t)
	// Every fake serves the same view.
	set := func(servers ...*logv1.Server) {
		for _, f := range []*fakeServers{a, b, c} {
			f.set(servers...)
		}
	}
	set(srv(a.addr, true), srv(b.addr, false))
	rb, cc, r := buildResolver(t, "proglog:///"+a.addr, time.Hour)

	want := func(roles map[*fakeServers]string) string {
		var parts []string
		for f, ro := range roles {
			parts = append(parts, f.addr+"="+ro)
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	if got := cc.next(t); got != want(map[*fakeServers]string{a: "leader", b: "follower"}) {
		t.Fatalf("first state %q", got)
	}
	if err := rb.waitResolved(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	// A new server and a new leader, seen on ResolveNow.
	set(srv(a.addr, false), srv(b.addr, true), srv(c.addr, false))
	r.ResolveNow(resolver.ResolveNowOptions{})
	cc.await(t, want(map[*fakeServers]string{a: "follower", b: "leader", c: "follower"}))

	// The seed dies: discovery asks the other known servers.
	a.srv.Stop()
	set(srv(b.addr, true), srv(c.addr, false))
	r.ResolveNow(resolver.ResolveNowOptions{})
	cc.await(t, want(map[*fakeServers]string{b: "leader", c: "follower"}))
	if a.callCount() == 0 || b.callCount() == 0 {
		t.Fatalf("calls: seed %d, leader %d", a.callCount(), b.callCount())
	}
}

func TestResolverPollsPeriodically(t *testing.T) {
	a, b := startFake(t), startFake(t)
	a.set(srv(a.addr, true))
	_, cc, _ := buildResolver(t, "proglog://"+a.addr, 50*time.Millisecond)
	cc.await(t, a.addr+"=leader")
	// No ResolveNow: the interval alone brings the change.
	a.set(srv(a.addr, true), srv(b.addr, false))
	cc.await(t, view(a.addr+"=leader", b.addr+"=follower"))
}

func TestResolverLeaderHint(t *testing.T) {
	a, b := startFake(t), startFake(t)
	a.set(srv(a.addr, true), srv(b.addr, false))
	rb, cc, _ := buildResolver(t, "proglog:///"+a.addr, time.Hour)
	cc.await(t, view(a.addr+"=leader", b.addr+"=follower"))

	// The hint takes effect before discovery confirms it (b, the hinted
	// leader, has no list yet: its answers fail, a's still says a).
	done := rb.hint(b.addr)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hint not applied")
	}
	cc.await(t, view(a.addr+"=follower", b.addr+"=leader"))
}

func TestResolverNoLeaderPollsFast(t *testing.T) {
	a := startFake(t)
	a.set(srv(a.addr, false))
	_, cc, _ := buildResolver(t, "proglog:///"+a.addr, time.Hour)
	cc.await(t, a.addr+"=follower")
	// An election: with no leader listed the resolver keeps asking.
	a.set(srv(a.addr, true))
	cc.await(t, a.addr+"=leader")
}

func TestResolverStaticWhenRefused(t *testing.T) {
	a, b := startFake(t), startFake(t)
	a.refuse, b.refuse = codes.PermissionDenied, codes.PermissionDenied
	rb, cc, _ := buildResolver(t, fmt.Sprintf("proglog://%s,%s", a.addr, b.addr), time.Hour)
	cc.await(t, view(a.addr+"=unknown", b.addr+"=unknown"))
	if err := rb.waitResolved(ctxT(t)); err != nil {
		t.Fatalf("a refusal is an answer: %v", err)
	}
	<-rb.hint(b.addr)
	cc.await(t, view(a.addr+"=unknown", b.addr+"=leader"))
}

func TestResolverReportsUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	rb, cc, _ := buildResolver(t, "proglog:///"+addr, time.Hour)
	select {
	case err := <-cc.errs:
		if !strings.Contains(err.Error(), addr) {
			t.Fatalf("error %v does not name %s", err, addr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error reported")
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if err := rb.waitResolved(ctx); err == nil || status.Code(err) != codes.Unavailable {
		t.Fatalf("waitResolved: %v", err)
	}
}

// view is the description of a state with these "addr=role" entries.
func view(entries ...string) string {
	slices.Sort(entries)
	return strings.Join(entries, ",")
}

func TestParseTarget(t *testing.T) {
	for target, want := range map[string][]string{
		"localhost:8400":                {"localhost:8400"},
		"proglog://a:1,b:2":             {"a:1", "b:2"},
		"proglog:///a:1, b:2,a:1":       {"a:1", "b:2"},
		"10.0.0.1:8400,[::1]:8400":      {"10.0.0.1:8400", "[::1]:8400"},
		"proglog://log-0.log.svc:8400,": {"log-0.log.svc:8400"},
	} {
		got, err := ParseTarget(target)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", target, got, err, want)
		}
	}
	for _, bad := range []string{"", "proglog://", "a", "a:1,b", ":1", "a:"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) succeeded", bad)
		}
	}
	// gRPC hands the resolver both target forms.
	for _, raw := range []string{"proglog://a:1,b:2", "proglog:///a:1,b:2"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := targetAddrs(resolver.Target{URL: *u}); got != "a:1,b:2" {
			t.Errorf("targetAddrs(%q) = %q", raw, got)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
