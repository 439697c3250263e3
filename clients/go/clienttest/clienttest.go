// Package clienttest is a test double of a proglog cluster with topics:
// n in-process gRPC servers (logv1.LogServer over mutual TLS on loopback,
// with go/certs' development certificates) sharing one in-memory state of
// topics, partitions and records. It answers as log.proto says a cluster
// does — NOT_LEADER naming the partition's leader from a server that does
// not lead it, NOT_FOUND for an unknown topic or partition, GetMetadata
// with the partitions' replicas and leaders, CreateTopic and DeleteTopic
// on the metadata leader only, UNAVAILABLE with reason NO_LEADER for a
// partition left without a leader, and consumer groups as log.proto's
// protocol says (groups.go: member calls on the metadata leader only, the
// hand-over rule, fencing; sessions end when the test expires them, never
// by the clock) — without consensus, storage or ACLs, so that the
// clients' topic routing, metadata handling and consumers can be tested
// against servers whose leaders, replicas, liveness and group members the test moves. It is not a proglog
// server: tests of the real one use go/server.
package clienttest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/proglog/proglog/go/certs"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// DefaultTopic is the topic a request naming none goes to; New creates it
// with one partition led by server 0.
const DefaultTopic = "log"

// Call is one request a server received.
type Call struct {
	Method    string // "Produce", "ProduceBatch", "Consume", "ConsumeStream", "GetBounds", "GetMetadata", ...
	Topic     string // as sent ("" for the default topic)
	Partition uint32
	Producer  uint64 // a produce's idempotent producer ID (0: none)
	// Group, MemberID and Generation are a group member call's (JoinGroup,
	// Heartbeat, LeaveGroup, CommitOffsets); Offsets a CommitOffsets'
	// positions by "topic/partition".
	Group, MemberID string
	Generation      uint64
	Offsets         map[string]uint64
}

// Cluster is the double: n servers and their shared state.
type Cluster struct {
	// Certs are the development certificates in New's dir/certs: a client
	// connects with CACert and ClientCert("root")/ClientKey("root"), or
	// the CLI with --dev dir.
	Certs certs.DevFiles

	servers []*server

	mu         sync.Mutex
	topics     map[string]*topic
	metaLeader int
	acls       []*logv1.ACLRule // CreateACLs' rules, in order
	// metadataErrs are the errors the next GetMetadata calls fail with.
	metadataErrs []error
	// hung are the servers that do not answer (Hang), by index.
	hung map[int]bool
	// unhung is closed and replaced when a server answers again.
	unhung chan struct{}
	// refuseServers: GetServers answers PERMISSION_DENIED.
	refuseServers bool
	// states are the servers' liveness, by index (alive by default).
	states  []logv1.ServerState
	changed chan struct{} // closed and replaced when records are appended

	// Consumer groups (groups.go).
	groups            map[string]*group
	groupChange       chan struct{} // closed and replaced when a group changes
	heartbeatInterval time.Duration
	groupErrs         map[string][]error
}

type topic struct {
	config     *logv1.TopicConfig
	partitions []*partition
}

type partition struct {
	replicas []int // server indexes, preference order
	adding   []int // replicas still catching up (not in sync)
	leader   int   // the server that leads (-1: none, see SetNoLeader)
	reported int   // the leader GetMetadata reports (-1: none)
	records  []*logv1.Record
}

type server struct {
	logv1.UnimplementedLogServer
	c    *Cluster
	idx  int
	addr string
	grpc *grpc.Server

	mu    sync.Mutex
	calls []Call
}

// New starts n servers on 127.0.0.1:0 with the development certificates
// of dir/certs (made if missing). Server 0 is the metadata leader and
// leads the default topic's one partition. Close stops them.
func New(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("clienttest: %d servers, want at least 1", n)
	}
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := serverTLS(files)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Certs: files, topics: map[string]*topic{}, changed: make(chan struct{}), hung: map[int]bool{}, unhung: make(chan struct{}),
		groups: map[string]*group{}, groupChange: make(chan struct{}), heartbeatInterval: time.Second, groupErrs: map[string][]error{}}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.Close()
			return nil, err
		}
		s := &server{c: c, idx: i, addr: lis.Addr().String()}
		s.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
			grpc.UnaryInterceptor(s.hangUnary), grpc.StreamInterceptor(s.hangStream))
		logv1.RegisterLogServer(s.grpc, s)
		c.servers = append(c.servers, s)
		c.states = append(c.states, logv1.ServerState_SERVER_STATE_ALIVE)
		go s.grpc.Serve(lis)
	}
	c.CreateTopic(DefaultTopic, 1, 1)
	return c, nil
}

