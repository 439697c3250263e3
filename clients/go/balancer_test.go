package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// fakeSubConn is a SubConn the test drives.
type fakeSubConn struct {
	balancer.SubConn
	addr     string
	listener func(balancer.SubConnState)
	shutdown bool
}

func (sc *fakeSubConn) Connect()  {}
func (sc *fakeSubConn) Shutdown() { sc.shutdown = true }

// fakeBalancerCC records SubConns and the pickers it is given.
type fakeBalancerCC struct {
	balancer.ClientConn
	mu         sync.Mutex
	subConns   map[string]*fakeSubConn
	created    int
	state      balancer.State
	resolveNow int
}

func newFakeBalancerCC() *fakeBalancerCC {
	return &fakeBalancerCC{subConns: map[string]*fakeSubConn{}}
}

func (cc *fakeBalancerCC) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	sc := &fakeSubConn{addr: addrs[0].Addr, listener: opts.StateListener}
	cc.subConns[sc.addr] = sc
	cc.created++
	return sc, nil
}

func (cc *fakeBalancerCC) UpdateState(s balancer.State) { cc.state = s }

func (cc *fakeBalancerCC) ResolveNow(resolver.ResolveNowOptions) {
	cc.mu.Lock()
	cc.resolveNow++
	cc.mu.Unlock()
}

func (cc *fakeBalancerCC) resolveNows() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.resolveNow
}

// endpoints builds a resolver state: each entry is addr and role.
func endpoints(servers map[string]role) balancer.ClientConnState {
	var eps []resolver.Endpoint
	for addr, ro := range servers {
		eps = append(eps, resolver.Endpoint{
			Addresses:  []resolver.Address{{Addr: addr}},
			Attributes: attributes.New(serverInfoKey{}, serverInfo{id: addr, role: ro}),
		})
	}
	return balancer.ClientConnState{ResolverState: resolver.State{Endpoints: eps}}
}

type balancerTest struct {
	t  *testing.T
	cc *fakeBalancerCC
	b  balancer.Balancer
}

func newBalancerTest(t *testing.T, servers map[string]role) *balancerTest {
	cc := newFakeBalancerCC()
	bt := &balancerTest{t: t, cc: cc, b: balancerBuilder{}.Build(cc, balancer.BuildOptions{})}
	if err := bt.b.UpdateClientConnState(endpoints(servers)); err != nil {
		t.Fatal(err)
	}
	return bt
}

func (bt *balancerTest) setState(addr string, s connectivity.State) {
	bt.t.Helper()
	sc, ok := bt.cc.subConns[addr]
	if !ok {
		bt.t.Fatalf("no SubConn for %s", addr)
	}
	sc.listener(balancer.SubConnState{ConnectivityState: s, ConnectionError: errors.New("refused")})
}

func (bt *balancerTest) ready(addrs ...string) {
	for _, a := range addrs {
		bt.setState(a, connectivity.Ready)
	}
}

// pick picks for method with an optional route override and returns the
// chosen address, or the error.
func (bt *balancerTest) pick(method string, rt route) (string, error) {
	ctx := context.Background()
	if rt != routeDefault {
		ctx = withCallInfo(ctx, &callInfo{route: rt})
	}
	res, err := bt.cc.state.Picker.Pick(balancer.PickInfo{FullMethodName: "/log.v1.Log/" + method, Ctx: ctx})
	if err != nil {
		return "", err
	}
	return res.SubConn.(*fakeSubConn).addr, nil
}

// count picks n times and counts the addresses.
func (bt *balancerTest) count(method string, n int) map[string]int {
	bt.t.Helper()
	got := map[string]int{}
	for range n {
		addr, err := bt.pick(method, routeDefault)
		if err != nil {
			bt.t.Fatalf("pick %s: %v", method, err)
		}
		got[addr]++
	}
	return got
}

func eq(a, b map[string]int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestPickerRoutesByRole(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"l:1": roleLeader, "f:1": roleFollower, "f:2": roleFollower, "f:3": roleFollower})
	bt.ready("l:1", "f:1", "f:2", "f:3")
	if bt.cc.state.ConnectivityState != connectivity.Ready {
		t.Fatalf("state %v", bt.cc.state.ConnectivityState)
	}
	for _, m := range []string{"Produce", "ProduceBatch", "ProduceStream"} {
		if got := bt.count(m, 10); !eq(got, map[string]int{"l:1": 10}) {
			t.Errorf("%s went to %v, want the leader only", m, got)
		}
	}
	for _, m := range []string{"Consume", "ConsumeStream"} {
		if got := bt.count(m, 300); !eq(got, map[string]int{"f:1": 100, "f:2": 100, "f:3": 100}) {
			t.Errorf("%s went to %v, want 100 on each follower", m, got)
		}
	}
	if got := bt.count("GetServers", 400); !eq(got, map[string]int{"l:1": 100, "f:1": 100, "f:2": 100, "f:3": 100}) {
		t.Errorf("GetServers went to %v, want every server alike", got)
	}
	// A linearizable read asks the leader.
	if addr, err := bt.pick("Consume", routeLeader); err != nil || addr != "l:1" {
		t.Errorf("linearizable Consume went to %s, %v", addr, err)
	}
}

