package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// PeerMetrics counts what the cluster's identity checks refuse: Raft peer
// connections rejected (proglog_raft_peer_rejections_total, by reason) and
// gossip members not admitted to Raft (proglog_membership_unverified_members).
// Its methods are safe for concurrent use.
type PeerMetrics struct {
	rejections *prometheus.CounterVec
}

// NewPeerMetrics registers the peer collectors with reg; unverified is read
// at every scrape for the gauge.
func NewPeerMetrics(reg prometheus.Registerer, unverified func() int) (*PeerMetrics, error) {
	p := &PeerMetrics{rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "proglog_raft_peer_rejections_total",
		Help: "Raft peer connections or requests rejected by the identity checks, by reason.",
	}, []string{"reason"})}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proglog_membership_unverified_members",
		Help: "Gossip members the leader did not add to Raft because they did not prove their identity over mutual TLS.",
	}, func() float64 { return float64(unverified()) })
	for _, c := range []prometheus.Collector{p.rejections, gauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("telemetry: register peer metrics: %w", err)
		}
	}
	return p, nil
}

// Rejected counts one rejection for reason.
func (p *PeerMetrics) Rejected(reason string) { p.rejections.WithLabelValues(reason).Inc() }
