// Package agent runs one proglog node: the metadata group, the partition
// replicas the node hosts (go/broker), the gRPC API, cluster membership and
// telemetry, wired together.
//
// # Wiring
//
// New starts, in order:
//
//  1. telemetry: the tracer provider, the Prometheus registry and (if
//     Config.MetricsAddr is set) its HTTP endpoint, and the bridge that
//     sends Raft's, Serf's and the mux's logs to Config.Logger;
//  2. TLS: the server configuration (Config.TLS: node certificate, key and
//     the CA that verifies clients and peers), the peer configuration Raft
//     dials with (the same certificate and CA), and the ACL authorizer. The
//     certificate must be this node's own (go/auth/nodeid): it names
//     Config.NodeName, has the serverAuth and clientAuth usages and a SAN for
//     the advertised host; New fails otherwise, naming the fix;
//  3. the listener on Config.BindAddr (or Config.Listener, already bound)
//     and go/mux over it: one port carries both gRPC and Raft; and the
//     listener on Config.HealthAddr (or Config.HealthListener), if set;
//  4. a replication.Transport on the mux's Raft connections, then the
//     metadata group (go/metadata/group) in Config.DataDir/meta on Raft
//     group "meta" (with Config.Bootstrap and no Raft state it starts a
//     group of itself, whose controller creates the default topic), then
//     go/broker, which opens the partition replicas the metadata assigns
//     to this node under Config.DataDir/topics, each on its own Raft group
//     of the transport, with the Raft, log, sync, disk and producer
//     settings of Config. The metadata group takes Config.ControllerVoters,
//     ReplicaReplacementDelay and DefaultReplicationFactor, the broker
//     Config.PreferredLeaderDelay. The broker's
//     reports (a replacement replica caught up, the partitions this node
//     leads) are proposed here when this node leads the metadata group,
//     else sent to its leader over log.v1.Internal by go/metadata/report
//     with this node's certificate. The metadata's ACL rules reach the
//     authorizer (auth.Authorizer.SetRules) as this node's copy applies
//     them (group.Config.OnACLs), the first time in group.Open with those
//     of the restored snapshot, so a restarted node enforces them before
//     its API serves; rules may name the actions of auth.Actions. Before
//     anything is created, a data
//     directory of the single-log layout (raft/ and data/ at its top) is
//     refused (broker.ErrOldLayout, naming how to move its records);
//  5. go/server's gRPC server over the default topic's partition 0 as the
//     broker hosts it at each call (a node hosting no replica answers
//     NOT_LEADER naming one that does), and log.v1.Internal, the other
//     nodes' reports, to node certificates only, and the ACL RPCs over the
//     metadata group (server.Config.ACLs; ListACLs marks the policy
//     file's rules), on the mux's gRPC
//     listener, NOT_SERVING until ready (see Health); then, with Config.HealthAddr,
//     a plaintext gRPC server with nothing but that server's health
//     service;
//  6. go/discovery's Serf membership, encrypted with Config.GossipKey,
//     with the metadata group as its Handler (its leader adds joining
//     nodes to the group and registers them; leaving ones are marked
//     leaving), then the join through Config.StartJoinAddrs;
//  7. the mux, which from then on routes connections.
//
// # Identity
//
// Raft runs over mutual TLS with node certificates, and peers are checked
// for which node they are: go/mux's AuthorizePeer rejects certificates that
// name no node, and go/replication (Config.PeerName) accepts requests only
// from members of the Raft configuration under their own server ID, dials
// only the node configured at an address, and adds a gossip member to Raft
// only after it proved its name over mutual TLS. Rejections are counted in
// proglog_raft_peer_rejections_total{reason}, unproven gossip members in
// proglog_membership_unverified_members. See docs/security.md.
//
// A single node (Bootstrap, no StartJoinAddrs) is a one-node Raft cluster:
// the same code path as a cluster, which other nodes can join later.
//
// # Joining
//
// StartJoinAddrs are Serf addresses of other nodes; the node's own address
// is skipped, so every node can be given the same list (an entry that names
// it otherwise, such as its DNS name, reaches only itself, which does not
// count as joined: discovery's Join fails then). If none answers,
// New does not fail: the node keeps retrying in the background (with
// backoff up to 30s) and stays NOT_SERVING until it knows a leader — this
// is what lets a whole cluster restart in any order. A node whose gossip
// key differs is never admitted: its joins fail, it never becomes a Raft
// server.
//
// # Leadership
//
// When this node becomes the metadata group's leader (seen at the next
// health check) it reconciles membership (discovery.Membership.Reconcile)
// in a goroutine, so joins and leaves that happened while there was no
// leader are applied. A partition's replicas follow the metadata: its
// leader adds and removes servers as go/broker describes; a node that
// leaves keeps its replicas until the controller replaces them. Appends and
// linearizable reads go to the leader only (elsewhere go/replication's
// CommitLog returns *commitlog.NotLeaderError, which go/server answers
// FAILED_PRECONDITION with the leader's address); follower reads and
// streams are served by every node.
//
// # Health
//
// The gRPC health service is SERVING while the metadata group has a
// leader, the default topic exists, every replica assigned to this node is
// open and, if the node hosts the default topic's partition 0, that
// replica knows its leader and works; NOT_SERVING otherwise: during an
// election, before a new node has been added, after a state machine
// stopped on a write failure (replication.Log.Failed; checked every
// second), and from the start of Shutdown. WaitReady waits for it.
// server.LivenessService does not depend on leadership: it is SERVING from
// New until Shutdown, for liveness checks that must not restart a node
// waiting for a leader.
//
// Config.HealthAddr serves the same health service, and only it, without
// TLS, for probes that cannot present a client certificate (Kubernetes'
// grpc probe: readiness on the overall service, liveness on
// server.LivenessService). It reveals no more than those statuses. Anyone
// who can reach it can connect, so it is bounded: HealthMaxConns
// connections open at once (more are closed at once, counted in
// proglog_rejected_connections_total{listener="health"}), 16 streams and
// 4 KiB requests per connection, 5s to set up, closed after 1 minute idle
// or 5 minutes of age (10s grace), and clients pinging more often than
// every 10s, or without a call, are sent away.
//
// # Shutdown
//
// Shutdown undoes New in reverse: it leaves the Serf cluster (so the
// metadata leader marks this node leaving and removes it from the metadata
// group), closes the health port (NOT_SERVING since the start of
// Shutdown), stops gRPC gracefully, closes the partition replicas (a
// leader hands leadership over first) and the metadata group, closes the mux
// and the listener, then flushes telemetry. It is idempotent.
package agent
