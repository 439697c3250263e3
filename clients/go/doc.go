// Package client is the Go client of proglog, a replicated commit log.
//
//	c, err := client.New(ctx, "proglog://10.0.0.1:8400,10.0.0.2:8400",
//		client.WithTLSFiles("ca.pem", "app.pem", "app-key.pem"))
//	if err != nil { ... }
//	defer c.Close()
//	off, err := c.ProduceValue(ctx, []byte("hello"))
//	rec, err := c.Consume(ctx, off)
//	for rec, err := range c.Records(ctx, 0) { ... }          // follows the log
//	for rec, err := range c.Records(ctx, 0, client.StopAtEnd()) { ... }
//	f := c.ProduceAsync(ctx, rec); ...; c.Flush(ctx); off, err := f.Result()
//	b, err := c.Bounds(ctx) // readable offsets [b.Lowest, b.Next), asked of the leader
//
//	orders := c.Topic("orders")
//	pos, err := orders.Produce(ctx, &client.Record{Key: []byte("customer-42"), Value: v})
//	rec, err := orders.Partition(pos.Partition).Consume(ctx, pos.Offset)
//	for rec, err := range orders.Partition(3).Records(ctx, 0) { ... }
//	info, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 12, ReplicationFactor: 3})
//
//	cons, err := c.Consumer(ctx, "billing", []string{"orders"})
//	defer cons.Close(ctx)                 // commits and leaves the group
//	m, err := cons.Next(ctx)              // m.Topic, m.Partition, m.Offset, m.Record
//
// # Topics and partitions
//
// A cluster serves topics, each a set of partitions; a partition is a log
// of its own, replicated on its replication factor of servers and led by
// one of them. The Client's own produce and read methods (Produce,
// ProduceAsync, ProduceBatch, Consume, Records, Bounds) use partition 0 of
// DefaultTopic ("log"), which every cluster has, so code written for the
// single log of older clusters works unchanged. Topic(name) is a handle
// on a topic: its Produce and ProduceAsync place a record by its key, and
// Partition(p) is a handle on one partition with the Client's methods
// (Produce, ProduceAsync, ProduceBatch, Consume, Records, Bounds).
//
// A record with a (non-empty) key goes to partition KeyPartition(key, P)
// of the topic's P partitions: toPositive(murmur2(key)) mod P, Kafka's
// default partitioner (Murmur2 gives the hash), so a key lands on the
// partition a Kafka producer would choose, and the records of one key stay
// in order. A record without a key goes to the topic's sticky partition,
// chosen at random and changed each time a batch is sent to it (Kafka's
// KIP-480): keyless records form large batches and still spread over the
// partitions. Order is per partition only.
//
// CreateTopic, DeleteTopic, Topics and Describe manage and list topics
// (CreateTopic and DeleteTopic go to the cluster's metadata leader,
// following NOT_LEADER answers, and the client remembers it for the next
// ones). CreateACLs, DeleteACLs and ListACLs manage the access rules kept
// in the cluster's metadata the same way (ErrInvalidACL for a rule the
// servers refuse).
//
// The client learns where partitions are from the cluster's metadata
// (GetMetadata: each partition's replicas and leader), asked of any server
// for a topic on its first use and cached. A call that finds it stale —
// NOT_LEADER (whose leader hint moves that partition's calls at once),
// UNAVAILABLE, or an unknown topic or partition (NOT_FOUND, retried once)
// — has it asked again, at most once per WithMetadataRefresh (default
// 100ms) per topic. A server's copy of the metadata may lag a moment
// behind the metadata leader's (a heartbeat): an unknown topic is asked
// again once, after WithMetadataRefresh, before the client believes it; a
// topic the client knows (from its own
// CreateTopic's answer, or an earlier one) is dropped only when a server
// answers that it is unknown twice in a row (a refresh apart), and a call
// to a partition the client knows is retried while a server answers
// NOT_FOUND. Servers that answer no metadata (older servers, or an
// ACL without "describe", "produce" or "consume" on the topic) leave
// DefaultTopic routed by discovery's roles as before topics, asked again
// every WithDiscoveryInterval; a keyed or keyless produce to another
// topic then fails with ErrPermissionDenied (refused) or ErrUnavailable
// (older servers). Metadata
// older than WithMetadataMaxAge (default 5 minutes, Kafka's
// metadata.max.age.ms) is asked again on the topic's next call though
// nothing failed, so replicas added meanwhile (a replacement, a
// reassignment) get reads. The metadata also says each replica's server
// state (Server.State: alive, failed, leaving) and which replicas are in
// sync (PartitionInfo.InSync; UnderReplicated compares them with the
// replicas and the replication factor).
//
// # Consumer groups
//
// Consumer joins a consumer group: the cluster shares the partitions of
// the group's topics among its members (each partition owned by one
// member at a time) and keeps the group's committed offset of each
// partition, the offset of the next record the group has to process. A
// Consumer reads the partitions it owns from the committed offsets
// (WithStartOffset where nothing is committed), hands records to the
// application one Next at a time, heartbeats in the background (the
// servers say how often: a third of WithSessionTimeout), and commits
// every WithAutoCommit (5 s; 0: only Commit and Close commit). A record
// counts as processed once the application calls Next again after it;
// the automatic commit commits processed records only, Commit and Close
// every record returned. The member calls go to the metadata leader,
// following NOT_LEADER answers and retrying UNAVAILABLE as other calls
// do; the reads stream from the partitions' replicas like Records. A
// remembered metadata leader that answers UNAVAILABLE, or NOT_LEADER
// naming none, is forgotten and the next attempt goes to another server,
// which names the current leader (this holds for every call to the
// metadata leader). Each heartbeat attempt is bounded by the heartbeat
// interval (at least 100ms): a leader that stopped answering costs one interval, so after
// a leader change the member's heartbeats reach the new leader within
// about two intervals, well inside its session (three). A failed member
// call is logged at warn through WithLogger, each failed heartbeat
// attempt at debug.
//
// When the group moves a partition away (another member joined), the
// Consumer stops reading it, drops the records of it read ahead, waits
// until the application holds none of its records, commits its position
// and only then acknowledges the new generation, after which the group
// gives it to the new owner: nothing skipped, nothing read twice. A
// member removed by the group (its session timed out: ErrUnknownMember)
// drops everything and joins again as a new member; the records it
// returned after its last commit are then delivered again, to it or to
// another member (at least once). A commit refused because the
// assignment moved on (ErrNotOwner, ErrStaleGeneration) is followed by a
// heartbeat. Read-ahead is bounded by WithConsumerBuffer records: a slow
// application slows the streams down. WithStopAtEnd makes Next return
// io.EOF once every owned partition is read to its end (proglog consume
// --group). ListGroups, DescribeGroup and FetchOffsets answer from any
// server.
//
// # Batching
//
// Produce and ProduceAsync records are coalesced, per partition: one
// goroutine per partition produced to (started by its first produce,
// ended by Close) sends them to the partition's leader in ProduceBatch
// requests, WithMaxInFlight of them at a time (default 1).
// Records queued while a request is in flight go out together in the
// next, up to WithMaxBatchRecords records (default 1000, at most the
// server's 10000) and WithMaxBatchBytes encoded bytes (default 1 MiB, at
// most the message limit WithMaxMessageBytes, default 4 MiB, a server's
// default); a record over the byte bound goes alone. So a lone produce is
// sent at once and batches grow with the load. Once a request completes,
// the next one waits up to WithRejoinWait (default 250 µs) until as many
// records are queued again as it carried, so that callers that produce
// again as soon as Produce returns share one request instead of splitting
// into two groups taking turns (one queued while the other's request is in
// flight); a lone caller's own next record ends the wait at once.
// WithLinger(d) makes a record wait up to d for others (default 0); Flush
// cuts both waits short and waits for every record queued before it. With one request in flight, the
// ProduceAsync records of one goroutine are written in call order.
// WithBatching(false) sends each Produce as its own request, concurrently.
// The records waiting to be sent, to all partitions together, are bounded
// by WithMaxQueuedBytes (default 32 MiB): beyond it ProduceAsync and
// Produce wait for room. Flush waits for the records of every partition.
//
// Each record gets its own offset or error. A request that fails fails
// every record in it with the same error (retried first as described
// below, as a whole, with the same producer and sequence),
// except a record the server refuses as too large: that record fails with
// a *RecordTooLargeError and the others are sent again. A record whose
// context ends while it is queued is not sent and fails with the
// context's error; once sent, its request is bounded by the latest
// deadline of its records and carries the context values (metadata,
// trace) of its first record. A record over the message limit fails
// before sending. ProduceBatch is never split or merged: it is atomic.
//
// # Discovery
//
// The target names one or more seed servers. The client asks any of them
// for the cluster's servers (GetServers) and keeps the list current: every
// WithDiscoveryInterval, and at once when a connection fails, a server
// answers that it is not the leader, or no leader is known — then it polls
// quickly until a leader appears. It asks the leader first, then the other
// known servers, then the seeds, so the seeds only matter at start. The
// discovery is a gRPC resolver (scheme "proglog") and routing a gRPC
// load-balancing policy, so every call benefits from gRPC's connection
// management: one connection per server, reconnection with backoff.
//
// If the servers refuse GetServers (an ACL that grants produce or consume
// but not "servers"), the client routes to the seeds and to the servers
// the cluster's answers name: the leader a NOT_LEADER answer names (a
// partition's, or the metadata leader for topic, ACL and group member
// calls), and the replicas and metadata leader GetMetadata gives. It
// connects to at most 32 such servers besides the seeds; past that the
// least recently named one is dropped (and learnt again when named).
//
// # Routing
//
// Produce and ProduceBatch go to the partition's leader. Consume and
// Records go round-robin to the partition's followers, or to its leader
// when there are none. (Without metadata, "the leader" and "the
// followers" are discovery's roles: the leader GetServers marks.) A
// partition whose servers discovery does not know yet is routed by those
// roles until it does, and follows NOT_LEADER hints.
// Consume asks for follower consistency (log.v1 CONSISTENCY_FOLLOWER): the
// server answers from the records it has committed, which may lag behind
// the leader, so a Consume that a follower answers with "offset past the
// end" is retried at the leader — a record whose produce was acknowledged
// is always readable. With WithConsistency(ReadLinearizable) Consume goes
// to the leader and asks for CONSISTENCY_LINEARIZABLE. A read that a server
// refuses as not the leader is retried at the leader. Bounds goes to the
// leader (GetBounds, linearizable). Servers goes to any server.
//
// # Retries and duplicates
//
// A call that fails because its server is not the leader (FAILED_PRECONDITION
// with a NOT_LEADER ErrorInfo naming the leader), is unreachable or
// shutting down, or because no leader is elected yet (UNAVAILABLE), is
// retried with jittered exponential backoff (WithBackoff) until the
// call's context or WithCallTimeout (30s) ends — or, with WithRetries(n),
// at most n times. A
// NOT_LEADER answer moves the call to the named leader at once. A
// partition without a leader (UNAVAILABLE, reason NO_LEADER) is retried
// like any unavailability, and when the retries end the error is a
// *NoLeaderError naming the replicas the answering server finds
// unreachable (QuorumLost: a majority of them, so no leader can be
// elected until they are back). It is not returned at once, because the
// server that says so may be the one cut off: on the other side of a
// network partition a majority may elect a leader within seconds. Other
// failures — out of range, permission denied, too large, invalid — are
// returned immediately.
//
// Retrying Consume, Records, Bounds and Servers is always safe. Produces
// are idempotent by default (WithIdempotence): every produce request
// carries a producer ID, chosen at random (crypto/rand) by the client, and
// the sequence number of its first record, the same on every retry of the
// request. The cluster remembers each producer's latest batches, so a retry
// of a request it already wrote — the connection broke after sending, or
// the server answered UNAVAILABLE because its leadership changed or the
// cluster did not commit in time — is answered with the original offsets
// and writes nothing: with the default retries (until the call's deadline)
// an acknowledged record is written exactly once, and a failed one at most
// once, except as said for ErrMaybeWritten.
//
// A producer has one request in flight at a time: the client keeps a pool
// of producers per partition (a producer's sequences are one partition's),
// and each request (a coalesced batch in one of the
// WithMaxInFlight slots, a ProduceBatch, an unbatched Produce) takes an
// idle one for all of its attempts and gives it back once it succeeded, so
// there are as many producers as requests were ever in flight at once. A
// producer whose request failed is dropped (its next sequence is
// unknown). A pool rather than a producer per call keeps the cluster's
// table of producers small (past the servers' --max-producers it evicts
// the longest idle one, but only one idle longer than
// --producer-evict-after, 5 minutes by default and far above any call's
// deadline, so a retry always finds its producer; with none evictable it
// refuses a new producer: ErrTooManyProducers, nothing written, not
// retried); a pool rather than one producer for the client keeps requests
// concurrent. If the cluster has forgotten a producer (idle past the
// servers' --producer-expiry, or evicted: UNKNOWN_PRODUCER) and no earlier
// attempt of the request may have been written (each was refused, like a
// NOT_LEADER redirect, or never sent),
// nothing was written and the client sends the request again as a new
// producer; after an attempt that may have been written (sent, then
// UNAVAILABLE or a broken connection) the call fails with ErrMaybeWritten
// (read the log to find out). ErrOutOfOrderSequence means
// a producer ID shared by two clients, or a bug.
//
// With WithIdempotence(false) (servers older than idempotent producers
// ignore the producer), a retried produce may DUPLICATE records: a
// Produce appears twice, a ProduceBatch twice as a whole, at new offsets.
// WithProduceRetries(0) then makes delivery at-most-once by returning
// those failures (matching ErrUnavailable) instead, leaving the decision
// to the caller. A produce that fails with any error, including a
// cancelled context, may still have been written; only an acknowledged
// produce is known to be written.
//
// # Errors
//
// Failures are typed: errors.Is matches ErrOffsetOutOfRange,
// ErrRecordTooLarge, ErrLowDiskSpace, ErrPermissionDenied, ErrUnauthenticated, ErrNotLeader,
// ErrUnavailable, ErrInvalidArgument, ErrDataLoss, ErrInternal, ErrTLS, ErrClosed,
// ErrOutOfOrderSequence, ErrTooManyProducers, ErrMaybeWritten (wrapping
// ErrUnknownProducer), ErrUnknownTopic, ErrUnknownPartition,
// ErrTopicExists, ErrInvalidTopic (also ErrInvalidArgument),
// ErrNotEnoughNodes, ErrNoLeader (also ErrUnavailable), the groups'
// ErrInvalidGroup (also ErrInvalidArgument), ErrUnknownGroup,
// ErrUnknownMember, ErrNotOwner, ErrStaleGeneration, ErrTooManyMembers, or
// context.Canceled / context.DeadlineExceeded; errors.As gives the details
// of *OffsetOutOfRangeError (Offset, Lowest, Next), *RecordTooLargeError
// (Size, Limit, Index, Request), *NotLeaderError (LeaderID, LeaderAddr)
// and *NoLeaderError (Topic, Partition, Replicas, Unreachable); and
// status.FromError still gives the gRPC status.
//
// New checks the TLS files (a key that does not match its certificate, a
// client certificate outside its validity) before connecting, and when the
// seeds do not answer, tells a TLS mistake (a server certificate the CA
// does not verify, a client certificate missing or refused) from servers
// that are down: the former fails at once with ErrTLS naming it.
//
// # Logging and tracing
//
// WithLogger gives the client an slog.Logger for discovery changes (leader
// changes at info) and retries (debug). WithTracerProvider makes an
// OpenTelemetry client span of every call and sends the caller's trace
// context (W3C traceparent/tracestate, baggage) in its metadata, so the
// server's spans (proglog serve --trace-exporter) join the caller's trace;
// a coalesced batch's request carries the context of its first record.
package client
