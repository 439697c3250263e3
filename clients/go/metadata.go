package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// DefaultTopic is the topic a request naming none goes to, and the one
// the Client's own produce and read methods use: the cluster creates it
// when it bootstraps, with one partition.
const DefaultTopic = "log"

// DefaultMetadataRefresh is the default of WithMetadataRefresh.
const DefaultMetadataRefresh = 100 * time.Millisecond

// DefaultMetadataMaxAge is the default of WithMetadataMaxAge.
const DefaultMetadataMaxAge = 5 * time.Minute

// TopicConfig is a topic's settings. In CreateTopic, zero values take the
// servers' defaults (one partition; replication factor the smaller of 3
// and the number of servers; no retention bound).
type TopicConfig struct {
	// Partitions is the number of partitions (1 to 1024).
	Partitions int
	// ReplicationFactor is the number of replicas of each partition (1 to
	// 7, at most the number of servers).
	ReplicationFactor int
	// RetentionBytes bounds each partition's records in bytes (0: none).
	RetentionBytes uint64
	// RetentionAge removes records older than it (0: none).
	RetentionAge time.Duration
}

// TopicInfo describes a topic: its settings and partitions.
type TopicInfo struct {
	Name       string
	Config     TopicConfig
	Partitions []PartitionInfo // by partition number
}

// PartitionInfo describes one partition: where its replicas are and which
// one leads (as last reported: a hint, see log.proto's GetMetadata).
type PartitionInfo struct {
	Partition uint32
	// Leader is the leader's API address, empty when not known.
	Leader string
	// LeaderID is the leader's node ID, empty when not known.
	LeaderID string
	// Replicas are the servers holding a replica, in preference order.
	Replicas []Server
	// Epoch counts the changes of the replicas.
	Epoch uint64
	// InSync are the IDs of the replicas that are in sync: not still
	// catching up after a reassignment added them, and on a server that
	// is alive.
	InSync []string
}

// UnderReplicated reports whether fewer replicas are in sync than the
// partition has, or than rf (its topic's replication factor) asks for.
func (p PartitionInfo) UnderReplicated(rf int) bool {
	return len(p.InSync) < max(len(p.Replicas), rf)
}

func topicInfoFromProto(p *logv1.TopicMetadata) TopicInfo {
	cfg := p.GetConfig()
	t := TopicInfo{
		Name: p.GetName(),
		Config: TopicConfig{
			Partitions:        int(cfg.GetPartitions()),
			ReplicationFactor: int(cfg.GetReplicationFactor()),
			RetentionBytes:    cfg.GetRetentionBytes(),
			RetentionAge:      cfg.GetRetentionAge().AsDuration(),
		},
		Partitions: make([]PartitionInfo, len(p.GetPartitions())),
	}
	for i, pm := range p.GetPartitions() {
		pi := PartitionInfo{
			Partition: pm.GetPartition(),
			LeaderID:  pm.GetLeaderId(),
			Replicas:  serversFromProto(pm.GetReplicas()),
			Epoch:     pm.GetEpoch(),
			InSync:    pm.GetInSync(),
		}
		for _, r := range pi.Replicas {
			if r.IsLeader || (pi.LeaderID != "" && r.ID == pi.LeaderID) {
				pi.Leader, pi.LeaderID = r.RPCAddr, r.ID
			}
		}
		t.Partitions[i] = pi
	}
	return t
}

func (c TopicConfig) toProto() *logv1.TopicConfig {
	p := &logv1.TopicConfig{
		Partitions:        uint32(c.Partitions),
		ReplicationFactor: uint32(c.ReplicationFactor),
		RetentionBytes:    c.RetentionBytes,
	}
	if c.RetentionAge > 0 {
		p.RetentionAge = durationpb.New(c.RetentionAge)
	}
	return p
}

// partKey names one partition of a topic.
type partKey struct {
	topic     string
	partition uint32
}

func (k partKey) String() string { return fmt.Sprintf("%s/%d", k.topic, k.partition) }

