// Package cluster runs a proglog cluster of real "proglog serve" processes
// for the fault tests: one process per host of a netlab.Lab, each on its
// own address and data directory, with the controls a fault injector needs
// (SIGKILL, SIGSTOP/SIGCONT, graceful leave, restart, lost or damaged
// disks, power cuts and full disks: Config.Disk puts each data directory
// on a powercut FUSE mount or a tmpfs of its own) and a root client
// connection to every node.
//
// A Cluster has more host slots than members: the spare slots are where
// fresh nodes start when membership changes.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
	"github.com/proglog/proglog/tools/faulttest/netlab"
)

// Ports every node listens on, at its own host address.
const (
	RPCPort  = 8400
	SerfPort = 8402
)

// Config describes the cluster to run.
type Config struct {
	// Binary is the proglog executable.
	Binary string
	// Dir holds the run's state: certs/, one data directory and one log
	// file per node.
	Dir string
	// Lab provides the hosts; it needs at least Nodes+1 of them (a spare
	// for membership changes).
	Lab *netlab.Lab
	// Nodes is the initial cluster size.
	Nodes int
	// Raft timing, passed to every node. Short, so that faults are
	// detected and healed within a test's time.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// Snapshot settings, small so that snapshots, log compaction and
	// catch-up from a snapshot happen during a run.
	SnapshotInterval                time.Duration
	SnapshotThreshold, TrailingLogs int
	// ReplicaReplacementDelay is passed as --replica-replacement-delay:
	// how long a node has been leaving before its replicas move. Short,
	// so that a node leaving for good moves its partitions within a
	// fault's time.
	ReplicaReplacementDelay time.Duration
	// Disk is what each node's data directory lives on; DiskBytes is the
	// size of a DiskTmpfs.
	Disk      Disk
	DiskBytes int64
	// Seed drives what a power cut keeps (DiskPowerCut).
	Seed uint64
	// Sync is passed as --sync (empty: proglog's default, always);
	// MinFreeBytes as --min-free-bytes (0: proglog's default).
	Sync         string
	MinFreeBytes uint64
	// Logf receives progress messages (may be nil).
	Logf func(format string, args ...any)
}

// DefaultConfig is a 3-node cluster with fast failure detection.
func DefaultConfig() Config {
	return Config{
		Nodes:              3,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		SnapshotInterval:   time.Second,
		SnapshotThreshold:  2000,
		TrailingLogs:       500,

		ReplicaReplacementDelay: time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Binary == "":
		return errors.New("cluster: Binary is required")
	case c.Dir == "":
		return errors.New("cluster: Dir is required")
	case c.Lab == nil:
		return errors.New("cluster: Lab is required")
	case c.Nodes < 1:
		return fmt.Errorf("cluster: Nodes is %d, want at least 1", c.Nodes)
	case c.Lab.Hosts() < c.Nodes+1:
		return fmt.Errorf("cluster: the lab has %d hosts, %d nodes need %d (one spare)", c.Lab.Hosts(), c.Nodes, c.Nodes+1)
	case c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0:
		return errors.New("cluster: Raft timeouts must be positive")
	case c.SnapshotInterval <= 0 || c.SnapshotThreshold <= 0 || c.TrailingLogs <= 0:
		return errors.New("cluster: snapshot settings must be positive")
	case c.ReplicaReplacementDelay <= 0:
		return errors.New("cluster: ReplicaReplacementDelay must be positive")
	case c.Disk == DiskTmpfs && c.DiskBytes <= int64(c.MinFreeBytes):
		return fmt.Errorf("cluster: a tmpfs disk of %d bytes is not larger than MinFreeBytes %d", c.DiskBytes, c.MinFreeBytes)
	case c.Disk == DiskTmpfs && c.MinFreeBytes == 0:
		return errors.New("cluster: a tmpfs disk needs MinFreeBytes set below its size (proglog's default watermark is larger than a test tmpfs)")
	}
	return nil
}

// Cluster is the set of nodes (members and spare slots) of one run.
type Cluster struct {
	cfg     Config
	files   certs.DevFiles
	keyFile string
	tls     *tls.Config // the root client's
	creds   credentials.TransportCredentials

	mu     sync.Mutex
	slots  []*Node // one per lab host, in host order
	nextID int
	// replaced are the names of the nodes Replace replaced: the cluster
	// lists a node that failed without leaving until discovery reaps it
	// (proglog's default: after 24h).
	replaced []string
	conns    map[string]*grpc.ClientConn
	clients  map[string]logv1.LogClient
}

