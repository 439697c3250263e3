package telemetry

import (
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// GroupLag is a consumer group's lag on one partition: the partition's
// next offset minus the group's committed offset.
type GroupLag struct {
	Group, Topic string
	Partition    int
	Lag          uint64
}

// RegisterGroupLag registers proglog_consumer_group_lag, labelled group,
// topic and partition, read from stats at every scrape, and
// proglog_consumer_group_lag_dropped_series_total, which adds up the
// series stats reports as dropped (left out of a scrape by the caller's
// cap on series).
func (m *Metrics) RegisterGroupLag(stats func() (lags []GroupLag, dropped int)) error {
	if err := m.reg.Register(&groupLagCollector{stats: stats}); err != nil {
		return fmt.Errorf("telemetry: register consumer group lag: %w", err)
	}
	return nil
}

var (
	descGroupLag = prometheus.NewDesc("proglog_consumer_group_lag",
		"Records of a partition after a consumer group's committed offset (next offset minus committed offset), exported by the partition's leader.",
		[]string{"group", "topic", "partition"}, nil)
	descGroupLagDropped = prometheus.NewDesc("proglog_consumer_group_lag_dropped_series_total",
		"Consumer group lag series left out of scrapes because the node's cap on them was reached, summed over scrapes.", nil, nil)
)

type groupLagCollector struct {
	stats   func() ([]GroupLag, int)
	dropped atomic.Uint64
}

func (c *groupLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGroupLag
	ch <- descGroupLagDropped
}

func (c *groupLagCollector) Collect(ch chan<- prometheus.Metric) {
	lags, dropped := c.stats()
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(descGroupLag, prometheus.GaugeValue, float64(l.Lag), l.Group, l.Topic, strconv.Itoa(l.Partition))
	}
	total := c.dropped.Add(uint64(max(0, dropped)))
	ch <- prometheus.MustNewConstMetric(descGroupLagDropped, prometheus.CounterValue, float64(total))
}
