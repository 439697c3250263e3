// Package agent runs one proglog node: the replicated log, the gRPC API,
// cluster membership and telemetry, wired together.
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
//  4. go/replication's Log in Config.DataDir (raft/ and data/), over the
//     Raft group replication.LogGroup of a replication.Transport on the
//     mux's Raft connections; with Config.Bootstrap and no Raft state it
//     starts a cluster of itself;
//  5. go/server's gRPC server over replication.CommitLog (which also
//     answers GetServers), on the mux's gRPC listener, NOT_SERVING until
//     the node knows a leader; then, with Config.HealthAddr, a plaintext
//     gRPC server with nothing but that server's health service;
//  6. go/discovery's Serf membership, encrypted with Config.GossipKey,
//     with the replicated Log as its Handler (the leader adds joining
//     nodes to Raft and removes leaving ones), then the join through
//     Config.StartJoinAddrs;
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
// When this node becomes the Raft leader it reconciles membership
// (discovery.Membership.Reconcile) in a goroutine, so joins and leaves
// that happened while there was no leader are applied. Appends and
// linearizable reads go to the leader only (elsewhere go/replication's
// CommitLog returns *commitlog.NotLeaderError, which go/server answers
// FAILED_PRECONDITION with the leader's address); follower reads and
// streams are served by every node.
//
// # Health
//
// The gRPC health service is SERVING while the node knows a leader (itself
// or another) and its log is open and working, NOT_SERVING otherwise:
// during an election, before a new node has been added, after its state
// machine stopped on a write failure (replication.Log.Failed; checked every
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
// leader removes this node from Raft; a leader's own removal is done by
// its successor's reconciliation), closes the health port (NOT_SERVING
// since the start of Shutdown), stops gRPC gracefully, closes the
// replicated log (a leader hands leadership over first), closes the mux
// and the listener, then flushes telemetry. It is idempotent.
package agent
