package commitlog

import "context"

// Partition is one partition's commit log of byte records, the log the
// server serves. See the package doc for the errors it returns.
type Partition interface {
	// Append stores recs (each encoded by the caller, at least one) at
	// consecutive offsets, all or none, and returns the first offset.
	Append(ctx context.Context, recs [][]byte) (first uint64, err error)
	// AppendIdempotent is Append for producer p (p.ID is not 0; see
	// log.proto's Producer and go/producer): unless recs repeat a batch p
	// already wrote — then nothing is written and Appended.First is the
	// offset it was written at, with Duplicate set — or p's sequence is
	// refused, with an error wrapping *producer.SequenceError.
	AppendIdempotent(ctx context.Context, p Producer, recs [][]byte) (Appended, error)
	// Read returns the record stored at offset, read with consistency c.
	Read(ctx context.Context, offset uint64, c Consistency) ([]byte, error)
	// LowestOffset is the oldest readable offset on this node.
	LowestOffset() uint64
	// NextOffset is the offset the next record applied on this node gets.
	NextOffset() uint64
	// Bounds returns LowestOffset and NextOffset read with consistency c:
	// under ConsistencyLinearizable they include every append acknowledged
	// before the call (a replicated log confirms its leadership first).
	Bounds(ctx context.Context, c Consistency) (lowest, next uint64, err error)
	// Wait blocks until NextOffset() > offset (returning nil), ctx is done
	// (returning ctx.Err()) or the log closes.
	Wait(ctx context.Context, offset uint64) error
}

// Producer identifies an idempotent append (log.proto's Producer): the
// producer's ID (not 0) and the sequence of the batch's first record.
type Producer struct {
	ID       uint64
	Sequence uint64
	// Checksum is go/producer's Checksum of the request's records as the
	// client sent them, before the server stamps missing timestamps (the
	// server sets it): a retry at a sequence already written is a
	// duplicate only if its records match.
	Checksum uint32
}

// Appended is what Partition.AppendIdempotent did.
type Appended struct {
	// First is the offset of the first record.
	First uint64
	// Duplicate: the records repeated a batch already written at First;
	// nothing new was written.
	Duplicate bool
}

// Server is one server of the cluster that serves a partition.
type Server struct {
	// ID is the server's node name.
	ID string
	// Addr is the address clients reach it at.
	Addr string
	// IsLeader: the server leads the partition.
	IsLeader bool
	// State is the server's liveness as this node's gossip and metadata
	// know it (ServerLister fills it; StateUnknown elsewhere).
	State ServerState
	// MetadataVoter: the server votes in the metadata group (ServerLister
	// fills it).
	MetadataVoter bool
}

// ServerState is a server's liveness.
type ServerState int

const (
	// StateUnknown: the lister does not know (or does not say).
	StateUnknown ServerState = iota
	// StateAlive: the server answers gossip.
	StateAlive
	// StateFailed: the server stopped answering gossip (crashed, stopped
	// without leaving, or cut off).
	StateFailed
	// StateLeaving: the server is leaving the cluster; its replicas move
	// away.
	StateLeaving
)

func (s ServerState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateFailed:
		return "failed"
	case StateLeaving:
		return "leaving"
	default:
		return "unknown"
	}
}

// ServerLister reports the servers of the cluster, each with its State
// and MetadataVoter when the lister knows them; go/server takes a
// replica on a server it does not list, or lists failed or leaving, as
// unreachable (not in sync).
type ServerLister interface {
	Servers(ctx context.Context) ([]Server, error)
}
