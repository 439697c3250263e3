package replication

import (
	"errors"

	"github.com/proglog/proglog/go/commitlog"
)

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("replication: invalid config")
	// ErrNotLeader: the call needs the Raft leader and this node is not it.
	// The concrete error is *commitlog.NotLeaderError, which names the
	// leader if one is known (its LeaderAddr is the leader's gRPC and Raft
	// address). Appends are not forwarded: the client retries at the
	// leader. It is commitlog.ErrNotLeader.
	ErrNotLeader = commitlog.ErrNotLeader
	// ErrLeadershipLost: leadership was lost while an append was in flight;
	// it may or may not have been committed.
	ErrLeadershipLost = errors.New("replication: leadership lost; the append may or may not have been committed")
	// ErrTimeout: Raft did not accept or commit the request in time.
	ErrTimeout = errors.New("replication: timed out waiting for raft")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("replication: closed")
	// ErrFailed: applying committed entries to the data log failed (an I/O
	// error, or ErrDiverged); this node stops applying and serving until it
	// is restarted, when the entries are applied again from the Raft log.
	ErrFailed = errors.New("replication: state machine failed; restart the node")
	// ErrDiverged: this node's data log disagrees with its Raft log: it holds
	// a different entry (another term) at an index Raft applies again, or
	// lacks one, which happens only when the Raft log lost entries the data
	// log kept (relaxed sync and a power loss). The state machine stops
	// (returned with ErrFailed); a restart cuts the data log back to the
	// entries the Raft log holds, keeping the records cut aside (see New).
	ErrDiverged = errors.New("replication: data log diverged from the raft log")
	// ErrNotCaughtUp: a read past the end of this node's data log waited
	// for the node to learn the commit index and apply up to it, in vain
	// (see Log.Read): the records may exist; retry, or ask another node.
	ErrNotCaughtUp = errors.New("replication: this node has not caught up with the cluster's commit index yet")
	// ErrDataLogLost: New found the data log missing, corrupt or behind
	// the latest snapshot, and that snapshot is a reference to the data
	// log (it holds no records), so this node cannot rebuild it. Remove the
	// node's DataDir and start it again: it rejoins empty and receives a
	// full snapshot from the leader.
	ErrDataLogLost = errors.New("replication: the data log lost records that only it held")
	// ErrBadEncoding: a stored Raft entry, command, data record envelope or
	// snapshot could not be decoded (corruption, or a newer format).
	ErrBadEncoding = errors.New("replication: bad encoding")
	// ErrNonContiguous: LogStore.StoreLogs was given entries that do not
	// follow the last stored one.
	ErrNonContiguous = errors.New("replication: raft entries not contiguous")
	// ErrDeleteRange: LogStore.DeleteRange was asked to delete a range that
	// is neither a prefix nor a suffix of the log.
	ErrDeleteRange = errors.New("replication: can only delete a prefix or a suffix of the raft log")
	// ErrKeyNotFound: StableStore.Get found no value. Its text is exactly
	// "not found", which is how hashicorp/raft recognises a missing key.
	ErrKeyNotFound = errors.New("not found")
)
