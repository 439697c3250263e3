package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestDiskGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	stats := DiskStats{FreeBytes: 1000, MinFreeBytes: 5000, RefusingWrites: true}
	if err := m.RegisterDiskStats(func() DiskStats { return stats }); err != nil {
		t.Fatal(err)
	}
	check := func(want map[string]float64) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if _, ok := want[mf.GetName()]; ok {
				got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		for name, v := range want {
			if g, ok := got[name]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
			}
		}
	}
	check(map[string]float64{"proglog_disk_free_bytes": 1000, "proglog_disk_min_free_bytes": 5000, "proglog_disk_refusing_writes": 1})
	stats = DiskStats{FreeBytes: 9000, MinFreeBytes: 5000}
	check(map[string]float64{"proglog_disk_free_bytes": 9000, "proglog_disk_min_free_bytes": 5000, "proglog_disk_refusing_writes": 0})
}
