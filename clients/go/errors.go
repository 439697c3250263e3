package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors. Every error a Client method returns for a failed call
// matches one of them with errors.Is (when the failure has a meaning of its
// own), and carries the gRPC status (status.FromError works on it).
var (
	// ErrOffsetOutOfRange: the offset is not in the log's [lowest, next)
	// range. The concrete error is *OffsetOutOfRangeError.
	ErrOffsetOutOfRange = errors.New("proglog: offset out of range")
	// ErrRecordTooLarge: a record is larger than the server accepts; nothing
	// of the request was written. The concrete error is *RecordTooLargeError
	// when the server said how large (always, for proglog servers).
	ErrRecordTooLarge = errors.New("proglog: record too large")
	// ErrLowDiskSpace: the server's free disk space is below its watermark
	// (its --min-free-bytes); nothing of the request was written. Reads
	// still work, and produces succeed again once space is freed on the
	// server. It is not retried: the caller decides when to try again.
	ErrLowDiskSpace = errors.New("proglog: the server is low on disk space")
	// ErrPermissionDenied: the client certificate's subject may not perform
	// the call (produce, consume or servers) on this log.
	ErrPermissionDenied = errors.New("proglog: permission denied")
	// ErrUnauthenticated: the server saw no verified client certificate.
	ErrUnauthenticated = errors.New("proglog: unauthenticated")
	// ErrNotLeader: the server that got the call is not the leader. The
	// client retries at the leader itself, so callers only see this when
	// retries ran out. The concrete error is *NotLeaderError.
	ErrNotLeader = errors.New("proglog: not the leader")
	// ErrUnavailable: no server could serve the call (down, shutting down,
	// no leader elected, or no connection), and retries ran out.
	ErrUnavailable = errors.New("proglog: unavailable")
	// ErrInvalidArgument: the server rejected the request as malformed (an
	// empty batch, or more records than it accepts in one batch).
	ErrInvalidArgument = errors.New("proglog: invalid argument")
	// ErrDataLoss: the server found its stored data corrupt.
	ErrDataLoss = errors.New("proglog: data loss on the server")
	// ErrInternal: the server failed; details are in its log, not here.
	ErrInternal = errors.New("proglog: internal server error")
	// ErrTLS: New found a TLS mistake: the servers' certificates are not
	// signed by the CA the client trusts, or the servers refused the
	// client's certificate (missing, or signed by a CA they do not trust).
	// The error names the server and the problem.
	ErrTLS = errors.New("proglog: TLS handshake failed")
	// ErrOutOfOrderSequence: the cluster refused an idempotent produce's
	// sequence number (FAILED_PRECONDITION, reason OUT_OF_ORDER_SEQUENCE);
	// nothing of the request was written. The client never sends such a
	// request on its own: it means a producer ID shared by two clients, or
	// a bug. Not retried.
	ErrOutOfOrderSequence = errors.New("proglog: out of order producer sequence")
	// ErrUnknownProducer: the cluster holds no state for an idempotent
	// producer (FAILED_PRECONDITION, reason UNKNOWN_PRODUCER: idle past the
	// servers' --producer-expiry, or evicted past --max-producers);
	// nothing of that attempt was written. The client handles it itself
	// (a new producer, or ErrMaybeWritten); callers see it wrapped in
	// ErrMaybeWritten only.
	ErrUnknownProducer = errors.New("proglog: unknown producer")
	// ErrMaybeWritten: an idempotent produce failed in a way that leaves
	// its outcome unknown: the cluster forgot the producer while the
	// request was being retried, so an earlier attempt may or may not have
	// been written. Read the log to find out before producing the records
	// again.
	ErrMaybeWritten = errors.New("proglog: the records may or may not have been written")
	// ErrTooManyProducers: the cluster refused a new idempotent producer
	// (RESOURCE_EXHAUSTED, reason TOO_MANY_PRODUCERS): it keeps its
	// --max-producers, all active within its --producer-evict-after.
	// Nothing of the request was written, so producing again later is
	// safe. Not retried: the window (minutes) is longer than a call's
	// deadline, so the caller decides when to try again.
	ErrTooManyProducers = errors.New("proglog: the cluster keeps too many producers")
	// ErrUnknownTopic: the topic does not exist (NOT_FOUND, reason
	// UNKNOWN_TOPIC). The client refreshes its metadata and tries once
	// more before returning it, so a topic created a moment ago is found.
	ErrUnknownTopic = errors.New("proglog: unknown topic")
	// ErrUnknownPartition: the topic has no such partition (NOT_FOUND,
	// reason UNKNOWN_PARTITION); retried once like ErrUnknownTopic.
	ErrUnknownPartition = errors.New("proglog: unknown partition")
	// ErrTopicExists: CreateTopic of a topic that exists (ALREADY_EXISTS,
	// reason TOPIC_EXISTS).
	ErrTopicExists = errors.New("proglog: topic exists")
	// ErrInvalidTopic: a topic name or setting the servers refuse
	// (INVALID_ARGUMENT, reason INVALID_TOPIC). It also matches
	// ErrInvalidArgument.
	ErrInvalidTopic = errors.New("proglog: invalid topic")
	// ErrNotEnoughNodes: CreateTopic asked for more replicas than the
	// cluster has live servers (FAILED_PRECONDITION, reason
	// NOT_ENOUGH_NODES).
	ErrNotEnoughNodes = errors.New("proglog: not enough servers for the replication factor")
	// ErrInvalidACL: an ACL rule or request the servers refuse
	// (INVALID_ARGUMENT, reason INVALID_ACL). It also matches
	// ErrInvalidArgument.
	ErrInvalidACL = errors.New("proglog: invalid ACL rule")
	// ErrNoLeader: the partition has no leader (UNAVAILABLE, reason
	// NO_LEADER). The concrete error is *NoLeaderError; it also matches
	// ErrUnavailable. It is retried like any unavailability (see the
	// package doc), and returned when the retries end.
	ErrNoLeader = errors.New("proglog: partition has no leader")
	// ErrClosed: the Client (or the Consumer) was closed.
	ErrClosed = errors.New("proglog: client closed")

	// Consumer groups (see Consumer).

	// ErrInvalidGroup: a group name or a group request the servers refuse
	// (INVALID_ARGUMENT, reason INVALID_GROUP). It also matches
	// ErrInvalidArgument.
	ErrInvalidGroup = errors.New("proglog: invalid group request")
	// ErrUnknownGroup: the group has no members and no committed offsets
	// (NOT_FOUND, reason UNKNOWN_GROUP).
	ErrUnknownGroup = errors.New("proglog: unknown group")
	// ErrUnknownMember: the member left or its session timed out
	// (NOT_FOUND, reason UNKNOWN_MEMBER); a Consumer joins again as a new
	// member.
	ErrUnknownMember = errors.New("proglog: unknown group member")
	// ErrNotOwner: a commit for a partition the member does not own
	// (FAILED_PRECONDITION, reason NOT_OWNER); nothing was committed.
	ErrNotOwner = errors.New("proglog: the member does not own the partition")
	// ErrStaleGeneration: a commit or heartbeat naming a generation the
	// group has moved past (FAILED_PRECONDITION, reason
	// STALE_GENERATION); nothing was committed.
	ErrStaleGeneration = errors.New("proglog: stale group generation")
	// ErrTooManyMembers: the group has the servers' limit of members
	// (RESOURCE_EXHAUSTED, reason TOO_MANY_MEMBERS).
	ErrTooManyMembers = errors.New("proglog: too many group members")
)

