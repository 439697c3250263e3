package agent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
)

type fixedServers []commitlog.Server

func (f fixedServers) Servers(context.Context) ([]commitlog.Server, error) { return f, nil }

func TestSingleLogServesOnlyTheDefaultTopic(t *testing.T) {
	l, err := seglog.Open(filepath.Join(t.TempDir(), "data"), seglog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	log := server.NewStorageLog(l)
	servers := fixedServers{{ID: "n0", Addr: "a:1", IsLeader: true}, {ID: "n1", Addr: "b:1"}}
	c := SingleLog{Log: log, Servers: servers}
	ctx := context.Background()

	if p, err := c.Partition(commitlog.DefaultTopic, 0); err != nil || p != log {
		t.Fatalf("Partition(log, 0) = %v, %v; want the log", p, err)
	}
	if _, err := c.Partition(commitlog.DefaultTopic, 1); !errors.Is(err, commitlog.ErrUnknownPartition) {
		t.Errorf("Partition(log, 1): %v, want ErrUnknownPartition", err)
	}
	if _, err := c.Partition("orders", 0); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Errorf("Partition(orders, 0): %v, want ErrUnknownTopic", err)
	}
	for _, names := range [][]string{nil, {commitlog.DefaultTopic}} {
		topics, err := c.Topics(ctx, names...)
		if err != nil || len(topics) != 1 || topics[0].Name != commitlog.DefaultTopic ||
			topics[0].Config.ReplicationFactor != 2 || len(topics[0].Partitions) != 1 || len(topics[0].Partitions[0].Replicas) != 2 {
			t.Errorf("Topics(%v) = %+v, %v", names, topics, err)
		}
	}
	if topics, err := (SingleLog{Log: log}).Topics(ctx); err != nil || topics[0].Config.ReplicationFactor != 1 || len(topics[0].Partitions[0].Replicas) != 0 {
		t.Errorf("Topics without Servers = %+v, %v", topics, err)
	}
	if _, err := c.Topics(ctx, commitlog.DefaultTopic, "orders"); !errors.Is(err, commitlog.ErrUnknownTopic) {
		t.Errorf("Topics(log, orders): %v, want ErrUnknownTopic", err)
	}
	if _, err := c.CreateTopic(ctx, "orders", commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, commitlog.ErrInvalidTopic) {
		t.Errorf("CreateTopic: %v, want ErrInvalidTopic", err)
	}
	if err := c.DeleteTopic(ctx, "orders"); !errors.Is(err, commitlog.ErrInvalidTopic) {
		t.Errorf("DeleteTopic: %v, want ErrInvalidTopic", err)
	}
}