// partRoute is where a partition's calls go: its leader's address (empty
// when not known) and its replicas' addresses.
type partRoute struct {
	leader   string
	replicas []string
}

// topicEntry is the cached metadata of one topic.
type topicEntry struct {
	info      *TopicInfo // nil: not known (never fetched, or fallback)
	fallback  bool       // the servers gave no metadata: route by discovery
	refusal   error      // fallback: the servers' answer (UNIMPLEMENTED, PERMISSION_DENIED)
	fetchedAt time.Time
	stale     bool
	// leaders are NOT_LEADER hints received since the last fetch.
	leaders map[uint32]string
	// fetching is closed when the fetch in progress ends (nil: none).
	fetching chan struct{}
	// doubted: the last fetch's server did not know the topic, which
	// info says exists (a server whose copy of the metadata lags the
	// metadata leader's, as just after CreateTopic); the next such answer
	// is believed.
	doubted bool
}

// metadataCache keeps each topic's metadata (GetMetadata) for routing.
// An entry is fetched on first use and again, at most once per
// WithMetadataRefresh, after a call found it stale: NOT_LEADER,
// UNAVAILABLE, or NOT_FOUND (unknown topic or partition); and on the
// first use after it is WithMetadataMaxAge old, so that replicas added
// meanwhile get reads without a call having to fail first. Servers that
// answer no metadata (older ones: UNIMPLEMENTED, or an ACL without
// "describe") leave the topic routed by discovery's roles, as before
// topics, asked again after WithDiscoveryInterval.
type metadataCache struct {
	c *Client

	mu     sync.Mutex
	topics map[string]*topicEntry
	// metaLeader is the metadata leader's address, where CreateTopic and
	// DeleteTopic go first: from the last GetMetadata, the last NOT_LEADER
	// answer to one of them, or the server that last answered one.
	metaLeader string
}

func (m *metadataCache) entry(topic string) *topicEntry {
	e, ok := m.topics[topic]
	if !ok {
		e = &topicEntry{stale: true}
		m.topics[topic] = e
	}
	return e
}

// due reports whether e must be fetched now. m.mu is held.
func (m *metadataCache) due(e *topicEntry, now time.Time) bool {
	switch {
	case e.fetchedAt.IsZero():
		return true
	case e.fallback:
		return now.Sub(e.fetchedAt) >= m.c.cfg.discoveryInterval
	default:
		age := now.Sub(e.fetchedAt)
		return (e.stale && age >= m.c.cfg.metadataRefresh) || age >= m.c.cfg.metadataMaxAge
	}
}

