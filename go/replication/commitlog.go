package replication

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// CommitLog adapts a Log to the gRPC server: it implements go/server's
// CommitLog (records are stored as their protobuf encoding, as the
// single-node StorageLog does) and ServerLister. Errors the server cannot
// know are returned as gRPC statuses (the server passes those through):
//
//   - *NotLeaderError with a known leader: FailedPrecondition with an
//     ErrorInfo (domain "proglog", reason "NOT_LEADER", metadata leader_id
//     and leader_addr): retry at the leader, not here;
//   - *NotLeaderError during an election: Unavailable (retry later);
//   - ErrLeadershipLost, ErrTimeout, ErrClosed, ErrFailed, ErrDiverged,
//     ErrNotCaughtUp: Unavailable.
//
// go/seglog errors (out of range, too large, corruption), the refusals of
// idempotent appends (*producer.SequenceError) and context errors are
// returned as they are, for the server's own mapping.
//
// This package imports go/server for the interface's vocabulary
// (server.Consistency); go/server never imports this one.
type CommitLog struct {
	l *Log
}

// NewCommitLog wraps l.
func NewCommitLog(l *Log) *CommitLog { return &CommitLog{l: l} }

// reasonNotLeader is the ErrorInfo reason of a refused write (see log.proto).
const reasonNotLeader = "NOT_LEADER"

// Append stores rec (its Offset ignored) and returns its offset.
func (c *CommitLog) Append(ctx context.Context, rec *logv1.Record) (uint64, error) {
	return c.AppendBatch(ctx, []*logv1.Record{rec})
}

// AppendBatch stores recs at consecutive offsets, all or none, and returns
// the first offset.
func (c *CommitLog) AppendBatch(ctx context.Context, recs []*logv1.Record) (uint64, error) {
	bufs, err := server.EncodeRecords(recs)
	if err != nil {
		return 0, err
	}
	first, err := c.l.AppendBatch(ctx, bufs)
	return first, statusOf(err)
}

// AppendIdempotent stores recs for producer p (see Log.AppendIdempotent):
// a *producer.SequenceError is returned as it is, for the server's mapping.
func (c *CommitLog) AppendIdempotent(ctx context.Context, p server.Producer, recs []*logv1.Record) (server.Appended, error) {
	bufs, err := server.EncodeRecords(recs)
	if err != nil {
		return server.Appended{}, err
	}
	first, dup, err := c.l.AppendIdempotent(ctx, Producer{ID: p.ID, Sequence: p.Sequence, Checksum: p.Checksum}, bufs)
	return server.Appended{First: first, Duplicate: dup}, statusOf(err)
}

// Bounds returns this node's bounds (server.ConsistencyFollower) or, on
// the leader only, the bounds covering every acknowledged append
// (server.ConsistencyLinearizable).
func (c *CommitLog) Bounds(ctx context.Context, cons server.Consistency) (lowest, next uint64, err error) {
	rc, err := readConsistency(cons)
	if err != nil {
		return 0, 0, err
	}
	lowest, next, err = c.l.Bounds(ctx, rc)
	return lowest, next, statusOf(err)
}

// readConsistency maps the server's consistency to this package's.
func readConsistency(cons server.Consistency) (Consistency, error) {
	switch cons {
	case server.ConsistencyLinearizable:
		return ReadLinearizable, nil
	case server.ConsistencyFollower:
		return ReadFollower, nil
	default:
		return 0, fmt.Errorf("replication: unknown consistency %v", cons)
	}
}

// Read returns the record at offset with consistency cons:
// server.ConsistencyLinearizable is ReadLinearizable (leader only),
// server.ConsistencyFollower is ReadFollower (this node's committed
// records).
func (c *CommitLog) Read(ctx context.Context, offset uint64, cons server.Consistency) (*logv1.Record, error) {
	rc, err := readConsistency(cons)
	if err != nil {
		return nil, err
	}
	b, err := c.l.Read(ctx, offset, rc)
	if err != nil {
		return nil, statusOf(err)
	}
	return server.DecodeRecord(offset, b)
}

// LowestOffset is this node's oldest record.
func (c *CommitLog) LowestOffset() uint64 { return c.l.LowestOffset() }

// NextOffset is the offset of the next record applied on this node.
func (c *CommitLog) NextOffset() uint64 { return c.l.NextOffset() }

// Wait blocks until the record at offset exists on this node.
func (c *CommitLog) Wait(ctx context.Context, offset uint64) error { return c.l.Wait(ctx, offset) }

// GetServers lists the Raft configuration, marking the leader.
func (c *CommitLog) GetServers(context.Context) ([]*logv1.Server, error) {
	servers, err := c.l.GetServers()
	if err != nil {
		return nil, statusOf(err)
	}
	out := make([]*logv1.Server, len(servers))
	for i, s := range servers {
		out[i] = &logv1.Server{Id: s.ID, RpcAddr: s.RPCAddr, IsLeader: s.IsLeader}
	}
	return out, nil
}

// statusError carries a gRPC status for an error of this package.
type statusError struct {
	err error
	st  *status.Status
}

func (e *statusError) Error() string              { return e.err.Error() }
func (e *statusError) Unwrap() error              { return e.err }
func (e *statusError) GRPCStatus() *status.Status { return e.st }

// statusOf gives this package's errors a gRPC status; others are returned
// unchanged.
func statusOf(err error) error {
	var nl *NotLeaderError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nl):
		if nl.LeaderAddr == "" {
			return &statusError{err, status.New(codes.Unavailable, "no leader elected yet; retry shortly")}
		}
		st := status.Newf(codes.FailedPrecondition, "not the leader: send this request to %s (%s)", nl.LeaderAddr, nl.LeaderID)
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{
			Reason:   reasonNotLeader,
			Domain:   server.ErrorDomain,
			Metadata: map[string]string{"leader_id": nl.LeaderID, "leader_addr": nl.LeaderAddr},
		}); derr == nil {
			st = d
		}
		return &statusError{err, st}
	case errors.Is(err, ErrLeadershipLost):
		return &statusError{err, status.New(codes.Unavailable, "leadership changed during the request; it may or may not have been applied")}
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrClosed), errors.Is(err, ErrFailed), errors.Is(err, ErrDiverged),
		errors.Is(err, ErrNotCaughtUp):
		return &statusError{err, status.New(codes.Unavailable, "log unavailable on this node; retry later or on another server")}
	default:
		return err
	}
}
