package server

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/commitlog"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// consistency maps a request's consistency to the Partition's:
// UNSPECIFIED is Config.DefaultConsistency, unknown values are
// InvalidArgument.
func (s *Server) consistency(c logv1.Consistency) (commitlog.Consistency, error) {
	switch c {
	case logv1.Consistency_CONSISTENCY_UNSPECIFIED:
		return s.cfg.DefaultConsistency, nil
	case logv1.Consistency_CONSISTENCY_LINEARIZABLE:
		return commitlog.ConsistencyLinearizable, nil
	case logv1.Consistency_CONSISTENCY_FOLLOWER:
		return commitlog.ConsistencyFollower, nil
	default:
		return 0, status.Errorf(codes.InvalidArgument, "unknown consistency %d", int32(c))
	}
}
