// Package replication replicates proglog's commit log with Raft
// (github.com/hashicorp/raft).
//
// A Log is one node's replica. The leader accepts appends (Append,
// AppendBatch); each call becomes one Raft entry, a command holding one or
// more records. Once a quorum has stored it, every node's state machine
// (FSM) applies it to the node's data log, a go/log Log of the records.
// CommitLog adapts a Log to go/server's CommitLog and ServerLister.
//
// # On disk
//
//	DataDir/raft/log/segments/  Raft's log: go/log, entry index = offset
//	DataDir/raft/log/first_index  its logical first index (see LogStore)
//	DataDir/raft/stable         current term and vote (StableStore)
//	DataDir/raft/snapshots/     Raft snapshots (raft.FileSnapshotStore)
//	DataDir/data/               the data log: the records clients read
//
// Entry, command, envelope and snapshot encodings are documented in
// codec.go; every one carries a version or type byte.
//
// # Idempotent state machine
//
// Every data record is stored in an envelope naming the Raft entry that
// produced it, its position in that entry's batch and the batch's size.
// On start the FSM reads the last record's envelope and from then on skips
// entries at or below that index — and, for that entry, the records
// already present (a batch torn by a crash). So Raft may replay entries the
// data log already has, which it does after every restart: with
// raft.Config.NoSnapshotRestoreOnStart the data log is not rebuilt from the
// snapshot on start (that would copy the whole log each time); Raft
// replays the entries after the snapshot and the FSM skips those it has.
//
// This is safe because the data log always holds everything the latest
// snapshot holds: FSM.Snapshot fsyncs the data log before Raft gets the
// snapshot and may compact the entries it covers, and a snapshot installed
// from the leader is restored durably (go/log's Restore fsyncs) before Raft
// records it as applied. Between snapshots the data log may be fsynced
// lazily (Config.DataLog.Sync) since the Raft log, fsynced before every
// acknowledgement by default (Config.RaftLog.Sync), holds those entries. If the data log is nevertheless missing, corrupt (set
// aside as data.corrupt.<time>) or behind the latest snapshot (a crash
// while installing one), New rebuilds it: Raft restores the snapshot and
// replays the log.
//
// Commands are applied in batches (raft.BatchingFSM): the records of all
// commands Raft hands over together are written with one AppendBatch, each
// command's records at consecutive offsets. An apply response is the offset
// of the command's first record. If writing the data log fails the FSM
// stops (ErrFailed) rather than skip entries and leave a gap; restarting
// the node replays them.
//
// # Snapshots
//
// A snapshot is a 32-byte header followed by the data log's snapshot
// stream (go/log Reader), taken at the moment Raft asks for it and copied
// to the snapshot sink without holding the log in memory. Restore rebuilds
// the data log from the stream in DataDir/data.restore, then swaps it in.
// Raft snapshots every Config.SnapshotThreshold entries (checked every
// SnapshotInterval) and keeps Config.TrailingLogs entries behind it for
// followers that lag a little; Snapshot forces one.
//
// # Reads
//
// Read takes a Consistency; CommitLog.Read maps go/server's
// (server.ConsistencyLinearizable, server.ConsistencyFollower) to it, the
// server having resolved the request's (or its default) consistency.
// ReadLinearizable runs on the leader only: it notes the leader's last index, confirms leadership
// with a quorum (VerifyLeader, no disk write) and waits until the FSM has
// applied every command up to that index — so a record whose append was
// acknowledged before the read started is always returned. On a follower it
// fails with *NotLeaderError. ReadFollower reads the local data log as it
// is: it never holds an uncommitted record (only applied ones), but may lag.
// Wait (for streams) waits on the local data log, so a stream served with
// follower reads, on any node, only ever sees committed records.
//
// # Leadership, membership and errors
//
// Appends and membership changes need the leader. Elsewhere they fail with
// *NotLeaderError carrying the leader's ID and address (which is its gRPC
// address too: Raft and gRPC share the port through go/mux). Appends are
// not forwarded to the leader; clients retry there. Join and Leave are
// idempotent and make Log a discovery.Handler: wire discovery's events to
// it and call discovery's Reconcile from Config.OnLeadershipChange when
// this node becomes the leader. Config.OnLeaderChange reports which leader
// this node knows of (for readiness). Close hands leadership over before
// stopping.
//
// # Disk space
//
// A full disk is an error, never a crash. Config.MinFreeBytes is a
// watermark on the free space of DataDir's file system (go/diskspace):
// below it the leader refuses appends (*diskspace.LowSpaceError, before
// proposing anything), and below half of it every node's LogStore refuses
// Raft entries, so a follower fails the leader's append RPC (the leader
// retries it, the others commit without it, and it catches up once space
// returns) and a leader steps down. The space below half is kept for what
// the node cannot refuse: applying entries it already stored, snapshots,
// segment roll-overs. Reads, heartbeats and votes go on throughout, and
// everything resumes by itself once space is freed. The stable store
// overwrites preallocated blocks in place, so an election never needs a
// new block (hashicorp/raft panics if it cannot record a term); snapshot
// failures are errors Raft logs and retries later.
//
// # Stable store
//
// Raft's term and vote live in StableStore, a small file of two slots
// overwritten in place, instead of raft-boltdb/v2, which does not build
// against the go-metrics version raft v1.8.0 requires (see StableStore).
package replication
