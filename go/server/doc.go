// Package server implements proglog's gRPC API (log.v1.Log) on one node.
//
// The server is storage-agnostic: it serves a commitlog.Cluster (the port
// in go/commitlog: the partitions of this node by topic and partition, and
// the topics' metadata; go/broker implements it) and
// asks a commitlog.ServerLister for the cluster's servers (by default it
// lists only itself, as leader). Each partition is a commitlog.Partition —
// a Raft-replicated log (go/replication's CommitLog), or the local storage
// engine through NewStorageLog. Records cross the port as bytes: the server encodes
// each log.v1.Record before Partition.Append (EncodeRecords, its protobuf
// encoding) and decodes it after Partition.Read (DecodeRecord). The server
// owns every mapping of an error to a gRPC status, including the port's
// *commitlog.NotLeaderError, commitlog.ErrLeadershipLost and
// commitlog.ErrUnavailable; a partition's *commitlog.NotLeaderError
// without a leader becomes UNAVAILABLE with ErrorInfo NO_LEADER naming its
// replicas on servers the ServerLister has failed or leaving, and the
// metadata group's (a call about no partition: topics, consumer groups,
// ACLs) NO_LEADER with scope "metadata" naming its voters (Server's
// MetadataVoter) there (see README.md). Dependencies point one way: this package and
// the implementations import go/commitlog; this package imports none of the
// implementations and knows nothing of Raft.
//
// Contract:
//   - Topics. Every record RPC (Produce, ProduceBatch, ProduceStream,
//     Consume, ConsumeStream, GetBounds) names a topic (empty:
//     commitlog.DefaultTopic) and a partition, resolved once per call or
//     stream with Cluster.Partition; the call then works on that partition
//     alone, and a stream keeps following it. All requests of a
//     ProduceStream name its first request's topic and partition or leave
//     both empty, else codes.InvalidArgument. A name log.proto does not
//     allow is codes.InvalidArgument (ErrorInfo INVALID_TOPIC), an unknown
//     topic or partition codes.NotFound (UNKNOWN_TOPIC with metadata
//     topic; UNKNOWN_PARTITION with topic and partition).
//   - Topic RPCs. GetMetadata answers Cluster.Topics, ordered by name, with
//     the servers of Config.Servers (as GetServers); without names, only the
//     topics the caller may describe. CreateTopic checks the name and the
//     settings (commitlog.ValidateTopicName, TopicConfig.Validate) before
//     the cluster sees them, zero settings taking the defaults (1 partition,
//     replication factor min(DefaultReplicationFactor, servers), no
//     retention); an existing topic is codes.AlreadyExists (TOPIC_EXISTS), a
//     replication factor over the live nodes codes.FailedPrecondition
//     (NOT_ENOUGH_NODES, metadata replication_factor and nodes). DeleteTopic
//     of the default topic is refused by the server (INVALID_TOPIC). Both
//     need the metadata leader: another node's *commitlog.NotLeaderError is
//     NOT_LEADER, as for partitions.
//   - Consumer groups (log.proto, "Consumer groups"). JoinGroup,
//     Heartbeat, LeaveGroup, CommitOffsets, FetchOffsets, ListGroups and
//     DescribeGroup go to Config.Groups (the commitlog.Groups port; nil:
//     codes.Unimplemented). The server checks every field before the port
//     sees it — group name (commitlog.ValidateGroupName), topic names, 1 to
//     commitlog.MaxGroupTopics topics, a session timeout of 0 or within
//     [commitlog.MinSessionTimeout, commitlog.MaxSessionTimeout], client id
//     and member id lengths (commitlog.MaxClientIDLen, MaxMemberIDLen), 1 to
//     commitlog.MaxCommitOffsets positions and no partition twice, fetched
//     topics naming their partitions — refusing with codes.InvalidArgument
//     (ErrorInfo INVALID_GROUP, metadata group; INVALID_TOPIC for a topic
//     name); the repeated fields are counted on the wire before decoding.
//     The port's errors get log.proto's statuses: UNKNOWN_GROUP,
//     UNKNOWN_MEMBER (codes.NotFound), NOT_OWNER, STALE_GENERATION
//     (codes.FailedPrecondition, with the typed errors' figures),
//     TOO_MANY_MEMBERS (codes.ResourceExhausted), UNKNOWN_TOPIC, and
//     NOT_LEADER or codes.Unavailable as for CreateTopic. The reads answer
//     ordered by topic and partition, members by id, groups by name.
//   - ACL RPCs. With Config.ACLs, CreateACLs and DeleteACLs change the
//     rules the port keeps (the metadata's) and ListACLs lists them, then
//     Config.ACLPolicyRules marked from_policy_file; without it they are
//     codes.Unimplemented. More than commitlog.MaxACLRulesPerRequest rules
//     are refused by the codec before decoding; commitlog.ErrInvalidACL
//     is codes.InvalidArgument (ErrorInfo INVALID_ACL), a
//     *commitlog.NotLeaderError NOT_LEADER.
//   - Security. TLS is mandatory. Every RPC, health checks included, needs a
//     client certificate verified by the handshake; its subject CN is the
//     principal (go/auth). ACL objects are topic names (casbin keyMatch
//     wildcards: "orders.*"; "*" is everything): "produce" and "consume" on
//     the request's topic, "describe", "create" and "delete" on the topics
//     of GetMetadata, CreateTopic and DeleteTopic ("produce" or "consume"
//     on a topic also let GetMetadata describe it), "servers" on
//     auth.DefaultObject ("log"), "read" on "reflection", "acl" on "*"
//     (auth.ObjectAll) for CreateACLs and DeleteACLs and "describe" on
//     "*" for ListACLs. Groups are
//     objects too: "group" on the group for every group RPC (ListGroups
//     lists the groups the caller has it on), plus "consume" on each topic
//     JoinGroup subscribes to and CommitOffsets commits. When the call's
//     headers arrive (a tap handle), before its message is read, the caller
//     must have the method's action on at least one object
//     (Authorizer.AuthorizeAny), or on the fixed object of GetServers and
//     reflection; the topic, known once the message is decoded (within the
//     codec's bounds), is checked by the handler before anything else. A
//     missing identity is codes.Unauthenticated, a refused one
//     codes.PermissionDenied; then nothing is read or written, and a caller
//     with the action on no object has nothing decoded. log.v1.Internal,
//     the node-to-node service (registered with Config.Internal), skips
//     the ACL: its calls need a verified certificate naming a node
//     (go/auth/nodeid), checked in the tap handle; any other is
//     codes.PermissionDenied. The node named is the reporter, handed to
//     Config.Internal.
//   - Validation before decoding. The server's codec counts a produce
//     request's records, each record's headers and their keys' and values'
//     bytes on the wire and refuses one over Config.MaxBatchRecords,
//     MaxRecordHeaders or MaxRecordHeaderBytes with codes.InvalidArgument
//     before unmarshalling it, so a request never decodes to more than its
//     limits; a malformed message is codes.InvalidArgument too, not
//     Internal.
//   - Validation before writing. A produce request is checked whole before
//     the Partition sees it: a missing record or an empty batch is
//     codes.InvalidArgument, a record whose encoded size exceeds
//     Config.MaxRecordBytes is codes.ResourceExhausted with an ErrorInfo
//     (reason RECORD_TOO_LARGE). A batch is all or nothing.
//   - Records. The server assigns offsets, ignoring any sent, and stamps
//     records without a timestamp with its clock.
//   - Idempotent produces (log.proto's Producer). A request with a producer
//     of non-zero ID goes to Partition.AppendIdempotent, which decides from
//     the producer's sequence: written, a duplicate of a batch already
//     written (the response carries the original offsets and duplicate =
//     true; nothing is written), or refused — codes.FailedPrecondition
//     with an ErrorInfo, reason OUT_OF_ORDER_SEQUENCE (metadata
//     producer_id, sequence, expected, in decimal) or UNKNOWN_PRODUCER
//     (producer_id, sequence). A sequence with producer ID 0, or one that
//     overflows with the request's records, is codes.InvalidArgument. In a
//     ProduceStream each message carries its own sequence; consecutive
//     messages of one producer with consecutive sequences are written as
//     one idempotent batch.
//   - Low disk space. A Partition error wrapping *diskspace.LowSpaceError
//     (the node's free disk space is below its watermark) is
//     codes.ResourceExhausted with an ErrorInfo (reason LOW_DISK_SPACE,
//     metadata free and required, in bytes): nothing was written, reads
//     still work, and writes resume by themselves once space is freed.
//   - Offsets outside [lowest, next) are codes.OutOfRange with
//     google.rpc.ErrorInfo (reason OFFSET_OUT_OF_RANGE, metadata offset,
//     lowest, next) and google.rpc.LocalizedMessage details.
//   - ProduceStream group-commits: requests that queue up while an append
//     runs are written together with one Append (one fsync), then
//     acknowledged one by one, in order. An acknowledgement means written.
//   - Read consistency. Consume passes the request's consistency to
//     Partition.Read: CONSISTENCY_LINEARIZABLE as
//     commitlog.ConsistencyLinearizable, CONSISTENCY_FOLLOWER as
//     commitlog.ConsistencyFollower, CONSISTENCY_UNSPECIFIED as
//     Config.DefaultConsistency (linearizable unless configured), and an
//     unknown value is codes.InvalidArgument. What a consistency means is the
//     Partition's business (see commitlog.Consistency); a single node's
//     StorageLog serves both alike.
//   - GetBounds (the "consume" action) answers Partition.Bounds with the
//     request's consistency mapped like Consume's: the readable range
//     [lowest, next), linearizable (every acknowledged append below next)
//     or this node's view.
//   - ConsumeStream sends from the requested offset and then blocks in
//     Partition.Wait for new records — no polling — reading each with
//     commitlog.ConsistencyFollower: Wait reports records this node holds, which a
//     replicated log only ever fills with committed ones, so any node can
//     serve a stream and it never sends an uncommitted record (it may lag
//     behind the leader). The request's consistency is validated, not
//     used. A stream ends when the client cancels, or with
//     codes.Unavailable when the server shuts down or the log closes.
//   - Health. grpc.health.v1 reports SERVING (overall and for log.v1.Log)
//     while the node is ready — SetServing, which a cluster member drives
//     from whether it knows a leader — and its log has not failed.
//     LivenessService is SERVING until Shutdown regardless: a liveness
//     check that does not depend on leadership. RegisterHealthService
//     serves the same statuses on another gRPC server (the agent's
//     plaintext health port).
//   - Shutdown marks the health service NOT_SERVING, ends open streams,
//     then GracefulStop drains unary calls until the deadline, after which
//     Stop closes whatever remains.
//   - Leadership (a replicated Partition). *commitlog.NotLeaderError naming
//     a leader is codes.FailedPrecondition with an ErrorInfo (reason
//     NOT_LEADER, metadata leader_id and leader_addr): retry at the leader;
//     without a leader (an election) it is codes.Unavailable, as are
//     commitlog.ErrLeadershipLost (the append may or may not have been
//     written) and commitlog.ErrUnavailable (this node cannot serve now).
//     None of them changes health.
//   - Other failures: a closed or failed local log (go/seglog's ErrClosed,
//     ErrFailed; of any partition) is codes.Unavailable and sets health NOT_SERVING, on-disk
//     corruption codes.DataLoss, anything unexpected codes.Internal with the
//     error logged, never sent.
//
// Limits (Config; the README's "Limits" gives defaults and rationale):
// record size, batch length, headers per record and their bytes, topic
// names per GetMetadata, consumer lag series per scrape
// (MaxGroupLagSeries), gRPC
// message sizes, connections open at once on the listener given to Serve
// (more are closed at once), calls running at once over all connections
// (more get codes.ResourceExhausted) and per connection, handshake timeout,
// idle and maximum connection age, and keepalive enforcement (clients
// pinging more often than KeepaliveMinTime are disconnected). What is
// refused before a call starts — connections over the cap, failed TLS
// handshakes, calls refused by the tap handle or the codec — is logged at
// most every 10s with the peer's address and counted
// (proglog_rejected_connections_total, proglog_tls_handshake_failures_total,
// proglog_rejected_requests_total), not in the per-RPC metrics or traces.
//
// Consumer lag. With Config.Groups and Config.Metrics, every scrape reads
// proglog_consumer_group_lag{group,topic,partition} — the partition's next
// offset minus the group's committed offset — for the partitions this node
// leads (as Cluster.Topics marks Config.ID), from the port's local reads,
// so that a scrape of every node counts each partition once.
package server