// Close stops the servers.
func (c *Cluster) Close() {
	for _, s := range c.servers {
		s.grpc.Stop()
	}
}

// Addrs returns the servers' addresses, by index.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.addr
	}
	return out
}

// CreateTopic creates topic name as CreateTopic does, without asking:
// partition p's replicas are the servers p, p+1, ... (mod n), led by the
// first. It replaces a topic of that name.
func (c *Cluster) CreateTopic(name string, partitions, replicas int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.createLocked(name, &logv1.TopicConfig{Partitions: uint32(partitions), ReplicationFactor: uint32(replicas)})
}

func (c *Cluster) createLocked(name string, cfg *logv1.TopicConfig) *topic {
	n := len(c.servers)
	t := &topic{config: cfg}
	for p := range int(cfg.GetPartitions()) {
		part := &partition{leader: p % n, reported: p % n}
		for r := range int(cfg.GetReplicationFactor()) {
			part.replicas = append(part.replicas, (p+r)%n)
		}
		t.partitions = append(t.partitions, part)
	}
	c.topics[name] = t
	return t
}

// SetLeader makes server lead partition p of topic; with reported, the
// metadata says so too, otherwise it keeps reporting the old leader (a
// stale hint, as a real cluster's metadata may be for a moment). The
// server is added to the replicas if it is not one.
func (c *Cluster) SetLeader(topicName string, p uint32, server int, reported bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	part := c.topics[topicName].partitions[p]
	part.leader = server
	if !slices.Contains(part.replicas, server) {
		part.replicas = append(part.replicas, server)
	}
	if reported {
		part.reported = server
	}
}

// SetReplicas moves partition p of topic to replicas (server indexes,
// preference order), the last adding of them still catching up (not in
// sync). A leader that is not among them is replaced by the first, in the
// metadata too. Clients learn of it from GetMetadata only: the servers of
// the old replicas keep serving reads.
func (c *Cluster) SetReplicas(topicName string, p uint32, replicas []int, adding ...int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	part := c.topics[topicName].partitions[p]
	part.replicas, part.adding = slices.Clone(replicas), slices.Clone(adding)
	if !slices.Contains(replicas, part.leader) {
		part.leader, part.reported = replicas[0], replicas[0]
	}
}

// SetServerState sets server i's liveness as GetServers and GetMetadata
// report it: a replica on a server not alive is not in sync, and counts
// as unreachable in SetNoLeader's answers.
func (c *Cluster) SetServerState(i int, state logv1.ServerState) {
	c.mu.Lock()
	c.states[i] = state
	c.mu.Unlock()
}

// SetNoLeader leaves partition p of topic without a leader: calls that
// need one fail with UNAVAILABLE, reason NO_LEADER, naming the replicas
// on servers not alive (SetServerState) as a real cluster does. SetLeader
// elects one again.
func (c *Cluster) SetNoLeader(topicName string, p uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	part := c.topics[topicName].partitions[p]
	part.leader, part.reported = -1, -1
}

// SetMetadataLeader makes server the metadata leader (CreateTopic and
// DeleteTopic go there).
func (c *Cluster) SetMetadataLeader(server int) {
	c.mu.Lock()
	c.metaLeader = server
	c.mu.Unlock()
}

// Hang makes server i stop answering (hang true), as a server cut off by
// the network or stopped mid-call: its calls are recorded (Calls, Method
// only) and then wait until their context ends or Hang(i, false).
func (c *Cluster) Hang(i int, hang bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hung[i] = hang
	if !hang {
		close(c.unhung)
		c.unhung = make(chan struct{})
	}
}

// hold records a call to a hung server and waits until the server
// answers again (true) or ctx ends (false); it returns true at once for a
// server that is not hung.
func (s *server) hold(ctx context.Context, fullMethod string) bool {
	for recorded := false; ; recorded = true {
		s.c.mu.Lock()
		hung, unhung := s.c.hung[s.idx], s.c.unhung
		s.c.mu.Unlock()
		if !hung {
			return true
		}
		if !recorded {
			s.record(fullMethod[strings.LastIndex(fullMethod, "/")+1:], "", 0)
		}
		select {
		case <-ctx.Done():
			return false
		case <-unhung:
		}
	}
}

