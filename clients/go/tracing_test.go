package client_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/server"
)

// WithTracerProvider makes client spans and sends their context to the
// server, whose span of the same call is the client span's child.
func TestTracerProviderPropagates(t *testing.T) {
	// The server ends its span of a call after the response is sent, so
	// the client can return first: server spans are watched as they end.
	serverSpans := endedSpans(make(chan sdktrace.ReadOnlySpan, 1024))
	c := newCluster(t, clusterOpts{server: func(cfg *server.Config) {
		cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(serverSpans))
	}})
	clientSpans := tracetest.NewSpanRecorder()
	cl := c.client(client.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(clientSpans))))

	// The caller's own span: the client's span of the call is its child.
	caller := sdktrace.NewTracerProvider()
	ctx, span := caller.Tracer("test").Start(ctxT(t), "caller")
	if _, err := cl.Produce(ctx, &client.Record{Value: []byte("traced")}); err != nil {
		t.Fatal(err)
	}
	span.End()

	var call trace.SpanContext
	for _, s := range clientSpans.Ended() {
		if strings.HasPrefix(s.Name(), "log.v1.Log/Produce") && s.Parent().SpanID() == span.SpanContext().SpanID() {
			call = s.SpanContext()
		}
	}
	if !call.IsValid() {
		t.Fatalf("no client span of Produce under the caller's span among %d", len(clientSpans.Ended()))
	}
	for {
		select {
		case s := <-serverSpans:
			if strings.HasPrefix(s.Name(), "log.v1.Log/Produce") && s.Parent().SpanID() == call.SpanID() && s.SpanContext().TraceID() == call.TraceID() {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no server span of Produce under the client's span: %v", ctx.Err())
		}
	}
}

// endedSpans is a span processor that sends every ended span on the
// channel (dropping it if the channel is full).
type endedSpans chan sdktrace.ReadOnlySpan

func (endedSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e endedSpans) OnEnd(s sdktrace.ReadOnlySpan) {
	select {
	case e <- s:
	default:
	}
}
func (endedSpans) Shutdown(context.Context) error   { return nil }
func (endedSpans) ForceFlush(context.Context) error { return nil }
