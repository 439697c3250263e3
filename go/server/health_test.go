package server_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TestHealthServiceElsewhere: RegisterHealthService puts the server's
// health statuses on another gRPC server (what the agent's plaintext health
// port is): readiness follows SetServing, LivenessService does not, nothing
// but health is served there, and Shutdown turns every status NOT_SERVING
// and ends the Watch streams on it too.
func TestHealthServiceElsewhere(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := ctxT(t)
	plain := grpc.NewServer()
	f.srv.RegisterHealthService(plain)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(plain.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	check := func(svc string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != want {
			t.Fatalf("check %q: %v %v, want %v", svc, h, err, want)
		}
	}
	for _, ready := range []bool{true, false, true} {
		f.srv.SetServing(ready)
		want := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			want = healthpb.HealthCheckResponse_SERVING
		}
		check("", want)
		check("log.v1.Log", want)
		check(server.LivenessService, healthpb.HealthCheckResponse_SERVING)
	}
	if _, err := logv1.NewLogClient(conn).Consume(ctx, &logv1.ConsumeRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Consume on the health-only server: %v, want Unimplemented", err)
	}

	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: server.LivenessService})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := watch.Recv(); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", h, err)
	}
	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, svc := range []string{"", "log.v1.Log", server.LivenessService} {
		check(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	for {
		h, err := watch.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("watch ended with %v, want Unavailable", err)
			}
			break
		}
		if h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("watch update %v", h.Status)
		}
	}
}
