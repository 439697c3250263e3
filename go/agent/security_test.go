package agent_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/mux"
	"github.com/proglog/proglog/go/replication"
)

// metric returns the value of series (name{labels} as exposed) on n's
// /metrics endpoint, and whether it is there.
func metric(t *testing.T, n *node, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + n.a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f, true
		}
	}
	return 0, false
}

// refusingListener holds a port where nothing speaks proglog: it closes
// every connection it accepts.
func refusingListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// rogueMember joins the cluster's gossip through join with the gossip key
// but no certificate, claiming to be a voter at rpcAddr.
func rogueMember(t *testing.T, e *env, name, rpcAddr, join string) {
	t.Helper()
	key, err := agent.DecodeGossipKey(e.key)
	if err != nil {
		t.Fatal(err)
	}
	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = name
	sc.Tags["rpc_addr"] = rpcAddr
	sc.Tags["voter"] = "true"
	sc.Logger = hclog.NewNullLogger().StandardLogger(nil)
	ml := memberlist.DefaultLocalConfig()
	ml.BindAddr, ml.BindPort, ml.AdvertisePort = "127.0.0.1", 0, 0
	ml.SecretKey = key
	ml.Logger = sc.Logger
	sc.MemberlistConfig = ml
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	if _, err := s.Join([]string{join}, true); err != nil {
		t.Fatalf("rogue %s join: %v", name, err)
	}
}

// Attack 1 of docs/security.md: gossip members holding the gossip key but
// no certificate do not become Raft servers; the cluster keeps its voters
// and its leader, and counts them.
func TestRogueGossipMembersDoNotJoinRaft(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	nodes := cluster3(t, e)
	n0 := nodes[0]
	// Three members at addresses where no node answers, and one at the
	// address of a real node of the CA (another cluster's), whose
	// certificate names that node, not the member.
	other, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	cx := e.config("x")
	cx.GossipKey, cx.Bootstrap = other, true
	x := e.start(cx)
	rogues := []string{"rogue-1", "rogue-2", "rogue-3", "rogue-4"}
	for _, name := range rogues[:3] {
		rogueMember(t, e, name, refusingListener(t), n0.a.SerfAddr())
	}
	rogueMember(t, e, rogues[3], x.a.Addr(), n0.a.SerfAddr())
	testutil.Eventually(t, "the leader to see the rogue members", 30*time.Second, func() bool {
		seen := 0
		for _, m := range n0.a.Members() {
			if strings.HasPrefix(m.Name, "rogue-") {
				seen++
			}
		}
		return seen == len(rogues)
	})
	// Each member event was handled by the metadata leader (n0 unless a
	// loaded machine moved leadership, which the rogues must not cause
	// but a slow disk may): the rogues are either refused (counted there)
	// or, without the identity check, Raft servers.
	var meta *node
	testutil.Eventually(t, "the rogue members to be handled", 30*time.Second, func() bool {
		for _, n := range nodes {
			if !n.a.Metadata().IsLeader() {
				continue
			}
			v, _ := metric(t, n, "proglog_membership_unverified_members")
			if v == float64(len(rogues)) || len(n.servers()) > 3 {
				meta = n
				return true
			}
		}
		return false
	})
	if s := meta.servers(); len(s) != 3 || !s["n0"] || !s["n1"] || !s["n2"] {
		t.Fatalf("Raft configuration %v, want voters n0, n1, n2 only", s)
	}
	if got := meta.a.Metadata().UnverifiedMembers(); strings.Join(got, ",") != strings.Join(rogues, ",") {
		t.Errorf("UnverifiedMembers = %v, want %v", got, rogues)
	}
	// The cluster keeps serving: the default topic has a leader among
	// the three and takes produces.
	var lead *node
	testutil.Eventually(t, "a leader of the default topic", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.IsLeader() {
				lead = n
				return true
			}
		}
		return false
	})
	for i := range 5 {
		lead.produce(ctx, i)
	}
	sameRecords(t, ctx, lead.readAll(ctx, 5), nodes...)
}

// raftClient is a Raft transport dialing with the certificate of files.
func raftClient(t *testing.T, e *env, files auth.TLSConfig, group string) *raft.NetworkTransport {
	t.Helper()
	serverTLS, err := files.Server()
	if err != nil {
		t.Fatal(err)
	}
	peerTLS, err := files.Client()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := mux.DefaultConfig()
	mc.ServerTLS, mc.PeerTLS = serverTLS, peerTLS
	mc.Logger = hclog.NewNullLogger()
	m, err := mux.New(ln, mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	rn, err := replication.NewTransport(m.DialRaft, m.RaftConns(), replication.DefaultTransportConfig())
	if err != nil {
		t.Fatal(err)
	}
	sl, err := rn.Group(group) // a group of the nodes': the attack reaches their peer checks
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: sl, MaxPool: 1, Timeout: 5 * time.Second,
		Logger: hclog.NewNullLogger()})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// Attack 2 of docs/security.md: certificates of the cluster's CA that do
