// Package telemetry provides proglog's logs, metrics and traces.
//
// Logs: NewLogger builds a zap JSON logger; LoggingInterceptors log every
// RPC once it finishes, with the method, the principal (client certificate
// CN), the status code, the latency and, for failures, the error. Severity
// follows the code: server faults at error, authentication and authorization
// failures at warn, everything else (successful calls included) at debug, so
// that at the default level info lines are state changes only.
//
// Metrics: Metrics registers Prometheus collectors — RPCs by method and code,
// RPC latency histograms by method, appended records and bytes, repairs made
// by crash recovery at start by log and action, and log gauges (size,
// segments, offsets) and consumer group lag (RegisterGroupLag) read at
// scrape time — and provides the
// interceptors that feed them. ListenMetrics serves a registry at /metrics
// on its own listener, apart from the gRPC port.
//
// Traces: NewTracing builds an OpenTelemetry tracer provider exporting to an
// OTLP/gRPC collector, to a file of JSON spans (for tests and debugging), or
// nowhere; ServerStatsHandler turns it into a gRPC stats handler (otelgrpc)
// that creates a server span per RPC and continues W3C trace context sent by
// clients.
package telemetry
