package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/clients/go/clienttest"
)

// topicDouble starts the clienttest double of a 3-server cluster with
// topics and returns it with the client flags that reach it.
func topicDouble(t *testing.T) (*clienttest.Cluster, []string) {
	t.Helper()
	dir := t.TempDir()
	tc, err := clienttest.New(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc, []string{"--addr", tc.Addrs()[0], "--dev", dir}
}

func TestTopicsCommands(t *testing.T) {
	tc, conn := topicDouble(t)
	out := mustRun(t, "", append([]string{"topics", "create", "orders", "--partitions", "4", "--replicas", "2", "--retention-age", "1h"}, conn...)...)
	if !strings.HasPrefix(out, "topic orders: 4 partitions, 2 replicas, retention 1h0m0s\n") {
		t.Errorf("topics create printed %q", out)
	}
	if out := mustRun(t, "", append([]string{"topics", "create", "one", "--partitions", "1", "--replicas", "1"}, conn...)...); !strings.HasPrefix(out, "topic one: 1 partition, 1 replica, retention -\n") {
		t.Errorf("topics create of one partition printed %q", out)
	}
	if _, errOut, err := proglogCmd(t, "", append([]string{"topics", "create", "orders"}, conn...)...); err == nil || !strings.Contains(errOut, "topic exists") {
		t.Errorf("creating it again: %v, %q", err, errOut)
	}

	out = mustRun(t, "", append([]string{"topics", "list", "--json"}, conn...)...)
	var names []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var j struct {
			Name       string `json:"name"`
			Partitions int    `json:"partitions"`
		}
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("topics list --json line %q: %v", line, err)
		}
		names = append(names, fmt.Sprintf("%s:%d", j.Name, j.Partitions))
	}
	if !slices.Equal(names, []string{"log:1", "one:1", "orders:4"}) {
		t.Errorf("topics list --json: %q", names)
	}

	// describe --json: one object per partition, with partition, leader
	// and replicas (node IDs).
	out = mustRun(t, "", append([]string{"topics", "describe", "orders", "--json"}, conn...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("topics describe --json printed %d lines: %q", len(lines), out)
	}
	for i, line := range lines {
		var j map[string]any
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatal(err)
		}
		replicas, _ := j["replicas"].([]any)
		wantLeader := fmt.Sprintf("s%d", i%3) // the double: partition p led by server p mod 3
		if j["partition"] != float64(i) || j["leader"] != wantLeader || len(replicas) != 2 || replicas[0] != wantLeader ||
			j["leader_addr"] != tc.Addrs()[i%3] || j["topic"] != "orders" {
			t.Errorf("partition %d as JSON: %s", i, line)
		}
	}
	out = mustRun(t, "", append([]string{"topics", "describe", "orders"}, conn...)...)
	if !strings.Contains(out, "PARTITION  LEADER  REPLICAS\n0          s0      s0,s1\n") {
		t.Errorf("topics describe printed %q", out)
	}

	if out := mustRun(t, "", append([]string{"topics", "delete", "orders"}, conn...)...); out != "deleted topic orders\n" {
		t.Errorf("topics delete printed %q", out)
	}
	if _, errOut, err := proglogCmd(t, "", append([]string{"topics", "describe", "orders"}, conn...)...); err == nil || !strings.Contains(errOut, "unknown topic") {
		t.Errorf("describe of a deleted topic: %v, %q", err, errOut)
	}
}