// not belong to a member cannot speak Raft to the leader, and a member's
// certificate cannot speak under another server ID: the leader counts the
// rejections, and no node adopts the attacker's term (which would make the
// leader step down) or follows it.
func TestRaftRejectsPeersThatAreNotMembers(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 2*time.Minute)
	nodes := cluster3(t, e)
	n0 := nodes[0]
	term := func(n *node) uint64 {
		v, err := strconv.ParseUint(n.a.Replica().Stats()["term"], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	shared := auth.TLSConfig{CertFile: e.certs.ServerCert, KeyFile: e.certs.ServerKey, CAFile: e.certs.CACert}
	for _, tc := range []struct {
		what   string
		files  auth.TLSConfig
		id     string
		reason string
	}{
		{"a serverAuth certificate naming no node", shared, "evil", "no_identity"},
		{"the certificate of a node that is not a member", e.nodeTLS("evil"), "evil", "not_member"},
		{"a member's certificate under another ID", e.nodeTLS("n1"), "evil", "id_mismatch"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			before, _ := metric(t, n0, `proglog_raft_peer_rejections_total{reason="`+tc.reason+`"}`)
			tr := raftClient(t, e, tc.files, n0.defaultGroup())
			attack := term(n0) + 100
			req := &raft.AppendEntriesRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(tc.id), Addr: []byte("127.0.0.1:9198")},
				Term:      attack,
			}
			var resp raft.AppendEntriesResponse
			err := tr.AppendEntries(raft.ServerID(n0.name()), raft.ServerAddress(n0.a.Addr()), req, &resp)
			if err == nil {
				t.Fatalf("%s: AppendEntries answered %+v", tc.what, resp)
			}
			for _, n := range nodes {
				if got := term(n); got >= attack {
					t.Fatalf("%s: %s took the attacker's term %d", tc.what, n.name(), got)
				}
				if id, addr := n.a.Leader(); id == tc.id || addr == "127.0.0.1:9198" {
					t.Fatalf("%s: %s follows %s at %s", tc.what, n.name(), id, addr)
				}
			}
			testutil.Eventually(t, "the rejection to be counted", 10*time.Second, func() bool {
				after, _ := metric(t, n0, `proglog_raft_peer_rejections_total{reason="`+tc.reason+`"}`)
				return after > before
			})
		})
	}
	// The cluster still takes writes (at n0, unless a loaded machine made
	// it lose its lease meanwhile).
	var leader *node
	testutil.Eventually(t, "a leader", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	leader.produce(ctx, 0)
}

// A node refuses to start with a certificate that is not its own.
func TestNewRefusesCertificateNotNamingTheNode(t *testing.T) {
	e := newEnv(t)
	ca, err := certs.LoadAuthority(e.certs.CACert, e.certs.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, kp *certs.KeyPair) auth.TLSConfig {
		f := auth.TLSConfig{CertFile: e.certs.NodeCert(name), KeyFile: e.certs.NodeKey(name), CAFile: e.certs.CACert}
		if err := kp.Write(f.CertFile, f.KeyFile); err != nil {
			t.Fatal(err)
		}
		return f
	}
	u, _ := nodeid.URI("n1")
	serverOnly, err := ca.Issue(certs.Request{CommonName: "n1", Hosts: []string{"127.0.0.1"}, URIs: []*url.URL{u}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	otherHost, err := ca.Issue(certs.Request{CommonName: "n1", Hosts: []string{"10.9.9.9"}, URIs: []*url.URL{u}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what  string
		files auth.TLSConfig
		want  error
	}{
		{"the shared server.pem", auth.TLSConfig{CertFile: e.certs.ServerCert, KeyFile: e.certs.ServerKey, CAFile: e.certs.CACert}, nodeid.ErrNoIdentity},
		{"another node's certificate", e.nodeTLS("n2"), nodeid.ErrNotNodeCert},
		{"no clientAuth usage", write("server-only", serverOnly), nodeid.ErrNotNodeCert},
		{"no SAN for the advertised host", write("other-host", otherHost), nodeid.ErrNotNodeCert},
	} {
		cfg := e.config("n1")
		cfg.TLS = tc.files
		cfg.Bootstrap = true
		a, err := agent.New(cfg)
		if err == nil {
			a.Shutdown(ctxT(t, 20*time.Second))
			t.Errorf("%s: New succeeded", tc.what)
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "proglog certs --node n1") {
			t.Errorf("%s: New: %v, want %v naming the fix", tc.what, err, tc.want)
		}
	}
}

// The metadata group's Raft takes the same peer checks as the partitions':
// the certificate of a node that is not a member, and a member's under
// another ID, cannot speak Raft to the metadata leader. The rejections are
// counted and the leader keeps its leadership (an AppendEntries of a
// higher term would have made it step down).
func TestMetadataRaftRejectsPeersThatAreNotMembers(t *testing.T) {
	e := newEnv(t)
	nodes := cluster3(t, e)
	var leader *node
	testutil.Eventually(t, "a metadata leader", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.Metadata().IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	for _, tc := range []struct {
		files  auth.TLSConfig
		id     string
		reason string
	}{
		{e.nodeTLS("evil"), "evil", "not_member"},
		{e.nodeTLS("n1"), "evil", "id_mismatch"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			before, _ := metric(t, leader, `proglog_raft_peer_rejections_total{reason="`+tc.reason+`"}`)
			tr := raftClient(t, e, tc.files, "meta")
			req := &raft.AppendEntriesRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(tc.id), Addr: []byte("127.0.0.1:9198")},
				Term:      1 << 40,
			}
			var resp raft.AppendEntriesResponse
			if err := tr.AppendEntries(raft.ServerID(leader.name()), raft.ServerAddress(leader.a.Addr()), req, &resp); err == nil {
				t.Fatalf("AppendEntries answered %+v", resp)
			}
			if !leader.a.Metadata().IsLeader() {
				t.Fatalf("%s lost the metadata group's leadership to the attack", leader.name())
			}
			testutil.Eventually(t, "the rejection to be counted", 10*time.Second, func() bool {
				after, _ := metric(t, leader, `proglog_raft_peer_rejections_total{reason="`+tc.reason+`"}`)
				return after > before
			})
		})
	}
}
