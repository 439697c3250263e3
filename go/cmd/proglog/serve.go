package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/broker"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/discovery"
	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/metadata/group"
	idem "github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/replication"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	"github.com/proglog/proglog/go/telemetry"
)

// serveLong is the help text of serve (and of the bare root command).
const serveLong = `serve runs one node of a proglog cluster until SIGINT or SIGTERM: the gRPC API and Raft on one
port (--addr), Serf gossip for membership (--serf-addr), Prometheus metrics (--metrics-addr),
optionally the gRPC health service alone in plaintext for probes (--health-addr).

A new cluster starts with one node that bootstraps it (--bootstrap); every other node joins
through the gossip address of any member (--join). The leader adds joining nodes to Raft and
removes those that leave (SIGINT/SIGTERM leave the cluster gracefully). Every node needs the
same gossip key (--gossip-key or --gossip-key-file, base64 of 16, 24 or 32 bytes) and its own
certificate from the same CA (--tls-cert, --tls-key, --tls-ca): it names the node in a URI SAN
spiffe://proglog/node/<node-name>, has the serverAuth and clientAuth usages and is valid for the
host of its --advertise-addr (` + "`proglog certs --node NAME`" + ` issues one; a node refuses any other).
Nodes authenticate each other with it: Raft peers must be members of the Raft configuration,
and the leader adds a gossip member to Raft only once it proved its name over mutual TLS.

--dev is a single-node development server in one command: certificates in <data-dir>/certs and
a gossip key in <data-dir>/gossip.key are created if missing, and the node bootstraps unless
--join is given (or --bootstrap=false).

Settings come from, in order of precedence: command-line flags, PROGLOG_<FLAG> environment
variables (upper case, dashes as underscores: PROGLOG_DATA_DIR), the YAML file of --config
(keys are flag names, e.g. "data-dir: /var/lib/proglog", "join: [a:8402, b:8402]"), defaults.`

// Defaults of serve's own settings.
const (
	// shutdownGrace is how long after --shutdown-timeout a stopping node
	// may still take to leave the cluster and close Raft and its logs.
	shutdownGrace   = 10 * time.Second
	defaultAddr     = "127.0.0.1:8400"
	defaultSerfPort = "8402"
)

// serveOptions are the flags of serve (and of the bare root command).
type serveOptions struct {
	fs         *pflag.FlagSet // the flags, to see which were set
	configFile string

	dataDir, addr, metricsAddr  string
	healthAddr                  string
	nodeName, id, advertiseAddr string
	serfAddr, serfAdvertiseAddr string
	join                        []string
	bootstrap, voter            bool
	controllerVoters            int
	replicaReplacementDelay     time.Duration
	preferredLeaderDelay        time.Duration
	defaultReplicationFactor    int
	gossipKey, gossipKeyFile    string
	readConsistency             string
	dev                         bool
	tlsCert, tlsKey, tlsCA      string
	aclModel, aclPolicy         string
	logName                     string
	maxRecordBytes              int
	maxConnections, maxStreams  int
	raftHeartbeat, raftElection time.Duration
	raftLeaderLease, raftCommit time.Duration
	raftSnapshotInterval        time.Duration
	raftSnapshotThreshold       uint64
	raftTrailingLogs            uint64
	raftSnapshotThresholdBytes  uint64
	raftTrailingBytes           uint64
	retentionBytes              uint64
	retentionAge                time.Duration
	segmentBytes                uint64
	sync                        string
	syncInterval                time.Duration
	minFreeBytes                uint64
	producerExpiry              time.Duration
	maxProducers                int
	producerEvictAfter          time.Duration
	traceExporter               string
	traceEndpoint, traceFile    string
	logLevel                    string
	shutdownTimeout             time.Duration
}

