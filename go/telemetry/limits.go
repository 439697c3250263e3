package telemetry

import "github.com/prometheus/client_golang/prometheus"

// limitCounters count what the node refused to protect itself (see
// go/server's README, "Limits").
type limitCounters struct {
	tlsFailures      *prometheus.CounterVec
	rejectedRequests *prometheus.CounterVec
	rejectedConns    *prometheus.CounterVec
}

func newLimitCounters() limitCounters {
	return limitCounters{
		tlsFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_tls_handshake_failures_total",
			Help: "Failed TLS handshakes on the API port, by reason (no_certificate, unknown_authority, expired, bad_certificate, not_tls, timeout, peer_alert, closed, other).",
		}, []string{"reason"}),
		rejectedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_rejected_requests_total",
			Help: "Requests refused before their message was decoded or their handler ran, by reason.",
		}, []string{"reason"}),
		rejectedConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proglog_rejected_connections_total",
			Help: "Connections closed at once because their listener's connection limit was reached, by listener.",
		}, []string{"listener"}),
	}
}

func (c limitCounters) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.tlsFailures, c.rejectedRequests, c.rejectedConns}
}

// TLSHandshakeFailed counts a failed TLS handshake.
func (m *Metrics) TLSHandshakeFailed(reason string) {
	m.limits.tlsFailures.WithLabelValues(reason).Inc()
}

// RequestRejected counts a request refused before its handler ran.
func (m *Metrics) RequestRejected(reason string) {
	m.limits.rejectedRequests.WithLabelValues(reason).Inc()
}

// ConnectionRejected counts a connection closed over listener's limit.
func (m *Metrics) ConnectionRejected(listener string) {
	m.limits.rejectedConns.WithLabelValues(listener).Inc()
}
