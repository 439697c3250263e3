package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/producer"
	"github.com/proglog/proglog/go/seglog"
)

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message names it.
	ErrInvalidConfig = errors.New("server: invalid config")
	// ErrNilCluster: New was given no commitlog.Cluster.
	ErrNilCluster = errors.New("server: nil commitlog.Cluster")
	// ErrForcedStop: Shutdown's deadline passed before every call finished,
	// so the remaining ones were cut off.
	ErrForcedStop = errors.New("server: graceful shutdown timed out; remaining calls were cut off")
)

// ErrorDomain is the domain of every google.rpc.ErrorInfo proglog sends
// (see log.proto).
const ErrorDomain = "proglog"

// Error detail vocabulary shared with clients (see log.proto).
const (
	reasonOutOfRange     = "OFFSET_OUT_OF_RANGE"
	reasonRecordTooLarge = "RECORD_TOO_LARGE"
	reasonLowDiskSpace   = "LOW_DISK_SPACE"
	reasonOutOfOrder     = "OUT_OF_ORDER_SEQUENCE"
	reasonUnknownProd    = "UNKNOWN_PRODUCER"
	reasonNotLeader      = "NOT_LEADER"
	reasonNoLeader       = "NO_LEADER"
	reasonTooManyProds   = "TOO_MANY_PRODUCERS"
	reasonUnknownTopic   = "UNKNOWN_TOPIC"
	reasonUnknownPart    = "UNKNOWN_PARTITION"
	reasonTopicExists    = "TOPIC_EXISTS"
	reasonInvalidTopic   = "INVALID_TOPIC"
	reasonNotEnoughNodes = "NOT_ENOUGH_NODES"
	reasonInvalidGroup   = "INVALID_GROUP"
	reasonUnknownGroup   = "UNKNOWN_GROUP"
	reasonUnknownMember  = "UNKNOWN_MEMBER"
	reasonNotOwner       = "NOT_OWNER"
	reasonStaleGen       = "STALE_GENERATION"
	reasonTooManyMembers = "TOO_MANY_MEMBERS"
	// scopeMetadata is the NO_LEADER metadata "scope" of the metadata
	// group (a partition's names its topic instead).
	scopeMetadata = "metadata"
	detailLocale  = "en-US"
)

// outOfRange builds the OUT_OF_RANGE status with its machine-readable and
// human-readable details.
func outOfRange(offset, lowest, next uint64) error {
	var msg string
	switch {
	case lowest >= next:
		msg = fmt.Sprintf("Offset %d is out of range: the log is empty; the next record will get offset %d.", offset, next)
	default:
		msg = fmt.Sprintf("Offset %d is out of range: the log holds offsets %d to %d.", offset, lowest, next-1)
	}
	st := status.Newf(codes.OutOfRange, "offset %d out of range [%d, %d)", offset, lowest, next)
	return withDetails(st,
		&errdetails.ErrorInfo{
			Reason: reasonOutOfRange,
			Domain: ErrorDomain,
			Metadata: map[string]string{
				"offset": strconv.FormatUint(offset, 10),
				"lowest": strconv.FormatUint(lowest, 10),
				"next":   strconv.FormatUint(next, 10),
			},
		},
		&errdetails.LocalizedMessage{Locale: detailLocale, Message: msg},
	)
}

// recordTooLarge builds the RESOURCE_EXHAUSTED status of an oversized record;
// index is its position in a batch, -1 for a single record.
func recordTooLarge(index, size, limit int) error {
	where := "record"
	if index >= 0 {
		where = fmt.Sprintf("records[%d]", index)
	}
	st := status.Newf(codes.ResourceExhausted, "%s is %d bytes encoded, the limit is %d; nothing was written", where, size, limit)
	md := map[string]string{"size": strconv.Itoa(size), "limit": strconv.Itoa(limit)}
	if index >= 0 {
		md["index"] = strconv.Itoa(index)
	}
	return withDetails(st,
		&errdetails.ErrorInfo{Reason: reasonRecordTooLarge, Domain: ErrorDomain, Metadata: md},
		&errdetails.LocalizedMessage{Locale: detailLocale, Message: fmt.Sprintf("The %s is too large (%d bytes; at most %d allowed).", where, size, limit)},
	)
}

