package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/stats"
)

// Trace exporters accepted by TraceConfig.Exporter.
const (
	ExporterNone = "none"
	ExporterOTLP = "otlp"
	ExporterFile = "file"
)

// TraceConfig selects where spans go.
type TraceConfig struct {
	// Exporter is ExporterNone (default when empty), ExporterOTLP or ExporterFile.
	Exporter string
	// Endpoint is the OTLP/gRPC collector for ExporterOTLP: host:port
	// (plaintext, the usual local collector), or a URL — http://host:port
	// for plaintext, https://host:port for TLS with the system roots.
	Endpoint string
	// File receives one JSON span per line for ExporterFile; it is created
	// or truncated.
	File string
	// ServiceName and ServiceVersion label the spans' resource.
	ServiceName, ServiceVersion string
}

// DefaultTraceConfig exports nothing.
func DefaultTraceConfig() TraceConfig {
	return TraceConfig{Exporter: ExporterNone, ServiceName: "proglog", ServiceVersion: "dev"}
}

// Validate reports a missing or unknown setting.
func (c TraceConfig) Validate() error {
	switch c.Exporter {
	case "", ExporterNone:
	case ExporterOTLP:
		if c.Endpoint == "" {
			return fmt.Errorf("%w: exporter %q needs an endpoint", ErrMissingTraceTarget, c.Exporter)
		}
	case ExporterFile:
		if c.File == "" {
			return fmt.Errorf("%w: exporter %q needs a file", ErrMissingTraceTarget, c.Exporter)
		}
	default:
		return fmt.Errorf("%w %q: want %s, %s or %s", ErrUnknownExporter, c.Exporter, ExporterNone, ExporterOTLP, ExporterFile)
	}
	return nil
}

// Tracing is a tracer provider and what it takes to flush it.
type Tracing struct {
	// Provider creates tracers; a no-op provider when exporting nowhere.
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// NewTracing builds the tracer provider described by c.
func NewTracing(ctx context.Context, c TraceConfig) (*Tracing, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Exporter == "" || c.Exporter == ExporterNone {
		return &Tracing{Provider: noop.NewTracerProvider(), shutdown: func(context.Context) error { return nil }}, nil
	}
	var (
		exp     sdktrace.SpanExporter
		cleanup = func() error { return nil }
		err     error
	)
	switch c.Exporter {
	case ExporterOTLP:
		exp, err = otlptracegrpc.New(ctx, otlpOptions(c.Endpoint)...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: create OTLP exporter for %s: %w", c.Endpoint, err)
		}
	case ExporterFile:
		f, err := os.Create(c.File)
		if err != nil {
			return nil, fmt.Errorf("telemetry: create trace file: %w", err)
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(f))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("telemetry: create file exporter: %w", err)
		}
		cleanup = f.Close
	}
	name := c.ServiceName
	if name == "" {
		name = "proglog"
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", name),
		attribute.String("service.version", c.ServiceVersion),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// Follow the caller's sampling decision; sample roots.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	)
	return &Tracing{Provider: tp, shutdown: func(ctx context.Context) error {
		// Flush the batcher before closing the file under it.
		return errors.Join(tp.Shutdown(ctx), cleanup())
	}}, nil
}

// Shutdown flushes buffered spans and releases the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shut down tracing: %w", err)
	}
	return nil
}

func otlpOptions(endpoint string) []otlptracegrpc.Option {
	if strings.Contains(endpoint, "://") {
		return []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(endpoint)}
	}
	return []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure()}
}

// ServerStatsHandler returns a gRPC server stats handler creating a span
// per RPC with tp, continuing W3C trace context from incoming metadata.
func ServerStatsHandler(tp trace.TracerProvider) stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	)
}