// get returns topic's entry, fetching it first when it is due (one fetch
// at a time per topic; concurrent callers wait for it).
func (m *metadataCache) get(ctx context.Context, topic string) (info *TopicInfo, fallback bool, err error) {
	for {
		m.mu.Lock()
		e := m.entry(topic)
		if e.fetching != nil {
			ch := e.fetching
			m.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
		if !m.due(e, time.Now()) {
			info, fallback = e.info, e.fallback
			m.mu.Unlock()
			return info, fallback, nil
		}
		ch := make(chan struct{})
		e.fetching = ch
		m.mu.Unlock()

		infos, servers, ferr := m.c.getMetadata(ctx, []string{topic})
		m.mu.Lock()
		e.fetching = nil
		close(ch)
		if ctx.Err() != nil && ferr != nil {
			m.mu.Unlock()
			return nil, false, ferr // the caller's deadline, not the servers' answer
		}
		info0, fallback0, leaders0, doubted0 := e.info, e.fallback, e.leaders, e.doubted
		e.fetchedAt, e.stale, e.leaders = time.Now(), false, nil
		e.info, e.fallback, e.doubted, e.refusal = nil, false, false, nil
		found := ferr == nil && len(infos) == 1 && infos[0].Name == topic
		switch {
		case found:
			e.info = &infos[0]
			m.metaLeader = leaderOf(servers)
			m.c.rb.learn(append(replicaAddrs(e.info), m.metaLeader)...)
		case info0 != nil && !doubted0 && (ferr == nil || errors.Is(ferr, ErrUnknownTopic)):
			// A topic known to exist, unknown to this server: its copy
			// of the metadata may lag. Keep what was known once, ask
			// again after the refresh interval.
			e.info, e.fallback, e.leaders, e.stale, e.doubted = info0, fallback0, leaders0, true, true
			m.mu.Unlock()
			return info0, fallback0, nil
		case ferr == nil || errors.Is(ferr, ErrUnknownTopic):
			// Not kept: asked again on next use, as the topic may be
			// created meanwhile (the callers waiting for this fetch
			// share its answer).
			if ferr == nil {
				ferr = newUnknownTopicError(topic, nil)
			}
			e.fetchedAt = time.Time{}
			m.mu.Unlock()
			return nil, false, ferr
		case noMetadata(ferr):
			// No metadata from these servers: route as before topics.
			e.fallback, e.refusal = true, ferr
			m.c.cfg.logger.Debug("proglog: no topic metadata; routing by discovery", "topic", topic, "error", ferr)
		default:
			// No answer (UNAVAILABLE, ...): keep what was known, ask again
			// after the refresh interval.
			e.info, e.fallback, e.leaders, e.stale = info0, fallback0, leaders0, true
			m.mu.Unlock()
			return info0, fallback0, ferr
		}
		info, fallback = e.info, e.fallback
		m.mu.Unlock()
		return info, fallback, nil
	}
}

// route returns where key's calls go, nil to route by discovery's roles
// (no metadata, or a partition the metadata does not list).
func (m *metadataCache) route(ctx context.Context, key partKey) *partRoute {
	info, _, _ := m.get(ctx, key.topic)
	m.mu.Lock()
	defer m.mu.Unlock()
	var leaders map[uint32]string
	if e := m.topics[key.topic]; e != nil {
		leaders = e.leaders
	}
	if info == nil || int(key.partition) >= len(info.Partitions) {
		if l := leaders[key.partition]; l != "" {
			return &partRoute{leader: l}
		}
		return nil
	}
	p := info.Partitions[key.partition]
	r := &partRoute{leader: p.Leader, replicas: make([]string, 0, len(p.Replicas))}
	for _, s := range p.Replicas {
		r.replicas = append(r.replicas, s.RPCAddr)
	}
	if l, ok := leaders[key.partition]; ok {
		r.leader = l
	}
	return r
}

// routed reports whether topic is routed by its metadata (not by
// discovery's roles).
func (m *metadataCache) routed(topic string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.topics[topic]
	return e != nil && !e.fallback
}

// knows reports whether the cached metadata has key's partition (fetched,
// or from CreateTopic); it never asks the cluster.
func (m *metadataCache) knows(key partKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.topics[key.topic]
	return e != nil && e.info != nil && int(key.partition) < len(e.info.Partitions)
}

// partitions returns topic's number of partitions; 0 when the servers
// give no metadata.
func (m *metadataCache) partitions(ctx context.Context, topic string) (int, error) {
	info, _, err := m.get(ctx, topic)
	if err != nil {
		return 0, err
	}
	if info == nil {
		return 0, nil
	}
	return len(info.Partitions), nil
}

// refusal returns the servers' refusal to give topic's metadata (nil
// when they gave it, or were not asked); it never asks the cluster.
func (m *metadataCache) refusal(topic string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.topics[topic]; e != nil {
		return e.refusal
	}
	return nil
}

// cachedPartitions returns topic's number of partitions as cached, 0 if
// not known; it never asks the cluster.
func (m *metadataCache) cachedPartitions(topic string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.topics[topic]; e != nil && e.info != nil {
		return len(e.info.Partitions)
	}
	return 0
}

// created caches info, the answer of this client's CreateTopic, so that
// the topic is not unknown to its creator while the servers' copies of
// the metadata catch up with the metadata leader. Its leaders may not be
// elected yet: it is stale, fetched again on use after the refresh
// interval.
func (m *metadataCache) created(info TopicInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(info.Name)
	e.info, e.fallback, e.leaders = &info, false, nil
	e.fetchedAt, e.stale, e.doubted = time.Now(), true, false
}

// replicaAddrs returns the addresses of info's replicas.
func replicaAddrs(info *TopicInfo) []string {
	var out []string
	for _, p := range info.Partitions {
		for _, s := range p.Replicas {
			if !slices.Contains(out, s.RPCAddr) {
				out = append(out, s.RPCAddr)
			}
		}
	}
	return out
}

// hint records a NOT_LEADER answer's leader for key and marks the topic
// stale.
func (m *metadataCache) hint(key partKey, leader string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(key.topic)
	e.stale = true
	if e.leaders == nil {
		e.leaders = map[uint32]string{}
	}
	e.leaders[key.partition] = leader
}

// invalidate marks topic stale: the next call refetches it (at most once
// per WithMetadataRefresh).
func (m *metadataCache) invalidate(topic string) {
	m.mu.Lock()
	m.entry(topic).stale = true
	m.mu.Unlock()
}

// forget drops topic (deleted or recreated).
func (m *metadataCache) forget(topic string) {
	m.mu.Lock()
	if e := m.topics[topic]; e != nil && e.fetching == nil {
		delete(m.topics, topic)
	} else if e != nil {
		e.stale = true
	}
	m.mu.Unlock()
}

func (m *metadataCache) leader() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.metaLeader
}