// lowDiskSpace builds the RESOURCE_EXHAUSTED status of a write refused
// because the server's free disk space is below its watermark. The data
// directory is left out: it is the operator's business, in the server's
// log and metrics.
func lowDiskSpace(e *diskspace.LowSpaceError) error {
	st := status.Newf(codes.ResourceExhausted,
		"the server's disk is nearly full (%d bytes free, %d required); nothing was written; writes resume once space is freed",
		e.Free, e.Required)
	return withDetails(st,
		&errdetails.ErrorInfo{
			Reason: reasonLowDiskSpace,
			Domain: ErrorDomain,
			Metadata: map[string]string{
				"free":     strconv.FormatUint(e.Free, 10),
				"required": strconv.FormatUint(e.Required, 10),
			},
		},
		&errdetails.LocalizedMessage{Locale: detailLocale, Message: "The server is low on disk space and refuses writes until space is freed; reads still work."},
	)
}

// notLeader builds the status of a call that needs the leader: with a
// known leader FAILED_PRECONDITION naming it (retry there, see log.proto),
// without one UNAVAILABLE: see noLeader.
func (s *Server) notLeader(ctx context.Context, e *commitlog.NotLeaderError, te *topicError) error {
	if e.LeaderAddr == "" {
		return s.noLeader(ctx, te)
	}
	st := status.Newf(codes.FailedPrecondition, "not the leader: send this request to %s (%s)", e.LeaderAddr, e.LeaderID)
	return withDetails(st, &errdetails.ErrorInfo{
		Reason:   reasonNotLeader,
		Domain:   ErrorDomain,
		Metadata: map[string]string{"leader_id": e.LeaderID, "leader_addr": e.LeaderAddr},
	})
}

// noLeader builds the UNAVAILABLE status of a call that found no leader,
// with reason NO_LEADER (see log.proto). A call about a partition (te
// with one) is about its replicas; any other (topics, consumer groups,
// ACLs, the metadata) is about the metadata group's voters: see
// metadataNoLeader. Without the partition's metadata the status is the
// election's, bare.
func (s *Server) noLeader(ctx context.Context, te *topicError) error {
	if te == nil || !te.hasPartition {
		return s.metadataNoLeader(ctx)
	}
	const election = "no leader elected yet; retry shortly"
	topics, err := s.cluster.Topics(ctx, te.topic)
	if err != nil || len(topics) != 1 || int(te.partition) >= len(topics[0].Partitions) {
		return status.Error(codes.Unavailable, election)
	}
	servers, err := s.lister.Servers(ctx)
	if err != nil {
		return status.Error(codes.Unavailable, election)
	}
	var ids []string
	for _, r := range topics[0].Partitions[te.partition].Replicas {
		ids = append(ids, r.ID)
	}
	q := quorumOf(ids, serverStates(servers))
	return q.noLeader(fmt.Sprintf("partition %s/%d has no leader", te.topic, te.partition), "yet", "replicas", "", te.metadata())
}

// metadataNoLeader builds the UNAVAILABLE status of a call the metadata
// group must answer (topics, consumer groups, ACLs) while it has no
// leader: reason NO_LEADER with metadata "scope" "metadata" and no topic,
// "replicas" the group's voters and "unreachable" those on servers known
// to be failed or leaving (see log.proto). With a majority of them
// unreachable the message says that no leader can be elected until they
// are back; otherwise an election is under way.
func (s *Server) metadataNoLeader(ctx context.Context) error {
	md := map[string]string{"scope": scopeMetadata}
	var q quorum
	if servers, err := s.lister.Servers(ctx); err == nil {
		var voters []string
		for _, sv := range servers {
			if sv.MetadataVoter {
				voters = append(voters, sv.ID)
			}
		}
		q = quorumOf(voters, serverStates(servers))
	}
	return q.noLeader("the metadata group has no leader", "elected yet", "voters",
		"; until then topics, consumer groups and ACLs cannot change", md)
}

// noLeader is the NO_LEADER status of a group without a leader as q sees
// it: subject ("partition t/0 has no leader") is followed by yet while an
// election may still succeed, members names the group's members in the
// message, and lost is added when a majority of them is unreachable. md
// is the ErrorInfo metadata, which describe completes.
func (q quorum) noLeader(subject, yet, members, lost string, md map[string]string) error {
	q.describe(md)
	var msg string
	switch {
	case len(q.unreachable) == 0:
		msg = fmt.Sprintf("%s %s (an election is under way); retry shortly", subject, yet)
	case q.lost():
		msg = fmt.Sprintf("%s: %d of its %d %s are unreachable (%s); a leader needs %d of them, so none can be elected until enough are back%s",
			subject, len(q.unreachable), q.members, members, q.why(), q.needed(), lost)
	default:
		msg = fmt.Sprintf("%s %s (an election is under way; %d of its %d %s unreachable: %s); retry shortly",
			subject, yet, len(q.unreachable), q.members, members, q.why())
	}
	return withDetails(status.New(codes.Unavailable, msg), &errdetails.ErrorInfo{Reason: reasonNoLeader, Domain: ErrorDomain, Metadata: md})
}

