package agent_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// dialPlain connects to addr without TLS, as kubelet's grpc probe does.
func dialPlain(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func checkHealth(t *testing.T, ctx context.Context, h healthpb.HealthClient, svc string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil || resp.Status != want {
		t.Fatalf("plaintext health %q: %v %v, want %v", svc, resp, err, want)
	}
}

// TestHealthPort: Config.HealthAddr serves the node's health over plaintext
// gRPC — NOT_SERVING without a leader (liveness SERVING regardless),
// SERVING once ready — and nothing else: every Log RPC and reflection are
// Unimplemented. Shutdown turns it NOT_SERVING and closes it.
func TestHealthPort(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, time.Minute)

	// Without a leader: not ready, but live.
	lonelyCfg := e.config("lonely")
	lonelyCfg.HealthAddr = "127.0.0.1:0"
	lonely := e.start(lonelyCfg)
	lh := healthpb.NewHealthClient(dialPlain(t, lonely.a.HealthAddr()))
	checkHealth(t, ctx, lh, "", healthpb.HealthCheckResponse_NOT_SERVING)
	checkHealth(t, ctx, lh, "log.v1.Log", healthpb.HealthCheckResponse_NOT_SERVING)
	checkHealth(t, ctx, lh, server.LivenessService, healthpb.HealthCheckResponse_SERVING)
	lonely.stop()

	cfg := e.config("solo")
	cfg.Bootstrap = true
	cfg.HealthAddr = "127.0.0.1:0"
	n := e.start(cfg)
	if n.a.HealthAddr() == "" || n.a.HealthAddr() == n.a.Addr() {
		t.Fatalf("health address %q (API on %s)", n.a.HealthAddr(), n.a.Addr())
	}
	conn := dialPlain(t, n.a.HealthAddr())
	h := healthpb.NewHealthClient(conn)
	// SERVING once ready, as a Watch (what the kubelet's Check polls) sees it.
	watch, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		st, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch before ready: %v", err)
		}
		if st.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	if !n.a.Ready() {
		t.Fatal("plaintext health SERVING before the agent is ready")
	}
	for _, svc := range []string{"", "log.v1.Log", server.LivenessService} {
		checkHealth(t, ctx, h, svc, healthpb.HealthCheckResponse_SERVING)
	}
	if st := n.health(ctx); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("mTLS health %v", st)
	}
	list, err := h.List(ctx, &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range list.Statuses {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"", server.LivenessService, "log.v1.Log"}; !slices.Equal(names, want) {
		t.Fatalf("health services %q, want %q", names, want)
	}

	// Nothing but health: no log data, no reflection.
	lc := logv1.NewLogClient(conn)
	unimplemented := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s on the health port: %v, want Unimplemented", what, err)
		}
	}
	_, err = lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value(0)}})
	unimplemented("Produce", err)
	_, err = lc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: value(0)}}})
	unimplemented("ProduceBatch", err)
	_, err = lc.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	unimplemented("Consume", err)
	_, err = lc.GetServers(ctx, &logv1.GetServersRequest{})
	unimplemented("GetServers", err)
	cs, err := lc.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err == nil {
		_, err = cs.Recv()
	}
	unimplemented("ConsumeStream", err)
	ps, err := lc.ProduceStream(ctx)
	if err == nil {
		_, err = ps.Recv()
	}
	unimplemented("ProduceStream", err)
	for _, m := range []string{
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	} {
		unimplemented(m, conn.Invoke(ctx, m, &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}))
	}
	if n.a.Replica().NextOffset() != 0 {
		t.Fatal("a call on the health port wrote to the log")
	}

	// Shutdown: NOT_SERVING, then the port closes.
	sawNotServing := false
	n.stop()
	for {
		st, err := watch.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("watch ended with %v, want Unavailable", err)
			}
			break
		}
		if st.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("watch update during Shutdown: %v", st.Status)
		}
		sawNotServing = true
	}
	t.Logf("NOT_SERVING seen before the port closed: %v", sawNotServing)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if resp, err := h.Check(short, &healthpb.HealthCheckRequest{Service: server.LivenessService}); status.Code(err) != codes.Unavailable {
		t.Fatalf("health after Shutdown: %v %v, want Unavailable (port closed)", resp, err)
	}
}
