package agent

import (
	"fmt"
	"io"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// hclogToZap returns an hclog.Logger (what Raft, Serf, memberlist and the
// mux log to) that sends every message to z, with the hclog name as the
// "component" field and the key/value pairs as fields. z's level filters.
// Once stopping is closed (Shutdown began, or New is undoing a failed
// start), errors are logged at info level: a stopping node's transport,
// connections and elections fail by design ("transport shutdown", peers'
// resets, a snapshot refused mid-close), which is no failure of the node;
// its own errors, logged to z directly, and Shutdown's result are not
// affected.
func hclogToZap(z *zap.Logger, name string, stopping <-chan struct{}) hclog.Logger {
	level := hclog.Error
	switch {
	case z.Core().Enabled(zapcore.DebugLevel):
		level = hclog.Debug
	case z.Core().Enabled(zapcore.InfoLevel):
		level = hclog.Info
	case z.Core().Enabled(zapcore.WarnLevel):
		level = hclog.Warn
	}
	// The intercept logger itself writes nowhere; its sink gets every
	// message, formatted by zap only if z wants it. Its level still tells
	// callers (IsDebug and friends) what is worth logging.
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Level: level, Output: io.Discard})
	// The caller and stack zap would record are this sink's, which say
	// nothing about the message.
	l.RegisterSink(zapSink{z: z.WithOptions(zap.WithCaller(false), zap.AddStacktrace(zapcore.FatalLevel)), stopping: stopping})
	return l
}

type zapSink struct {
	z        *zap.Logger
	stopping <-chan struct{}
}

func (s zapSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	var lvl zapcore.Level
	switch {
	case level <= hclog.Debug:
		lvl = zapcore.DebugLevel
	case level == hclog.Info:
		lvl = zapcore.InfoLevel
	case level == hclog.Warn:
		lvl = zapcore.WarnLevel
	default:
		lvl = zapcore.ErrorLevel
		select {
		case <-s.stopping:
			lvl = zapcore.InfoLevel
		default:
		}
	}
	ce := s.z.Check(lvl, msg)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 1+len(args)/2)
	fields = append(fields, zap.String("component", name))
	for i := 0; i+1 < len(args); i += 2 {
		key := fmt.Sprint(args[i])
		if key == "node" || key == "component" {
			// The zap logger names this node (and the component) already:
			// a second "node" key (hashicorp/raft's own, a peer's) would be
			// read by JSON tools as this node's name.
			key = name + "_" + key
		}
		fields = append(fields, hclogField(key, args[i+1]))
	}
	if len(args)%2 == 1 {
		fields = append(fields, hclogField(hclog.MissingKey, args[len(args)-1]))
	}
	ce.Write(fields...)
}

// hclogField renders one hclog key/value pair as hclog's own formatters
// would: its wrapper types (hclog.Fmt, Hex, Octal, Binary, Quote,
// CapturedStacktrace) are instructions, not values to serialize.
func hclogField(key string, v any) zap.Field {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return zap.String(key, "")
		}
		if format, ok := v[0].(string); ok {
			return zap.String(key, fmt.Sprintf(format, v[1:]...))
		}
		return zap.String(key, fmt.Sprint(v...))
	case hclog.Hex:
		return zap.String(key, "0x"+strconv.FormatUint(uint64(v), 16))
	case hclog.Octal:
		return zap.String(key, "0"+strconv.FormatUint(uint64(v), 8))
	case hclog.Binary:
		return zap.String(key, "0b"+strconv.FormatUint(uint64(v), 2))
	case hclog.Quote:
		return zap.String(key, string(v))
	case hclog.CapturedStacktrace:
		return zap.String(key, string(v))
	}
	return zap.Any(key, v)
}
