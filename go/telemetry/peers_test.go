package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPeerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	unverified := 2
	p, err := NewPeerMetrics(reg, func() int { return unverified })
	if err != nil {
		t.Fatal(err)
	}
	p.Rejected("not_member")
	p.Rejected("not_member")
	p.Rejected("id_mismatch")
	unverified = 3
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			if m.Counter != nil {
				got[key] = m.Counter.GetValue()
			} else {
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	want := map[string]float64{
		"proglog_raft_peer_rejections_total/not_member":  2,
		"proglog_raft_peer_rejections_total/id_mismatch": 1,
		"proglog_membership_unverified_members":          3, // read at scrape time
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if _, err := NewPeerMetrics(reg, func() int { return 0 }); err == nil {
		t.Error("registering the peer metrics twice succeeded")
	}
}