// New prepares a cluster (certificates, gossip key, directories) without
// starting anything; Start starts it.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	hosts := make([]string, cfg.Lab.Hosts())
	for i := range hosts {
		hosts[i] = cfg.Lab.Host(i)
	}
	files, err := certs.EnsureDev(filepath.Join(cfg.Dir, "certs"), hosts)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	keyFile := filepath.Join(cfg.Dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	tlsCfg, err := auth.TLSConfig{CertFile: files.ClientCert("root"), KeyFile: files.ClientKey("root"), CAFile: files.CACert}.Client()
	if err != nil {
		return nil, fmt.Errorf("cluster: client TLS: %w", err)
	}
	c := &Cluster{
		cfg: cfg, files: files, keyFile: keyFile, tls: tlsCfg, creds: credentials.NewTLS(tlsCfg),
		conns: map[string]*grpc.ClientConn{}, clients: map[string]logv1.LogClient{},
	}
	for i := range hosts {
		c.slots = append(c.slots, &Node{c: c, Slot: i, Host: hosts[i]})
	}
	return c, nil
}

// Start starts the first Nodes slots as a new cluster (the first node
// bootstraps, the others join it) and waits until every one is a member
// and a leader is known.
func (c *Cluster) Start(ctx context.Context) error {
	for i := range c.cfg.Nodes {
		n := c.slots[i]
		c.assign(n)
		var err error
		if i == 0 {
			err = n.start(true, nil)
		} else {
			err = n.start(false, []string{c.slots[0].SerfAddr()})
		}
		if err != nil {
			return err
		}
	}
	return c.WaitMembers(ctx, c.Members(), 30*time.Second)
}

// assign gives slot n a fresh node name and an empty data directory.
func (c *Cluster) assign(n *Node) {
	c.mu.Lock()
	c.nextID++
	n.Name = "n" + strconv.Itoa(c.nextID)
	c.mu.Unlock()
	n.DataDir = c.diskDir(n.Name)
	n.member = true
}

// Nodes returns every slot that holds a node, member or not.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.slots {
		if n.Name != "" {
			out = append(out, n)
		}
	}
	return out
}

// Members returns the nodes that are (or are meant to be) in the Raft
// configuration, running or not.
func (c *Cluster) Members() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.slots {
		if n.member {
			out = append(out, n)
		}
	}
	return out
}