func TestProduceConsumeTopic(t *testing.T) {
	tc, conn := topicDouble(t)
	tc.CreateTopic("orders", 3, 2)
	p := client.KeyPartition([]byte("k"), 3)

	out := mustRun(t, "", append([]string{"produce", "--topic", "orders", "--key", "k", "a", "b", "c"}, conn...)...)
	if want := fmt.Sprintf("%d 0\n%d 1\n%d 2\n", p, p, p); out != want {
		t.Errorf("produce --topic --key printed %q, want %q", out, want)
	}
	other := (p + 1) % 3
	out = mustRun(t, "x\ny\n", append([]string{"produce", "--topic", "orders", "--partition", fmt.Sprint(other), "--batch", "2", "--json"}, conn...)...)
	if want := fmt.Sprintf("{\"partition\":%d,\"offset\":0}\n{\"partition\":%d,\"offset\":1}\n", other, other); out != want {
		t.Errorf("produce --partition %d --json printed %q, want %q", other, out, want)
	}
	if got := tc.Records("orders", uint32(other)); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("partition %d holds %q", other, got)
	}
	if got := tc.Records("orders", uint32(p)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("partition %d holds %q", p, got)
	}

	out = mustRun(t, "", append([]string{"consume", "--topic", "orders", "--partition", fmt.Sprint(p), "--from", "1"}, conn...)...)
	if out != "b\nc\n" {
		t.Errorf("consume --topic --partition --from 1 printed %q", out)
	}
	// Past the end: an error giving the bounds, not an empty success; at
	// the end: nothing to print.
	_, errOut, err := proglogCmd(t, "", append([]string{"consume", "--topic", "orders", "--partition", fmt.Sprint(p), "--from", "5"}, conn...)...)
	if want := fmt.Sprintf("proglog: --from 5 is past the end of orders/%d: it holds offsets 0 to 2, and the next record produced gets offset 3 (add --follow to wait for offset 5)\n", p); err == nil || errOut != want {
		t.Errorf("consume --from 5 of 3 records: %v, stderr %q, want %q", err, errOut, want)
	}
	empty := 3 - p - other // the partition nothing was produced to
	_, errOut, err = proglogCmd(t, "", append([]string{"consume", "--topic", "orders", "--partition", fmt.Sprint(empty), "--from", "1"}, conn...)...)
	if err == nil || !strings.Contains(errOut, fmt.Sprintf("orders/%d: it holds no records, and the next record produced gets offset 0", empty)) {
		t.Errorf("consume --from 1 of an empty partition: %v, stderr %q", err, errOut)
	}
	if out := mustRun(t, "", append([]string{"consume", "--topic", "orders", "--partition", fmt.Sprint(p), "--from", "3"}, conn...)...); out != "" {
		t.Errorf("consume --from the next offset printed %q", out)
	}
	if out := mustRun(t, "", append([]string{"bounds", "--topic", "orders", "--partition", fmt.Sprint(p), "--json"}, conn...)...); out != "{\"lowest\":0,\"next\":3}\n" {
		t.Errorf("bounds --topic --partition printed %q", out)
	}
	// Without --topic: the default topic, as before topics.
	if out := mustRun(t, "", append([]string{"produce", "z"}, conn...)...); out != "0\n" {
		t.Errorf("produce without --topic printed %q", out)
	}
	if got := tc.Records("log", 0); !slices.Equal(got, []string{"z"}) {
		t.Errorf("the default topic holds %q", got)
	}
}

func TestTopicFlagsParsed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topics", "create"}, "accepts 1 arg(s), received 0"},
		{[]string{"topics", "create", "a", "b"}, "accepts 1 arg(s), received 2"},
		{[]string{"topics", "create", "a", "--partitions", "x"}, "invalid argument \"x\" for \"--partitions\""},
		{[]string{"topics", "describe"}, "accepts 1 arg(s), received 0"},
		{[]string{"topics", "list", "extra"}, "unknown command \"extra\""},
		{[]string{"produce", "--topic", "t", "--partition", "-2", "v"}, "--partition is -2"},
		{[]string{"consume", "--partition", "-1"}, "invalid argument \"-1\" for \"--partition\""},
	} {
		_, errOut, err := proglogCmd(t, "", tc.args...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("proglog %s: %v, stderr %q; want an error containing %q", strings.Join(tc.args, " "), err, errOut, tc.want)
		}
	}
}
