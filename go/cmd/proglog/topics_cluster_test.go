package main

// The topic commands against real servers: a "serve --dev" node and a
// three-node cluster of "proglog serve" processes.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/certs"
)

// describeLeaders runs "topics describe --json" until every partition of
// topic has a leader, and returns the partitions.
func describeLeaders(t *testing.T, topic string, conn []string) []partitionJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := mustRun(t, "", append([]string{"topics", "describe", topic, "--json"}, conn...)...)
		var parts []partitionJSON
		led := 0
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			var p partitionJSON
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("topics describe --json line %q: %v", line, err)
			}
			if p.Topic != topic || int(p.Partition) != len(parts) {
				t.Fatalf("topics describe --json: %q", out)
			}
			if p.Leader != "" {
				led++
			}
			parts = append(parts, p)
		}
		if led == len(parts) {
			return parts
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions without a leader after 30s: %q", out)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// topicNames runs "topics list --json" and returns name:partitions.
func topicNames(t *testing.T, conn []string) []string {
	t.Helper()
	out := mustRun(t, "", append([]string{"topics", "list", "--json"}, conn...)...)
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
	return names
}

// checkKeyedTopic produces records of several keys to topic with
// "produce --topic --key" and reads each partition back with "consume
// --topic --partition --from": each key's records in its KeyPartition
// partition, in order.
func checkKeyedTopic(t *testing.T, topic string, partitions int, conn []string) {
	t.Helper()
	want := map[int][]string{}
	for k := range 8 {
		key := fmt.Sprintf("key-%d", k)
		p := client.KeyPartition([]byte(key), partitions)
		vals := []string{key + "/a", key + "/b"}
		out := mustRun(t, "", append([]string{"produce", "--topic", topic, "--key", key, vals[0], vals[1]}, conn...)...)
		n := len(want[p])
		if exp := fmt.Sprintf("%d %d\n%d %d\n", p, n, p, n+1); out != exp {
			t.Fatalf("produce --topic %s --key %s printed %q, want %q", topic, key, out, exp)
		}
		want[p] = append(want[p], vals...)
	}
	for p := range partitions {
		out := mustRun(t, "", append([]string{"consume", "--topic", topic, "--partition", fmt.Sprint(p)}, conn...)...)
		if exp := strings.Join(want[p], "\n"); strings.TrimSuffix(out, "\n") != exp {
			t.Errorf("consume --topic %s --partition %d printed %q, want %q", topic, p, out, exp)
		}
		if len(want[p]) < 2 {
			continue
		}
		out = mustRun(t, "", append([]string{"consume", "--topic", topic, "--partition", fmt.Sprint(p), "--from", "1"}, conn...)...)
		if exp := strings.Join(want[p][1:], "\n") + "\n"; out != exp {
			t.Errorf("consume --topic %s --partition %d --from 1 printed %q, want %q", topic, p, out, exp)
		}
	}
}

func mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	_, errOut, err := proglogCmd(t, "", args...)
	if err == nil || !strings.Contains(errOut, want) {
		t.Errorf("proglog %s: %v, stderr %q; want an error containing %q", strings.Join(args, " "), err, errOut, want)
	}
}