// quorum is a Raft group's members as a server without a leader sees
// them: how many, and which are on servers known to be failed or leaving
// (with that state, for the message).
type quorum struct {
	members     int
	unreachable []string
	states      []string // "n2 failed", one per unreachable member
}

// quorumOf is the quorum of ids given the servers' states (a member on a
// server not listed: the metadata has it leaving).
func quorumOf(ids []string, states map[string]commitlog.ServerState) quorum {
	q := quorum{members: len(ids)}
	for _, id := range ids {
		if reachable(states, id) {
			continue
		}
		st, ok := states[id]
		if !ok {
			st = commitlog.StateLeaving
		}
		q.unreachable = append(q.unreachable, id)
		q.states = append(q.states, id+" "+st.String())
	}
	return q
}

// describe adds q's "replicas" and "unreachable" to an ErrorInfo's md.
func (q quorum) describe(md map[string]string) {
	md["replicas"] = strconv.Itoa(q.members)
	md["unreachable"] = strings.Join(q.unreachable, ",")
}

// lost reports whether too few members are reachable to elect a leader.
func (q quorum) lost() bool  { return q.members-len(q.unreachable) < q.needed() }
func (q quorum) needed() int { return q.members/2 + 1 }
func (q quorum) why() string { return strings.Join(q.states, ", ") }

// sequenceReason is the ErrorInfo reason of a refused idempotent produce.
func sequenceReason(e *producer.SequenceError) string {
	switch {
	case errors.Is(e.Err, producer.ErrUnknownProducer):
		return reasonUnknownProd
	case errors.Is(e.Err, producer.ErrTooManyProducers):
		return reasonTooManyProds
	}
	return reasonOutOfOrder
}

// tooManyProducers builds the RESOURCE_EXHAUSTED status of a new
// producer refused because the producer table is full of recently active
// ones (see log.proto): nothing was written.
func tooManyProducers(e *producer.SequenceError) error {
	st := status.Newf(codes.ResourceExhausted,
		"too many producers: new producer %d refused, the cluster keeps at most %d and none has been idle long enough to be evicted; nothing was written; retry later",
		e.ProducerID, e.Limit)
	return withDetails(st,
		&errdetails.ErrorInfo{Reason: reasonTooManyProds, Domain: ErrorDomain, Metadata: map[string]string{
			"producer_id": strconv.FormatUint(e.ProducerID, 10),
			"limit":       strconv.Itoa(e.Limit),
		}},
		&errdetails.LocalizedMessage{Locale: detailLocale, Message: "The server is tracking as many active producers as it may; retry later."},
	)
}

// sequenceRefused builds the FAILED_PRECONDITION status of an idempotent
// produce refused for its sequence (see log.proto): nothing was written.
func sequenceRefused(e *producer.SequenceError) error {
	reason := sequenceReason(e)
	if reason == reasonTooManyProds {
		return tooManyProducers(e)
	}
	md := map[string]string{
		"producer_id": strconv.FormatUint(e.ProducerID, 10),
		"sequence":    strconv.FormatUint(e.Sequence, 10),
	}
	var st *status.Status
	var msg string
	if reason == reasonUnknownProd {
		st = status.Newf(codes.FailedPrecondition,
			"unknown producer %d at sequence %d (never seen, idle past the server's producer expiry, or evicted); nothing was written; start a new producer id at sequence 0",
			e.ProducerID, e.Sequence)
		msg = "The server keeps no state for this producer; send the records again as a new producer."
	} else if e.Mismatch {
		md["expected"] = strconv.FormatUint(e.Expected, 10)
		st = status.Newf(codes.FailedPrecondition,
			"sequence %d from producer %d does not match the batch written at this sequence (other records); nothing was written",
			e.Sequence, e.ProducerID)
		msg = fmt.Sprintf("Sequence %d was already used by this producer for other records.", e.Sequence)
	} else {
		md["expected"] = strconv.FormatUint(e.Expected, 10)
		st = status.Newf(codes.FailedPrecondition,
			"out of order sequence %d from producer %d, expected %d (or a retry of one of its latest batches, with the same records); nothing was written",
			e.Sequence, e.ProducerID, e.Expected)
		msg = fmt.Sprintf("The request's sequence number is %d; the server expected %d.", e.Sequence, e.Expected)
	}
	return withDetails(st,
		&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md},
		&errdetails.LocalizedMessage{Locale: detailLocale, Message: msg},
	)
}

