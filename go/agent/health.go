package agent

import (
	"net"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/proglog/proglog/go/internal/netlimit"
	"github.com/proglog/proglog/go/server"
	"github.com/proglog/proglog/go/telemetry"
)

// HealthMaxConns caps the connections open at once on the plaintext health
// port; further ones are closed at once.
const HealthMaxConns = 64

// Bounds of the plaintext health port (see Config.HealthAddr): anyone who
// can reach it can connect, so every connection is bounded in number, in
// set-up time, in idle time and in age. Its requests are a service name,
// and probes open one stream per connection.
const (
	healthMaxRecvMsgBytes     = 4 << 10
	healthMaxStreams          = 16
	healthHandshakeTimeout    = 5 * time.Second
	healthMaxConnectionIdle   = time.Minute
	healthMaxConnectionAge    = 5 * time.Minute
	healthMaxConnectionGrace  = 10 * time.Second
	healthKeepaliveMinTime    = 10 * time.Second
	healthRefusedLogInterval  = 10 * time.Second
	healthListenerMetricLabel = "health"
)

// serveHealth serves srv's health service, alone and without credentials,
// on a.healthLn.
func (a *Agent) serveHealth(srv *server.Server, metrics *telemetry.Metrics) {
	a.healthSrv = grpc.NewServer(
		grpc.MaxRecvMsgSize(healthMaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(healthMaxStreams),
		grpc.ConnectionTimeout(healthHandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     healthMaxConnectionIdle,
			MaxConnectionAge:      healthMaxConnectionAge,
			MaxConnectionAgeGrace: healthMaxConnectionGrace,
		}),
		// Probes do not ping; a client that pings often or without a
		// call is sent away.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: healthKeepaliveMinTime}),
	)
	srv.RegisterHealthService(a.healthSrv)
	refused := &netlimit.Sometimes{Interval: healthRefusedLogInterval}
	acceptFailed := &netlimit.Sometimes{Interval: healthRefusedLogInterval}
	ln := netlimit.NewListener(a.healthLn, netlimit.Config{
		MaxConns: HealthMaxConns,
		OnReject: func(c net.Conn) {
			metrics.ConnectionRejected(healthListenerMetricLabel)
			if ok, suppressed := refused.Allow(); ok {
				a.log.Warn("health port: connection refused, connection limit reached", zap.Stringer("peer", c.RemoteAddr()),
					zap.Int("limit", HealthMaxConns), zap.Int("suppressed", suppressed))
			}
		},
		OnAcceptError: func(err error, retry time.Duration) {
			if ok, suppressed := acceptFailed.Allow(); ok {
				a.log.Warn("health port: accept failed; backing off", zap.Error(err), zap.Duration("retry_in", retry), zap.Int("suppressed", suppressed))
			}
		},
	})
	a.goServe("health", func() error { return a.healthSrv.Serve(ln) })
}
