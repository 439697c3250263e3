package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// DiskStats is a snapshot of the free space of the node's data directory
// for gauges (see go/diskspace).
type DiskStats struct {
	FreeBytes      uint64 // free on the file system of the data directory
	MinFreeBytes   uint64 // the watermark; 0 when disabled
	RefusingWrites bool   // produces are refused: FreeBytes < MinFreeBytes
}

// RegisterDiskStats registers gauges read from stats at every scrape.
func (m *Metrics) RegisterDiskStats(stats func() DiskStats) error {
	if err := m.reg.Register(&diskCollector{stats: stats}); err != nil {
		return fmt.Errorf("telemetry: register disk gauges: %w", err)
	}
	return nil
}

var (
	descDiskFree     = prometheus.NewDesc("proglog_disk_free_bytes", "Bytes free on the file system of the data directory.", nil, nil)
	descDiskMinFree  = prometheus.NewDesc("proglog_disk_min_free_bytes", "Free-space watermark (--min-free-bytes) below which produces are refused; 0: never.", nil, nil)
	descDiskRefusing = prometheus.NewDesc("proglog_disk_refusing_writes", "1 while produces are refused for lack of disk space, else 0.", nil, nil)
)

type diskCollector struct{ stats func() DiskStats }

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDiskFree
	ch <- descDiskMinFree
	ch <- descDiskRefusing
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	refusing := 0.0
	if s.RefusingWrites {
		refusing = 1
	}
	ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(s.FreeBytes))
	ch <- prometheus.MustNewConstMetric(descDiskMinFree, prometheus.GaugeValue, float64(s.MinFreeBytes))
	ch <- prometheus.MustNewConstMetric(descDiskRefusing, prometheus.GaugeValue, refusing)
}
