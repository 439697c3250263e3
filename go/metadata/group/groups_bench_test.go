package group

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proglog/proglog/go/commitlog"
)

// BenchmarkGroupCommits measures CommitOffsets through a real 3-node
// metadata group (entries fsynced on the voters) with 1 to 64 members
// committing at once, each its own partition of a 64-partition topic,
// one offset per commit: commits/s and Raft entries per commit
// (coalescing). docs/benchmarks.md, "Consumer-group commits".
func BenchmarkGroupCommits(b *testing.B) {
	const members = 64
	_, l := groupsCluster(b, 3)
	ctx, co := context.Background(), l.Groups()
	if _, err := l.CreateTopic(ctx, "wide", commitlog.TopicConfig{Partitions: members, ReplicationFactor: 1}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, members)
	for i := range ids {
		a, err := co.JoinGroup(ctx, commitlog.JoinRequest{Group: "g", Topics: []string{"wide"}, SessionTimeout: commitlog.MaxSessionTimeout})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.MemberID
	}
	// Every member acknowledges the last generation: each then owns its one
	// partition.
	owns := make([]commitlog.TopicPartition, members)
	for pass := 0; pass < 2; pass++ {
		for i, id := range ids {
			a, err := co.Heartbeat(ctx, "g", id, members)
			if err != nil {
				b.Fatal(err)
			}
			if len(a.Partitions) == 1 {
				owns[i] = a.Partitions[0].TopicPartition
			}
		}
	}
	for i, tp := range owns {
		if tp.Topic == "" {
			b.Fatalf("member %d owns nothing", i)
		}
	}
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("committers=%d", n), func(b *testing.B) {
			p0, c0 := co.proposals.Load(), co.committed.Load()
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						k := next.Add(1)
						if k > int64(b.N) {
							return
						}
						if err := co.CommitOffsets(ctx, "g", ids[w], members, []commitlog.PartitionOffset{{TopicPartition: owns[w], Offset: uint64(k)}}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
			b.ReportMetric(float64(co.proposals.Load()-p0)/float64(co.committed.Load()-c0), "entries/commit")
		})
	}
}
