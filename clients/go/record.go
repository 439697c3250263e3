package client

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Record is one entry of the log.
type Record struct {
	// Offset is the record's position, set by the server: ignored when
	// producing, filled in when consuming.
	Offset uint64
	// Value is the payload.
	Value []byte
	// Key is an optional application key; the server does not interpret it.
	Key []byte
	// Headers are optional application key/value pairs, kept in order.
	Headers []Header
	// Timestamp is the record's time. Left zero when producing, the server
	// sets it to its clock when it accepts the record.
	Timestamp time.Time
}

// Header is an application-defined key/value pair of a Record. Keys need not
// be unique.
type Header struct {
	Key   string
	Value []byte
}

// Server is one member of the cluster serving the log.
type Server struct {
	// ID is the node's stable identifier.
	ID string
	// RPCAddr is the host:port clients reach it at.
	RPCAddr string
	// IsLeader is true for the server that accepts appends.
	IsLeader bool
	// State is the server's liveness as the answering server knows it.
	State ServerState
	// MetadataVoter: the server votes in the metadata group (Servers
	// only).
	MetadataVoter bool
}

// ServerState is a server's liveness, as the cluster's gossip (failure
// detector) and metadata know it.
type ServerState int

const (
	// ServerStateUnknown: the server did not say (older servers).
	ServerStateUnknown ServerState = iota
	// ServerAlive: it answers gossip.
	ServerAlive
	// ServerFailed: it stopped answering gossip (crashed, stopped without
	// leaving, or cut off).
	ServerFailed
	// ServerLeaving: it is leaving the cluster; its replicas move away.
	ServerLeaving
)

// String is "alive", "failed", "leaving" or "unknown".
func (s ServerState) String() string {
	switch s {
	case ServerAlive:
		return "alive"
	case ServerFailed:
		return "failed"
	case ServerLeaving:
		return "leaving"
	}
	return "unknown"
}

func serverStateFromProto(s logv1.ServerState) ServerState {
	switch s {
	case logv1.ServerState_SERVER_STATE_ALIVE:
		return ServerAlive
	case logv1.ServerState_SERVER_STATE_FAILED:
		return ServerFailed
	case logv1.ServerState_SERVER_STATE_LEAVING:
		return ServerLeaving
	}
	return ServerStateUnknown
}

func (r *Record) toProto() *logv1.Record {
	p := &logv1.Record{}
	r.fillProto(p)
	return p
}

// fillProto sets the fields of p, a zero Record, from r.
func (r *Record) fillProto(p *logv1.Record) {
	p.Value, p.Key = r.Value, r.Key
	if len(r.Headers) > 0 {
		p.Headers = make([]*logv1.Header, len(r.Headers))
		for i, h := range r.Headers {
			p.Headers[i] = &logv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	if !r.Timestamp.IsZero() {
		p.Timestamp = timestamppb.New(r.Timestamp)
	}
}

func recordFromProto(p *logv1.Record) *Record {
	r := &Record{Offset: p.GetOffset(), Value: p.GetValue(), Key: p.GetKey()}
	if hs := p.GetHeaders(); len(hs) > 0 {
		r.Headers = make([]Header, len(hs))
		for i, h := range hs {
			r.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	if ts := p.GetTimestamp(); ts != nil {
		r.Timestamp = ts.AsTime()
	}
	return r
}

func serversFromProto(ps []*logv1.Server) []Server {
	out := make([]Server, len(ps))
	for i, p := range ps {
		out[i] = Server{ID: p.GetId(), RPCAddr: p.GetRpcAddr(), IsLeader: p.GetIsLeader(), State: serverStateFromProto(p.GetState()), MetadataVoter: p.GetMetadataVoter()}
	}
	return out
}