func (s *server) hangUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.hold(ctx, info.FullMethod) {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}

func (s *server) hangStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.hold(ss.Context(), info.FullMethod) {
		return status.FromContextError(ss.Context().Err()).Err()
	}
	return handler(srv, ss)
}

// RefuseGetServers makes GetServers answer PERMISSION_DENIED (refuse
// true), as servers do to a client whose ACL lacks "servers": the client
// then knows only its seeds and what the answers name.
func (c *Cluster) RefuseGetServers(refuse bool) {
	c.mu.Lock()
	c.refuseServers = refuse
	c.mu.Unlock()
}

// FailMetadata makes the next GetMetadata calls fail with errs, one each
// (e.g. status.Error(codes.Unavailable, ...), as a cluster without a
// server able to answer).
func (c *Cluster) FailMetadata(errs ...error) {
	c.mu.Lock()
	c.metadataErrs = append(c.metadataErrs, errs...)
	c.mu.Unlock()
}

// Records returns the values of partition p of topic, in offset order.
func (c *Cluster) Records(topicName string, p uint32) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.topics[topicName].partitions[p].records {
		out = append(out, string(r.GetValue()))
	}
	return out
}

// Calls returns the requests server i received, in order.
func (c *Cluster) Calls(i int) []Call {
	s := c.servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *server) record(method, topic string, p uint32, producer ...*logv1.Producer) {
	var id uint64
	for _, pr := range producer {
		id = pr.GetId()
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Topic: topic, Partition: p, Producer: id})
	s.mu.Unlock()
}

func statusWithInfo(code codes.Code, msg, reason string, md map[string]string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "proglog", Metadata: md})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// partitionOf returns the partition a request names. c.mu is held.
func (c *Cluster) partitionOf(name string, p uint32) (*partition, error) {
	if name == "" {
		name = DefaultTopic
	}
	t, ok := c.topics[name]
	if !ok {
		return nil, statusWithInfo(codes.NotFound, fmt.Sprintf("topic %q does not exist", name), "UNKNOWN_TOPIC", map[string]string{"topic": name})
	}
	if int(p) >= len(t.partitions) {
		return nil, statusWithInfo(codes.NotFound, fmt.Sprintf("topic %q has no partition %d", name, p), "UNKNOWN_PARTITION",
			map[string]string{"topic": name, "partition": strconv.FormatUint(uint64(p), 10)})
	}
	return t.partitions[p], nil
}

// notLeader is the NOT_LEADER answer naming server i (-1: none).
func (c *Cluster) notLeader(i int) error {
	md := map[string]string{"leader_id": "", "leader_addr": ""}
	if i >= 0 {
		md["leader_id"], md["leader_addr"] = serverID(i), c.servers[i].addr
	}
	return statusWithInfo(codes.FailedPrecondition, "not the leader", "NOT_LEADER", md)
}

func serverID(i int) string { return fmt.Sprintf("s%d", i) }

// leaderPartition returns the partition if s leads it, NOT_LEADER
// otherwise. c.mu is held.
func (s *server) leaderPartition(topicName string, p uint32) (*partition, error) {
	part, err := s.c.partitionOf(topicName, p)
	if err != nil {
		return nil, err
	}
	if part.leader < 0 {
		return nil, s.c.noLeader(topicName, p, part)
	}
	if part.leader != s.idx {
		return nil, s.c.notLeader(part.leader)
	}
	return part, nil
}

// noLeader is the NO_LEADER answer for part. c.mu is held.
func (c *Cluster) noLeader(topicName string, p uint32, part *partition) error {
	if topicName == "" {
		topicName = DefaultTopic
	}
	var unreachable []string
	for _, r := range part.replicas {
		if !c.alive(r) {
			unreachable = append(unreachable, serverID(r))
		}
	}
	return statusWithInfo(codes.Unavailable, fmt.Sprintf("partition %s/%d has no leader: %d of its %d replicas are unreachable", topicName, p, len(unreachable), len(part.replicas)), "NO_LEADER",
		map[string]string{"topic": topicName, "partition": strconv.FormatUint(uint64(p), 10), "replicas": strconv.Itoa(len(part.replicas)), "unreachable": strings.Join(unreachable, ",")})
}