// topicError is an error of a call about a topic, and a partition of it
// when hasPartition, so that statusError can name them in the status's
// ErrorInfo: the cluster's errors carry them only in their message.
type topicError struct {
	topic        string
	partition    uint32
	hasPartition bool
	err          error
}

func (e *topicError) Error() string { return e.err.Error() }
func (e *topicError) Unwrap() error { return e.err }

// onTopic marks err (if not nil) as an error about topic.
func onTopic(err error, topic string) error {
	if err == nil {
		return nil
	}
	return &topicError{topic: topic, err: err}
}

// onPartition marks err (if not nil) as an error about topic's partition.
func onPartition(err error, topic string, partition uint32) error {
	if err == nil {
		return nil
	}
	return &topicError{topic: topic, partition: partition, hasPartition: true, err: err}
}

// metadata is the ErrorInfo metadata naming e's topic (and partition):
// empty for a nil e.
func (e *topicError) metadata() map[string]string {
	md := map[string]string{}
	if e == nil {
		return md
	}
	md["topic"] = e.topic
	if e.hasPartition {
		md["partition"] = strconv.FormatUint(uint64(e.partition), 10)
	}
	return md
}

// topicStatus builds the status of a topic error of the cluster (see
// log.proto): reason in an ErrorInfo naming the topic, and partition if
// known.
func topicStatus(code codes.Code, reason, msg string, te *topicError) error {
	return withDetails(status.New(code, msg), &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: te.metadata()})
}

// notEnoughNodes builds the FAILED_PRECONDITION status of a topic whose
// replication factor the cluster cannot place; the figures come from a
// *commitlog.NotEnoughNodesError when the cluster returned one.
func notEnoughNodes(err error, te *topicError) error {
	md := te.metadata()
	var ne *commitlog.NotEnoughNodesError
	if errors.As(err, &ne) {
		md["replication_factor"] = strconv.Itoa(ne.ReplicationFactor)
		md["nodes"] = strconv.Itoa(ne.Nodes)
	}
	return withDetails(status.New(codes.FailedPrecondition, detail(err, commitlog.ErrNotEnoughNodes)+"; create the topic with a smaller replication factor or add servers"),
		&errdetails.ErrorInfo{Reason: reasonNotEnoughNodes, Domain: ErrorDomain, Metadata: md})
}

// groupError is an error of a call about a consumer group, and a member
// of it when memberID is not empty, so that statusError can name them in
// the status's ErrorInfo when the coordinator's error is a bare sentinel.
type groupError struct {
	group, memberID string
	err             error
}

func (e *groupError) Error() string { return e.err.Error() }
func (e *groupError) Unwrap() error { return e.err }

// onGroup marks err (if not nil) as an error about group's member memberID
// (empty: about the group alone).
func onGroup(err error, group, memberID string) error {
	if err == nil {
		return nil
	}
	return &groupError{group: group, memberID: memberID, err: err}
}

// groupMetadata is the ErrorInfo metadata naming group, and memberID when
// not empty.
func groupMetadata(group, memberID string) map[string]string {
	md := map[string]string{"group": group}
	if memberID != "" {
		md["member_id"] = memberID
	}
	return md
}

