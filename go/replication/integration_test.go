package replication

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/mux"
)

// Log is the discovery handler the agent wires in.
var _ discovery.Handler = (*Log)(nil)

// gossipNode is a replica whose membership comes from discovery alone.
type gossipNode struct {
	*node
	membership atomic.Pointer[discovery.Membership]
	deaf       atomic.Bool // drop membership events, as if they were lost
	repl       *Log        // node.Log at start (node.stop clears that field)
}

// Join implements discovery.Handler: the replica's, unless deaf.
func (g *gossipNode) Join(id, addr string, voter bool) error {
	if g.deaf.Load() {
		return nil
	}
	return g.repl.Join(id, addr, voter)
}

// Leave implements discovery.Handler.
func (g *gossipNode) Leave(id string) error {
	if g.deaf.Load() {
		return nil
	}
	return g.repl.Leave(id)
}

func startGossipNode(t *testing.T, id string, bootstrap bool, key []byte, ca *certs.Authority, join ...string) (*gossipNode, error) {
	t.Helper()
	kp, err := ca.IssueServer()
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}
	g := &gossipNode{}
	n := &node{t: t, id: id, dir: filepath.Join(t.TempDir(), id)}
	n.muxMod = func(c *mux.Config) {
		c.InsecurePlaintext = false
		c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		c.PeerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	}
	n.mod = func(c *Config) {
		c.Bootstrap = bootstrap
		// The new leader reconciles: membership events it missed while there
		// was no leader are handed to Join/Leave again.
		c.OnLeadershipChange = func(isLeader bool) {
			if m := g.membership.Load(); isLeader && m != nil {
				go func() {
					if err := m.Reconcile(); err != nil && !errors.Is(err, discovery.ErrClosed) {
						c.Logger.Warn("reconcile", "error", err)
					}
				}()
			}
		}
	}
	n.start()
	t.Cleanup(n.stop)
	g.node, g.repl = n, n.Log

	dc := discovery.DefaultConfig()
	dc.NodeName = id
	dc.BindAddr = "127.0.0.1:0"
	dc.Profile = discovery.ProfileLocal
	dc.EncryptKey = key
	dc.Tags = map[string]string{discovery.TagRPCAddr: n.Addr(), discovery.TagVoter: "true"}
	dc.StartJoinAddrs = join
	dc.Logger = testLogger(t, id+".discovery")
	m, err := discovery.New(dc, g) // the replica, through the deaf switch
	if err != nil {
		return g, err
	}
	t.Cleanup(func() { m.Close() })
	g.membership.Store(m)
	if n.IsLeader() {
		go m.Reconcile()
	}
	return g, nil
}

func serverIDs(t *testing.T, l *Log) map[string]bool {
	servers, err := l.GetServers()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range servers {
		ids[s.ID] = s.Voter
	}
	return ids
}

func TestClusterFormsByGossip(t *testing.T) {
	ca, err := certs.NewAuthority("cluster", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	g0, err := startGossipNode(t, "g0", true, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, g0.node)
	seed := g0.membership.Load().Addr()
	nodes := []*gossipNode{g0}
	for _, id := range []string{"g1", "g2"} {
		g, err := startGossipNode(t, id, false, key, ca, seed)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, g)
	}
	testutil.Eventually(t, "the leader to add both nodes by gossip", 30*time.Second, func() bool {
		ids := serverIDs(t, g0.Log)
		return len(ids) == 3 && ids["g1"] && ids["g2"]
	})
	ctx := ctxT(t)
	if _, err := g0.Append(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	for _, g := range nodes {
		waitData(t, g.node, 1)
	}

	// A node without the gossip key is not admitted, though it has a valid
	// TLS certificate and a Raft replica ready to join.
	for _, bad := range [][]byte{[]byte("fedcba9876543210fedcba9876543210"), nil} {
		if bad == nil {
			// No key at all needs the explicit test-only switch.
			if _, err := startGossipNode(t, "intruder-nokey", false, nil, ca, seed); !errors.Is(err, discovery.ErrInvalidConfig) {
				t.Fatalf("keyless gossip without AllowInsecureGossip: %v", err)
			}
			continue
		}
		if _, err := startGossipNode(t, "intruder", false, bad, ca, seed); !errors.Is(err, discovery.ErrJoin) {
			t.Fatalf("wrong-key node joining: %v, want ErrJoin", err)
		}
	}
	// A legitimate late node is admitted; by then an intruder would have been.
	g3, err := startGossipNode(t, "g3", false, key, ca, nodes[1].membership.Load().Addr())
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "g3 to be added", 30*time.Second, func() bool { return len(serverIDs(t, g0.Log)) == 4 })
	ids := serverIDs(t, g0.Log)
	if _, in := ids["intruder"]; in {
		t.Fatalf("intruder admitted: %v", ids)
	}
	waitData(t, g3.node, 1)

	// A graceful leave removes the node from the Raft configuration.
	if err := g3.membership.Load().Leave(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "g3 to be removed after leaving", 30*time.Second, func() bool {
		_, in := serverIDs(t, g0.Log)["g3"]
		return !in
	})
}

func TestNewLeaderReconcilesMissedJoins(t *testing.T) {
	ca, err := certs.NewAuthority("cluster", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef")
	g0, err := startGossipNode(t, "g0", true, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, g0.node)
	seed := g0.membership.Load().Addr()
	g1, err := startGossipNode(t, "g1", false, key, ca, seed)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := startGossipNode(t, "g2", false, key, ca, seed)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "three servers", 30*time.Second, func() bool { return len(serverIDs(t, g0.Log)) == 3 })
	// g3's join event is lost everywhere (no one handles it)...
	for _, g := range []*gossipNode{g0, g1, g2} {
		g.deaf.Store(true)
	}
	g3, err := startGossipNode(t, "g3", false, key, ca, seed)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "everyone to see g3 alive", 30*time.Second, func() bool {
		for _, g := range []*gossipNode{g0, g1, g2} {
			found := false
			for _, m := range g.membership.Load().Members() {
				found = found || (m.Name == "g3" && m.Status == discovery.StatusAlive)
			}
			if !found {
				return false
			}
		}
		return true
	})
	if _, in := serverIDs(t, g0.Log)["g3"]; in {
		t.Fatal("g3 added although its join was dropped")
	}
	g1.deaf.Store(false)
	g2.deaf.Store(false)
	// ...so only the next leader's Reconcile can add it.
	g0.stop()
	start := time.Now()
	nl := leaderOf(t, []*node{g1.node, g2.node})
	t.Logf("new leader %s after %v", nl.id, time.Since(start))
	testutil.Eventually(t, "the new leader to add g3", 30*time.Second, func() bool { _, in := serverIDs(t, nl.Log)["g3"]; return in })
	t.Logf("g3 added %v after g0 stopped", time.Since(start))
	if _, err := nl.Append(ctxT(t), rec(0)); err != nil {
		t.Fatal(err)
	}
	waitData(t, g3.node, 1)
}