// alive reports whether server i is alive. c.mu is held.
func (c *Cluster) alive(i int) bool {
	return c.states[i] == logv1.ServerState_SERVER_STATE_ALIVE
}

func (c *Cluster) appendLocked(part *partition, recs []*logv1.Record) uint64 {
	first := uint64(len(part.records))
	for i, r := range recs {
		r = proto.Clone(r).(*logv1.Record)
		r.Offset = first + uint64(i)
		if r.Timestamp == nil {
			r.Timestamp = timestamppb.Now()
		}
		part.records = append(part.records, r)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return first
}

func (s *server) Produce(_ context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	s.record("Produce", req.GetTopic(), req.GetPartition(), req.GetProducer())
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	part, err := s.leaderPartition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: s.c.appendLocked(part, []*logv1.Record{req.GetRecord()})}, nil
}

func (s *server) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	s.record("ProduceBatch", req.GetTopic(), req.GetPartition(), req.GetProducer())
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	part, err := s.leaderPartition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	first := s.c.appendLocked(part, req.GetRecords())
	return &logv1.ProduceBatchResponse{FirstOffset: first, Count: uint64(len(req.GetRecords()))}, nil
}

func outOfRange(offset, next uint64) error {
	return statusWithInfo(codes.OutOfRange, fmt.Sprintf("offset %d out of range", offset), "OFFSET_OUT_OF_RANGE",
		map[string]string{"offset": strconv.FormatUint(offset, 10), "lowest": "0", "next": strconv.FormatUint(next, 10)})
}

// readable returns the partition if s may serve a read of consistency
// cons: any replica for follower reads, the leader otherwise.
func (s *server) readable(topicName string, p uint32, cons logv1.Consistency) (*partition, error) {
	if cons == logv1.Consistency_CONSISTENCY_FOLLOWER {
		part, err := s.c.partitionOf(topicName, p)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(part.replicas, s.idx) {
			return nil, s.c.notLeader(max(part.leader, part.replicas[0]))
		}
		return part, nil
	}
	return s.leaderPartition(topicName, p)
}

