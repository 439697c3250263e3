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
	// ErrFailed: applying committed entries failed (ErrDiverged, or a
	// retention that could not remove its files); this node stops applying
	// and serving until it is restarted, when the entries are applied
	// again from the Raft log.
	ErrFailed = errors.New("replication: state machine failed; restart the node")
	// ErrDiverged: a records command's first offset is not the end of the
	// records this node's log holds before it: its Raft log is not the
	// cluster's (it lost or changed entries). The state machine stops
	// (returned with ErrFailed), saying which entry.
	ErrDiverged = errors.New("replication: raft log diverged: a command's first offset is not where this node's records end")
	// ErrNotCaughtUp: a read past this node's applied end waited
	// for the node to learn the commit index and apply up to it, in vain
	// (see Log.Read): the records may exist; retry, or ask another node.
	ErrNotCaughtUp = errors.New("replication: this node has not caught up with the cluster's commit index yet")
	// ErrOldLayout: New found DataDir in the single-log layout of proglog
	// before topics (a data log in DataDir/data beside the Raft log). It
	// cannot be converted in place; the message says how to move the
	// records to a new cluster.
	ErrOldLayout = errors.New("replication: data directory of the single-log layout")
	// ErrRecordGone: a record below this node's applied end is not in its
	// Raft log: retention removed it concurrently, or this node was
	// restored by a snapshot that did not carry it.
	ErrRecordGone = errors.New("replication: record not held by this node")
	// ErrBadEncoding: a stored Raft entry, command or snapshot could not
	// be decoded (corruption, or a newer format).
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