// Error detail vocabulary of proglog servers (see log.proto).
const (
	errorDomain            = "proglog"
	reasonOutOfRange       = "OFFSET_OUT_OF_RANGE"
	reasonRecordTooLarge   = "RECORD_TOO_LARGE"
	reasonLowDiskSpace     = "LOW_DISK_SPACE"
	reasonNotLeader        = "NOT_LEADER"
	reasonNoLeader         = "NO_LEADER"
	reasonOutOfOrder       = "OUT_OF_ORDER_SEQUENCE"
	reasonUnknownProd      = "UNKNOWN_PRODUCER"
	reasonTooManyProds     = "TOO_MANY_PRODUCERS"
	reasonUnknownTopic     = "UNKNOWN_TOPIC"
	reasonUnknownPartition = "UNKNOWN_PARTITION"
	reasonTopicExists      = "TOPIC_EXISTS"
	reasonInvalidTopic     = "INVALID_TOPIC"
	reasonNotEnoughNodes   = "NOT_ENOUGH_NODES"
	reasonInvalidGroup     = "INVALID_GROUP"
	reasonUnknownGroup     = "UNKNOWN_GROUP"
	reasonUnknownMember    = "UNKNOWN_MEMBER"
	reasonNotOwner         = "NOT_OWNER"
	reasonStaleGeneration  = "STALE_GENERATION"
	reasonTooManyMembers   = "TOO_MANY_MEMBERS"
	reasonInvalidACL       = "INVALID_ACL"
)