// Running returns the members whose process runs (paused ones included).
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Members() {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// ByAddr returns the member whose RPC address is addr, or nil.
func (c *Cluster) ByAddr(addr string) *Node {
	for _, n := range c.Members() {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// Client returns the root client of node n (one connection per address,
// kept across restarts, reconnecting quickly).
func (c *Cluster) Client(n *Node) logv1.LogClient {
	addr := n.Addr()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[addr]; ok {
		return cl
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(c.creds),
		grpc.WithContextDialer(c.cfg.Lab.GRPCDialer()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 300 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		// NewClient fails only on a malformed target or options: a bug.
		panic(fmt.Sprintf("cluster: client for %s: %v", addr, err))
	}
	cl := logv1.NewLogClient(conn)
	c.conns[addr], c.clients[addr] = conn, cl
	return cl
}

// GoClient returns a new Go client (clients/go) of the cluster as root,
// seeded with every member's address and dialing through the lab's
// network, with opts after those. The caller closes it.
func (c *Cluster) GoClient(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	var addrs []string
	for _, n := range c.Members() {
		addrs = append(addrs, n.Addr())
	}
	all := append([]client.Option{client.WithTLS(c.tls.Clone()), client.WithDialOptions(grpc.WithContextDialer(c.cfg.Lab.GRPCDialer()))}, opts...)
	cl, err := client.New(ctx, strings.Join(addrs, ","), all...)
	if err != nil {
		return nil, fmt.Errorf("cluster: Go client: %w", err)
	}
	return cl, nil
}

// Leader asks every running member who leads (each answering for itself)
// until one says it does, or timeout passes.
func (c *Cluster) Leader(ctx context.Context, timeout time.Duration) (*Node, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range c.Running() {
			if n.Paused() {
				continue
			}
			if c.isLeader(ctx, n) {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster: no leader within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
}

// MetadataLeader finds the metadata group's leader (where consumer
// groups are coordinated) until one answers as it, or timeout passes: it
// sends every running member a heartbeat of a member no group has, which
// only the metadata leader answers other than NOT_LEADER.
func (c *Cluster) MetadataLeader(ctx context.Context, timeout time.Duration) (*Node, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range c.Running() {
			if n.Paused() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := c.Client(n).Heartbeat(cctx, &logv1.HeartbeatRequest{Group: "faulttest.probe", MemberId: "faulttest-probe"})
			cancel()
			if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.Canceled && !notLeader(err) {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster: no metadata leader within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
}

// notLeader reports whether err is a NOT_LEADER refusal.
func notLeader(err error) bool {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == "NOT_LEADER" {
			return true
		}
	}
	return false
}

// isLeader says whether n reports itself the leader.
func (c *Cluster) isLeader(ctx context.Context, n *Node) bool {
	servers, err := c.Servers(ctx, n)
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.IsLeader && s.Id == n.Name {
			return true
		}
	}
	return false
}

// Servers is n's view of the Raft configuration.
func (c *Cluster) Servers(ctx context.Context, n *Node) ([]*logv1.Server, error) {
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	resp, err := c.Client(n).GetServers(cctx, &logv1.GetServersRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Servers, nil
}

// metadata asks the running members in turn for the metadata of topics
// (nil: every topic) until one answers.
func (c *Cluster) metadata(ctx context.Context, topics []string) (*logv1.GetMetadataResponse, error) {
	var lastErr error = errors.New("no running member")
	for _, n := range c.Running() {
		if n.Paused() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := c.Client(n).GetMetadata(cctx, &logv1.GetMetadataRequest{Topics: topics})
		cancel()
		if err == nil {
			return resp, nil
		}
		lastErr = fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil, fmt.Errorf("cluster: metadata: %w", lastErr)
}

// Replicas returns the members holding a replica of partition of topic,
// in the metadata's preference order, as the first running member that
// answers GetMetadata describes it (every node holds the metadata). A
// replica on a node that is no longer a member (it left, or was replaced
// under another name) is not returned.
func (c *Cluster) Replicas(ctx context.Context, topic string, partition uint32) ([]*Node, error) {
	resp, err := c.metadata(ctx, []string{topic})
	if err != nil {
		return nil, err
	}
	for _, t := range resp.Topics {
		if t.Name != topic || int(partition) >= len(t.Partitions) {
			continue
		}
		var out []*Node
		for _, r := range t.Partitions[partition].Replicas {
			if m := c.byName(r.Id); m != nil {
				out = append(out, m)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("cluster: no partition %d of %s in the metadata", partition, topic)
}

// WaitMoved waits until no partition has a replica on the node named
// name (the metadata moved them all to other nodes).
func (c *Cluster) WaitMoved(ctx context.Context, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.metadata(ctx, nil)
		if err == nil {
			held := 0
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					for _, r := range p.Replicas {
						if r.Id == name {
							held++
						}
					}
				}
			}
			if held == 0 {
				return nil
			}
			err = fmt.Errorf("%d replicas still on %s", held, name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: replicas not moved off %s within %v: %w", name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

// LogReplicas returns the members holding a replica of the default
// topic's partition 0, the log the workload writes and Leader leads.
func (c *Cluster) LogReplicas(ctx context.Context) ([]*Node, error) {
	return c.Replicas(ctx, commitlog.DefaultTopic, 0)
}

// wasReplaced says whether Replace replaced the node named name.
func (c *Cluster) wasReplaced(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.replaced, name)
}

// byName returns the member named name, or nil.
func (c *Cluster) byName(name string) *Node {
	for _, n := range c.Members() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// WaitMembers waits until the servers the leader lists are exactly want
// (by name; a node Replace replaced may still be listed, see Replace),
// every one of them answers and every replica of the log knows its
// leader.
func (c *Cluster) WaitMembers(ctx context.Context, want []*Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var names []string
	for _, n := range want {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	var last string
	for time.Now().Before(deadline) {
		leader, err := c.Leader(ctx, time.Until(deadline))
		if err != nil {
			return fmt.Errorf("cluster: waiting for members %v: %w", names, err)
		}
		servers, err := c.Servers(ctx, leader)
		if err == nil {
			var have []string
			for _, s := range servers {
				have = append(have, s.Id)
			}
			slices.Sort(have)
			last = strings.Join(have, ",")
			have = slices.DeleteFunc(have, func(id string) bool { return c.wasReplaced(id) && !slices.Contains(names, id) })
			if slices.Equal(have, names) && c.allKnowLeader(ctx, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
	return fmt.Errorf("cluster: members are [%s] after %v, want %v", last, timeout, names)
}

// allKnowLeader says whether every one of nodes answers GetServers and
// every one holding a replica of the log names its leader (a node holding
// none knows only the leaders of the partitions it hosts).
func (c *Cluster) allKnowLeader(ctx context.Context, nodes []*Node) bool {
	replicas, err := c.LogReplicas(ctx)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		servers, err := c.Servers(ctx, n)
		if err != nil || slices.Contains(replicas, n) && !slices.ContainsFunc(servers, func(s *logv1.Server) bool { return s.IsLeader }) {
			return false
		}
	}
	return true
}

// SpareSlot returns a slot holding no member, preferring one never used (a
// new node then gets an address no member had), or nil.
func (c *Cluster) SpareSlot() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var used *Node
	for _, n := range c.slots {
		if !n.member && !n.Running() {
			if n.Name == "" {
				return n
			}
			if used == nil {
				used = n
			}
		}
	}
	return used
}

// AddNode starts a fresh node (new name, empty disk) on a spare slot,
// joining through the running members, and waits until it is a member.
func (c *Cluster) AddNode(ctx context.Context) (*Node, error) {
	n := c.SpareSlot()
	if n == nil {
		return nil, errors.New("cluster: no spare slot for a new node")
	}
	if n.DataDir != "" {
		if err := n.releaseDisk(); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(n.DataDir); err != nil {
			return nil, fmt.Errorf("cluster: clear slot %d: %w", n.Slot, err)
		}
	}
	var join []string
	for _, m := range c.Running() {
		join = append(join, m.SerfAddr())
	}
	c.assign(n)
	if err := n.start(false, join); err != nil {
		return nil, err
	}
	return n, c.WaitMembers(ctx, c.Members(), 30*time.Second)
}

// RemoveNode stops n gracefully (SIGTERM: it leaves the cluster, the
// leader removes it from Raft) and waits until the others no longer count
// it. Its slot becomes a spare.
func (c *Cluster) RemoveNode(ctx context.Context, n *Node) error {
	if err := n.Terminate(30 * time.Second); err != nil {
		return err
	}
	c.mu.Lock()
	n.member = false
	c.mu.Unlock()
	return c.WaitMembers(ctx, c.Members(), 30*time.Second)
}

// JoinAddrs are the gossip addresses of the running members other than n.
func (c *Cluster) JoinAddrs(n *Node) []string {
	var out []string
	for _, m := range c.Running() {
		if m != n {
			out = append(out, m.SerfAddr())
		}
	}
	if len(out) == 0 {
		for _, m := range c.Members() {
			if m != n {
				out = append(out, m.SerfAddr())
			}
		}
	}
	return out
}

// Random returns a member chosen by rng among those matching keep.
func Random(rng *rand.Rand, nodes []*Node, keep func(*Node) bool) *Node {
	var pick []*Node
	for _, n := range nodes {
		if keep == nil || keep(n) {
			pick = append(pick, n)
		}
	}
	if len(pick) == 0 {
		return nil
	}
	return pick[rng.IntN(len(pick))]
}

// Close kills every node, unmounts their disks and closes the client
// connections.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Nodes() {
		if n.Running() {
			_ = n.Kill()
		}
		errs = append(errs, n.releaseDisk())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	c.conns, c.clients = map[string]*grpc.ClientConn{}, map[string]logv1.LogClient{}
	return errors.Join(errs...)
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// Replace gives a down member's slot to a fresh node (new name, empty
// disk) that joins in its place: the metadata group's join replaces a
// server that comes back at the same address under another name. It is
// what an operator does for a node whose disk is lost or damaged beyond
// what the node repairs itself. The old data directory is kept for
// inspection. The old node stays listed by the cluster, and its replicas
// assigned to it, until discovery reaps it (it never left): its
// partitions run on their other replicas meanwhile.
func (c *Cluster) Replace(ctx context.Context, n *Node) error {
	if n.Running() {
		return fmt.Errorf("cluster: replace %s: it is running", n.Name)
	}
	old := n.Name
	if err := n.releaseDisk(); err != nil {
		return err
	}
	if err := os.Rename(n.DataDir, n.DataDir+".replaced"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cluster: replace %s: %w", old, err)
	}
	join := c.JoinAddrs(n)
	c.mu.Lock()
	c.replaced = append(c.replaced, old)
	c.mu.Unlock()
	c.assign(n)
	if err := n.start(false, join); err != nil {
		return err
	}
	c.cfg.Logf("%s replaced by %s", old, n.Name)
	return c.WaitMembers(ctx, c.Members(), 30*time.Second)
}
