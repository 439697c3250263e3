// Package node_test runs `bazel run //k8s:apply` against a real, throw-away
// single-node Kubernetes cluster on this machine — etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy, containerd
// with runc, CoreDNS — and checks what a user of the manifests relies on: the
// StatefulSet's pods run, form one Raft cluster, serve through the client
// Service, and survive losing the leader's pod. It needs root. See README.md.
package node_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/k8s/internal/k8stest"
)

const (
	namespace = "proglog"
	registry  = "proglog.test/proglog" // .test: never resolvable, so nothing is ever pulled
	overlay   = "overlays/single-node"
	replicas  = 3
	// The client Service's name, as a pod (or this test, through the
	// cluster's DNS) reaches it.
	serviceAddr = "proglog." + namespace + ".svc.cluster.local:8400"
	podSelector = "app.kubernetes.io/name=proglog"
)

func TestNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("//k8s/node:node_test runs a Kubernetes node (containerd, kubelet, kube-proxy): it needs root; run it as root (CI does), or exclude it with --test_tag_filters=-k8s-node")
	}
	// Bazel's test PATH lacks the sbin directories of ip, iptables, containerd
	// (and what kubelet, kube-proxy and the CNI plugins run).
	t.Setenv("PATH", "/usr/local/sbin:/usr/sbin:/sbin:"+os.Getenv("PATH"))
	apply, proglog := k8stest.Runfile(t, "APPLY"), k8stest.Runfile(t, "PROGLOG")
	digest := strings.TrimSpace(readFile(t, k8stest.Runfile(t, "IMAGE_DIGEST")))
	image := registry + "@" + digest
	bin := k8stest.Binaries(t)

	c := startCluster(t, bin, map[string]string{
		pauseImage: k8stest.Runfile(t, "PAUSE_IMAGE"),
		image:      k8stest.Runfile(t, "IMAGE"),
	})
	c.createVolumes(0, replicas)
	certs := c.createSecrets(proglog, replicas)

	start := time.Now()
	r := k8stest.Run(t, apply, "--kubeconfig", c.kubeconfig, "--kubectl", c.kubectl,
		"--namespace", namespace, "--overlay", overlay, "--registry", registry)
	if r.Code != 0 {
		t.Fatalf("//k8s:apply: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("//k8s:apply:\n%s", r.Stdout)
	c.waitReady(replicas, 3*time.Minute)
	t.Logf("%d pods Ready %s after apply", replicas, time.Since(start).Round(100*time.Millisecond))

	// The CLI in a pod, through the client Service.
	out := c.cli(image, "servers")
	leader := checkServers(t, out, replicas)
	t.Logf("proglog servers (in a pod, through Service proglog):\n%s", out)
	offs := strings.Fields(c.cli(image, "produce", "hello", "world"))
	if len(offs) != 2 {
		t.Fatalf("proglog produce printed %q, want two offsets", offs)
	}
	consumed := c.cli(image, "consume", "--from", offs[0])
	if !strings.Contains(consumed, "hello") || !strings.Contains(consumed, "world") {
		t.Fatalf("proglog consume --from %s:\n%s\nwant hello and world", offs[0], consumed)
	}
	t.Logf("CLI: produced at offsets %v, consumed them back", offs)

	// The Go client, from the node, through the cluster's DNS.
	useClusterDNS(t)
	ctx := context.Background()
	cl, err := client.New(ctx, "proglog://"+serviceAddr, client.WithTLSFiles(
		filepath.Join(certs, "ca.pem"), filepath.Join(certs, "root.pem"), filepath.Join(certs, "root-key.pem")))
	if err != nil {
		t.Fatalf("client.New(%s): %v", serviceAddr, err)
	}
	defer cl.Close()
	off, err := cl.ProduceValue(ctx, []byte("from the Go client"))
	if err != nil {
		t.Fatalf("Go client produce: %v", err)
	}
	rec, err := cl.Consume(ctx, off)
	if err != nil || string(rec.Value) != "from the Go client" {
		t.Fatalf("Go client consume %d: %v, %v", off, rec, err)
	}
	t.Logf("Go client: produced and consumed offset %d", off)

	t.Run("DeleteLeaderPod", func(t *testing.T) { testDeleteLeader(t, c, cl, leader) })
	t.Run("RolloutRestart", func(t *testing.T) { testRolloutRestart(t, c, cl) })
	t.Run("PodDisruptionBudget", func(t *testing.T) { testDisruptionBudget(t, c, cl) })
	t.Run("Scale", func(t *testing.T) { testScale(t, c, cl, proglog, certs) })
}

// testDeleteLeader deletes the leader's pod while records are produced
// without pause, and checks that another node leads, the pod comes back
// with its volume and rejoins, and every acknowledged record is read back.
func testDeleteLeader(t *testing.T, c *cluster, cl *client.Client, leader string) {
	pvBefore := c.volumeOf(leader)
	uidBefore := c.podUID(leader)
	p := startProducer(t, cl)

	p.waitAcked(t, 20)
	filesBefore := volumeFiles(t, c.volumeDir(leader))
	start := time.Now()
	c.must("-n", namespace, "delete", "pod", leader, "--wait=false")
	t.Logf("deleted pod %s (the leader)", leader)
	var newLeader string
	k8stest.Eventually(t, 2*time.Minute, "a new leader", func() error {
		servers, err := cl.Servers(context.Background())
		if err != nil {
			return err
		}
		for _, s := range servers {
			if s.IsLeader && s.ID != leader {
				newLeader = s.ID
				return nil
			}
		}
		return fmt.Errorf("servers %v", servers)
	})
	t.Logf("new leader %s %s after the delete", newLeader, time.Since(start).Round(100*time.Millisecond))

	k8stest.Eventually(t, 3*time.Minute, "pod "+leader+" back and Ready", func() error {
		if uid := c.podUID(leader); uid == "" || uid == uidBefore {
			return fmt.Errorf("pod %s not recreated yet", leader)
		}
		return c.readyCount(replicas)
	})
	if pv := c.volumeOf(leader); pv != pvBefore {
		t.Errorf("pod %s came back with volume %s, had %s", leader, pv, pvBefore)
	}
	after := volumeFiles(t, c.volumeDir(leader))
	for _, f := range filesBefore {
		if !slices.Contains(after, f) {
			t.Errorf("pod %s came back without %s of its volume (now: %v)", leader, f, after)
		}
	}
	k8stest.Eventually(t, time.Minute, leader+" a member again", func() error {
		servers, err := cl.Servers(context.Background())
		if err != nil {
			return err
		}
		if len(servers) != replicas || !slices.ContainsFunc(servers, func(s client.Server) bool { return s.ID == leader }) {
			return fmt.Errorf("servers %v", servers)
		}
		return nil
	})
	t.Logf("pod %s back with volume %s and a member again %s after the delete", leader, pvBefore, time.Since(start).Round(100*time.Millisecond))

	// Records produced after it rejoined, then everything acknowledged.
	p.waitAcked(t, p.ackedCount()+20)
	acked, failed, _ := p.stop()
	t.Logf("%d records acknowledged, %d produce calls failed during the delete", len(acked), failed)
	checkAcked(t, cl, acked)
}

// maxRefusedInARow bounds the produce calls in a row that may fail while the
// pods are replaced one by one. A call fails only once the client has
// retried for its whole callTimeout without a leader accepting it, so N
// failed calls in a row mean writes were refused for at least N×callTimeout
// (and at most (N+1)×callTimeout): the bound counts outcomes, with no
// stopwatch that a loaded machine could trip.
const (
	callTimeout       = 5 * time.Second
	maxRefusedInARow  = 2
	rolloutMaxTimeout = 6 * time.Minute
)

// testRolloutRestart restarts every pod with `kubectl rollout restart` while
// records are produced, and checks the pods were replaced one at a time (a
// quorum of Ready pods throughout), writes were never refused for long, and
// every acknowledged record is read back.
func testRolloutRestart(t *testing.T, c *cluster, cl *client.Client) {
	uids := map[string]string{}
	pods, err := c.pods(namespace, podSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		uids[p.Metadata.Name] = p.Metadata.UID
	}
	p := startProducer(t, cl)
	p.waitAcked(t, p.ackedCount()+20)
	start := time.Now()
	c.must("-n", namespace, "rollout", "restart", "statefulset/proglog")
	minReady := replicas
	k8stest.Eventually(t, rolloutMaxTimeout, "the rollout", func() error {
		pods, err := c.pods(namespace, podSelector)
		if err != nil {
			return err
		}
		ready, replaced := 0, 0
		for _, p := range pods {
			if p.ready() {
				ready++
			}
			if p.ready() && uids[p.Metadata.Name] != p.Metadata.UID {
				replaced++
			}
		}
		minReady = min(minReady, ready)
		if replaced != replicas {
			return fmt.Errorf("%d of %d pods replaced and Ready", replaced, replicas)
		}
		return nil
	})
	t.Logf("rollout restart done in %s; at least %d of %d pods Ready throughout (as polled)", time.Since(start).Round(100*time.Millisecond), minReady, replicas)
	if minReady < replicas-1 {
		t.Errorf("only %d pods Ready during the rollout: more than the one disruption the PodDisruptionBudget allows", minReady)
	}
	p.waitAcked(t, p.ackedCount()+20)
	acked, failed, inARow := p.stop()
	t.Logf("%d records acknowledged; %d produce calls failed, at most %d in a row (each waits up to %s for a leader)", len(acked), failed, inARow, callTimeout)
	if inARow > maxRefusedInARow {
		t.Errorf("%d produce calls in a row failed during the rollout: writes were refused for over %s", inARow, time.Duration(inARow)*callTimeout)
	}
	checkAcked(t, cl, acked)
}

// testDisruptionBudget drains the node: the PodDisruptionBudget lets one
// pod be evicted, and refuses the others while it is gone (on a cordoned
// node it cannot come back, so the drain times out with two pods left).
// After uncordoning, the evicted pod returns and the cluster has 3 members.
func testDisruptionBudget(t *testing.T, c *cluster, cl *client.Client) {
	before := map[string]string{}
	pods, err := c.pods(namespace, podSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		before[p.Metadata.Name] = p.Metadata.UID
	}
	t.Cleanup(func() { c.run("uncordon", nodeName) })
	r := c.run("drain", nodeName, "--pod-selector="+podSelector, "--delete-emptydir-data", "--timeout=30s")
	if r.Code == 0 {
		t.Fatalf("the drain evicted every proglog pod: the PodDisruptionBudget did not hold\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stdout+r.Stderr, "disruption budget") {
		t.Errorf("the drain failed, but not on the disruption budget:\n%s\n%s", r.Stdout, r.Stderr)
	}
	kept := 0
	for name, uid := range before {
		if c.podUID(name) == uid {
			kept++
		}
	}
	if kept != replicas-1 {
		t.Errorf("%d of %d pods kept through the drain, want %d (one eviction at a time)", kept, replicas, replicas-1)
	}
	t.Logf("drain under the PodDisruptionBudget: one pod evicted, %d refused", kept)
	c.must("uncordon", nodeName)
	c.waitReady(replicas, 3*time.Minute)
	k8stest.Eventually(t, time.Minute, "3 Raft members", func() error {
		servers, err := cl.Servers(context.Background())
		if err != nil {
			return err
		}
		if len(servers) != replicas {
			return fmt.Errorf("servers %v", servers)
		}
		return nil
	})
}

// testScale scales the StatefulSet to 5 replicas and back to 3, one replica
// at a time down (k8s/README.md), and checks that Raft membership follows:
// the new pods join, and the removed ones leave the configuration when they
// stop.
func testScale(t *testing.T, c *cluster, cl *client.Client, proglog, certs string) {
	// What k8s/README.md says raising replicas needs: a node certificate per
	// new ordinal in Secret proglog-tls, a node/proglog-N.yaml in the
	// ConfigMap proglog-node (here patched in), and a volume per claim.
	c.issueCerts(proglog, certs, 5)
	c.must("-n", namespace, "delete", "secret", "proglog-tls")
	c.createTLSSecret(certs, 5)
	var nodeCM string
	for _, name := range strings.Fields(c.must("-n", namespace, "get", "configmaps", "-o", "name")) {
		if strings.HasPrefix(name, "configmap/proglog-node-") {
			nodeCM = name
		}
	}
	c.must("-n", namespace, "patch", nodeCM, "--type=merge", "-p",
		`{"data":{"proglog-3.yaml":"bootstrap: false\n","proglog-4.yaml":"bootstrap: false\n"}}`)
	c.createVolumes(replicas, 5)

	for _, n := range []int{5, 4, 3} {
		start := time.Now()
		c.must("-n", namespace, "scale", "statefulset/proglog", fmt.Sprintf("--replicas=%d", n))
		c.waitReady(n, 3*time.Minute)
		k8stest.Eventually(t, 2*time.Minute, fmt.Sprintf("%d Raft members", n), func() error {
			servers, err := cl.Servers(context.Background())
			if err != nil {
				return err
			}
			var ids []string
			leaders := 0
			for _, s := range servers {
				ids = append(ids, s.ID)
				if s.IsLeader {
					leaders++
				}
			}
			slices.Sort(ids)
			var want []string
			for i := range n {
				want = append(want, fmt.Sprintf("proglog-%d", i))
			}
			if !slices.Equal(ids, want) || leaders != 1 {
				return fmt.Errorf("members %v with %d leaders, want %v and one leader", ids, leaders, want)
			}
			return nil
		})
		t.Logf("scaled to %d: %d pods Ready, Raft members proglog-0..%d, one leader, in %s", n, n, n-1, time.Since(start).Round(100*time.Millisecond))
	}
	off, err := cl.ProduceValue(context.Background(), []byte("after scaling"))
	if err != nil {
		t.Fatalf("produce after scaling: %v", err)
	}
	if rec, err := cl.Consume(context.Background(), off); err != nil || string(rec.Value) != "after scaling" {
		t.Fatalf("consume %d after scaling: %v, %v", off, rec, err)
	}
}

// producer produces records one at a time until stopped, keeping what was
// acknowledged.
type producer struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	acked  map[uint64]string
	failed int
	// inARow is the current run of failed calls, maxInARow the longest.
	inARow, maxInARow int
	more              chan struct{} // signalled after each acknowledgement
}

func startProducer(t *testing.T, cl *client.Client) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cancel: cancel, done: make(chan struct{}), acked: map[uint64]string{}, more: make(chan struct{}, 1)}
	go func() {
		defer close(p.done)
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Sprintf("record-%d", i)
			callCtx, cancelCall := context.WithTimeout(ctx, callTimeout)
			off, err := cl.ProduceValue(callCtx, []byte(v))
			cancelCall()
			p.mu.Lock()
			if err == nil {
				p.acked[off] = v
				p.inARow = 0
			} else if ctx.Err() == nil {
				p.failed++
				p.inARow++
				p.maxInARow = max(p.maxInARow, p.inARow)
			}
			p.mu.Unlock()
			if err == nil {
				select {
				case p.more <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *producer) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// waitAcked waits until n records are acknowledged.
func (p *producer) waitAcked(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for p.ackedCount() < n {
		select {
		case <-p.more:
		case <-p.done:
			t.Fatalf("the producer stopped at %d records", p.ackedCount())
		case <-timeout:
			t.Fatalf("%d of %d records acknowledged in 2 minutes", p.ackedCount(), n)
		}
	}
}

// stop ends the producer and returns what was acknowledged, how many calls
// failed, and the most that failed in a row.
func (p *producer) stop() (acked map[uint64]string, failed, inARow int) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.failed, p.maxInARow
}

// checkAcked reads back every acknowledged record.
func checkAcked(t *testing.T, cl *client.Client, acked map[uint64]string) {
	t.Helper()
	lost := 0
	for off, want := range acked {
		rec, err := cl.Consume(context.Background(), off)
		if err != nil || string(rec.Value) != want {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged record %d (%q): read %v, %v", off, want, rec, err)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records not read back", lost, len(acked))
	}
	t.Logf("all %d acknowledged records read back", len(acked))
}

// createVolumes creates a local PersistentVolume for the claims of pods
// proglog-from..proglog-(to-1) (data-proglog-N): the node has no storage
// provisioner.
func (c *cluster) createVolumes(from, to int) {
	var b strings.Builder
	for i := from; i < to; i++ {
		dir := c.volumeDir(fmt.Sprintf("proglog-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.t.Fatal(err)
		}
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: PersistentVolume
metadata: {name: proglog-node-test-%[1]d}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: %[2]s, name: data-proglog-%[1]d}
  local: {path: %[3]s}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [%[4]s]}
`, i, namespace, dir, nodeName)
	}
	path := filepath.Join(c.dir, fmt.Sprintf("volumes-%d.yaml", from))
	k8stest.WriteFile(c.t, path, []byte(b.String()))
	c.must("create", "-f", path)
}

// volumeDir is the directory of pod's local PersistentVolume.
func (c *cluster) volumeDir(pod string) string {
	return filepath.Join(c.dir, "volumes", pod)
}

// volumeFiles lists the files under dir (relative paths).
func volumeFiles(t *testing.T, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("volume %s: files %v, %v", dir, out, err)
	}
	return out
}

// createSecrets creates the namespace and the Secrets exactly as
// k8s/README.md says, plus a client certificate for the test's CLI pods, and
// returns the certificates' directory.
func (c *cluster) createSecrets(proglog string, n int) string {
	certs := filepath.Join(c.dir, "proglog-certs")
	c.issueCerts(proglog, certs, n)
	c.must("create", "namespace", namespace)
	c.must("label", "namespace", namespace, "proglog-node-test=true")
	c.createTLSSecret(certs, n)
	key := make([]byte, 32)
	rand.Read(key)
	c.must("-n", namespace, "create", "secret", "generic", "proglog-gossip", "--from-literal=key="+base64.StdEncoding.EncodeToString(key))
	c.must("-n", namespace, "create", "secret", "generic", "proglog-test-client",
		"--from-file="+certs+"/ca.pem", "--from-file="+certs+"/root.pem", "--from-file="+certs+"/root-key.pem")
	return certs
}

// issueCerts runs `proglog certs` as k8s/README.md says, for proglog-0..n-1
// (the CA and the certificates already in dir are kept).
func (c *cluster) issueCerts(proglog, dir string, n int) {
	args := []string{"certs", "--dir", dir}
	for i := range n {
		args = append(args, "--node", fmt.Sprintf("proglog-%d", i))
	}
	args = append(args, "--hosts", fmt.Sprintf("*.proglog-headless.%[1]s.svc.cluster.local,proglog.%[1]s.svc,proglog.%[1]s.svc.cluster.local", namespace))
	if r := k8stest.Run(c.t, proglog, args...); r.Code != 0 {
		c.t.Fatalf("proglog certs: exit %d\n%s", r.Code, r.Stderr)
	}
}

// createTLSSecret creates Secret proglog-tls as k8s/README.md says: ca.pem
// and each pod's own certificate and key.
func (c *cluster) createTLSSecret(certs string, n int) {
	args := []string{"-n", namespace, "create", "secret", "generic", "proglog-tls", "--from-file=ca.pem=" + certs + "/ca.pem"}
	for i := range n {
		args = append(args, fmt.Sprintf("--from-file=%s/proglog-%d.pem", certs, i), fmt.Sprintf("--from-file=%s/proglog-%d-key.pem", certs, i))
	}
	c.must(args...)
}

// readyCount returns nil once exactly n proglog pods exist and all are Ready.
func (c *cluster) readyCount(n int) error {
	pods, err := c.pods(namespace, podSelector)
	if err != nil {
		return err
	}
	var ready []string
	for _, p := range pods {
		if p.ready() {
			ready = append(ready, p.Metadata.Name)
		}
	}
	if len(pods) != n || len(ready) != n {
		return fmt.Errorf("%d pods, Ready: %v", len(pods), ready)
	}
	return nil
}

func (c *cluster) waitReady(n int, timeout time.Duration) {
	c.t.Helper()
	if err := k8stest.Poll(timeout, func() error { return c.readyCount(n) }); err != nil {
		c.t.Fatalf("%d proglog pods Ready: %v\n%s", n, err, c.describe(namespace))
	}
}

func (c *cluster) podUID(name string) string {
	return c.run("-n", namespace, "get", "pod", name, "-o", "jsonpath={.metadata.uid}").Stdout
}

// volumeOf returns the PersistentVolume bound to the pod's data claim.
func (c *cluster) volumeOf(pod string) string {
	return c.must("-n", namespace, "get", "pvc", "data-"+pod, "-o", "jsonpath={.spec.volumeName}")
}

// cli runs `proglog ARGS` in a pod of the image (through the client
// Service, with the test's client certificate) and returns its output.
func (c *cluster) cli(image string, args ...string) string {
	t := c.t
	t.Helper()
	c.cliPods++
	name := fmt.Sprintf("proglog-cli-%d", c.cliPods)
	full := append(append([]string{}, args...), "--addr", serviceAddr,
		"--tls-ca", "/etc/proglog-client/ca.pem", "--tls-cert", "/etc/proglog-client/root.pem",
		"--tls-key", "/etc/proglog-client/root-key.pem")
	quoted := make([]string, len(full))
	for i, a := range full {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	path := filepath.Join(c.dir, name+".yaml")
	k8stest.WriteFile(t, path, fmt.Appendf(nil, `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  containers:
  - name: cli
    image: %s
    imagePullPolicy: Never
    args: [%s]
    volumeMounts: [{name: tls, mountPath: /etc/proglog-client, readOnly: true}]
  volumes: [{name: tls, secret: {secretName: proglog-test-client, defaultMode: 0440}}]
`, name, namespace, image, strings.Join(quoted, ", ")))
	c.must("create", "-f", path)
	var phase string
	k8stest.Eventually(t, 2*time.Minute, "pod "+name+" done", func() error {
		phase = c.run("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}").Stdout
		if phase != "Succeeded" && phase != "Failed" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	logs := c.must("-n", namespace, "logs", name)
	c.run("-n", namespace, "delete", "pod", name, "--wait=false")
	if phase != "Succeeded" {
		t.Fatalf("proglog %s (pod %s) failed:\n%s", strings.Join(args, " "), name, logs)
	}
	return logs
}

// checkServers checks `proglog servers` output: n members, one leader, each
// at its name under the headless Service. It returns the leader.
func checkServers(t *testing.T, out string, n int) string {
	t.Helper()
	var ids, leaders []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] == "ID" { // ID ADDRESS ROLE, then STATE METADATA
			continue
		}
		ids = append(ids, f[0])
		if want := f[0] + ".proglog-headless." + namespace + ".svc.cluster.local:8400"; f[1] != want {
			t.Errorf("server %s at %s, want %s", f[0], f[1], want)
		}
		if f[2] == "leader" {
			leaders = append(leaders, f[0])
		}
	}
	if len(ids) != n || len(leaders) != 1 {
		t.Fatalf("proglog servers: members %v, leaders %v; want %d members, one leader:\n%s", ids, leaders, n, out)
	}
	return leaders[0]
}

// useClusterDNS makes this process resolve names with the cluster's DNS
// server (CoreDNS on the node's IP), as a pod would.
func useClusterDNS(t *testing.T) {
	prev := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(nodeIP, "53"))
	}}
	t.Cleanup(func() { net.DefaultResolver = prev })
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