func TestPickerFollowerFallbacks(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"l:1": roleLeader, "f:1": roleFollower, "f:2": roleFollower})
	bt.ready("l:1", "f:1", "f:2")
	// A follower that is down is skipped.
	bt.setState("f:2", connectivity.TransientFailure)
	if got := bt.count("Consume", 10); !eq(got, map[string]int{"f:1": 10}) {
		t.Errorf("with f:2 down: %v", got)
	}
	if bt.cc.resolveNows() == 0 {
		t.Error("a failed connection did not ask discovery to refresh")
	}
	// No follower left: reads go to the leader.
	bt.setState("f:1", connectivity.TransientFailure)
	if got := bt.count("Consume", 10); !eq(got, map[string]int{"l:1": 10}) {
		t.Errorf("without followers: %v", got)
	}
	// A single node is its own leader.
	solo := newBalancerTest(t, map[string]role{"l:1": roleLeader})
	solo.ready("l:1")
	if got := solo.count("Consume", 5); !eq(got, map[string]int{"l:1": 5}) {
		t.Errorf("single node: %v", got)
	}
}

func TestPickerWaitsForLeader(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"l:1": roleLeader, "f:1": roleFollower})
	bt.ready("f:1")
	// The leader is still connecting: appends wait for it, reads do not.
	if _, err := bt.pick("Produce", routeDefault); !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Fatalf("Produce with the leader connecting: %v", err)
	}
	if addr, err := bt.pick("Consume", routeDefault); err != nil || addr != "f:1" {
		t.Fatalf("Consume: %s, %v", addr, err)
	}
	bt.ready("l:1")
	if addr, err := bt.pick("Produce", routeDefault); err != nil || addr != "l:1" {
		t.Fatalf("Produce once the leader is ready: %s, %v", addr, err)
	}

	// An election: nobody leads. Appends wait and discovery is asked.
	before := bt.cc.resolveNows()
	if err := bt.b.UpdateClientConnState(endpoints(map[string]role{"l:1": roleFollower, "f:1": roleFollower})); err != nil {
		t.Fatal(err)
	}
	if _, err := bt.pick("Produce", routeDefault); !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Fatalf("Produce without a leader: %v", err)
	}
	if bt.cc.resolveNows() == before {
		t.Error("no leader, and discovery was not asked")
	}
}

func TestBalancerFollowsLeaderChanges(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"a:1": roleLeader, "b:1": roleFollower, "c:1": roleFollower})
	bt.ready("a:1", "b:1", "c:1")
	if err := bt.b.UpdateClientConnState(endpoints(map[string]role{"a:1": roleFollower, "b:1": roleLeader, "c:1": roleFollower})); err != nil {
		t.Fatal(err)
	}
	if got := bt.count("Produce", 5); !eq(got, map[string]int{"b:1": 5}) {
		t.Errorf("Produce after the change: %v", got)
	}
	if got := bt.count("Consume", 10); !eq(got, map[string]int{"a:1": 5, "c:1": 5}) {
		t.Errorf("Consume after the change: %v", got)
	}
	if bt.cc.created != 3 {
		t.Errorf("%d SubConns created; a role change must keep the connections", bt.cc.created)
	}
	// A server leaves: its connection is shut down.
	if err := bt.b.UpdateClientConnState(endpoints(map[string]role{"b:1": roleLeader, "c:1": roleFollower})); err != nil {
		t.Fatal(err)
	}
	if !bt.cc.subConns["a:1"].shutdown {
		t.Error("a:1 left but its SubConn was not shut down")
	}
	if got := bt.count("Consume", 4); !eq(got, map[string]int{"c:1": 4}) {
		t.Errorf("Consume after a:1 left: %v", got)
	}
	// No servers at all is a bad state.
	if err := bt.b.UpdateClientConnState(endpoints(nil)); !errors.Is(err, balancer.ErrBadResolverState) {
		t.Errorf("empty state: %v", err)
	}
}