func defaultServeOptions() *serveOptions {
	return &serveOptions{
		dataDir:                    "./proglog-data",
		addr:                       defaultAddr,
		metricsAddr:                "127.0.0.1:8401",
		nodeName:                   agent.DefaultConfig().NodeName,
		voter:                      true,
		controllerVoters:           group.DefaultControllerVoters,
		replicaReplacementDelay:    group.DefaultReplacementDelay,
		preferredLeaderDelay:       broker.DefaultPreferredLeaderDelay,
		defaultReplicationFactor:   group.DefaultDefaultTopicReplicationFactor,
		readConsistency:            commitlog.ConsistencyLinearizable.String(),
		logName:                    server.DefaultLogName,
		maxRecordBytes:             server.DefaultMaxRecordBytes,
		maxConnections:             server.DefaultMaxConnections,
		maxStreams:                 server.DefaultMaxStreams,
		raftHeartbeat:              replication.DefaultHeartbeatTimeout,
		raftElection:               replication.DefaultElectionTimeout,
		raftLeaderLease:            replication.DefaultLeaderLeaseTimeout,
		raftCommit:                 replication.DefaultCommitTimeout,
		raftSnapshotInterval:       replication.DefaultSnapshotInterval,
		raftSnapshotThreshold:      replication.DefaultSnapshotThreshold,
		raftTrailingLogs:           replication.DefaultTrailingLogs,
		raftSnapshotThresholdBytes: replication.DefaultSnapshotThresholdBytes,
		raftTrailingBytes:          replication.DefaultTrailingBytes,
		segmentBytes:               seglog.DefaultMaxStoreBytes,
		sync:                       "always",
		syncInterval:               seglog.DefaultSyncInterval,
		minFreeBytes:               diskspace.DefaultMinFreeBytes,
		producerExpiry:             idem.DefaultExpiry,
		maxProducers:               idem.DefaultMaxProducers,
		producerEvictAfter:         idem.DefaultEvictAfter,
		traceExporter:              telemetry.ExporterNone,
		logLevel:                   "info",
		shutdownTimeout:            server.DefaultShutdownTimeout,
	}
}

