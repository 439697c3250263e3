package telemetry

import "errors"

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrUnknownExporter: TraceConfig.Exporter is not none, otlp or file.
	ErrUnknownExporter = errors.New("telemetry: unknown trace exporter")
	// ErrMissingTraceTarget: the exporter needs an endpoint or a file.
	ErrMissingTraceTarget = errors.New("telemetry: trace exporter target missing")
	// ErrBadLogLevel: NewLogger was given an unknown level name.
	ErrBadLogLevel = errors.New("telemetry: unknown log level")
)