// Error is a failed call that has no more specific type: its gRPC code and
// message, matching the sentinel of its code (ErrPermissionDenied, ...) or,
// for a call cut short by its context, context.Canceled or
// context.DeadlineExceeded.
type Error struct {
	Code    codes.Code
	Message string
	kind    error
	parent  error // a broader sentinel kind also matches (ErrInvalidTopic's ErrInvalidArgument)
	st      *status.Status
}

func (e *Error) Error() string {
	if e.kind != nil && e.kind.Error() != "" {
		return fmt.Sprintf("%v: %s", e.kind, e.Message)
	}
	return fmt.Sprintf("proglog: %s: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	return target != nil && (target == e.kind || target == e.parent)
}

// newUnknownTopicError is ErrUnknownTopic for topic; st is the server's
// status (nil: the metadata listed no such topic).
func newUnknownTopicError(topic string, st *status.Status) *Error {
	if st == nil {
		st = status.Newf(codes.NotFound, "topic %q does not exist", topic)
	}
	return &Error{Code: st.Code(), Message: st.Message(), kind: ErrUnknownTopic, st: st}
}

// GRPCStatus returns the status the server (or gRPC) reported.
func (e *Error) GRPCStatus() *status.Status { return e.st }

// OffsetOutOfRangeError: Offset is outside [Lowest, Next). Lowest and Next
// are the server's bounds when it reported them (proglog servers always
// do); a consumer that fell behind retention resumes at Lowest, one that is
// ahead waits for Next.
type OffsetOutOfRangeError struct {
	Offset, Lowest, Next uint64
	st                   *status.Status
}

func (e *OffsetOutOfRangeError) Error() string {
	if e.Lowest >= e.Next {
		return fmt.Sprintf("proglog: offset %d out of range: the log is empty (next offset %d)", e.Offset, e.Next)
	}
	return fmt.Sprintf("proglog: offset %d out of range [%d, %d)", e.Offset, e.Lowest, e.Next)
}

// Is reports whether target is ErrOffsetOutOfRange.
func (e *OffsetOutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// GRPCStatus returns the server's OUT_OF_RANGE status.
func (e *OffsetOutOfRangeError) GRPCStatus() *status.Status { return e.st }

// RecordTooLargeError: a record's encoded size exceeds the server's record
// limit, or (Request true) a whole request exceeds the message limit — the
// server's, or WithMaxMessageBytes checked before sending. Index is the
// record's position in a ProduceBatch, -1 for a single record or a whole
// request. Size and Limit are in bytes. Nothing of the request was written.
type RecordTooLargeError struct {
	Size, Limit, Index int
	Request            bool
	st                 *status.Status
}

func (e *RecordTooLargeError) Error() string {
	where := "record"
	switch {
	case e.Request:
		where = "request"
	case e.Index >= 0:
		where = fmt.Sprintf("records[%d]", e.Index)
	}
	if e.Limit == 0 {
		return fmt.Sprintf("proglog: %s too large: %s", where, e.st.Message())
	}
	return fmt.Sprintf("proglog: %s too large: %d bytes encoded, the limit is %d", where, e.Size, e.Limit)
}

// Is reports whether target is ErrRecordTooLarge.
func (e *RecordTooLargeError) Is(target error) bool { return target == ErrRecordTooLarge }

// GRPCStatus returns the server's RESOURCE_EXHAUSTED status.
func (e *RecordTooLargeError) GRPCStatus() *status.Status { return e.st }

// NotLeaderError: the server is not the leader; LeaderID and LeaderAddr
// name the leader it knows of (empty during an election).
type NotLeaderError struct {
	LeaderID, LeaderAddr string
	st                   *status.Status
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "proglog: not the leader, and no leader is known yet"
	}
	return fmt.Sprintf("proglog: not the leader; the leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// GRPCStatus returns the server's FAILED_PRECONDITION status.
func (e *NotLeaderError) GRPCStatus() *status.Status { return e.st }

// NoLeaderError: a partition has no leader. Replicas is how many it has,
// Unreachable the IDs of those on servers the cluster knows as failed or
// leaving (empty during an ordinary election).
type NoLeaderError struct {
	Topic       string
	Partition   uint32
	Replicas    int
	Unreachable []string
	st          *status.Status
}

// Error is the server's explanation, which names the partition and the
// unreachable replicas.
func (e *NoLeaderError) Error() string { return "proglog: " + e.st.Message() }

// QuorumLost reports whether a majority of the replicas is unreachable:
// no leader can be elected until enough of them are back.
func (e *NoLeaderError) QuorumLost() bool {
	return e.Replicas > 0 && e.Replicas-len(e.Unreachable) < e.Replicas/2+1
}

// Is reports whether target is ErrNoLeader or ErrUnavailable.
func (e *NoLeaderError) Is(target error) bool {
	return target == ErrNoLeader || target == ErrUnavailable
}

// GRPCStatus returns the server's UNAVAILABLE status.
func (e *NoLeaderError) GRPCStatus() *status.Status { return e.st }

// noLeader returns the NoLeaderError of a NO_LEADER status.
func noLeader(st *status.Status) (*NoLeaderError, bool) {
	if st.Code() != codes.Unavailable {
		return nil, false
	}
	info := errorInfo(st)
	if info == nil || info.GetReason() != reasonNoLeader {
		return nil, false
	}
	md := info.GetMetadata()
	e := &NoLeaderError{Topic: md["topic"], Partition: uint32(parseUint(md["partition"])), Replicas: parseInt(md["replicas"], 0), st: st}
	if u := md["unreachable"]; u != "" {
		e.Unreachable = strings.Split(u, ",")
	}
	return e, true
}

// errorInfo returns the proglog ErrorInfo detail of st, if any.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain {
			return info
		}
	}
	return nil
}

