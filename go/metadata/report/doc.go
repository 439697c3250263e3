// Package report sends this node's reports to the metadata group's leader
// over log.v1.Internal (proto/log/v1/log.proto), the node-to-node service
// every node serves on its one port. Only the metadata group's leader can
// propose; a node that leads a partition, or hosts a replica a
// reassignment added, is usually not that leader, so it reports there.
//
// A Client dials the leader's API address (Config.Leader, this node's
// view; then the address a NOT_LEADER answer names) with this node's
// certificate (Config.TLS): the server takes the caller's identity from
// it, so a report is always about the calling node. A call retries, with
// an exponential backoff from Config.MinBackoff to Config.MaxBackoff,
// while no leader is known, the leader is unreachable or busy
// (UNAVAILABLE) or it moved (NOT_LEADER: the next attempt goes to the
// address the answer names at once, later ones after the backoff), until
// its context ends; any other answer (a stale report, an unknown topic, a
// refused certificate) is returned at once as ErrRefused wrapping the
// status. The connection to the last address is kept until the leader
// moves or Close.
package report