func (s *server) Consume(_ context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	s.record("Consume", req.GetTopic(), req.GetPartition())
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	part, err := s.readable(req.GetTopic(), req.GetPartition(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	if req.GetOffset() >= uint64(len(part.records)) {
		return nil, outOfRange(req.GetOffset(), uint64(len(part.records)))
	}
	return &logv1.ConsumeResponse{Record: part.records[req.GetOffset()]}, nil
}

func (s *server) ConsumeStream(req *logv1.ConsumeRequest, stream grpc.ServerStreamingServer[logv1.ConsumeResponse]) error {
	s.record("ConsumeStream", req.GetTopic(), req.GetPartition())
	next := req.GetOffset()
	for {
		s.c.mu.Lock()
		part, err := s.readable(req.GetTopic(), req.GetPartition(), logv1.Consistency_CONSISTENCY_FOLLOWER)
		if err != nil {
			s.c.mu.Unlock()
			return err
		}
		recs := slices.Clone(part.records)
		changed := s.c.changed
		s.c.mu.Unlock()
		for ; next < uint64(len(recs)); next++ {
			if err := stream.Send(&logv1.ConsumeResponse{Record: recs[next]}); err != nil {
				return err
			}
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-changed:
		}
	}
}

func (s *server) GetBounds(_ context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	s.record("GetBounds", req.GetTopic(), req.GetPartition())
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	part, err := s.readable(req.GetTopic(), req.GetPartition(), req.GetConsistency())
	if err != nil {
		return nil, err
	}
	return &logv1.GetBoundsResponse{Lowest: 0, Next: uint64(len(part.records))}, nil
}

// serversLocked lists every server; leader marks server leader.
func (c *Cluster) serversLocked(leader int) []*logv1.Server {
	out := make([]*logv1.Server, len(c.servers))
	for i, s := range c.servers {
		out[i] = &logv1.Server{Id: serverID(i), RpcAddr: s.addr, IsLeader: i == leader, State: c.states[i], MetadataVoter: true}
	}
	return out
}

// GetServers marks the default topic's leader.
func (s *server) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	s.record("GetServers", "", 0)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.refuseServers {
		return nil, status.Error(codes.PermissionDenied, `client may not servers on "log"`)
	}
	return &logv1.GetServersResponse{Servers: s.c.serversLocked(s.c.topics[DefaultTopic].partitions[0].leader)}, nil
}

func (c *Cluster) topicMetadataLocked(name string) *logv1.TopicMetadata {
	t := c.topics[name]
	tm := &logv1.TopicMetadata{Name: name, Config: t.config}
	for p, part := range t.partitions {
		pm := &logv1.PartitionMetadata{Partition: uint32(p)}
		for _, r := range part.replicas {
			pm.Replicas = append(pm.Replicas, &logv1.Server{Id: serverID(r), RpcAddr: c.servers[r].addr, IsLeader: r == part.reported, State: c.states[r]})
			if c.alive(r) && !slices.Contains(part.adding, r) {
				pm.InSync = append(pm.InSync, serverID(r))
			}
		}
		if part.reported >= 0 {
			pm.LeaderId = serverID(part.reported)
		}
		tm.Partitions = append(tm.Partitions, pm)
	}
	return tm
}

func (s *server) GetMetadata(_ context.Context, req *logv1.GetMetadataRequest) (*logv1.GetMetadataResponse, error) {
	s.record("GetMetadata", "", 0)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if len(s.c.metadataErrs) > 0 {
		err := s.c.metadataErrs[0]
		s.c.metadataErrs = s.c.metadataErrs[1:]
		return nil, err
	}
	names := req.GetTopics()
	if len(names) == 0 {
		for name := range s.c.topics {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	resp := &logv1.GetMetadataResponse{Servers: s.c.serversLocked(s.c.metaLeader)}
	for _, name := range slices.Compact(names) {
		if _, ok := s.c.topics[name]; !ok {
			return nil, statusWithInfo(codes.NotFound, fmt.Sprintf("topic %q does not exist", name), "UNKNOWN_TOPIC", map[string]string{"topic": name})
		}
		resp.Topics = append(resp.Topics, s.c.topicMetadataLocked(name))
	}
	return resp, nil
}

func (s *server) CreateTopic(_ context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	s.record("CreateTopic", req.GetName(), 0)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.metaLeader != s.idx {
		return nil, s.c.notLeader(s.c.metaLeader)
	}
	name := req.GetName()
	if name == "" || name == "." || name == ".." {
		return nil, statusWithInfo(codes.InvalidArgument, fmt.Sprintf("invalid topic name %q", name), "INVALID_TOPIC", map[string]string{"topic": name})
	}
	if _, ok := s.c.topics[name]; ok {
		return nil, statusWithInfo(codes.AlreadyExists, fmt.Sprintf("topic %q exists", name), "TOPIC_EXISTS", map[string]string{"topic": name})
	}
	cfg := proto.Clone(req.GetConfig()).(*logv1.TopicConfig)
	if cfg == nil {
		cfg = &logv1.TopicConfig{}
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = uint32(min(3, len(s.c.servers)))
	}
	if int(cfg.ReplicationFactor) > len(s.c.servers) {
		return nil, statusWithInfo(codes.FailedPrecondition, "not enough servers", "NOT_ENOUGH_NODES",
			map[string]string{"replication_factor": strconv.Itoa(int(cfg.ReplicationFactor)), "nodes": strconv.Itoa(len(s.c.servers))})
	}
	s.c.createLocked(name, cfg)
	return &logv1.CreateTopicResponse{Topic: s.c.topicMetadataLocked(name)}, nil
}

func (s *server) DeleteTopic(_ context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	s.record("DeleteTopic", req.GetName(), 0)
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.metaLeader != s.idx {
		return nil, s.c.notLeader(s.c.metaLeader)
	}
	if req.GetName() == DefaultTopic {
		return nil, status.Error(codes.InvalidArgument, "the default topic cannot be deleted")
	}
	if _, ok := s.c.topics[req.GetName()]; !ok {
		return nil, statusWithInfo(codes.NotFound, fmt.Sprintf("topic %q does not exist", req.GetName()), "UNKNOWN_TOPIC", map[string]string{"topic": req.GetName()})
	}
	delete(s.c.topics, req.GetName())
	s.c.dropTopicLocked(req.GetName())
	return &logv1.DeleteTopicResponse{}, nil
}
