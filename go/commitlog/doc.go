// Package commitlog is the port between proglog's API server and the logs
// it serves: a byte-oriented commit log of one partition.
//
// go/server serves a Partition and owns everything about records and
// errors on the wire: it encodes each record (a protobuf log.v1.Record)
// before Append and decodes it after Read, and it maps every error below to
// a gRPC status. Implementations store and return the bytes as given:
// go/replication's CommitLog (a Raft-replicated log) and go/server's
// StorageLog (a single node over go/seglog). This package imports only the
// standard library, so the implementations need neither gRPC nor the proto.
//
// Cluster is the rest of the port: the partitions a node serves, found by
// topic and partition, and the topics' metadata (DefaultTopic, TopicInfo).
// go/broker implements it over the metadata Raft group and one Raft group
// per partition (docs/architecture.md). ValidateTopicName and
// TopicConfig.Validate hold log.proto's rules for topic names and settings
// (the server checks a CreateTopic with them before the Cluster sees it);
// a Cluster that refuses a replication factor for lack of nodes returns a
// *NotEnoughNodesError, which carries both numbers.
//
// # Contract
//
// A Partition is safe for concurrent use. Offsets are consecutive from
// LowestOffset to NextOffset-1; an Append of n records takes the offsets
// first to first+n-1, all or none. Read with ConsistencyLinearizable
// returns every record whose append was acknowledged before the read
// started; ConsistencyFollower may lag behind but returns only committed
// records. Wait returns nil once NextOffset() > offset.
//
// # Errors
//
// An implementation reports failures with these errors, wrapped or not;
// the server tells them apart with errors.Is and errors.As:
//
//   - *NotLeaderError (errors.Is ErrNotLeader): the call needs the leader
//     and this node is not it; LeaderAddr names the leader, or is empty
//     while none is known (an election).
//   - ErrLeadershipLost: leadership changed while an append was in flight;
//     it may or may not have been written.
//   - ErrUnavailable: the partition cannot serve on this node now (timed
//     out, closed, failed, not caught up); retry later or elsewhere.
//   - go/seglog's errors: *seglog.OffsetOutOfRangeError (or
//     seglog.ErrOffsetOutOfRange), seglog.ErrRecordTooLarge,
//     seglog.ErrClosed and seglog.ErrFailed (the local log can no longer
//     serve), seglog.ErrCorrupt.
//   - *diskspace.LowSpaceError: a write refused below the free-space
//     watermark.
//   - *producer.SequenceError: an idempotent append refused for its
//     sequence (go/producer).
//   - context.Canceled, context.DeadlineExceeded: the caller's context.
//
// Anything else is an internal error to the server. The first three take
// precedence: an implementation's unavailable error that also wraps, say,
// seglog.ErrClosed is answered as unavailable on this node, not as a
// failure of the server's own log.
package commitlog