// forgetLeader drops addr as the metadata leader (when it still is the
// one remembered): admin calls then go to any server.
func (m *metadataCache) forgetLeader(addr string) {
	m.mu.Lock()
	if m.metaLeader == addr {
		m.metaLeader = ""
	}
	m.mu.Unlock()
}

// setLeader records addr as the metadata leader (ignored if empty).
func (m *metadataCache) setLeader(addr string) {
	if addr == "" {
		return
	}
	m.mu.Lock()
	m.metaLeader = addr
	m.mu.Unlock()
}

// getMetadata asks any server for the named topics (every topic when
// none is named) and the cluster's servers. A server's copy of the
// metadata may lag the metadata leader's (by a heartbeat: it does not know
// a topic just created yet), so an unknown topic is asked again once,
// after WithMetadataRefresh, before it is believed.
func (c *Client) getMetadata(ctx context.Context, topics []string) ([]TopicInfo, []Server, error) {
	infos, servers, err := c.askMetadata(ctx, topics)
	if len(topics) == 0 || !errors.Is(err, ErrUnknownTopic) {
		return infos, servers, err
	}
	t := time.NewTimer(c.cfg.metadataRefresh)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return infos, servers, err
	case <-t.C:
	}
	return c.askMetadata(ctx, topics)
}

// askMetadata is one GetMetadata call, with the client's retries.
func (c *Client) askMetadata(ctx context.Context, topics []string) ([]TopicInfo, []Server, error) {
	var infos []TopicInfo
	var servers []Server
	err := c.do(ctx, opServers, nil, func(ctx context.Context) error {
		resp, err := c.log.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: topics})
		if err == nil {
			infos = make([]TopicInfo, len(resp.GetTopics()))
			for i, t := range resp.GetTopics() {
				infos[i] = topicInfoFromProto(t)
			}
			servers = serversFromProto(resp.GetServers())
		}
		return err
	})
	return infos, servers, err
}

// Topics describes every topic the client may describe, by name.
func (c *Client) Topics(ctx context.Context) ([]TopicInfo, error) {
	infos, _, err := c.getMetadata(ctx, nil)
	return infos, err
}

// Describe describes topic. A topic that does not exist fails with
// ErrUnknownTopic.
func (c *Client) Describe(ctx context.Context, topic string) (TopicInfo, error) {
	infos, _, err := c.getMetadata(ctx, []string{topic})
	if err != nil {
		return TopicInfo{}, err
	}
	if len(infos) != 1 || infos[0].Name != topic {
		return TopicInfo{}, newUnknownTopicError(topic, nil)
	}
	return infos[0], nil
}

