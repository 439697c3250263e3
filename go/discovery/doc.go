// Package discovery finds the nodes of a proglog cluster with Serf gossip
// (github.com/hashicorp/serf) and tells a Handler — the replication layer —
// who joined and who left.
//
// # Membership and events
//
// Every node runs a Membership: New starts Serf on Config.BindAddr and, if
// Config.StartJoinAddrs is set, joins the cluster through them. A node's Serf
// tags carry what the others need: TagRPCAddr (the address of its
// gRPC/Raft port) and TagVoter ("true" if it should be a Raft voter).
//
// Member events are handed to the Handler in the order Serf delivers them,
// one at a time, from one goroutine, never for the local node:
//
//   - join, and update (tags changed): Handler.Join(name, rpc_addr, voter)
//   - leave (a graceful Leave): Handler.Leave(name)
//   - failed (stopped answering): only logged. A failed node may be back in
//     a moment (restart, partition), so it stays in the Raft configuration;
//     Serf keeps trying to reconnect it.
//   - reap (failed for longer than Config.ReconnectTimeout, or left longer
//     than TombstoneTimeout): Handler.Leave(name)
//
// # Only the leader acts
//
// Every node receives every event, but only the Raft leader can change the
// Raft configuration: on the others the handler returns an error, which is
// expected and logged at debug level when it reports NotLeader() == true
// (as go/commitlog's *NotLeaderError, which replication returns, does);
// other errors are logged at error level. Events are not retried.
// Instead, a node that becomes the Raft leader calls Reconcile, which hands
// every known member to the handler again (alive → Join, left → Leave), so
// events that arrived while there was no leader, or that the old leader
// could not finish, are not lost. Reconcile acts on positive information
// only: a Raft server that Serf does not know (yet) is never removed by it,
// because a freshly restarted node's view of the cluster is incomplete
// until gossip has converged.
//
// # Security
//
// Gossip is encrypted and authenticated with Config.EncryptKey (AES-GCM, 16,
// 24 or 32 bytes, the same on every node; incoming and outgoing messages are
// verified). A node without the key, or with another key, cannot join: its
// messages are dropped and its Join fails, so it never reaches the Handler
// and never becomes a Raft server. Running without a key requires
// Config.AllowInsecureGossip, for tests.
//
// The key only makes a node a gossip member: member names and tags are
// claims, which the Handler must check before acting on them. The
// replication layer's Join adds a member to Raft only after it proved its
// name over mutual TLS at its TagRPCAddr (see go/replication, "Peers").
package discovery
