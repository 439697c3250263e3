package server_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/diskspace"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// Storage failures map to status codes; unexpected ones are logged with
// their context and reach the client only as a bare Internal.
func TestStorageErrorsMapToCodes(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	f := newFixture(t, fixtureOpts{server: func(c *serverConfig) { c.Logger = zap.New(core) }})
	c := f.client("root")
	cases := []struct {
		name    string
		fail    func() error
		code    codes.Code
		logged  string // substring of the logged error, "" if nothing is logged
		leakFor string // must not appear in the client's message
	}{
		{"unexpected", func() error { return errors.New("disk on fire at /secret/path") }, codes.Internal, "disk on fire", "/secret/path"},
		{"panic", func() error { panic("storage bug") }, codes.Internal, "storage bug", "storage bug"},
		{"corrupt", func() error { return fmt.Errorf("append: %w", seglog.ErrCorrupt) }, codes.DataLoss, "corrupt", ""},
		{"failed", func() error { return fmt.Errorf("append: %w", seglog.ErrFailed) }, codes.Unavailable, "failed", ""},
		{"too large", func() error { return fmt.Errorf("append: %w", seglog.ErrRecordTooLarge) }, codes.ResourceExhausted, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs.TakeAll()
			f.clog.fail.Store(&tc.fail)
			_, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("x")})
			f.clog.fail.Store(nil)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			if tc.leakFor != "" && strings.Contains(err.Error(), tc.leakFor) {
				t.Fatalf("client sees internals: %v", err)
			}
			if tc.logged == "" {
				return
			}
			// Besides the per-RPC line, a failure line with the cause
			// and where it happened.
			for _, e := range logs.All() {
				m := e.ContextMap()
				if e.Message == "rpc" || !strings.Contains(fmt.Sprint(m["error"], m["panic"]), tc.logged) {
					continue
				}
				if m["method"] != "/log.v1.Log/Produce" || m["principal"] != "root" {
					t.Errorf("failure logged without method and principal: %v %v", e.Message, m)
				}
				return
			}
			t.Fatalf("no failure log mentioning %q in %v", tc.logged, logs.All())
		})
	}
	// The server survived all of that.
	if _, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("fine")}); err != nil {
		t.Fatal(err)
	}
}

// A write refused for lack of disk space is RESOURCE_EXHAUSTED with the
// free and required bytes, and the data directory stays on the server.
func TestLowDiskSpaceIsResourceExhausted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	fail := func() error {
		return fmt.Errorf("replication: append refused: %w", &diskspace.LowSpaceError{Dir: "/secret/data", Free: 10, Required: 300})
	}
	f.clog.fail.Store(&fail)
	_, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("x")})
	f.clog.fail.Store(nil)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || strings.Contains(st.Message(), "/secret") ||
		!strings.Contains(st.Message(), "10 bytes free, 300 required") {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED saying 10 free of 300, without the directory", err)
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.Reason != "LOW_DISK_SPACE" || info.Domain != server.ErrorDomain ||
		info.Metadata["free"] != "10" || info.Metadata["required"] != "300" {
		t.Fatalf("ErrorInfo = %v", info)
	}
}

// The port's errors (go/commitlog) get the statuses clients act on (see
// log.proto): NOT_LEADER names the leader to retry at; an election,
// a lost leadership and an unavailable log are UNAVAILABLE and leave
// health alone.
func TestPortErrorsMapToStatuses(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client("root")
	cases := []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"not leader", fmt.Errorf("append: %w", &commitlog.NotLeaderError{LeaderID: "n1", LeaderAddr: "10.0.0.1:8400"}),
			codes.FailedPrecondition, "not the leader: send this request to 10.0.0.1:8400 (n1)"},
		{"no leader", &commitlog.NotLeaderError{}, codes.Unavailable, "partition log/0 has no leader yet (an election is under way); retry shortly"},
		{"leadership lost", fmt.Errorf("append: %w", commitlog.ErrLeadershipLost),
			codes.Unavailable, "leadership changed during the request; it may or may not have been applied"},
		{"unavailable", fmt.Errorf("%w: %w", commitlog.ErrUnavailable, seglog.ErrClosed),
			codes.Unavailable, "log unavailable on this node; retry later or on another server"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fail := func() error { return tc.err }
			f.clog.fail.Store(&fail)
			_, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("x")})
			f.clog.fail.Store(nil)
			st := status.Convert(err)
			if st.Code() != tc.code || st.Message() != tc.msg {
				t.Fatalf("err = %v, want %v %q", err, tc.code, tc.msg)
			}
			var infos []*errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					infos = append(infos, i)
				}
			}
			if tc.name == "no leader" {
				if len(infos) != 1 || infos[0].Reason != "NO_LEADER" || infos[0].Metadata["replicas"] != "1" || infos[0].Metadata["unreachable"] != "" {
					t.Fatalf("ErrorInfo %v, want NO_LEADER with 1 replica, none unreachable", infos)
				}
				return
			}
			if tc.code != codes.FailedPrecondition {
				if len(st.Details()) != 0 {
					t.Fatalf("details %v, want none", st.Details())
				}
				return
			}
			if len(infos) != 1 || infos[0].Reason != "NOT_LEADER" || infos[0].Domain != server.ErrorDomain ||
				infos[0].Metadata["leader_id"] != "n1" || infos[0].Metadata["leader_addr"] != "10.0.0.1:8400" || len(infos[0].Metadata) != 2 {
				t.Fatalf("ErrorInfo %v, want NOT_LEADER naming n1 at 10.0.0.1:8400", infos)
			}
		})
	}
	// None of them is the log failing here: the node stays SERVING.
	if _, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: rec("y")}); err != nil {
		t.Fatalf("Produce after the refusals: %v", err)
	}
	resp, err := healthpb.NewHealthClient(f.conn(f.clientTLS("root"))).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: logv1.Log_ServiceDesc.ServiceName})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after the refusals: %v, %v; want SERVING", resp, err)
	}
}