func (o *serveOptions) addFlags(fs *pflag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.configFile, "config", "", "YAML file of settings, keys = flag names (flags and PROGLOG_* variables override it)")
	fs.StringVar(&o.dataDir, "data-dir", o.dataDir, "directory of the node's state: meta/ (the metadata) and topics/ (the partition replicas it hosts); with --dev also certs/ and gossip.key; the single-log layout (raft/, data/) is refused")
	fs.StringVar(&o.addr, "addr", o.addr, "listen address of the gRPC API and Raft, one port (port 0 picks one)")
	fs.StringVar(&o.advertiseAddr, "advertise-addr", "", "address clients and peers reach --addr at: the Raft address, rpc_addr in GetServers, leader_addr in NOT_LEADER errors (default: the listen address; required if --addr is a wildcard)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", o.metricsAddr, "HTTP listen address for Prometheus /metrics (empty: none)")
	fs.StringVar(&o.healthAddr, "health-addr", "", "plaintext gRPC listen address serving only grpc.health.v1.Health, for probes without a client certificate such as Kubernetes' grpc probe: overall status SERVING once the node knows a leader, service \""+server.LivenessService+"\" SERVING until shutdown (empty: none)")
	fs.StringVar(&o.nodeName, "node-name", o.nodeName, "unique, stable name of the node: its Raft ID, gossip name and id in GetServers")
	fs.StringVar(&o.id, "id", "", "old name of --node-name")
	_ = fs.MarkDeprecated("id", "use --node-name")
	fs.StringVar(&o.serfAddr, "serf-addr", "", "gossip (Serf) listen address, TCP and UDP (default: the host of --addr, port "+defaultSerfPort+", or port 0 if --addr's port is 0)")
	fs.StringVar(&o.serfAdvertiseAddr, "serf-advertise-addr", "", "gossip address other nodes reach this one at (default: the listen address)")
	fs.StringSliceVar(&o.join, "join", nil, "gossip addresses of cluster members to join through, comma-separated (this node's own is skipped); retried in the background until one answers")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "start a new cluster of this node if it has no Raft state; on one node of a new cluster only (default: true with --dev and no --join, false otherwise)")
	fs.BoolVar(&o.voter, "voter", o.voter, "take part in Raft elections and quorums (false: a non-voter that replicates and serves reads)")
	fs.IntVar(&o.controllerVoters, "controller-voters", o.controllerVoters, "how many nodes vote in the metadata (controller) group: the first ones to join with --voter; the others keep a copy of the metadata without voting (odd numbers: 3 tolerates one failure, 5 two; the metadata leader's value applies)")
	fs.DurationVar(&o.preferredLeaderDelay, "preferred-leader-delay", o.preferredLeaderDelay, "how long a partition's preferred replica (the first of its replicas) must have been a reachable voter before the node leading the partition in its place hands leadership back to it (0: leadership is not moved back)")
	fs.DurationVar(&o.replicaReplacementDelay, "replica-replacement-delay", o.replicaReplacementDelay, "how long a node has been leaving (it left, or gossip gave up on it) before its partition replicas are moved to other nodes, so that a restart moves no data (the metadata leader's value applies)")
	fs.IntVar(&o.defaultReplicationFactor, "default-replication-factor", o.defaultReplicationFactor, "replicas of the default topic \"log\" when the cluster bootstraps: created on the nodes there are, then topped up as nodes join (read by the bootstrap node)")
	fs.StringVar(&o.gossipKey, "gossip-key", "", "gossip encryption key, base64 of 16, 24 or 32 bytes, the same on every node")
	fs.StringVar(&o.gossipKeyFile, "gossip-key-file", "", "file holding the gossip key (base64)")
	fs.StringVar(&o.readConsistency, "read-consistency", o.readConsistency, "consistency of a Consume that does not ask for one: linearizable (leader only, sees every acknowledged record) or follower (any node, may lag)")
	fs.BoolVar(&o.dev, "dev", false, "development mode: create certificates in <data-dir>/certs and a gossip key in <data-dir>/gossip.key if missing and use them; bootstrap unless --join")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "this node's own certificate (PEM), for gRPC and Raft: names --node-name (URI SAN spiffe://proglog/node/<name>), has the serverAuth and clientAuth usages and is valid for the host of --advertise-addr (see `proglog certs --node`)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "node private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "CA certificates that verify client and peer certificates (PEM)")
	fs.StringVar(&o.aclModel, "acl-model", "", "casbin model file (default: built-in)")
	fs.StringVar(&o.aclPolicy, "acl-policy", "", "casbin policy file (default: built-in, root may do everything)")
	fs.StringVar(&o.logName, "log-name", o.logName, "name of the log, the ACL object")
	fs.IntVar(&o.maxRecordBytes, "max-record-bytes", o.maxRecordBytes, "largest accepted record, encoded (value, key, headers, timestamp); the same on every node")
	fs.IntVar(&o.maxConnections, "max-connections", o.maxConnections, "client connections open at once on --addr; more are closed at once (0: no cap)")
	fs.IntVar(&o.maxStreams, "max-streams", o.maxStreams, "calls running at once over all client connections; more get RESOURCE_EXHAUSTED (0: no cap)")
	fs.DurationVar(&o.raftHeartbeat, "raft-heartbeat-timeout", o.raftHeartbeat, "how long a follower waits for the leader before starting an election")
	fs.DurationVar(&o.raftElection, "raft-election-timeout", o.raftElection, "how long a candidate waits for votes")
	fs.DurationVar(&o.raftLeaderLease, "raft-leader-lease-timeout", o.raftLeaderLease, "how long a leader stays leader without hearing from a quorum (at most --raft-heartbeat-timeout)")
	fs.DurationVar(&o.raftCommit, "raft-commit-timeout", o.raftCommit, "longest delay before a partition leader tells followers the commit index without new entries (randomised up to twice that): the last records of a burst reach follower streams that late, and every idle partition sends two append RPCs per timeout; see docs/benchmarks.md")
	fs.DurationVar(&o.raftSnapshotInterval, "raft-snapshot-interval", o.raftSnapshotInterval, "how often Raft checks whether to snapshot (and compact its log)")
	fs.Uint64Var(&o.raftSnapshotThreshold, "raft-snapshot-threshold", o.raftSnapshotThreshold, "Raft entries since the last snapshot that trigger a new one")
	fs.Uint64Var(&o.raftTrailingLogs, "raft-trailing-logs", o.raftTrailingLogs, "Raft entries kept after a snapshot, so lagging followers catch up without one")
	fs.Uint64Var(&o.raftSnapshotThresholdBytes, "raft-snapshot-threshold-bytes", o.raftSnapshotThresholdBytes, "Raft log bytes beyond --raft-trailing-bytes that trigger a snapshot and compaction (0: by entries only)")
	fs.Uint64Var(&o.raftTrailingBytes, "raft-trailing-bytes", o.raftTrailingBytes, "at most this many bytes of Raft log (whole segments) kept after a snapshot taken by size")
	fs.Uint64Var(&o.retentionBytes, "retention-bytes", 0, "drop the oldest records (whole segments, the same on every replica) while the log holds more than this many bytes (0: keep everything)")
	fs.DurationVar(&o.retentionAge, "retention-age", 0, "drop the oldest records (whole segments) once the newest record of their segment is older than this (0: keep everything)")
	fs.Uint64Var(&o.segmentBytes, "segment-bytes", o.segmentBytes, "segment size of the Raft log, which holds the records: the unit retention drops (at least twice its largest entry)")
	fs.StringVar(&o.sync, "sync", o.sync, "when stored records are fsynced: always (the Raft log before every acknowledgement; the durable default), interval (both logs every --sync-interval) or never (left to the kernel); interval and never survive a process crash but a machine crash may lose acknowledged records")
	fs.DurationVar(&o.syncInterval, "sync-interval", o.syncInterval, "fsync period with --sync interval")
	fs.Uint64Var(&o.minFreeBytes, "min-free-bytes", o.minFreeBytes, "free-space watermark of the file system of --data-dir, in bytes: below it the node refuses produces (RESOURCE_EXHAUSTED, reason LOW_DISK_SPACE) and keeps serving reads; below half of it, also Raft entries; both resume once space is freed (0: never refuse)")
	fs.DurationVar(&o.producerExpiry, "producer-expiry", o.producerExpiry, "forget an idempotent producer idle for longer than this (by the leader's clock; at least --producer-evict-after); its next retry is refused with UNKNOWN_PRODUCER and the client starts a new producer; the leader's value applies on every node")
	fs.IntVar(&o.maxProducers, "max-producers", o.maxProducers, "idempotent producers whose state every node keeps (at most 162 bytes each in every snapshot); past it the longest idle is forgotten if idle longer than --producer-evict-after, else a new producer is refused (TOO_MANY_PRODUCERS); the leader's value applies on every node")
	fs.DurationVar(&o.producerEvictAfter, "producer-evict-after", o.producerEvictAfter, "an idempotent producer active within this time is never evicted to make room for a new one, so its retries stay deduplicated; the leader's value applies on every node")
	fs.StringVar(&o.traceExporter, "trace-exporter", o.traceExporter, "where spans go: none, otlp or file")
	fs.StringVar(&o.traceEndpoint, "trace-endpoint", "", "OTLP/gRPC collector for --trace-exporter=otlp (host:port, http:// or https:// URL)")
	fs.StringVar(&o.traceFile, "trace-file", "", "JSON-lines span file for --trace-exporter=file")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", o.shutdownTimeout, "how long running calls may finish after SIGINT/SIGTERM")
}