func TestTopicsOnARealServer(t *testing.T) {
	dataDir := t.TempDir()
	srv := startBinary(t, dataDir)
	conn := []string{"--addr", srv.addr, "--dev", dataDir}

	out := mustRun(t, "", append([]string{"topics", "create", "orders", "--partitions", "3"}, conn...)...)
	if !strings.HasPrefix(out, "topic orders: 3 partitions, 1 replica,") {
		t.Errorf("topics create printed %q", out)
	}
	mustFail(t, "topic exists", append([]string{"topics", "create", "orders"}, conn...)...)
	// The kind of error once, then the cause.
	if _, errOut, err := proglogCmd(t, "", append([]string{"topics", "create", "a b"}, conn...)...); err == nil ||
		errOut != "proglog: invalid topic: name \"a b\" has ' '; use letters, digits, '.', '_' and '-'\n" {
		t.Errorf("topics create 'a b': %v, stderr %q", err, errOut)
	}
	if got := strings.Join(topicNames(t, conn), " "); got != "log:1 orders:3" {
		t.Errorf("topics list --json: %s", got)
	}
	for _, p := range describeLeaders(t, "orders", conn) {
		if len(p.Replicas) != 1 || p.Leader != p.Replicas[0] {
			t.Errorf("partition %+v", p)
		}
	}
	checkKeyedTopic(t, "orders", 3, conn)

	mustFail(t, "unknown topic", append([]string{"produce", "--topic", "no-such-topic", "--key", "k", "v"}, conn...)...)
	mustFail(t, "unknown topic", append([]string{"consume", "--topic", "no-such-topic"}, conn...)...)
	mustFail(t, "unknown partition", append([]string{"consume", "--topic", "orders", "--partition", "3"}, conn...)...)
	mustFail(t, "unknown partition", append([]string{"produce", "--topic", "orders", "--partition", "3", "v"}, conn...)...)
	// The default topic, as before topics.
	if out := mustRun(t, "", append([]string{"produce", "z"}, conn...)...); out != "0\n" {
		t.Errorf("produce without --topic printed %q", out)
	}
	if out := mustRun(t, "", append([]string{"consume"}, conn...)...); out != "z\n" {
		t.Errorf("consume without --topic printed %q", out)
	}

	if out := mustRun(t, "", append([]string{"topics", "delete", "orders"}, conn...)...); out != "deleted topic orders\n" {
		t.Errorf("topics delete printed %q", out)
	}
	mustFail(t, "unknown topic", append([]string{"topics", "describe", "orders"}, conn...)...)
	mustFail(t, "unknown topic", append([]string{"topics", "delete", "orders"}, conn...)...)
	mustFail(t, "cannot be deleted", append([]string{"topics", "delete", "log"}, conn...)...)
}

