package server_test

import (
	"maps"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglog/proglog/proto/log/v1"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/server"
)

// The calls the metadata group answers — topics, consumer groups, ACLs —
// say why it has no leader like a partition does (reason NO_LEADER,
// scope "metadata", no topic): with a majority of its voters on failed or
// leaving servers, which ones and that none can be elected; with fewer,
// that an election is under way. Servers that are not voters do not
// count.
func TestMetadataNoLeaderNamesTheUnreachableVoters(t *testing.T) {
	ls := &lister{}
	groups, acls := newFakeGroups(), &fakeACLs{}
	f := newFixture(t, fixtureOpts{server: func(c *server.Config) {
		c.ID, c.Servers, c.Groups, c.ACLs = "n0", ls, groups, acls
	}})
	c, ctx := f.client("root"), ctxT(t)
	noLeader := &commitlog.NotLeaderError{}
	f.cluster.failWith(noLeader)
	groups.failWith(noLeader)
	acls.fail(noLeader)
	calls := map[string]func() error{
		"CreateTopic": func() error {
			_, err := c.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t9", Config: &logv1.TopicConfig{ReplicationFactor: 1}})
			return err
		},
		"DeleteTopic": func() error {
			_, err := c.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t9"})
			return err
		},
		"JoinGroup": func() error {
			_, err := c.JoinGroup(ctx, &logv1.JoinGroupRequest{Group: "G2", Topics: []string{"orders"}})
			return err
		},
		"CreateACLs": func() error {
			_, err := c.CreateACLs(ctx, &logv1.CreateACLsRequest{Rules: []*logv1.ACLRule{{Subject: "nobody", Object: "log", Action: "produce"}}})
			return err
		},
	}
	n0 := commitlog.Server{ID: "n0", Addr: f.addr, State: commitlog.StateAlive, MetadataVoter: true}
	n1 := commitlog.Server{ID: "n1", Addr: "10.0.0.1:8400", State: commitlog.StateFailed, MetadataVoter: true}
	n2 := commitlog.Server{ID: "n2", Addr: "10.0.0.2:8400", State: commitlog.StateFailed, MetadataVoter: true}
	n3 := commitlog.Server{ID: "n3", Addr: "10.0.0.3:8400", State: commitlog.StateFailed} // not a voter

	ls.set(n0, n1, n2, n3)
	for name, call := range calls {
		err := call()
		info := errorInfo(t, err, codes.Unavailable)
		if want := map[string]string{"scope": "metadata", "replicas": "3", "unreachable": "n1,n2"}; info.Reason != "NO_LEADER" || !maps.Equal(info.Metadata, want) {
			t.Errorf("%s, quorum lost: ErrorInfo %v, want NO_LEADER %v", name, info, want)
		}
		if msg, want := status.Convert(err).Message(), "the metadata group has no leader: 2 of its 3 voters are unreachable (n1 failed, n2 failed); a leader needs 2 of them, so none can be elected until enough are back; until then topics, consumer groups and ACLs cannot change"; msg != want {
			t.Errorf("%s, quorum lost: message %q, want %q", name, msg, want)
		}
	}

	// n2 alive again, n1 leaving: a majority can elect a leader.
	n1.State, n2.State = commitlog.StateLeaving, commitlog.StateAlive
	ls.set(n0, n1, n2, n3)
	for name, call := range calls {
		err := call()
		if info := errorInfo(t, err, codes.Unavailable); info.Reason != "NO_LEADER" || info.Metadata["unreachable"] != "n1" || info.Metadata["replicas"] != "3" {
			t.Errorf("%s, one leaving: ErrorInfo %v", name, info)
		}
		wantStatus(t, err, codes.Unavailable, "the metadata group has no leader elected yet (an election is under way; 1 of its 3 voters unreachable: n1 leaving); retry shortly")
	}

	// Every voter reachable: an election.
	n1.State = commitlog.StateAlive
	ls.set(n0, n1, n2)
	for name, call := range calls {
		err := call()
		if info := errorInfo(t, err, codes.Unavailable); info.Reason != "NO_LEADER" || info.Metadata["unreachable"] != "" || info.Metadata["replicas"] != "3" {
			t.Errorf("%s, election: ErrorInfo %v", name, info)
		}
		wantStatus(t, err, codes.Unavailable, "the metadata group has no leader elected yet (an election is under way); retry shortly")
	}
}