func TestPickerUnknownRoles(t *testing.T) {
	// Discovery refused: the seeds, roles unknown. Everything goes
	// round-robin over them until a NOT_LEADER hint names the leader.
	bt := newBalancerTest(t, map[string]role{"s:1": roleUnknown, "s:2": roleUnknown})
	bt.ready("s:1", "s:2")
	if got := bt.count("Produce", 4); !eq(got, map[string]int{"s:1": 2, "s:2": 2}) {
		t.Errorf("Produce over unknown roles: %v", got)
	}
	if got := bt.count("Consume", 4); !eq(got, map[string]int{"s:1": 2, "s:2": 2}) {
		t.Errorf("Consume over unknown roles: %v", got)
	}
	if err := bt.b.UpdateClientConnState(endpoints(map[string]role{"s:1": roleUnknown, "s:2": roleLeader})); err != nil {
		t.Fatal(err)
	}
	if got := bt.count("Produce", 4); !eq(got, map[string]int{"s:2": 4}) {
		t.Errorf("Produce after a hint: %v", got)
	}
}

func TestBalancerAllDown(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"a:1": roleLeader, "b:1": roleFollower})
	if bt.cc.state.ConnectivityState != connectivity.Connecting {
		t.Fatalf("initial state %v", bt.cc.state.ConnectivityState)
	}
	bt.setState("a:1", connectivity.TransientFailure)
	bt.setState("b:1", connectivity.TransientFailure)
	if bt.cc.state.ConnectivityState != connectivity.TransientFailure {
		t.Fatalf("state %v", bt.cc.state.ConnectivityState)
	}
	_, err := bt.pick("Consume", routeDefault)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("pick with every server down: %v", err)
	}
	// Reconnecting keeps the failure state (no flapping to CONNECTING)...
	bt.setState("a:1", connectivity.Connecting)
	if bt.cc.state.ConnectivityState != connectivity.TransientFailure {
		t.Fatalf("state while reconnecting %v", bt.cc.state.ConnectivityState)
	}
	// ...until a server is back.
	bt.setState("a:1", connectivity.Ready)
	if addr, err := bt.pick("Produce", routeDefault); err != nil || addr != "a:1" {
		t.Fatalf("after recovery: %s, %v", addr, err)
	}
}

func TestPickerRecordsWhatWasSent(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"a:1": roleLeader})
	bt.ready("a:1")
	ci := &callInfo{}
	res, err := bt.cc.state.Picker.Pick(balancer.PickInfo{FullMethodName: "/log.v1.Log/Produce", Ctx: withCallInfo(context.Background(), ci)})
	if err != nil {
		t.Fatal(err)
	}
	if addr, ro, sent := ci.result(); addr != "a:1" || ro != roleLeader || sent {
		t.Fatalf("after pick: %s %v %v", addr, ro, sent)
	}
	res.Done(balancer.DoneInfo{BytesSent: true})
	if _, _, sent := ci.result(); !sent {
		t.Fatal("BytesSent not recorded")
	}
}

// pickPart picks for a call of partition route pr with route rt.
func (bt *balancerTest) pickPart(rt route, pr *partRoute) (string, error) {
	ctx := withCallInfo(context.Background(), &callInfo{route: rt, part: pr})
	res, err := bt.cc.state.Picker.Pick(balancer.PickInfo{FullMethodName: "/log.v1.Log/Produce", Ctx: ctx})
	if err != nil {
		return "", err
	}
	return res.SubConn.(*fakeSubConn).addr, nil
}

// A partition's calls go by its route, not by discovery's roles: appends
// to its leader (waiting while it connects, to its replicas while it is
// down), reads round-robin to its other replicas; a route naming no
// server discovery knows goes by the roles.
func TestPickerRoutesByPartition(t *testing.T) {
	bt := newBalancerTest(t, map[string]role{"a:1": roleLeader, "b:1": roleFollower, "c:1": roleFollower})
	bt.ready("a:1", "b:1", "c:1")
	pr := &partRoute{leader: "b:1", replicas: []string{"b:1", "c:1"}}
	for range 3 {
		if addr, err := bt.pickPart(routeLeader, pr); err != nil || addr != "b:1" {
			t.Fatalf("append: %s, %v; want the partition leader b:1", addr, err)
		}
		if addr, err := bt.pickPart(routeFollower, pr); err != nil || addr != "c:1" {
			t.Fatalf("read: %s, %v; want the partition follower c:1", addr, err)
		}
	}
	if addr, err := bt.pickPart(routeLeader, &partRoute{leader: "z:9"}); err != nil || addr != "a:1" {
		t.Errorf("unknown leader: %s, %v; want discovery's leader a:1", addr, err)
	}
	bt.setState("b:1", connectivity.Connecting)
	if _, err := bt.pickPart(routeLeader, pr); !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Errorf("leader connecting: %v; want a wait for the next picker", err)
	}
	bt.setState("b:1", connectivity.TransientFailure)
	if addr, err := bt.pickPart(routeLeader, pr); err != nil || addr != "c:1" {
		t.Errorf("leader down: %s, %v; want its other replica c:1 (which names the new leader)", addr, err)
	}
	if addr, err := bt.pickPart(routeFollower, pr); err != nil || addr != "c:1" {
		t.Errorf("read with the leader down: %s, %v", addr, err)
	}
}