// notLeader returns the leader hint of a NOT_LEADER status.
func notLeader(st *status.Status) (*NotLeaderError, bool) {
	if st.Code() != codes.FailedPrecondition {
		return nil, false
	}
	info := errorInfo(st)
	if info == nil || info.GetReason() != reasonNotLeader {
		return nil, false
	}
	md := info.GetMetadata()
	return &NotLeaderError{LeaderID: md["leader_id"], LeaderAddr: md["leader_addr"], st: st}, true
}

// grpcSizeRe matches gRPC's message for a message over its size limit
// ("grpc: received message larger than max (5000000 vs. 4194304)").
var grpcSizeRe = regexp.MustCompile(`larger than max \((\d+) vs\. (\d+)\)`)

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

func parseInt(s string, def int) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return v
}

// errFromStatus turns a call's error into this package's errors; ctx is the
// caller's context, whose error wins when it is done. Errors without a gRPC
// status are returned unchanged.
func errFromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var own interface{ ownError() }
	if errors.As(err, &own) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return &Error{Code: st.Code(), Message: st.Message(), kind: cerr, st: st}
	}
	switch st.Code() {
	case codes.OK:
		return nil
	case codes.OutOfRange:
		e := &OffsetOutOfRangeError{st: st}
		if info := errorInfo(st); info != nil && info.GetReason() == reasonOutOfRange {
			md := info.GetMetadata()
			e.Offset, e.Lowest, e.Next = parseUint(md["offset"]), parseUint(md["lowest"]), parseUint(md["next"])
		}
		return e
	case codes.ResourceExhausted:
		info := errorInfo(st)
		if info != nil && info.GetReason() == reasonRecordTooLarge {
			md := info.GetMetadata()
			return &RecordTooLargeError{Size: parseInt(md["size"], 0), Limit: parseInt(md["limit"], 0), Index: parseInt(md["index"], -1), st: st}
		}
		if info != nil && info.GetReason() == reasonLowDiskSpace {
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrLowDiskSpace, st: st}
		}
		if info != nil && info.GetReason() == reasonTooManyProds {
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrTooManyProducers, st: st}
		}
		if info != nil && info.GetReason() == reasonTooManyMembers {
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrTooManyMembers, st: st}
		}
		// A message over gRPC's size limit (a batch too large in total, or a
		// record larger than the client may receive).
		e := &RecordTooLargeError{Index: -1, Request: true, st: st}
		if m := grpcSizeRe.FindStringSubmatch(st.Message()); m != nil {
			e.Size, e.Limit = parseInt(m[1], 0), parseInt(m[2], 0)
		}
		return e
	case codes.FailedPrecondition:
		if nl, ok := notLeader(st); ok {
			return nl
		}
		switch info := errorInfo(st); info.GetReason() {
		case reasonOutOfOrder:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrOutOfOrderSequence, st: st}
		case reasonUnknownProd:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrUnknownProducer, st: st}
		case reasonNotEnoughNodes:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrNotEnoughNodes, st: st}
		case reasonNotOwner:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrNotOwner, st: st}
		case reasonStaleGeneration:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrStaleGeneration, st: st}
		}
	case codes.NotFound:
		switch errorInfo(st).GetReason() {
		case reasonUnknownTopic:
			return newUnknownTopicError("", st)
		case reasonUnknownPartition:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrUnknownPartition, st: st}
		case reasonUnknownGroup:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrUnknownGroup, st: st}
		case reasonUnknownMember:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrUnknownMember, st: st}
		}
	case codes.AlreadyExists:
		if errorInfo(st).GetReason() == reasonTopicExists {
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrTopicExists, st: st}
		}
	case codes.Unavailable:
		if nl, ok := noLeader(st); ok {
			return nl
		}
	case codes.InvalidArgument:
		switch errorInfo(st).GetReason() {
		case reasonInvalidTopic:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrInvalidTopic, parent: ErrInvalidArgument, st: st}
		case reasonInvalidGroup:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrInvalidGroup, parent: ErrInvalidArgument, st: st}
		case reasonInvalidACL:
			return &Error{Code: st.Code(), Message: st.Message(), kind: ErrInvalidACL, parent: ErrInvalidArgument, st: st}
		}
	}
	kind := map[codes.Code]error{
		codes.PermissionDenied: ErrPermissionDenied,
		codes.Unauthenticated:  ErrUnauthenticated,
		codes.Unavailable:      ErrUnavailable,
		codes.InvalidArgument:  ErrInvalidArgument,
		codes.DataLoss:         ErrDataLoss,
		codes.Internal:         ErrInternal,
		codes.DeadlineExceeded: context.DeadlineExceeded,
		codes.Canceled:         context.Canceled,
	}[st.Code()]
	return &Error{Code: st.Code(), Message: st.Message(), kind: kind, st: st}
}

// maybeWrittenError is ErrMaybeWritten: the cluster forgot producer id
// while its request was retried after an attempt that may have been
// written; cause is the last attempt's UNKNOWN_PRODUCER refusal. Its
// message is its own: the refusal's ("nothing was written") is true of
// that attempt only.
type maybeWrittenError struct {
	id    uint64
	cause error
}

func (e *maybeWrittenError) Error() string {
	return fmt.Sprintf("%v: an earlier attempt may have been written before the cluster forgot producer %d (its last attempt was refused as UNKNOWN_PRODUCER); read the log to find out", ErrMaybeWritten, e.id)
}

// Unwrap gives ErrMaybeWritten and the refusal (ErrUnknownProducer, with
// the gRPC status).
func (e *maybeWrittenError) Unwrap() []error { return []error{ErrMaybeWritten, e.cause} }

func (*Error) ownError()                 {}
func (*OffsetOutOfRangeError) ownError() {}
func (*RecordTooLargeError) ownError()   {}
func (*NotLeaderError) ownError()        {}
func (*NoLeaderError) ownError()         {}
