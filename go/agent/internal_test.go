package agent_test

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/metadata"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TestInternalRPCsNeedANodeCertificate: log.v1.Internal takes node
// certificates only: a client's certificate (root's, allowed everything by
// the ACL) is refused PERMISSION_DENIED; a node's report reaching a node
// that does not lead the metadata group is answered NOT_LEADER naming the
// leader; the leader answers a report the metadata does not match (the
// node is not being added) FAILED_PRECONDITION with reason STALE.
func TestInternalRPCsNeedANodeCertificate(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	nodes := cluster3(t, e)
	var leader, follower *node
	testutil.Eventually(t, "a metadata leader", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.Metadata().IsLeader() {
				leader = n
			} else {
				follower = n
			}
		}
		return leader != nil && follower != nil
	})
	req := &logv1.ReportReplicaReadyRequest{Topic: commitlog.DefaultTopic, Partition: 0, Epoch: 0}

	_, err := logv1.NewInternalClient(e.dial(leader.a.Addr(), "root")).ReportReplicaReady(ctx, req)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a client certificate's report: %v, want PermissionDenied", err)
	}

	asNode := func(addr, name string) logv1.InternalClient {
		tlsCfg, err := e.nodeTLS(name).Client()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return logv1.NewInternalClient(conn)
	}
	_, err = asNode(follower.a.Addr(), follower.name()).ReportReplicaReady(ctx, req)
	if info := notLeaderInfo(t, err); info.Metadata["leader_addr"] != leader.a.Addr() {
		t.Fatalf("NOT_LEADER names %q, want the metadata leader %s", info.Metadata["leader_addr"], leader.a.Addr())
	}
	_, err = asNode(leader.a.Addr(), follower.name()).ReportReplicaReady(ctx, req)
	if reason := errorReason(err); status.Code(err) != codes.FailedPrecondition || reason != "STALE" {
		t.Fatalf("a report of a replica not being added: %v (reason %q), want FailedPrecondition STALE", err, reason)
	}
}

// errorReason is the reason of err's proglog ErrorInfo, empty if none.
func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// TestGetMetadataNamesLeadersOfPartitionsNotHosted: GetMetadata on a node
// holding no replica of a partition names its leader, which the leader
// reported to the metadata leader (over log.v1.Internal unless it leads
// the metadata group too).
func TestGetMetadataNamesLeadersOfPartitionsNotHosted(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)
	nodes := cluster3(t, e)
	// At the metadata leader (leadership may move on a loaded machine).
	testutil.Eventually(t, "the topic to be created", 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.a.Metadata().IsLeader() {
				_, err := n.log.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "solo", Config: &logv1.TopicConfig{Partitions: 3, ReplicationFactor: 1}})
				if status.Code(err) == codes.AlreadyExists { // a retry of a create that was applied
					return true
				}
				return err == nil
			}
		}
		return false
	})
	// Three partitions of one replica on three nodes: each node hosts one
	// and must name the other two's leaders from the hints.
	for _, n := range nodes {
		testutil.Eventually(t, n.name()+" to name every partition's leader", 30*time.Second, func() bool {
			resp, err := n.log.GetMetadata(ctx, &logv1.GetMetadataRequest{Topics: []string{"solo"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range resp.Topics[0].Partitions {
				if len(p.Replicas) != 1 || p.LeaderId != p.Replicas[0].Id || !p.Replicas[0].IsLeader {
					return false
				}
			}
			return true
		})
	}
	if server.MaxLeaderReports != metadata.MaxLeaderHints {
		t.Fatalf("server.MaxLeaderReports %d, metadata.MaxLeaderHints %d: a request must fit one command", server.MaxLeaderReports, metadata.MaxLeaderHints)
	}
}
