package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// NewLogger returns a production (JSON, ISO-8601 time) zap logger writing to
// stderr at level: debug, info, warn or error.
func NewLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("%w %q: want debug, info, warn or error", ErrBadLogLevel, level)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	// Sampling would drop lines under load, and with them the failures an
	// audit of who did what needs most (successful calls log at debug).
	cfg.Sampling = nil
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("telemetry: build logger: %w", err)
	}
	return l, nil
}

// PrincipalFunc names the caller of an RPC for logs ("" if unknown).
type PrincipalFunc func(context.Context) string

// LoggingInterceptors returns interceptors that log each RPC when it ends.
// Install them outermost so that calls rejected by later interceptors
// (authentication, say) are logged too; principal therefore reads the
// connection rather than values set by those interceptors.
func LoggingInterceptors(l *zap.Logger, principal PrincipalFunc) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if principal == nil {
		principal = func(context.Context) string { return "" }
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logRPC(ctx, l, principal, info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logRPC(ss.Context(), l, principal, info.FullMethod, start, err)
		return err
	}
	return unary, stream
}

func logRPC(ctx context.Context, l *zap.Logger, principal PrincipalFunc, method string, start time.Time, err error) {
	code := status.Code(err)
	lvl := levelFor(code)
	ce := l.Check(lvl, "rpc")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("method", method),
		zap.String("principal", principal(ctx)),
		zap.String("code", code.String()),
		zap.Duration("latency", time.Since(start)),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		fields = append(fields, zap.String("peer", p.Addr.String()))
	}
	if err != nil {
		fields = append(fields, zap.String("error", status.Convert(err).Message()))
	}
	ce.Write(fields...)
}

// levelFor is the level of a call's log line: server faults at error,
// refused callers at warn, and everything else — successes and answers such
// as OUT_OF_RANGE or NOT_LEADER that are part of normal operation — at
// debug, so that info is left to state changes and a busy node's log does
// not grow with its call rate.
func levelFor(code codes.Code) zapcore.Level {
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return zapcore.ErrorLevel
	case codes.Unauthenticated, codes.PermissionDenied:
		return zapcore.WarnLevel
	default:
		return zapcore.DebugLevel
	}
}
