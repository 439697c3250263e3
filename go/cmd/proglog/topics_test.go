package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/clients/go/clienttest"
	logv1 "github.com/proglog/proglog/proto/log/v1"
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
	if !strings.Contains(out, "PARTITION  LEADER  REPLICAS  IN-SYNC  STATUS\n0          s0      s0,s1     s0,s1    ok\n") {
		t.Errorf("topics describe printed %q", out)
	}

	// A failed server and a replica catching up: fewer in sync than
	// replicas, said per partition and in the header. The leader the
	// metadata still records is not shown when its server failed (1) or
	// fewer replicas than a majority are in sync (0, 3): no leader can
	// commit there.
	tc.SetServerState(1, logv1.ServerState_SERVER_STATE_FAILED)
	tc.SetReplicas("orders", 2, []int{2, 0, 1}, 1)
	out = mustRun(t, "", append([]string{"topics", "describe", "orders"}, conn...)...)
	want := "topic orders: 4 partitions, 2 replicas, retention 1h0m0s, 4 under-replicated, 3 without a leader\n" +
		"PARTITION  LEADER  REPLICAS  IN-SYNC  STATUS\n" +
		"0          -       s0,s1     s0       no leader (1 of 2 replicas in sync)\n" +
		"1          -       s1,s2     s2       no leader (s1 failed)\n" +
		"2          s2      s2,s0,s1  s2,s0    under-replicated\n" +
		"3          -       s0,s1     s0       no leader (1 of 2 replicas in sync)\n"
	if out != want {
		t.Errorf("topics describe with s1 failed printed\n%s\nwant\n%s", out, want)
	}
	out = mustRun(t, "", append([]string{"topics", "describe", "orders", "--json"}, conn...)...)
	var p2 struct {
		Partition       uint32   `json:"partition"`
		Replicas        []string `json:"replicas"`
		ReplicaStates   []string `json:"replica_states"`
		InSync          []string `json:"in_sync"`
		UnderReplicated bool     `json:"under_replicated"`
	}
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[2]), &p2); err != nil {
		t.Fatal(err)
	}
	if p2.Partition != 2 || !slices.Equal(p2.Replicas, []string{"s2", "s0", "s1"}) || !slices.Equal(p2.ReplicaStates, []string{"alive", "alive", "failed"}) ||
		!slices.Equal(p2.InSync, []string{"s2", "s0"}) || !p2.UnderReplicated {
		t.Errorf("partition 2 as JSON: %s", out)
	}
	for i, want := range []map[string]any{
		{"partition": 0.0, "leader": "", "leader_addr": "", "leader_state": "no_majority", "stale_leader": "s0"},
		{"partition": 1.0, "leader": "", "leader_addr": "", "leader_state": "leader_failed", "stale_leader": "s1"},
		{"partition": 2.0, "leader": "s2", "leader_addr": tc.Addrs()[2], "leader_state": "elected", "stale_leader": nil},
	} {
		var j map[string]any
		if err := json.Unmarshal([]byte(strings.Split(out, "\n")[i]), &j); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if j[k] != v {
				t.Errorf("partition %d as JSON: %s is %v, want %v (%s)", i, k, j[k], v, strings.Split(out, "\n")[i])
			}
		}
		if _, ok := j["replicas"]; !ok {
			t.Errorf("partition %d as JSON has no replicas: %v", i, j)
		}
	}
	tc.SetServerState(1, logv1.ServerState_SERVER_STATE_ALIVE)
	tc.SetReplicas("orders", 2, []int{2, 0})
	if out := mustRun(t, "", append([]string{"topics", "describe", "orders"}, conn...)...); strings.Contains(out, "under-replicated") {
		t.Errorf("topics describe with every replica in sync printed %q", out)
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

// servers adds each server's liveness and metadata role as columns at the
// end (and JSON fields); a produce to a partition that cannot elect a
// leader fails at once saying why; --timeout bounds a call that waits for
// an election.
func TestServersStatesAndNoLeader(t *testing.T) {
	tc, conn := topicDouble(t)
	tc.CreateTopic("orders", 1, 3)
	tc.SetServerState(1, logv1.ServerState_SERVER_STATE_FAILED)
	tc.SetServerState(2, logv1.ServerState_SERVER_STATE_LEAVING)

	out := mustRun(t, "", append([]string{"servers"}, conn...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	fields := func(i int) string { return strings.Join(strings.Fields(lines[i]), " ") }
	if len(lines) != 4 || fields(0) != "ID ADDRESS ROLE STATE METADATA" ||
		fields(1) != "s0 "+tc.Addrs()[0]+" leader alive voter" || fields(2) != "s1 "+tc.Addrs()[1]+" follower failed voter" ||
		fields(3) != "s2 "+tc.Addrs()[2]+" follower leaving voter" {
		t.Errorf("servers printed %q", out)
	}
	out = mustRun(t, "", append([]string{"servers", "--json"}, conn...)...)
	var s1 map[string]any
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[1]), &s1); err != nil {
		t.Fatal(err)
	}
	if s1["id"] != "s1" || s1["rpc_addr"] != tc.Addrs()[1] || s1["is_leader"] != false || s1["state"] != "failed" || s1["metadata_role"] != "voter" {
		t.Errorf("servers --json line %v", s1)
	}

	// Retried until --timeout (the answering server may be the one cut
	// off), then the error names the cause.
	tc.SetNoLeader("orders", 0)
	_, errOut, err := proglogCmd(t, "", append([]string{"produce", "--topic", "orders", "--partition", "0", "--timeout", "200ms", "v"}, conn...)...)
	if want := "partition orders/0 has no leader: 2 of its 3 replicas are unreachable\n"; err == nil || !strings.HasSuffix(errOut, want) {
		t.Errorf("produce without a quorum: %v, stderr %q, want it to end %q", err, errOut, want)
	}

	// One unreachable: an election, retried until --timeout.
	tc.SetServerState(2, logv1.ServerState_SERVER_STATE_ALIVE)
	_, errOut, err = proglogCmd(t, "", append([]string{"produce", "--topic", "orders", "--partition", "0", "--timeout", "200ms", "v"}, conn...)...)
	if err == nil || !strings.HasPrefix(errOut, "proglog: context deadline exceeded: partition orders/0 has no leader") {
		t.Errorf("produce during an election with --timeout 200ms: %v, stderr %q", err, errOut)
	}
	if _, errOut, err := proglogCmd(t, "", append([]string{"servers", "--timeout", "0s"}, conn...)...); err == nil || !strings.Contains(errOut, "--timeout is 0s, must be positive") {
		t.Errorf("--timeout 0s: %v, stderr %q", err, errOut)
	}
}
