package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/proglog/proglog/go/commitlog"
)

// CommitLog adapts a Log to the port go/server serves: it implements
// commitlog.Partition (records are the server's bytes, stored as given)
// and commitlog.ServerLister. It returns this package's errors in the
// port's terms, keeping them in the chain (errors.Is still finds them):
//
//   - *commitlog.NotLeaderError (errors.Is ErrNotLeader too) as it is;
//   - ErrLeadershipLost also as commitlog.ErrLeadershipLost;
//   - ErrTimeout, ErrClosed, ErrFailed, ErrDiverged and ErrNotCaughtUp
//     also as commitlog.ErrUnavailable.
//
// go/seglog errors (out of range, too large, corruption), the refusals of
// idempotent appends (*producer.SequenceError) and context errors are
// returned as they are. The server maps all of them to gRPC statuses; this
// package imports neither go/server nor gRPC.
type CommitLog struct {
	l *Log
}

var (
	_ commitlog.Partition    = (*CommitLog)(nil)
	_ commitlog.ServerLister = (*CommitLog)(nil)
)

// NewCommitLog wraps l.
func NewCommitLog(l *Log) *CommitLog { return &CommitLog{l: l} }

// Append stores recs at consecutive offsets, all or none, and returns the
// first offset.
func (c *CommitLog) Append(ctx context.Context, recs [][]byte) (uint64, error) {
	first, err := c.l.AppendBatch(ctx, recs)
	return first, portError(err)
}

// AppendIdempotent stores recs for producer p (see Log.AppendIdempotent):
// a *producer.SequenceError is returned as it is.
func (c *CommitLog) AppendIdempotent(ctx context.Context, p commitlog.Producer, recs [][]byte) (commitlog.Appended, error) {
	first, dup, err := c.l.AppendIdempotent(ctx, Producer{ID: p.ID, Sequence: p.Sequence, Checksum: p.Checksum}, recs)
	return commitlog.Appended{First: first, Duplicate: dup}, portError(err)
}

// Bounds returns this node's bounds (commitlog.ConsistencyFollower) or, on
// the leader only, the bounds covering every acknowledged append
// (commitlog.ConsistencyLinearizable).
func (c *CommitLog) Bounds(ctx context.Context, cons commitlog.Consistency) (lowest, next uint64, err error) {
	rc, err := readConsistency(cons)
	if err != nil {
		return 0, 0, err
	}
	lowest, next, err = c.l.Bounds(ctx, rc)
	return lowest, next, portError(err)
}

// readConsistency maps the port's consistency to this package's.
func readConsistency(cons commitlog.Consistency) (Consistency, error) {
	switch cons {
	case commitlog.ConsistencyLinearizable:
		return ReadLinearizable, nil
	case commitlog.ConsistencyFollower:
		return ReadFollower, nil
	default:
		return 0, fmt.Errorf("replication: unknown consistency %v", cons)
	}
}

// Read returns the record at offset with consistency cons:
// commitlog.ConsistencyLinearizable is ReadLinearizable (leader only),
// commitlog.ConsistencyFollower is ReadFollower (this node's committed
// records).
func (c *CommitLog) Read(ctx context.Context, offset uint64, cons commitlog.Consistency) ([]byte, error) {
	rc, err := readConsistency(cons)
	if err != nil {
		return nil, err
	}
	b, err := c.l.Read(ctx, offset, rc)
	if err != nil {
		return nil, portError(err)
	}
	return b, nil
}

// LowestOffset is this node's oldest record.
func (c *CommitLog) LowestOffset() uint64 { return c.l.LowestOffset() }

// NextOffset is the offset of the next record applied on this node.
func (c *CommitLog) NextOffset() uint64 { return c.l.NextOffset() }

// Wait blocks until the record at offset exists on this node.
func (c *CommitLog) Wait(ctx context.Context, offset uint64) error { return c.l.Wait(ctx, offset) }

// Servers lists the Raft configuration, marking the leader.
func (c *CommitLog) Servers(context.Context) ([]commitlog.Server, error) {
	servers, err := c.l.GetServers()
	if err != nil {
		return nil, portError(err)
	}
	out := make([]commitlog.Server, len(servers))
	for i, s := range servers {
		out[i] = commitlog.Server{ID: s.ID, Addr: s.RPCAddr, IsLeader: s.IsLeader}
	}
	return out, nil
}

// classified is an error of this package that is also one of the port's
// (kind); its text is err's.
type classified struct {
	err, kind error
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.err, e.kind} }

// portError adds the port's error to this package's errors; others
// (*commitlog.NotLeaderError among them) are returned unchanged.
func portError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotLeader):
		return err
	case errors.Is(err, ErrLeadershipLost):
		return &classified{err, commitlog.ErrLeadershipLost}
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrClosed), errors.Is(err, ErrFailed), errors.Is(err, ErrDiverged),
		errors.Is(err, ErrNotCaughtUp), errors.Is(err, ErrRecordGone):
		return &classified{err, commitlog.ErrUnavailable}
	default:
		return err
	}
}