// applyConfigFile sets every flag that neither the command line nor the
// environment set from the YAML file of --config. Keys are flag names;
// values are scalars or, for list flags, sequences of scalars.
func (o *serveOptions) applyConfigFile() error {
	if o.configFile == "" {
		return nil
	}
	data, err := os.ReadFile(o.configFile)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", o.configFile, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want a mapping of flag names to values", o.configFile)
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %s", o.configFile, k.Line, k.Value, fmt.Sprintf(format, args...)))
		}
		f := o.fs.Lookup(k.Value)
		if f == nil || k.Value == "config" || k.Value == "help" || f.Deprecated != "" {
			bad("unknown setting (keys are the flags of proglog serve)")
			continue
		}
		var val string
		switch v.Kind {
		case yaml.ScalarNode:
			val = v.Value
		case yaml.SequenceNode:
			var items []string
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					bad("list items must be scalars")
					continue
				}
				items = append(items, it.Value)
			}
			val = strings.Join(items, ",")
		default:
			bad("want a value or a list of values")
			continue
		}
		if f.Changed {
			continue // the command line or the environment wins
		}
		if err := o.fs.Set(f.Name, val); err != nil {
			bad("%v", err)
		}
	}
	return errors.Join(errs...)
}

// validate checks flag combinations that the packages' own Validate methods
// cannot see.
func (o *serveOptions) validate() error {
	var errs []error
	anyTLS := o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != ""
	switch {
	case o.dev && anyTLS:
		errs = append(errs, errors.New("--dev and --tls-cert/--tls-key/--tls-ca are exclusive"))
	case !o.dev && (o.tlsCert == "" || o.tlsKey == "" || o.tlsCA == ""):
		errs = append(errs, errors.New("TLS is required: give --tls-cert, --tls-key and --tls-ca, or --dev for generated development certificates"))
	}
	switch {
	case o.gossipKey != "" && o.gossipKeyFile != "":
		errs = append(errs, errors.New("--gossip-key and --gossip-key-file are exclusive"))
	case !o.dev && o.gossipKey == "" && o.gossipKeyFile == "":
		errs = append(errs, errors.New("a gossip key is required: give --gossip-key or --gossip-key-file (base64 of 16, 24 or 32 bytes, e.g. from `head -c 32 /dev/urandom | base64`), or --dev to generate one"))
	}
	if o.id != "" && o.fs.Changed("node-name") && o.id != o.nodeName {
		errs = append(errs, fmt.Errorf("--id %q and --node-name %q disagree (--id is the old name of --node-name)", o.id, o.nodeName))
	}
	if o.dataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty"))
	}
	if o.maxRecordBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-record-bytes is %d, must be positive", o.maxRecordBytes))
	}
	if o.maxConnections < 0 || o.maxStreams < 0 {
		errs = append(errs, fmt.Errorf("--max-connections (%d) and --max-streams (%d) must be 0 (no cap) or positive", o.maxConnections, o.maxStreams))
	}
	if _, err := commitlog.ParseConsistency(o.readConsistency); err != nil {
		errs = append(errs, fmt.Errorf("--read-consistency %q: want linearizable or follower", o.readConsistency))
	}
	if _, err := agent.ParseSyncPolicy(o.sync); err != nil {
		errs = append(errs, fmt.Errorf("--sync %q: want always, interval or never", o.sync))
	}
	if o.syncInterval <= 0 {
		errs = append(errs, fmt.Errorf("--sync-interval is %v, must be positive", o.syncInterval))
	}
	return errors.Join(errs...)
}