// realCluster starts three "proglog serve" processes and waits until
// they list each other; conn(i) is the client flags reaching node i,
// tls the client's certificate flags.
func realCluster(t *testing.T) (nodes []*child, conn func(i int) []string, tls []string) {
	t.Helper()
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil, "n0", "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i)
		args := []string{"--node-name", name, "--data-dir", filepath.Join(dir, name), "--addr", "127.0.0.1:0", "--serf-addr", "127.0.0.1:0",
			"--tls-ca", files.CACert, "--tls-cert", files.NodeCert(name), "--tls-key", files.NodeKey(name),
			"--gossip-key-file", keyFile, "--metrics-addr=", "--log-level", "warn",
			"--raft-heartbeat-timeout", "300ms", "--raft-election-timeout", "300ms", "--raft-leader-lease-timeout", "150ms"}
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", nodes[0].serfAddr)
		}
		nodes = append(nodes, startServe(t, args...))
	}
	tls = []string{"--tls-ca", files.CACert, "--tls-cert", files.ClientCert("root"), "--tls-key", files.ClientKey("root")}
	conn = func(i int) []string { return append([]string{"--addr", nodes[i].addr}, tls...) }
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(mustRun(t, "", append([]string{"servers"}, conn(0)...)...), "\n") < 4 { // a header and three servers
		if time.Now().After(deadline) {
			t.Fatal("the cluster never listed three servers")
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return nodes, conn, tls
}

// TestTopicsOnARealCluster: three "proglog serve" processes; the topic
// commands given any node's address (CreateTopic and DeleteTopic follow
// NOT_LEADER to the metadata leader).
func TestTopicsOnARealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	nodes, conn, tls := realCluster(t)

	// Created and deleted through each node in turn.
	for i := range nodes {
		name := fmt.Sprintf("admin-%d", i)
		mustRun(t, "", append([]string{"topics", "create", name, "--partitions", "2", "--replicas", "3"}, conn(i)...)...)
		mustRun(t, "", append([]string{"topics", "delete", name}, conn(i)...)...)
	}

	out := mustRun(t, "", append([]string{"topics", "create", "orders", "--partitions", "6", "--replicas", "3"}, conn(1)...)...)
	if !strings.HasPrefix(out, "topic orders: 6 partitions, 3 replicas") {
		t.Errorf("topics create printed %q", out)
	}
	for _, p := range describeLeaders(t, "orders", conn(2)) {
		if len(p.Replicas) != 3 {
			t.Errorf("partition %+v, want 3 replicas", p)
		}
	}
	if got := strings.Join(topicNames(t, conn(0)), " "); got != "log:1 orders:6" {
		t.Errorf("topics list --json: %s", got)
	}
	checkKeyedTopic(t, "orders", 6, append([]string{"--addr", nodes[0].addr + "," + nodes[1].addr + "," + nodes[2].addr}, tls...))
	mustFail(t, "unknown partition", append([]string{"consume", "--topic", "orders", "--partition", "6"}, conn(0)...)...)
	if out := mustRun(t, "", append([]string{"topics", "delete", "orders"}, conn(2)...)...); out != "deleted topic orders\n" {
		t.Errorf("topics delete printed %q", out)
	}
	// Another node's copy of the metadata may show the topic a moment
	// longer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errOut, err := proglogCmd(t, "", append([]string{"topics", "describe", "orders"}, conn(0)...)...)
		if err != nil && strings.Contains(errOut, "unknown topic") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted topic is still described after 30s: %v, %q", err, errOut)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// TestMajorityLossOnARealCluster: with two of three nodes killed, the
// survivor's gossip marks them failed; servers says so, describe shows
// the partition under-replicated, and a produce to the partition fails
// at once naming the unreachable replicas instead of waiting for
// --timeout.
func TestMajorityLossOnARealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	nodes, conn, _ := realCluster(t)
	mustRun(t, "", append([]string{"topics", "create", "critical", "--partitions", "1", "--replicas", "3"}, conn(0)...)...)
	mustRun(t, "", append([]string{"produce", "--topic", "critical", "--partition", "0", "first"}, conn(0)...)...)
	out := mustRun(t, "", append([]string{"servers"}, conn(0)...)...)
	if strings.Count(out, " alive ") != 3 || strings.Count(out, " voter") != 3 {
		t.Errorf("servers of a healthy cluster printed %q", out)
	}
	for _, n := range nodes[1:] {
		if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		out := mustRun(t, "", append([]string{"servers"}, conn(0)...)...)
		if strings.Count(out, " failed ") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers never showed the killed nodes failed: %q", out)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	var errOut string
	var err error
	for {
		_, errOut, err = proglogCmd(t, "", append([]string{"produce", "--topic", "critical", "--partition", "0", "--timeout", "5s", "second"}, conn(0)...)...)
		if err != nil && strings.Contains(errOut, "has no leader:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce without a majority: %v, stderr %q", err, errOut)
		}
	}
	t.Logf("produce without a majority: %s", errOut)
	for _, want := range []string{"partition critical/0 has no leader: 2 of its 3 replicas are unreachable (", "n1 failed", "n2 failed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("produce without a majority: stderr %q, want %q", errOut, want)
		}
	}
	// describe shows no leader (not the one the metadata still records).
	out = mustRun(t, "", append([]string{"topics", "describe", "critical"}, conn(0)...)...)
	if !strings.Contains(out, "1 under-replicated, 1 without a leader") || !strings.Contains(out, "\n0          -       n") || !strings.Contains(out, "  no leader (") {
		t.Errorf("describe without a majority printed %q", out)
	}
	parts := strings.Split(strings.TrimSpace(mustRun(t, "", append([]string{"topics", "describe", "critical", "--json"}, conn(0)...)...)), "\n")
	var p partitionJSON
	if err := json.Unmarshal([]byte(parts[0]), &p); err != nil || len(parts) != 1 || p.Leader != "" || p.LeaderAddr != "" || p.LeaderState == leaderElected || len(p.Replicas) != 3 {
		t.Errorf("describe --json without a majority: %v, %q", err, parts)
	}

	// The metadata group has lost its majority too: a topic's creation
	// says so, naming its unreachable voters.
	_, errOut, err = proglogCmd(t, "", append([]string{"topics", "create", "t9", "--timeout", "5s"}, conn(0)...)...)
	t.Logf("topics create without a majority: %s", errOut)
	for _, want := range []string{"the metadata group has no leader: 2 of its 3 voters are unreachable (", "n1 failed", "n2 failed"} {
		if err == nil || !strings.Contains(errOut, want) {
			t.Errorf("topics create without a majority: %v, stderr %q, want %q", err, errOut, want)
		}
	}
}