// CreateTopic creates topic name with cfg (zero fields take the servers'
// defaults) and returns it as created (its leaders may not be elected
// yet). It goes to the metadata leader, following NOT_LEADER answers. A
// topic that exists fails with ErrTopicExists, a name or setting the
// servers refuse with ErrInvalidTopic, more replicas than live servers
// with ErrNotEnoughNodes.
func (c *Client) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (TopicInfo, error) {
	if cfg.Partitions < 0 || cfg.ReplicationFactor < 0 || cfg.RetentionAge < 0 {
		return TopicInfo{}, fmt.Errorf("%w: CreateTopic %q: partitions, replication factor and retention age must not be negative", ErrInvalidTopic, name)
	}
	req := &logv1.CreateTopicRequest{Name: name, Config: cfg.toProto()}
	var info TopicInfo
	err := c.admin(ctx, func(ctx context.Context) error {
		resp, err := c.log.CreateTopic(ctx, req)
		if err == nil {
			info = topicInfoFromProto(resp.GetTopic())
		}
		return err
	})
	switch {
	case errors.Is(err, ErrTopicExists):
		// What the client knows of the topic, if anything, still holds.
		return info, err
	case err != nil:
		c.meta.forget(name)
		return info, err
	}
	c.meta.created(info)
	return info, nil
}

// DeleteTopic deletes topic name and its records on every server. It goes
// to the metadata leader, following NOT_LEADER answers. A topic that does
// not exist fails with ErrUnknownTopic; the default topic cannot be
// deleted (ErrInvalidArgument).
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	err := c.admin(ctx, func(ctx context.Context) error {
		_, err := c.log.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: name})
		return err
	})
	c.meta.forget(name)
	return err
}

// admin runs a call that needs the metadata leader: sent to the last
// known one (any server when none is known), and to the one a NOT_LEADER
// answer names; a server whose answer only the leader gives (success, a
// topic that exists or does not) is where the next one goes (names and
// settings are checked, and refused, on any server). A remembered leader
// that answers UNAVAILABLE, or NOT_LEADER without naming another, is
// forgotten: the next attempt goes to another server.
func (c *Client) admin(ctx context.Context, attempt func(context.Context) error) error {
	return c.adminEach(ctx, 0, attempt)
}

// adminEach is admin with each attempt bounded by each (0: by ctx only):
// an attempt that its bound ends (a server that does not answer) counts
// as UNAVAILABLE, so it is retried at another server.
func (c *Client) adminEach(ctx context.Context, each time.Duration, attempt func(context.Context) error) error {
	return c.do(ctx, opAdmin, nil, func(ctx context.Context) error {
		actx := ctx
		if each > 0 {
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(ctx, each)
			defer cancel()
		}
		err := attempt(actx)
		if err != nil && ctx.Err() == nil && actx.Err() != nil {
			err = status.Errorf(codes.Unavailable, "no answer within %v: %v", each, err)
		}
		switch status.Code(err) {
		case codes.OK, codes.AlreadyExists, codes.NotFound:
			if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
				if addr, _, sent := ci.result(); sent {
					c.meta.setLeader(addr)
				}
			}
		}
		return err
	})
}

// noMetadata reports whether a GetMetadata failure means the servers
// give no metadata (older servers, or an ACL without "describe"), rather
// than that none answered.
func noMetadata(err error) bool {
	switch status.Code(err) {
	case codes.Unimplemented, codes.PermissionDenied:
		return true
	}
	return false
}

// unknownTopic reports whether st is a NOT_FOUND for an unknown topic or
// partition.
func unknownTopic(st *status.Status) bool {
	if st.Code() != codes.NotFound {
		return false
	}
	switch errorInfo(st).GetReason() {
	case reasonUnknownTopic, reasonUnknownPartition:
		return true
	}
	return false
}