// agentConfig turns the options into the agent's configuration; in dev
// mode it creates what is missing first (certificates, gossip key).
func (o *serveOptions) agentConfig(stdout io.Writer, logger *zap.Logger) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	cfg.DataDir = o.dataDir
	cfg.NodeName = o.nodeName
	if o.id != "" && !o.fs.Changed("node-name") {
		cfg.NodeName = o.id
	}
	cfg.BindAddr = o.addr
	cfg.AdvertiseAddr = o.advertiseAddr
	cfg.SerfBindAddr = o.serfBindAddr()
	cfg.SerfAdvertiseAddr = o.serfAdvertiseAddr
	cfg.StartJoinAddrs = o.join
	if isLoopback(cfg.SerfBindAddr) {
		// One host: memberlist's LAN timings would detect failures in
		// seconds for no reason.
		cfg.GossipProfile = discovery.ProfileLocal
	}
	cfg.Bootstrap = o.bootstrap
	if !o.fs.Changed("bootstrap") {
		cfg.Bootstrap = o.dev && len(o.join) == 0
	}
	cfg.Voter = o.voter
	cfg.ControllerVoters = o.controllerVoters
	cfg.ReplicaReplacementDelay = o.replicaReplacementDelay
	cfg.PreferredLeaderDelay = o.preferredLeaderDelay
	cfg.DefaultReplicationFactor = o.defaultReplicationFactor
	cfg.ACLModelFile, cfg.ACLPolicyFile = o.aclModel, o.aclPolicy
	cfg.LogName = o.logName
	cfg.MaxRecordBytes = o.maxRecordBytes
	cfg.ReadConsistency, _ = commitlog.ParseConsistency(o.readConsistency)
	cfg.ShutdownTimeout = o.shutdownTimeout
	cfg.MaxConnections, cfg.MaxStreams = o.maxConnections, o.maxStreams
	cfg.Raft = agent.RaftConfig{
		HeartbeatTimeout: o.raftHeartbeat, ElectionTimeout: o.raftElection,
		LeaderLeaseTimeout: o.raftLeaderLease, CommitTimeout: o.raftCommit,
		SnapshotInterval: o.raftSnapshotInterval, SnapshotThreshold: o.raftSnapshotThreshold,
		TrailingLogs:           o.raftTrailingLogs,
		SnapshotThresholdBytes: o.raftSnapshotThresholdBytes, TrailingBytes: o.raftTrailingBytes,
	}
	cfg.Retention = seglog.Retention{MaxBytes: o.retentionBytes, MaxAge: o.retentionAge}
	cfg.SegmentBytes = o.segmentBytes
	cfg.Sync, _ = agent.ParseSyncPolicy(o.sync)
	cfg.SyncInterval = o.syncInterval
	cfg.MinFreeBytes = o.minFreeBytes
	cfg.Producers = idem.Config{Expiry: o.producerExpiry, MaxProducers: o.maxProducers, EvictAfter: o.producerEvictAfter}
	cfg.MetricsAddr = o.metricsAddr
	cfg.HealthAddr = o.healthAddr
	cfg.Tracing = telemetry.TraceConfig{
		Exporter: o.traceExporter, Endpoint: o.traceEndpoint, File: o.traceFile,
		ServiceName: "proglog", ServiceVersion: version,
	}
	cfg.Logger = logger

	cfg.TLS = auth.TLSConfig{CertFile: o.tlsCert, KeyFile: o.tlsKey, CAFile: o.tlsCA}
	if o.dev {
		files, err := certs.EnsureDev(filepath.Join(o.dataDir, "certs"), devHosts(o.addr, o.advertiseAddr), cfg.NodeName)
		if err != nil {
			return cfg, fmt.Errorf("dev certificates: %w", err)
		}
		printDevFiles(stdout, files, []string{cfg.NodeName}, nil)
		cfg.TLS = auth.TLSConfig{CertFile: files.NodeCert(cfg.NodeName), KeyFile: files.NodeKey(cfg.NodeName), CAFile: files.CACert}
	}
	switch {
	case o.gossipKey != "":
		cfg.GossipKey = o.gossipKey
	case o.gossipKeyFile != "":
		key, err := agent.ReadGossipKeyFile(o.gossipKeyFile)
		if err != nil {
			return cfg, err
		}
		cfg.GossipKey = key
	default: // --dev, checked by validate
		key, created, err := agent.LoadOrCreateGossipKey(o.dataDir)
		if err != nil {
			return cfg, err
		}
		if created {
			logger.Info("created a gossip key", zap.String("file", filepath.Join(o.dataDir, agent.GossipKeyFile)))
		}
		cfg.GossipKey = key
	}
	return cfg, nil
}

