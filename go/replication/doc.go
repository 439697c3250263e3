// Package replication replicates proglog's commit log with Raft
// (github.com/hashicorp/raft).
//
// A Log is one node's replica. The leader accepts appends (Append,
// AppendBatch); each call becomes one Raft entry, a command holding one or
// more records. Once a quorum has stored it, every node's state machine
// (FSM) applies it to the node's data log, a go/seglog Log of the records.
// CommitLog adapts a Log to the port go/server serves
// (commitlog.Partition and commitlog.ServerLister): records cross it as the
// server's bytes, stored as given, and this package's errors cross it in
// the port's terms — *commitlog.NotLeaderError, commitlog.ErrLeadershipLost
// (ErrLeadershipLost), commitlog.ErrUnavailable (ErrTimeout, ErrClosed,
// ErrFailed, ErrDiverged, ErrNotCaughtUp), still matching this package's
// sentinels with errors.Is. go/server maps them to gRPC statuses; this
// package imports neither go/server, the proto nor gRPC.
//
// # On disk
//
//	DataDir/raft/log/segments/  Raft's log: go/seglog, entry index = offset
//	DataDir/raft/log/first_index  its logical first index (see LogStore)
//	DataDir/raft/stable         current term and vote (StableStore)
//	DataDir/raft/snapshots/     Raft snapshots (raft.FileSnapshotStore):
//	                            references to the data log, or full
//	                            snapshots received from a leader
//	DataDir/data/               the data log: the records clients read
//	DataDir/data.diverged.<t>/  the records cut off the data log's tail
//	                            because the Raft log lost their entries
//	                            (a data log of them, see below)
//	DataDir/data.lowest         its agreed lowest offset (see Retention)
//
// Entry, command, envelope and snapshot encodings are documented in
// codec.go; every one carries a version or type byte.
//
// # Idempotent state machine
//
// Every data record is stored in an envelope naming the Raft entry that
// produced it (index and term), its position in that entry's batch and the
// batch's size. On start the FSM reads the last record's envelope and from
// then on skips entries at or below that index — and, for that entry, the
// records already present (a batch torn by a crash) — after checking that
// the data log holds each skipped entry with the same term (Raft's Log
// Matching: an index and term name one entry). So Raft may replay entries
// the data log already has, which it does after every restart: with
// raft.Config.NoSnapshotRestoreOnStart the data log is not rebuilt from the
// snapshot on start (that would copy the whole log each time); Raft
// replays the entries after the snapshot and the FSM skips those it has.
//
// This is safe because the data log always holds everything the latest
// snapshot holds: FSM.Snapshot fsyncs the data log before Raft gets the
// snapshot and may compact the entries it covers, and a snapshot installed
// from the leader is restored durably (go/seglog's Restore fsyncs) before Raft
// records it as applied. Between snapshots the data log may be fsynced
// lazily (Config.DataLog.Sync) since the Raft log, fsynced before every
// acknowledgement by default (Config.RaftLog.Sync), holds those entries.
// If the data log is nevertheless missing, corrupt or behind the latest
// snapshot, see Snapshots for what New does. A corrupt Raft log is not
// repaired: New fails with an error wrapping log.ErrCorrupt, because
// dropping entries this node acknowledged could let Raft lose committed
// entries or elect a leader that lacks them; the operator must remove the
// node's data and re-add it. What New did repair (rebuilt indexes, torn
// tails cut and kept in side files, a data log set aside or cut back) is
// logged (at WARN; a data log set aside or cut back at ERROR) and returned
// by Log.Recovery.
//
// The data log must never be ahead of the Raft log, yet with relaxed sync
// a power loss can cut the Raft log's tail while the data log kept it; new
// entries would then reuse those indexes. New cuts the data log back to
// its last record whose entry this node's Raft history holds: an entry at
// or below the latest snapshot's index is trusted (the snapshot was taken
// after the data log was fsynced); above it the Raft log must hold the
// entry with the record's term (by Log Matching the records that fail are
// a suffix, found by binary search). The records cut off are first copied
// to DataDir/data.diverged.<time>, a data log holding exactly them at
// their offsets (kept for the operator: they may be records the cluster
// lost; delete it once inspected), then removed from the tail (go/seglog
// TruncateAfter); an agreed lowest offset above the cut is lowered to it
// (the retention command that raised it was among the entries cut). New
// logs the cut at ERROR with its offsets and count and reports it in
// Log.Recovery (RecoveryDivergedTailCut); Raft then applies the entries
// again from its log or the leader's, so the records every node holds stay
// in place, the node starts and serves them, and new appends go to the
// offsets after them. This needs no snapshot, so it works when the latest
// snapshot only references the data log, and when every node of the
// cluster lost its Raft log's tail at once. A replayed
// entry whose term differs from the data log's, or a command missing from
// it, is divergence: the FSM stops (ErrFailed wrapping ErrDiverged, in the
// log and in Failed) instead of skipping it, and the restart cuts the data
// log back. An append is never acknowledged for a command the FSM skipped.
// Records written before envelopes held the term (version 1) are checked
// by index only.
//
// Commands are applied in batches (raft.BatchingFSM): the records of all
// commands Raft hands over together are written with one AppendBatch, each
// command's records at consecutive offsets. An apply response is the offset
// of the command's first record. If writing the data log fails the FSM
// stops (ErrFailed) rather than skip entries and leave a gap; restarting
// the node replays them. A full disk that left nothing written (ENOSPC)
// is not such a failure: the apply waits, retrying, until space returns
// (or the node shuts down).
//
// # Idempotent producers
//
// AppendIdempotent carries a producer (log.proto's Producer: an ID, the
// sequence of the first record, and the checksum of the records as the
// client sent them, computed by go/server) in the command, with the
// leader's producer limits (cmdAppendLimited; a command without a producer
// is a plain cmdAppend, as before). The decision is the state machine's,
// on every replica at the same point of the log: the FSM keeps a producer
// table (go/producer) — per producer ID its last activity and its
// producer.BatchesKept most recent batches (first sequence, count,
// checksum, first offset) — and a command is appended if its sequence is
// the producer's next (or 0 for an unknown producer), answered as a
// duplicate with the original first offset if it repeats a retained batch
// (same sequence, count and checksum; nothing written), and refused
// otherwise (*producer.SequenceError: out of order — including a retry
// with other records —, unknown producer, or too many producers).
// Duplicates and refusals write nothing, like a command too large for the
// data log.
//
// The limits (Config.Producers: Expiry, MaxProducers, EvictAfter) are
// inputs of that decision, so they are replicated: the leader puts its own
// in every idempotent command, and each replica sets its table's limits
// from the command before deciding it; a replica's own Config.Producers is
// used only while it leads. Nodes started with other limits therefore hold
// the same log and the same table; a new leader's limits apply from its
// first idempotent command on. The limits travel in every command rather
// than in a separate configuration command because that needs no new
// command type to order against leader changes (a configuration command
// would have to be appended, and committed, by every new leader before its
// first idempotent command) and costs a few bytes per command. The table
// keeps the limits it was last given (in snapshots too). A command written
// before the limits were replicated (cmdAppendIdempotent) is decided with
// the limits the table holds — go/producer's defaults until a command with
// limits or a snapshot's table sets them — the same on every replica, and
// its batch is recorded without a checksum (a retry of it matches on its
// count alone).
//
// Time is the Raft entry's AppendedAt, set by the leader and stored in the
// Raft log, never a replica's clock: the table's clock is the latest
// AppendedAt of any command applied, and before each command the producers
// idle longer than the limits' Expiry are dropped. A new producer past
// MaxProducers evicts the longest idle one (the smallest ID among ties),
// but only one idle longer than EvictAfter: if there is none, the new
// producer is refused (producer.ErrTooManyProducers; go/server answers
// RESOURCE_EXHAUSTED, TOO_MANY_PRODUCERS) and nothing is written. A
// producer active within EvictAfter (default 5 minutes, longer than any
// client's call deadline) is thus never forgotten, so every retry within
// it — even of a producer's first batch — is recognised. So every replica
// holds the same table.
//
// The table survives restarts and follows snapshots:
//
//   - FSM.Snapshot encodes it (on the FSM goroutine, so it matches the
//     snapshot's applied index) into the reference snapshot, and Open
//     streams it in the full snapshot a lagging follower receives, whose
//     Restore installs it;
//   - New, before Raft starts, installs the table of the latest snapshot
//     (reference or full): Raft replays only the entries after it;
//   - every replayed command updates the table as when it was first
//     applied, including those ApplyBatch skips because the data log has
//     their records: a replayed command within the data log's range follows
//     what the data log holds (records: recorded at their first offset;
//     none: it was a duplicate or refused, not recorded), whatever the
//     table decides now, so a replay never stops the state machine. A
//     command whose records retention has meanwhile removed is decided
//     again, and recorded at the data log's lowest offset: a duplicate of
//     it would be answered with that offset instead of the original one,
//     which is no longer readable either way.
//
// The encoded table takes at most 33 + 162 bytes per producer (1.62 MB at
// the default 10000 producers) in every snapshot; a snapshot's table is
// refused before it is read if longer than the largest any valid limits
// allow (producer.MaxEncodedSize, at producer.MaxMaxProducers), since the
// limits are the leader's, not this node's. Snapshots written before
// producer tables (versions 1 and 2) still decode, with an empty table;
// tables of go/producer's encoding version 1 decode with the default
// limits and batches without checksums.
//
// # Snapshots
//
// The data log already holds, durably, everything a snapshot would: so a
// snapshot the FSM takes does not copy it. FSM.Snapshot fsyncs the data
// log and persists only a reference, a 48-byte header (version 4, see
// codec.go) and the producer table: the applied index, the last command's
// index, and the range of offsets [lowest, next) the data log held. The snapshot store (a
// raft.FileSnapshotStore wrapped by snapshotStore) turns a reference into
// a full snapshot only when Raft opens it, which it does to send it to a
// follower that lags behind the leader's compacted log (InstallSnapshot):
// Open streams a 32-byte header (version 3), the producer table and the data log's records
// [max(lowest, the current agreed lowest), next) from the live data log
// (go/seglog ReaderRange, which also gives the exact size Raft announces), so
// the leader writes no copy at all. Records appended after the snapshot
// are not sent: the follower replays them from the Raft log. If retention
// has meanwhile removed records up to next, the reference can no longer
// be served: Open fails (Raft retries) and asks for a new snapshot, which
// the next attempt uses.
//
// A follower receives full snapshots (version 3) into its store, and
// Restore rebuilds the data log from the stream in DataDir/data.restore,
// then swaps it in; the restored log starts exactly at the leader's lowest
// offset, which becomes this node's. That full copy stays in the store
// until SnapshotRetain newer snapshots (references) replace it.
//
// On start the data log is not rebuilt from a snapshot
// (NoSnapshotRestoreOnStart) unless it is missing, corrupt (set aside as
// data.corrupt.<time>) or behind the latest snapshot (a data log ahead of
// the Raft log is cut back instead, see above). If that snapshot is a
// full one (a crash while installing it) it is restored as before. If it
// is a reference, the records exist nowhere else on this node: New fails
// with ErrDataLogLost, saying so, rather than start with a hole. Remove
// the node's DataDir and start it again: it rejoins empty and the leader
// sends it a full snapshot. (A node whose Raft log was never compacted has
// no snapshot and rebuilds its data log by replaying the Raft log.)
//
// Raft snapshots every Config.SnapshotThreshold entries (checked every
// SnapshotInterval) and keeps Config.TrailingLogs entries behind it for
// followers that lag a little; Snapshot forces one. Entry counts do not
// bound bytes (8192 entries of 100 KiB batches are 800 MiB), so the node
// also checks the Raft log's size after every write to it: above
// TrailingBytes + SnapshotThresholdBytes it takes a snapshot and has Raft
// compact down to the newest whole segments within TrailingBytes (it
// lowers Raft's TrailingLogs, through ReloadConfig, to the number of
// entries in them for that snapshot). An attempt that frees nothing is
// retried only after another SnapshotThresholdBytes of growth.
//
// # Retention
//
// Config.DataLog.Retention (MaxBytes, MaxAge) is applied by the cluster,
// not by each node: the leader computes from its own data log the lowest
// offset retention allows at segment granularity (go/seglog RetentionOffset:
// the base of the oldest segment kept) whenever its data log gains a
// segment and every RetentionInterval (ApplyRetention does it on demand),
// and if it is above the current lowest offset proposes it as a retention
// command. Every replica applies it at the same point of the log: it
// writes the new lowest offset to DataDir/data.lowest (atomically,
// fsynced), from then on refuses reads below it (*log.OffsetOutOfRangeError
// with the bounds, OUT_OF_RANGE at the API) and removes the whole segments
// below it (go/seglog Truncate). A follower whose segment boundaries differ
// (another segment size, or a log restored from a snapshot) keeps the
// segment that straddles the offset on disk until a later retention
// removes it, but never serves, snapshots or counts its records below the
// offset: every replica's LowestOffset is the agreed one. The command is
// idempotent: replaying it (after a restart) or an older one changes
// nothing, and a crash between the file and the removal is finished on the
// next start. The leader only proposes offsets below its next offset, and
// a replica refuses (as that command's error) one at or past its own.
//
// # Disk use
//
// With R = DataLog.Retention.MaxBytes, S = DataLog.Segment.MaxStoreBytes,
// S_r = RaftLog.Segment.MaxStoreBytes, T = TrailingBytes, Th =
// SnapshotThresholdBytes and K = SnapshotRetain, a node's files stay below:
//
//	data log   R + 2·S      R after a retention, one segment written
//	                        before the leader checks again, and one that
//	                        straddles the agreed offset on a follower
//	Raft log   T + Th + 2·S_r
//	snapshots  K references of 48 bytes plus the producer table; after catching up by
//	           InstallSnapshot, up to (K+1)·(R + 2·S) until K newer
//	           snapshots replace the full copies
//	indexes    12 bytes a record, plus MaxIndexBytes for each log's active
//	           segment (preallocated)
//
// plus what is appended while a retention command or a snapshot is in
// flight, and a few small files (stable store, first_index, data.lowest,
// snapshot metadata). TestRetentionRunsOnEveryReplica checks this bound on
// a 3-node cluster sent many times its retention. Without retention the
// data log grows with the log (and so do the full snapshots a node
// receives). DiskUsage reports the sizes.
//
// # Reads
//
// Read takes a Consistency; CommitLog.Read maps the port's
// (commitlog.ConsistencyLinearizable, commitlog.ConsistencyFollower) to it,
// the server having resolved the request's (or its default) consistency.
// ReadLinearizable runs on the leader only: it notes the leader's last index, confirms leadership
// with a quorum (VerifyLeader, no disk write) and waits until the FSM has
// applied every command up to that index — so a record whose append was
// acknowledged before the read started is always returned. On a follower it
// fails with *commitlog.NotLeaderError. ReadFollower reads the local data
// log as it is: it never holds an uncommitted record (only applied ones), but may lag.
// It answers "past the end" (*log.OffsetOutOfRangeError) only once the node
// has caught up: it knows a commit index covering an entry of the current
// term (none after a restart until a leader sends one; a new leader's only
// once the first entry of its term is committed) and has applied every
// command up to it. Until then such a read waits, at most until the call's
// deadline or Config.ApplyTimeout, then fails with
// ErrNotCaughtUp (commitlog.ErrUnavailable, which the server answers
// Unavailable): an acknowledged record is never
// reported as not existing. The wait wakes whenever the FSM applies an
// entry; since hashicorp/raft reports no commit index change (no
// observation, and committed no-ops are not handed to the FSM), it also
// checks the commit index every 10ms until it knows one of the current
// term, which only a commit over no-ops alone needs. Wait (for streams) waits on the local data log,
// so a stream served with follower reads, on any node, only ever sees
// committed records, and never reports an end.
//
// # Leadership, membership and errors
//
// Appends and membership changes need the leader. Elsewhere they fail with
// *commitlog.NotLeaderError carrying the leader's ID and address (which is
// its gRPC address too: Raft and gRPC share the port through go/mux). Appends are
// not forwarded to the leader; clients retry there. Join and Leave are
// idempotent and make Log a discovery.Handler: wire discovery's events to
// it and call discovery's Reconcile from Config.OnLeadershipChange when
// this node becomes the leader. Config.OnLeaderChange reports which leader
// this node knows of (for readiness). Close hands leadership over before
// stopping.
//
// # Peers
//
// With Config.PeerName, Raft peers are authorized by the node identity
// their connection proves (for go/mux's TLS connections, the node URI of
// the certificate, see go/auth/nodeid), by a wrapper around the stream
// layer (peerauth.go):
//
//   - accepted connections: before Raft reads a request, the proven node
//     must be in the latest Raft configuration (any node while that does
//     not hold this node: a node the leader is adding, empty at first, then
//     replaying configurations from before it, which need not hold the
//     leader), and the request, decoded with
//     Raft's own codec, must carry that node as its RPC header's server ID. Otherwise the
//     connection is closed and nothing of the request reaches Raft. The
//     checked bytes reach Raft unchanged, pipelined requests included; an
//     InstallSnapshot's data passes through unread;
//   - dialed connections: the peer must be the server the configuration has
//     at the dialed address;
//   - Join: a server not yet in the configuration at its address is added
//     only after the leader dialed that address and the peer proved to be
//     the server (Config.JoinVerifyTimeout); gossip names and addresses are
//     hints. Members that do not are logged once, listed by
//     UnverifiedMembers and tried again at the next Join (discovery's
//     periodic Reconcile).
//
// Rejections are logged at most once a second and reported to
// Config.OnPeerRejected with a Reject* reason. A node whose configuration
// is stale rejects members added since until it hears of them from a
// leader it knows (see docs/security.md).
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
// segment roll-overs. If another file takes that space too, a write that
// finds no space is undone and retried (the Raft log refuses the entries;
// an apply waits), never a reason to stop or restart. Reads, heartbeats and votes go on throughout, and
// everything resumes by itself once space is freed. The stable store
// overwrites preallocated blocks in place, so an election never needs a
// new block (hashicorp/raft panics if it cannot record a term); snapshot
// failures are errors Raft logs and retries later.
//
// # Transport
//
// Every node runs several Raft groups on its one port (go/mux): the
// metadata group and one per partition replica. A Transport (transport.go)
// carries them: built from go/mux's Mux.DialRaft and Mux.RaftConns (taken
// as a DialFunc and a GroupListener, so this package does not import
// go/mux), Transport.Group(id) registers a group and returns its
// raft.StreamLayer, for raft.NewNetworkTransport and Config.StreamLayer.
// Its Dial writes the group ID into the connection's header (go/mux's
// protocol); its Accept returns only the connections whose header named
// the group; its Addr is the node's advertised address, the same for every
// group; its Close unregisters the group alone. A connection naming a
// group not registered here, or arriving while its group's accept backlog
// (TransportConfig.AcceptBacklog, 64 by default) is full, is closed at
// once (Raft redials), reported to TransportConfig.OnRefused with a
// Refused* reason and logged at most once per 10s, so a group whose Raft
// does not accept never holds up the others. Group IDs are the
// caller's: go/broker names a partition's group (broker.GroupID) and
// go/metadata/group the metadata group ("meta"). The peer checks
// (Config.PeerName) wrap a group's stream layer as before;
// GuardStreamLayer gives them to a group run outside this package (the
// metadata group), and VerifyPeer its Join's identity check.
//
// # Stable store
//
// Raft's term and vote live in StableStore, a small file of two slots
// overwritten in place, instead of raft-boltdb/v2, which does not build
// against the go-metrics version raft v1.8.0 requires (see StableStore).
package replication
