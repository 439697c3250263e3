package replication

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/proglog/proglog/go/internal/testutil"
)

// Every replica of a new group bootstraps with the same InitialServers:
// the group elects a leader of all of them without any Join, and
// replicates to each.
func TestBootstrapInitialServers(t *testing.T) {
	var nodes []*node
	var servers []Server
	for i := range 3 {
		n := &node{t: t, id: fmt.Sprintf("n%d", i), port: testutil.HoldPort(t)}
		n.dir = filepath.Join(t.TempDir(), n.id)
		servers = append(servers, Server{ID: n.id, RPCAddr: n.port.Addr()})
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.mod = func(c *Config) { c.Bootstrap, c.InitialServers = true, servers }
		n.start()
		t.Cleanup(n.stop)
	}
	leader := leaderOf(t, nodes)
	got, err := leader.GetServers()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(got))
	for _, s := range got {
		if !s.Voter {
			t.Errorf("%s is not a voter", s.ID)
		}
		ids = append(ids, s.ID+"@"+s.RPCAddr)
	}
	slices.Sort(ids)
	want := []string{"n0@" + servers[0].RPCAddr, "n1@" + servers[1].RPCAddr, "n2@" + servers[2].RPCAddr}
	if !slices.Equal(ids, want) {
		t.Fatalf("servers %v, want %v", ids, want)
	}
	ctx := ctxT(t)
	appendRecs(t, ctx, leader, 3)
	for _, n := range nodes {
		if got := waitData(t, n, 3); string(got[2]) != string(rec(2)) {
			t.Fatalf("%s holds %q at 2", n.id, got[2])
		}
	}
	// A restart with state does not bootstrap again.
	nodes[1].restart()
	testutil.Eventually(t, "n1 to know the leader again", 20*time.Second, func() bool { id, _ := nodes[1].Leader(); return id != "" })
}