// serfBindAddr is --serf-addr, or its default derived from --addr.
func (o *serveOptions) serfBindAddr() string {
	if o.serfAddr != "" {
		return o.serfAddr
	}
	host, port, err := net.SplitHostPort(o.addr)
	if err != nil {
		return net.JoinHostPort("127.0.0.1", defaultSerfPort) // --addr is reported by the agent
	}
	if port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, defaultSerfPort)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve runs a node until ctx is done, then shuts it down.
func serve(ctx context.Context, o *serveOptions, stdout io.Writer) (err error) {
	if err := o.applyConfigFile(); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	restrictUmask()
	logger, err := telemetry.NewLogger(o.logLevel)
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // stderr sync fails on terminals

	if fi, err := os.Stat(filepath.Join(o.dataDir, "log")); err == nil && fi.IsDir() {
		logger.Warn("found a single-node log from before replication; it is not served (the replicated log is in data/ and raft/)",
			zap.String("dir", filepath.Join(o.dataDir, "log")))
	}
	cfg, err := o.agentConfig(stdout, logger)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		logger.Info("shutting down", zap.Duration("timeout", o.shutdownTimeout))
		sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		defer cancel()
		// The timeout bounds running calls; leaving the cluster and
		// closing Raft and the logs get a grace period on top. A node that
		// still has not stopped then exits anyway, leaving every
		// goroutine's stack as evidence: SIGTERM must end the process.
		done := make(chan error, 1)
		go func() { done <- a.Shutdown(sctx) }()
		select {
		case serr := <-done:
			err = errors.Join(err, serr)
		case <-time.After(o.shutdownTimeout + shutdownGrace):
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			logger.Error("shutdown did not finish; exiting anyway", zap.Duration("after", o.shutdownTimeout+shutdownGrace))
			fmt.Fprintf(os.Stderr, "goroutines when shutdown was abandoned:\n%s\n", buf)
			err = errors.Join(err, fmt.Errorf("shutdown did not finish within %v", o.shutdownTimeout+shutdownGrace))
		}
		if err == nil {
			fmt.Fprintln(stdout, "proglog stopped")
		}
	}()
	logger.Info("started; waiting for a leader", zap.String("node", cfg.NodeName), zap.String("addr", a.Addr()),
		zap.String("serf_addr", a.SerfAddr()), zap.String("health_addr", a.HealthAddr()), zap.String("data_dir", o.dataDir),
		zap.String("version", version))

	// "serving" once the node knows a leader: health is SERVING from then on.
	switch err := a.WaitReady(ctx); {
	case err == nil:
		metrics := "off"
		if m := a.MetricsAddr(); m != "" {
			metrics = "http://" + m + "/metrics"
		}
		leader := leaderText(a)
		// The build's version is in the "started" log line and --version;
		// the banner names the mode, so that only a --dev node says "dev".
		mode := "proglog"
		if o.dev {
			mode = "proglog development server (--dev)"
		}
		fmt.Fprintf(stdout, "%s serving on %s (metrics: %s)\n", mode, a.Addr(), metrics)
		fmt.Fprintf(stdout, "node %s, gossip on %s, leader %s\n", cfg.NodeName, a.SerfAddr(), leader)
		fields := []zap.Field{zap.String("leader", leader)}
		if r := a.Replica(); r != nil { // nil on a node holding no replica of the default topic
			fields = append(fields, zap.Uint64("next_offset", r.NextOffset()))
		}
		logger.Info("serving", fields...)
	case ctx.Err() != nil:
		return nil // stopped before it was ready
	default:
		return err
	}
	select {
	case <-a.Failed():
		return a.Err()
	case <-ctx.Done():
		return nil
	}
}

// leaderText names, for the serving banner, the leader of the default
// topic's partition 0 as this node's replica knows it, or, on a node
// holding no replica of it, the metadata group's leader, saying so.
func leaderText(a *agent.Agent) string {
	if a.Replica() != nil {
		id, _ := a.Leader()
		return id
	}
	id, _ := a.Metadata().Leader()
	return fmt.Sprintf("%s of the metadata (no replica of topic %q on this node)", id, commitlog.DefaultTopic)
}

// devHosts returns the extra names the dev node certificate needs: the
// hosts of addr (the machine's name if it listens everywhere) and of the
// advertised address.
func devHosts(addr, advertise string) []string {
	var hosts []string
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if name, err := os.Hostname(); err == nil {
				hosts = append(hosts, name)
			}
		} else {
			hosts = append(hosts, host)
		}
	}
	if host, _, err := net.SplitHostPort(advertise); err == nil && host != "" {
		hosts = append(hosts, host)
	}
	return hosts
}
