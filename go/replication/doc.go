// Package replication replicates one partition of proglog's commit log
// with Raft (github.com/hashicorp/raft): a Log is one node's replica of
// the partition's Raft group, and the group's Raft log is the partition's
// record log. Each record is stored once per replica.
//
// The leader accepts appends (Append, AppendBatch, AppendIdempotent); each
// call becomes one Raft entry, a records command holding a batch of
// records that every replica applies whole. CommitLog adapts a Log to the
// port go/server serves (commitlog.Partition and commitlog.ServerLister):
// records cross it as the server's bytes, stored as given, and this
// package's errors cross it in the port's terms — *commitlog.NotLeaderError,
// commitlog.ErrLeadershipLost (ErrLeadershipLost), commitlog.ErrUnavailable
// (ErrTimeout, ErrClosed, ErrFailed, ErrDiverged, ErrNotCaughtUp,
// ErrRecordGone), still matching this package's sentinels with errors.Is.
// go/server maps them to gRPC statuses; this package imports neither
// go/server, the proto nor gRPC. docs/architecture.md ("A partition
// replica") has the design.
//
// # On disk
//
//	DataDir/raft/log/segments/    the Raft log: go/seglog, entry index =
//	                              offset; the records live here
//	DataDir/raft/log/first_index  its first index (see LogStore)
//	DataDir/raft/stable           current term and vote (StableStore)
//	DataDir/raft/snapshots/       Raft snapshots (raft.FileSnapshotStore):
//	                              the small state, or, received from a
//	                              leader, the small state and entries
//
// Entry, command and snapshot encodings are documented in codec.go; every
// one carries a version or type byte. A DataDir of the single-log layout
// (DataDir/data, the data log of proglog before topics, which held a
// second copy of every record) is refused: New fails with ErrOldLayout,
// naming the way to move the records (`proglog consume --from 0 | proglog
// produce` into a new cluster). Converting in place would give each node a
// different Raft history for the same records.
//
// # Offsets
//
// Offsets are a function of the log: a records command's first offset is
// the end of the previous records command. The leader's proposer writes it
// into the command, with the term it proposed in, and every replica's
// state machine checks it: a command whose first offset is not where this
// node's records end means this node's Raft log is not the cluster's, and
// the state machine stops (ErrFailed wrapping ErrDiverged, in Failed) and
// serves nothing until restarted. A command proposed in an earlier term
// than the one Raft appended it in (a proposal handed to Raft just as
// leadership changed, appended in a later leadership of the same node) is
// refused by every replica alike, nothing written, so it never shifts the
// offsets; its caller gets ErrLeadershipLost.
//
// The LogStore keeps a sparse table from offsets to entries (records.go):
// at open one chunk per segment of the Raft log, known by its first
// records entry (each segment is self-describing: that entry carries its
// first offset), and the last segment read whole; a chunk is read whole
// (24 bytes per records entry in memory) the first time a lookup needs it.
// StoreLogs extends it, a suffix DeleteRange (the divergent tail a new
// leader overwrites) and compaction cut it. Reads go
// through it (one entry read and decoded per record; the last entry read
// is cached, so sequential reads of a batch read it once) and return only
// applied records: below the state machine's applied end and at or above
// the agreed lowest offset.
//
// # Proposer
//
// Everything that can refuse records is decided before raft.Apply, by the
// leader: record and entry sizes, the disk watermark (Config.MinFreeBytes)
// in AppendIdempotent, then idempotent sequences in the proposer, one
// goroutine per replica that takes appends in order. It checks each
// producer's sequence against its pending producer table — the applied
// table plus every batch it proposed since, applied or not — and hands
// the command to raft.Apply, waiting until Raft took it (no enqueue
// timeout: an entry given up while later ones got in would leave a hole
// in the offsets). A batch repeating one its producer already sent, even
// one still pending, is answered as a duplicate with the original first
// offset once that batch is applied; an out-of-order sequence, an unknown
// producer or a new producer past the limits is refused
// (*producer.SequenceError) without a Raft entry. On the first proposal of
// a leadership term the proposer waits for a barrier (every entry of
// earlier terms applied) and copies the applied state: a new leader's log
// holds every committed entry, so its decisions agree with what is
// committed. This is how Kafka and Redpanda validate idempotent sequences.
// So a command in the Raft log is never refused later, which is what makes
// its first offset a function of the log.
//
// # State machine
//
// The FSM holds small state only: the applied end offset, the agreed
// lowest offset and the idempotent producers' table (go/producer: per
// producer its last activity and its producer.BatchesKept most recent
// batches). Applying a records command reads its header (first offset,
// term, producer, limits, count), never the records. Snapshots hold that
// state (56 bytes plus the producer table, at most 33 + 162 bytes per
// producer: 1.62 MB at the default 10000 producers); FSM.Snapshot fsyncs
// the Raft log first, since a restart replays only the entries after the
// snapshot. New restores the latest snapshot itself before Raft starts
// (raft.Config.NoSnapshotRestoreOnStart, because Raft's own restore would
// read the snapshot through snapshotStore.Open, which adds the log's
// entries for followers), and Raft replays the entries after it from the
// Raft log. Close takes a snapshot, so a clean restart replays nothing and
// serves every applied record before it hears from a leader.
//
// The producer limits (Config.Producers: Expiry, MaxProducers,
// EvictAfter) are the leader's, carried in every idempotent command: each
// replica's table takes its limits from the command, never from its own
// Config, so nodes started with other limits hold the same table. Time is
// the Raft entry's AppendedAt, set by the leader and stored in the log:
// before each command the producers idle longer than Expiry are dropped,
// and a new producer past MaxProducers evicts the longest idle one (the
// smallest ID among ties). The proposer decides with the same limits and
// its own clock, a moment earlier than AppendedAt; the replicas record its
// decisions, so every replica holds the same table. A producer active
// within EvictAfter (default 5 minutes, longer than any client's call
// deadline) is never evicted: a new producer is refused instead
// (producer.ErrTooManyProducers; go/server answers RESOURCE_EXHAUSTED,
// TOO_MANY_PRODUCERS), so every retry within it is recognised. A
// snapshot's table is refused before it is read if longer than the largest
// any valid limits allow (producer.MaxEncodedSize).
//
// # Snapshots
//
// Raft snapshots every Config.SnapshotThreshold entries (checked every
// SnapshotInterval), when its log's files exceed TrailingBytes +
// SnapshotThresholdBytes (compaction.go; a snapshot is cheap: the small
// state), and on Snapshot and Close. A follower that lags behind the
// leader's first index gets an InstallSnapshot whose stream is the small
// state followed by the Raft entries from the first one holding a record
// at or above the agreed lowest offset up to the snapshot's index, as a
// go/seglog snapshot stream read from the leader's segment files
// (snapshotStore.Open; go/seglog ReaderRange gives the exact size Raft
// announces). The follower's FSM.Restore writes them into its LogStore
// (LogStore.install: restored into a side directory, fsynced, swapped in;
// a crash in between is finished or rolled back at the next open, and the
// stored snapshot installed again) before Raft appends the entries after
// the snapshot. A node that already holds the snapshot's last entry with
// its term (a restart after the install) keeps its log. If retention has
// meanwhile removed the entries a snapshot needs, Open fails (Raft
// retries) and asks for a new snapshot. The follower keeps the received
// snapshot, entries included, until SnapshotRetain newer snapshots replace
// it; it opens as stored (Raft restores it from there, and may send it
// on).
//
// hashicorp/raft's LogCache is not used: an install rewrites entries under
// it.
//
// # Retention and compaction
//
// Config.Retention (MaxBytes, MaxAge of the Raft log's segments) is
// applied by the group, not by each node: the leader computes from its
// Raft log the lowest offset retention allows at segment granularity (the
// first record of the oldest segment kept, go/seglog RetentionOffset)
// whenever its log gains a segment and every RetentionInterval
// (ApplyRetention does it on demand), and proposes it as a retention
// command if it is above the current lowest offset. Every replica applies
// it at the same point of the log: from then on it refuses reads below it
// (*seglog.OffsetOutOfRangeError with the bounds, OUT_OF_RANGE at the API).
//
// Retention and Raft's compaction are one mechanism: the LogStore drops
// the entries below the smaller of Raft's compaction point (the last
// prefix DeleteRange, after a snapshot) and the first entry holding a
// record at or above the agreed lowest offset, in whole segments, writing
// the new first index to first_index before removing them; FirstIndex
// reports what is there. So Raft's compaction never removes a record a
// consumer may still read, and retention never removes an entry a restart
// would replay. Without retention every record stays, and a lagging
// follower always catches up from the leader's log.
//
// # Disk use
//
// With R = Retention.MaxBytes, S = RaftLog.Segment.MaxStoreBytes, T =
// TrailingBytes, Th = SnapshotThresholdBytes and K = SnapshotRetain, a
// node's files stay below:
//
//	Raft log   R + T + Th + 2·S   the records kept, what Raft has not
//	                              compacted yet, one segment written before
//	                              the leader checks again and one that
//	                              straddles the lowest offset
//	snapshots  K small snapshots (the state and the producer table); after
//	           catching up by InstallSnapshot, up to (K+1) copies of the
//	           Raft log bound until K newer snapshots replace them
//	indexes    12 bytes an entry, plus MaxIndexBytes for the active segment
//	           (preallocated)
//
// plus a few small files (stable store, first_index, snapshot metadata).
// TestRetentionRunsOnEveryReplica checks this bound on a 3-node cluster
// sent many times its retention; TestOneCopyOnDisk that a node holds about
// one byte per byte produced. Without retention the Raft log grows with
// the records. DiskUsage reports the sizes.
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
// fails with *commitlog.NotLeaderError. ReadFollower reads this node's
// applied records as they are: never an uncommitted one, but it may lag.
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
// term, which only a commit over no-ops alone needs. Wait (for streams)
// waits for this node's applied end, so a stream served with follower reads, on any node, only ever sees
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
// stopping. TransferLeadership hands it to a named voter (Raft's
// LeadershipTransferToServer: the target is brought up to date first, and
// the transfer fails, this node staying leader, if it does not win within
// an election timeout); Reachable reports, on the leader, whether a
// follower answered its last heartbeat (from Raft's failed and resumed
// heartbeat observations, forgotten when this node becomes leader).
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
// the node cannot refuse: snapshots, snapshot installs, segment
// roll-overs. Applying entries writes nothing. If another file takes that
// space too, a write that finds no space is undone and retried (the Raft
// log refuses the entries), never a reason to stop or restart. Reads, heartbeats and votes go on throughout, and
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
// # Catching up after a restart
//
// hashicorp/raft's replication goroutine counts its failed append RPCs to
// a follower and, before each retry, sleeps a backoff doubling from 10ms
// per failure up to 10.24s, which only a shutdown interrupts; heartbeats
// back off at most HeartbeatTimeout/2 and never carry entries. So a
// follower down for a few seconds, once back, would hear heartbeats at
// once but get its entries only after the sleep — in every partition
// group independently. A PeerGate (peergate.go) between Raft and its
// NetworkTransport prevents it: it notes per peer address whether the
// last request to the peer failed, and while it did, a non-heartbeat
// AppendEntries or an InstallSnapshot waits, instead of failing, until a
// request to the peer succeeds — in practice the next heartbeat, which
// reaches the group on the restarted node as soon as it is registered
// there. Raft's failure count therefore stays at one or two for the whole
// outage, its backoff at the minimum, and the restarted follower gets its
// entries with the first heartbeat that reaches it. Heartbeats (the
// requests with no entries and zero PrevLogEntry, PrevLogTerm and
// LeaderCommitIndex, which hashicorp/raft's NetworkTransport recognises
// the same way), votes and TimeoutNow never wait. Raft sends one request
// per follower at a time from its current leadership, so one request per
// peer waits; one from an earlier leadership of this node is released by
// the newer one (and fails), so the gate holds at most one per peer and
// remembers a peer only while it is down; Leave releases the one held for
// the server it removes (PeerGate.Forget). Close releases the request held
// before Raft's shutdown, which waits for the replication goroutines. This
// was preferred to a shorter Raft backoff (a fork of hashicorp/raft) and
// to closing and reopening the Raft group when a peer comes back (a new
// leadership per partition).
//
// # Stable store
//
// Raft's term and vote live in StableStore, a small file of two slots
// overwritten in place, instead of raft-boltdb/v2, which does not build
// against the go-metrics version raft v1.8.0 requires (see StableStore).
package replication
