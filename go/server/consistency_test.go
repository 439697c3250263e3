package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/server"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// TestConsumeConsistency checks what the server asks the Partition for:
// the request's consistency, the configured default when unspecified, and
// follower reads for streams whatever the request says.
func TestConsumeConsistency(t *testing.T) {
	for _, def := range []commitlog.Consistency{commitlog.ConsistencyLinearizable, commitlog.ConsistencyFollower} {
		t.Run("default="+def.String(), func(t *testing.T) {
			reads := make(chan commitlog.Consistency, 16)
			f := newFixture(t, fixtureOpts{reads: reads, server: func(c *server.Config) { c.DefaultConsistency = def }})
			ctx := ctxT(t)
			lc := f.client("root")
			if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: rec("r")}); err != nil {
				t.Fatal(err)
			}
			for req, want := range map[logv1.Consistency]commitlog.Consistency{
				logv1.Consistency_CONSISTENCY_UNSPECIFIED:  def,
				logv1.Consistency_CONSISTENCY_LINEARIZABLE: commitlog.ConsistencyLinearizable,
				logv1.Consistency_CONSISTENCY_FOLLOWER:     commitlog.ConsistencyFollower,
			} {
				got, err := lc.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: req})
				if err != nil || string(got.Record.Value) != "r" {
					t.Fatalf("Consume(%v) = %v, %v", req, got, err)
				}
				if c := <-reads; c != want {
					t.Errorf("Consume(%v) read with %v, want %v", req, c, want)
				}

				stream, err := lc.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: req})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
				if c := <-reads; c != commitlog.ConsistencyFollower {
					t.Errorf("ConsumeStream(%v) read with %v, want follower", req, c)
				}
			}

			// Values the server does not know are refused before reading.
			bad := logv1.Consistency(42)
			if _, err := lc.Consume(ctx, &logv1.ConsumeRequest{Consistency: bad}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("Consume(42): %v, want InvalidArgument", err)
			}
			stream, err := lc.ConsumeStream(ctx, &logv1.ConsumeRequest{Consistency: bad})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("ConsumeStream(42): %v, want InvalidArgument", err)
			}
			select {
			case c := <-reads:
				t.Errorf("a refused request read with %v", c)
			default:
			}
		})
	}
}

// TestSetServing checks that readiness drives the health service and that
// a failed log stays NOT_SERVING whatever readiness says.
func TestSetServing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := ctxT(t)
	health := healthpb.NewHealthClient(f.conn(f.clientTLS("root")))
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
	if err != nil {
		t.Fatal(err)
	}
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		h, err := watch.Recv()
		if err != nil || h.Status != want {
			t.Fatalf("watch: %v %v, want %v", h, err, want)
		}
		for _, svc := range []string{"", "log.v1.Log"} {
			h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || h.Status != want {
				t.Fatalf("check %q: %v %v, want %v", svc, h, err, want)
			}
		}
	}
	next(healthpb.HealthCheckResponse_SERVING)
	f.srv.SetServing(false)
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	f.srv.SetServing(true)
	next(healthpb.HealthCheckResponse_SERVING)

	if err := f.storage.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client("root").Produce(ctx, &logv1.ProduceRequest{Record: rec("late")}); status.Code(err) != codes.Unavailable {
		t.Fatalf("produce on a closed log: %v", err)
	}
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	f.srv.SetServing(true)
	h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("a failed log must stay NOT_SERVING: %v %v", h, err)
	}
}
