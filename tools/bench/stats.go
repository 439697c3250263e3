package main

import (
	"math"
	"slices"
	"time"
)

// latencies is a sorted sample of durations.
type latencies []time.Duration

func newLatencies(samples []time.Duration) latencies {
	l := slices.Clone(samples)
	slices.Sort(l)
	return l
}

// quantile returns the q-quantile (nearest rank), -1 if empty.
func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return -1
	}
	i := int(math.Ceil(q*float64(len(l)))) - 1
	return l[min(max(i, 0), len(l)-1)]
}

func (l latencies) p50() time.Duration  { return l.quantile(0.50) }
func (l latencies) p99() time.Duration  { return l.quantile(0.99) }
func (l latencies) p999() time.Duration { return l.quantile(0.999) }
