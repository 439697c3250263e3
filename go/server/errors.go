package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

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
	// ErrNilPartition: New was given no commitlog.Partition.
	ErrNilPartition = errors.New("server: nil commitlog.Partition")
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
	reasonTooManyProds   = "TOO_MANY_PRODUCERS"
	detailLocale         = "en-US"
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
// during an election UNAVAILABLE (retry later).
func notLeader(e *commitlog.NotLeaderError) error {
	if e.LeaderAddr == "" {
		return status.Error(codes.Unavailable, "no leader elected yet; retry shortly")
	}
	st := status.Newf(codes.FailedPrecondition, "not the leader: send this request to %s (%s)", e.LeaderAddr, e.LeaderID)
	return withDetails(st, &errdetails.ErrorInfo{
		Reason:   reasonNotLeader,
		Domain:   ErrorDomain,
		Metadata: map[string]string{"leader_id": e.LeaderID, "leader_addr": e.LeaderAddr},
	})
}

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

func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	withD, err := st.WithDetails(details...)
	if err != nil {
		// Only fails for unmarshalable details, which ours are not; the
		// bare status still carries the code.
		return st.Err()
	}
	return withD.Err()
}

// statusError maps an error from the Partition (see go/commitlog's doc for
// the list) or the authorizer to a gRPC status; a status the server built
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
	switch {
	case errors.As(err, &nl):
		return notLeader(nl)
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
