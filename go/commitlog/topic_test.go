package commitlog_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/proglog/proglog/go/commitlog"
)

func TestValidateTopicName(t *testing.T) {
	for _, ok := range []string{"log", "orders.eu-1", "A_b", "...", strings.Repeat("x", commitlog.MaxTopicNameLen)} {
		if err := commitlog.ValidateTopicName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "é", strings.Repeat("x", commitlog.MaxTopicNameLen+1)} {
		if err := commitlog.ValidateTopicName(bad); !errors.Is(err, commitlog.ErrInvalidTopic) {
			t.Errorf("%q: %v, want ErrInvalidTopic", bad, err)
		}
	}
}

func TestTopicConfigValidate(t *testing.T) {
	ok := commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  commitlog.TopicConfig
		want string
	}{
		{commitlog.TopicConfig{Partitions: 0, ReplicationFactor: 1}, "0 partitions, want 1 to 1024"},
		{commitlog.TopicConfig{Partitions: commitlog.MaxPartitions + 1, ReplicationFactor: 1}, "1025 partitions"},
		{commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 0}, "replication factor 0, want 1 to 7"},
		{commitlog.TopicConfig{Partitions: 1, ReplicationFactor: commitlog.MaxReplicationFactor + 1}, "replication factor 8"},
		{commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1, RetentionBytes: -1}, "retention bytes -1"},
		{commitlog.TopicConfig{Partitions: 1, ReplicationFactor: 1, RetentionAge: -time.Second}, "retention age -1s"},
	} {
		err := tc.cfg.Validate()
		if !errors.Is(err, commitlog.ErrInvalidTopic) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidTopic saying %q", tc.cfg, err, tc.want)
		}
	}
}

func TestNotEnoughNodesError(t *testing.T) {
	err := fmt.Errorf("create orders: %w", &commitlog.NotEnoughNodesError{ReplicationFactor: 3, Nodes: 2})
	var ne *commitlog.NotEnoughNodesError
	if !errors.Is(err, commitlog.ErrNotEnoughNodes) || !errors.As(err, &ne) || ne.Nodes != 2 {
		t.Fatalf("%v is not a NotEnoughNodesError with its figures", err)
	}
	if !strings.Contains(err.Error(), "replication factor 3, but the cluster has 2 live nodes") {
		t.Fatalf("message %q", err)
	}
}