// groupStatus builds the status of a consumer-group error (see log.proto):
// err is the coordinator's (or the server's own check's) error, ge the
// call's group and member (nil when unknown). The typed errors' figures
// win over the call's.
func groupStatus(err error, ge *groupError) error {
	if ge == nil {
		ge = &groupError{}
	}
	var (
		stale  *commitlog.StaleGenerationError
		owner  *commitlog.NotOwnerError
		many   *commitlog.TooManyMembersError
		limit  *commitlog.LimitError
		code   codes.Code
		msg    string
		md     map[string]string
		reason string
	)
	switch {
	case errors.Is(err, commitlog.ErrInvalidGroup):
		// The message says what is not allowed.
		code, reason, msg, md = codes.InvalidArgument, reasonInvalidGroup, err.Error(), groupMetadata(ge.group, "")
	case errors.Is(err, commitlog.ErrUnknownGroup):
		code, reason, md = codes.NotFound, reasonUnknownGroup, groupMetadata(ge.group, "")
		msg = fmt.Sprintf("group %q is unknown: it has no members and no committed offsets", ge.group)
	case errors.Is(err, commitlog.ErrUnknownMember):
		code, reason, md = codes.NotFound, reasonUnknownMember, groupMetadata(ge.group, ge.memberID)
		msg = fmt.Sprintf("member %q is not in group %q (it left or its session timed out); join again with an empty member_id", ge.memberID, ge.group)
	case errors.As(err, &owner):
		code, reason, md = codes.FailedPrecondition, reasonNotOwner, groupMetadata(owner.Group, owner.MemberID)
		md["topic"], md["partition"] = owner.Topic, strconv.Itoa(owner.Partition)
		msg = fmt.Sprintf("member %q of group %q does not own %s/%d; nothing was committed; heartbeat to learn its partitions", owner.MemberID, owner.Group, owner.Topic, owner.Partition)
	case errors.Is(err, commitlog.ErrNotOwner):
		code, reason, md = codes.FailedPrecondition, reasonNotOwner, groupMetadata(ge.group, ge.memberID)
		msg = fmt.Sprintf("member %q of group %q does not own a partition it commits; nothing was committed; heartbeat to learn its partitions", ge.memberID, ge.group)
	case errors.As(err, &stale):
		code, reason, md = codes.FailedPrecondition, reasonStaleGen, groupMetadata(stale.Group, stale.MemberID)
		md["generation"], md["current"] = strconv.FormatUint(stale.Generation, 10), strconv.FormatUint(stale.Current, 10)
		msg = fmt.Sprintf("member %q of group %q: generation %d is stale (the group's is %d); nothing was written; heartbeat to learn its partitions", stale.MemberID, stale.Group, stale.Generation, stale.Current)
	case errors.Is(err, commitlog.ErrStaleGeneration):
		code, reason, md = codes.FailedPrecondition, reasonStaleGen, groupMetadata(ge.group, ge.memberID)
		msg = fmt.Sprintf("member %q of group %q named a stale generation; nothing was written; heartbeat to learn its partitions", ge.memberID, ge.group)
	case errors.As(err, &limit):
		code, reason, md = codes.ResourceExhausted, reasonTooManyMembers, groupMetadata(limit.Group, "")
		md["limit"], md["resource"] = strconv.Itoa(limit.Limit), limit.Resource
		msg = fmt.Sprintf("group %q: the cluster keeps at most %d %s; nothing was written; retry once members leave or topics are deleted", limit.Group, limit.Limit, limit.Resource)
	case errors.As(err, &many):
		code, reason, md = codes.ResourceExhausted, reasonTooManyMembers, groupMetadata(many.Group, "")
		md["limit"] = strconv.Itoa(many.Limit)
		msg = fmt.Sprintf("group %q has its limit of %d members; retry once one leaves", many.Group, many.Limit)
	default: // commitlog.ErrTooManyMembers without its figures
		code, reason, md = codes.ResourceExhausted, reasonTooManyMembers, groupMetadata(ge.group, "")
		msg = fmt.Sprintf("group %q has its limit of members; retry once one leaves", ge.group)
	}
	return withDetails(status.New(code, msg), &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md})
}

// isGroupError reports whether err is one of the consumer-group errors of
// go/commitlog, which groupStatus maps.
func isGroupError(err error) bool {
	for _, target := range []error{commitlog.ErrInvalidGroup, commitlog.ErrUnknownGroup, commitlog.ErrUnknownMember,
		commitlog.ErrNotOwner, commitlog.ErrStaleGeneration, commitlog.ErrTooManyMembers} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// detail is what err says after sentinel's text: the cause without the
// chain of package prefixes that wrapped it ("metadata: commitlog: invalid
// topic: ..."). The status's code and reason already say what kind of
// error it is, and clients print their own words for that kind, so a
// message holding the sentinel's text would say it twice.
func detail(err, sentinel error) string {
	msg, s := err.Error(), sentinel.Error()
	if i := strings.LastIndex(msg, s+": "); i >= 0 {
		return msg[i+len(s)+2:]
	}
	return strings.TrimSuffix(msg, ": "+s)
}

func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	withD, err := st.WithDetails(details...)
	if err != nil {
		// Only fails for unmarshalable details, which ours are not; the
		// bare status still carries the code.
		return st.Err()
	}
	return withD.Err()
}

