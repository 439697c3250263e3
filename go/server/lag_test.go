package server_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proglog/proglog/go/commitlog"
)

// lagScrape gathers g once and returns proglog_consumer_group_lag by
// "group/topic/partition", and the dropped series counter.
func lagScrape(t *testing.T, g prometheus.Gatherer) (map[string]float64, float64) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lags, dropped := map[string]float64{}, -1.0
	for _, mf := range families {
		switch mf.GetName() {
		case "proglog_consumer_group_lag":
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				lags[l["group"]+"/"+l["topic"]+"/"+l["partition"]] = m.GetGauge().GetValue()
			}
		case "proglog_consumer_group_lag_dropped_series_total":
			dropped = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return lags, dropped
}

// appendN appends n records to topic's partition of f's cluster.
func appendN(t *testing.T, f *fixture, topic string, partition, n int) {
	t.Helper()
	for i := range n {
		if _, err := partitionLog(t, f, topic, partition).Append(context.Background(), [][]byte{[]byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// Consumer lag is exported per group and partition by the partition's
// leader only (so a scrape of every node counts each once): the
// partition's next offset minus the group's committed offset, none for a
// partition without a commit; over MaxGroupLagSeries the rest are counted
// as dropped, in group, topic and partition order.
func TestConsumerGroupLagMetric(t *testing.T) {
	fake := newFakeGroups()
	maxSeries := 10
	f := groupFixture(t, fake, fixtureOpts{server: func(c *serverConfig) { c.MaxGroupLagSeries = maxSeries }})
	f.cluster.create("orders", 3)
	f.cluster.leadElsewhere("orders", 1, "n2") // this node holds a follower
	appendN(t, f, "orders", 0, 5)
	appendN(t, f, "orders", 1, 3)
	appendN(t, f, "orders", 2, 7)
	appendN(t, f, commitlog.DefaultTopic, 0, 4)
	at := func(topic string, p int, offset uint64, committed bool) commitlog.PartitionOffset {
		return commitlog.PartitionOffset{TopicPartition: commitlog.TopicPartition{Topic: topic, Partition: p}, Offset: offset, Committed: committed}
	}
	fake.summaries = []commitlog.GroupSummary{{Group: "b"}, {Group: "a"}}
	fake.offsets["a"] = []commitlog.PartitionOffset{at("orders", 0, 2, true), at("orders", 1, 1, true), at("orders", 2, 0, false)}
	fake.offsets["b"] = []commitlog.PartitionOffset{at("orders", 2, 7, true), at("log", 0, 1, true), at("orders", 0, 9, true)}

	lags, dropped := lagScrape(t, f.reg)
	want := map[string]float64{
		"a/orders/0": 3, // 5 - 2
		"b/log/0":    3, // 4 - 1
		"b/orders/0": 0, // committed past this node's log: no lag, not negative
		"b/orders/2": 0, // 7 - 7
	}
	if !maps.Equal(lags, want) || dropped != 0 {
		t.Fatalf("lag %v dropped %v, want %v and 0", lags, dropped, want)
	}

	// At 2 series a scrape keeps the first two and counts the others.
	f2 := groupFixture(t, fake, fixtureOpts{server: func(c *serverConfig) { c.MaxGroupLagSeries = 2 }})
	f2.cluster.create("orders", 3)
	appendN(t, f2, "orders", 0, 5)
	for scrape := 1; scrape <= 2; scrape++ {
		lags, dropped = lagScrape(t, f2.reg)
		if want := map[string]float64{"a/orders/0": 3, "a/orders/1": 0}; !maps.Equal(lags, want) || dropped != float64(3*scrape) {
			t.Fatalf("scrape %d capped at 2: lag %v dropped %v, want %v and %d", scrape, lags, dropped, want, 3*scrape)
		}
	}

	// A coordinator that cannot answer leaves the lag out; the scrape
	// still succeeds.
	fake.failWith(fmt.Errorf("metadata: %w", commitlog.ErrUnavailable))
	if lags, _ := lagScrape(t, f.reg); len(lags) != 0 {
		t.Fatalf("lag without a coordinator: %v", lags)
	}
}

// Without Groups the server registers no lag metric.
func TestNoLagMetricWithoutGroups(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if lags, dropped := lagScrape(t, f.reg); len(lags) != 0 || dropped != -1 {
		t.Fatalf("lag %v dropped %v without Groups", lags, dropped)
	}
}
