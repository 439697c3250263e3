package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Internal takes the node-to-node reports of log.v1.Internal (see
// log.proto). node is the calling node as its verified certificate names
// it (go/auth/nodeid): a report is about that node only.
type Internal interface {
	// ReplicaReady reports that node's replica of topic's partition, which
	// the reassignment at epoch added, caught up. Errors: a
	// *commitlog.NotLeaderError where the metadata group is led elsewhere,
	// ErrStaleReport (wrapped) for a report the metadata does not match,
	// commitlog.ErrUnknownTopic and commitlog.ErrUnknownPartition.
	ReplicaReady(ctx context.Context, node, topic string, partition int, epoch uint64) error
	// ReportLeaders records that node leads the partitions of leaders
	// (leader hints; at most MaxLeaderReports). Errors: a
	// *commitlog.NotLeaderError where the metadata group is led elsewhere.
	ReportLeaders(ctx context.Context, node string, leaders []PartitionLeader) error
}

// MaxLeaderReports bounds the entries of one ReportLeaders request
// (log.proto); more are INVALID_ARGUMENT. It equals
// metadata.MaxLeaderHints, the entries of one metadata command.
const MaxLeaderReports = 1024

// PartitionLeader is one entry of a ReportLeaders request: the calling
// node leads Topic's Partition (of the topic created at metadata index
// Created) in Raft term Term.
type PartitionLeader struct {
	Topic     string
	Created   uint64
	Partition int
	Term      uint64
}

// ErrStaleReport: a node's report does not match the metadata (another
// epoch, the node is not being added there). The caller answers
// FAILED_PRECONDITION with reason STALE; nothing changed.
var ErrStaleReport = errors.New("server: report does not match the metadata")

// reasonStale is the ErrorInfo reason of a stale report (log.proto).
const reasonStale = "STALE"

// internalPrefix starts the full method name of every log.v1.Internal RPC.
var internalPrefix = "/" + logv1.Internal_ServiceDesc.ServiceName + "/"

// nodeKey is the context key of the calling node's name (admitNode).
type nodeKey struct{}

// admitNode is admit for log.v1.Internal: the caller's verified
// certificate must name a node (go/auth/nodeid); a client's certificate
// is PERMISSION_DENIED. The node's name is the call's subject and is
// handed to the handler in the context.
func (s *Server) admitNode(ctx context.Context, method string) (context.Context, error) {
	node, err := peerNode(ctx)
	if err != nil {
		return nil, s.rejected(ctx, method, rejectPermissionDenied,
			status.Errorf(codes.PermissionDenied, "%s is for the cluster's nodes only: %v", method, err))
	}
	return context.WithValue(auth.WithSubject(ctx, node), nodeKey{}, node), nil
}

// peerNode is the node the verified certificate of the connection in ctx
// names.
func peerNode(ctx context.Context) (string, error) {
	cert, err := auth.PeerCertificate(ctx)
	if err != nil {
		return "", err
	}
	return nodeid.FromCertificate(cert)
}

// isInternal reports whether method is a log.v1.Internal RPC.
func isInternal(method string) bool { return strings.HasPrefix(method, internalPrefix) }

// internalService serves log.v1.Internal over Config.Internal.
type internalService struct {
	logv1.UnimplementedInternalServer
	s *Server
}

// ReportReplicaReady implements logv1.InternalServer.
func (i internalService) ReportReplicaReady(ctx context.Context, req *logv1.ReportReplicaReadyRequest) (*logv1.ReportReplicaReadyResponse, error) {
	node, ok := ctx.Value(nodeKey{}).(string)
	if !ok { // only if admit was bypassed
		return nil, status.Error(codes.PermissionDenied, "no node identity")
	}
	topic, partition := req.GetTopic(), req.GetPartition()
	if err := commitlog.ValidateTopicName(topic); err != nil {
		return nil, i.s.statusError(ctx, onTopic(err, topic))
	}
	err := i.s.cfg.Internal.ReplicaReady(ctx, node, topic, int(partition), req.GetEpoch())
	if errors.Is(err, ErrStaleReport) {
		return nil, topicStatus(codes.FailedPrecondition, reasonStale, err.Error(), &topicError{topic: topic, partition: partition, hasPartition: true})
	}
	if err != nil {
		return nil, i.s.statusError(ctx, onPartition(err, topic, partition))
	}
	return &logv1.ReportReplicaReadyResponse{}, nil
}

// ReportLeaders implements logv1.InternalServer.
func (i internalService) ReportLeaders(ctx context.Context, req *logv1.ReportLeadersRequest) (*logv1.ReportLeadersResponse, error) {
	node, ok := ctx.Value(nodeKey{}).(string)
	if !ok { // only if admit was bypassed
		return nil, status.Error(codes.PermissionDenied, "no node identity")
	}
	in := req.GetLeaders()
	if len(in) > MaxLeaderReports {
		return nil, status.Errorf(codes.InvalidArgument, "%d leader reports, at most %d per request", len(in), MaxLeaderReports)
	}
	leaders := make([]PartitionLeader, len(in))
	for j, l := range in {
		if err := commitlog.ValidateTopicName(l.GetTopic()); err != nil {
			return nil, i.s.statusError(ctx, onTopic(err, l.GetTopic()))
		}
		leaders[j] = PartitionLeader{Topic: l.GetTopic(), Created: l.GetCreated(), Partition: int(l.GetPartition()), Term: l.GetTerm()}
	}
	if err := i.s.cfg.Internal.ReportLeaders(ctx, node, leaders); err != nil {
		return nil, i.s.statusError(ctx, err)
	}
	return &logv1.ReportLeadersResponse{}, nil
}