// statusError maps an error from the Partition, the Cluster or the Groups
// (see go/commitlog's doc for the list) or the authorizer to a gRPC status; a status the server built
// itself passes through. Unexpected errors are logged with the method and
// principal and returned as a bare Internal, so storage details never
// reach clients.
func (s *Server) statusError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	var nl *commitlog.NotLeaderError
	var oor *seglog.OffsetOutOfRangeError
	var low *diskspace.LowSpaceError
	var seq *producer.SequenceError
	var te *topicError
	errors.As(err, &te) // nil when err is about no topic
	switch {
	case errors.As(err, &nl):
		return s.notLeader(ctx, nl, te)
	case errors.Is(err, commitlog.ErrUnknownPartition):
		msg := "unknown partition: " + err.Error()
		if te != nil {
			msg = fmt.Sprintf("topic %q has no partition %d; refresh the topic's metadata", te.topic, te.partition)
		}
		return topicStatus(codes.NotFound, reasonUnknownPart, msg, te)
	case errors.Is(err, commitlog.ErrUnknownTopic):
		msg := "unknown topic: " + err.Error()
		if te != nil {
			msg = fmt.Sprintf("topic %q does not exist", te.topic)
		}
		return topicStatus(codes.NotFound, reasonUnknownTopic, msg, te)
	case errors.Is(err, commitlog.ErrTopicExists):
		msg := err.Error()
		if te != nil {
			msg = fmt.Sprintf("topic %q already exists", te.topic)
		}
		return topicStatus(codes.AlreadyExists, reasonTopicExists, msg, te)
	case errors.Is(err, commitlog.ErrInvalidTopic):
		// The message says what is not allowed (see commitlog).
		return topicStatus(codes.InvalidArgument, reasonInvalidTopic, detail(err, commitlog.ErrInvalidTopic), te)
	case errors.Is(err, commitlog.ErrNotEnoughNodes):
		return notEnoughNodes(err, te)
	case isGroupError(err):
		var ge *groupError
		errors.As(err, &ge)
		return groupStatus(err, ge)
	case errors.Is(err, commitlog.ErrInvalidACL):
		return invalidACL(detail(err, commitlog.ErrInvalidACL)).Err()
	case errors.Is(err, commitlog.ErrLeadershipLost):
		return status.Error(codes.Unavailable, "leadership changed during the request; it may or may not have been applied")
	case errors.Is(err, commitlog.ErrUnavailable):
		return status.Error(codes.Unavailable, "log unavailable on this node; retry later or on another server")
	case errors.As(err, &seq):
		return sequenceRefused(seq)
	case errors.As(err, &oor):
		return outOfRange(oor.Offset, oor.Lowest, oor.Next)
	case errors.Is(err, seglog.ErrOffsetOutOfRange):
		// Without the concrete error the offset is unknown: no details.
		return status.Error(codes.OutOfRange, err.Error())
	case errors.As(err, &low):
		return lowDiskSpace(low)
	case errors.Is(err, seglog.ErrRecordTooLarge):
		return status.Error(codes.ResourceExhausted, "record too large for the log; nothing was written")
	case errors.Is(err, auth.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, seglog.ErrClosed), errors.Is(err, seglog.ErrFailed):
		s.logUnavailable(ctx, err)
		return status.Error(codes.Unavailable, "log unavailable; retry later or on another server")
	case errors.Is(err, seglog.ErrCorrupt):
		s.logFailure(ctx, "log corruption", err)
		return status.Error(codes.DataLoss, "stored data is corrupt")
	default:
		s.logFailure(ctx, "internal error", err)
		return status.Error(codes.Internal, "internal error")
	}
}

func (s *Server) logFailure(ctx context.Context, msg string, err error) {
	method, _ := grpc.Method(ctx)
	principal, _ := auth.Subject(ctx)
	s.cfg.Logger.Error(msg, zap.String("method", method), zap.String("principal", principal), zap.Error(err))
}

// logUnavailable records that the log can no longer serve and flips health
// to NOT_SERVING, so load balancers stop sending traffic here.
func (s *Server) logUnavailable(ctx context.Context, err error) {
	if s.unavailable.CompareAndSwap(false, true) {
		s.logFailure(ctx, "log unavailable; health set to NOT_SERVING", err)
		s.healthMu.Lock()
		s.updateHealth()
		s.healthMu.Unlock()
	}
}
