// TestApplyAgainstAPIServer runs //k8s:apply and //k8s:diff against a real
// Kubernetes API server: kube-apiserver and etcd on 127.0.0.1, built from
// the versions pinned in tools/k8s-testenv (the first run builds them, ~5
// min on 2 cores; later runs reuse the cache). There is no kubelet or
// controller manager, so objects are stored and validated but no pod runs.
package apiserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const namespace = "proglog-test"

// runfile returns the path of the runfile named by env (an rlocationpath
// set in BUILD.bazel), or skips outside Bazel.
func runfile(t *testing.T, env string) string {
	t.Helper()
	rel, root := os.Getenv(env), os.Getenv("TEST_SRCDIR")
	if rel == "" || root == "" {
		t.Skipf("%s is not set: run with bazel test //k8s/apiserver:apiserver_test", env)
	}
	return filepath.Join(root, rel)
}

// testenv builds (or finds in its cache) kube-apiserver, kubectl and etcd
// and returns their directory.
func testenv(t *testing.T) string {
	t.Helper()
	script, goBin := runfile(t, "TESTENV_BUILD"), runfile(t, "GO_SDK")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("/bin/bash", script)
	cmd.Env = append(os.Environ(), "GO="+goBin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tools/k8s-testenv/build.sh: %v\n%s", err, stderr.String())
	}
	dir := strings.TrimSpace(stdout.String())
	t.Logf("k8s test environment %s ready in %s\n%s", dir, time.Since(start).Round(time.Second), stderr.String())
	return filepath.Join(dir, "bin")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a server process until the test ends; its output goes to a
// file that is shown when the test fails. The channel closes when it exits.
func start(t *testing.T, dir, name string, args ...string) <-chan struct{} {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Killed with the test process, even if it dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("last output of %s:\n%s", filepath.Base(name), b)
		}
	})
	return done
}

// waitOK polls url until it answers 200, while the server process runs.
func waitOK(t *testing.T, exited <-chan struct{}, client *http.Client, url, token string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("the server for %s exited (%s)", url, last)
		default:
		}
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s not ready in %s: %s", url, timeout, last)
}

// startCluster starts etcd and kube-apiserver and returns a kubeconfig for
// a token user in system:masters.
func startCluster(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()

	etcdClient, etcdPeer := freePort(t), freePort(t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcd := start(t, dir, filepath.Join(bin, "etcd"),
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	waitOK(t, etcd, http.DefaultClient, clientURL+"/health", "", 60*time.Second)

	// Service account token signing key (required flags; nothing here uses it).
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	writeFile(t, filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	writeFile(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tokenBytes := make([]byte, 16)
	rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"))

	port := freePort(t)
	certDir := filepath.Join(dir, "certs")
	apiserver := start(t, dir, filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir="+certDir, // self-signed serving certificate, generated
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC", // the token user is in system:masters
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none", // no "kubernetes" Service endpoints for a loopback address
		"--enable-priority-and-fairness=false",
		"--profiling=false")
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitOK(t, apiserver, insecure, server+"/readyz", token, 120*time.Second)

	// kubectl verifies the server against the certificate it generated.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, server, filepath.Join(certDir, "apiserver.crt"), token)))
	return kubeconfig
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// objects returns kind/name -> resourceVersion of what the manifests create.
func objects(t *testing.T, kubectl, kubeconfig string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, get := range [][]string{
		{"namespace/" + namespace},
		{"configmaps,services,statefulsets,poddisruptionbudgets", "-l", "app.kubernetes.io/part-of=proglog"},
	} {
		args := append([]string{"--kubeconfig", kubeconfig, "--namespace", namespace, "get", "-o", "json"}, get...)
		r := runCmd(t, kubectl, args...)
		if r.code != 0 {
			t.Fatalf("kubectl get: %s", r.stderr)
		}
		type object struct {
			Kind     string
			Metadata struct{ Name, ResourceVersion string }
		}
		var list struct {
			object
			Items []object
		}
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "List" {
			list.Items = []object{list.object}
		}
		for _, it := range list.Items {
			got[it.Kind+"/"+it.Metadata.Name] = it.Metadata.ResourceVersion
		}
	}
	return got
}

func jsonpath(t *testing.T, kubectl, kubeconfig, object, path string) string {
	t.Helper()
	r := runCmd(t, kubectl, "--kubeconfig", kubeconfig, "--namespace", namespace, "get", object, "-o", "jsonpath="+path)
	if r.code != 0 {
		t.Fatalf("kubectl get %s: %s", object, r.stderr)
	}
	return r.stdout
}

func TestApplyAgainstAPIServer(t *testing.T) {
	apply, diff := runfile(t, "APPLY"), runfile(t, "DIFF")
	digest := strings.TrimSpace(readFile(t, runfile(t, "IMAGE_DIGEST")))
	total := time.Now()
	bin := testenv(t)
	kubectl := filepath.Join(bin, "kubectl")
	clusterStart := time.Now()
	kubeconfig := startCluster(t, bin)
	t.Logf("etcd and kube-apiserver ready in %s", time.Since(clusterStart).Round(100*time.Millisecond))

	common := []string{"--kubeconfig", kubeconfig, "--kubectl", kubectl, "--namespace", namespace}

	// 1. Everything is accepted.
	r := runCmd(t, apply, append(common, "--create-namespace")...)
	if r.code != 0 {
		t.Fatalf("first apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("first apply:\n%s", r.stdout)
	first := objects(t, kubectl, kubeconfig)
	var kinds []string
	for k := range first {
		// Generated ConfigMaps' names end in a hash of their content.
		for _, cm := range []string{"ConfigMap/proglog-config-", "ConfigMap/proglog-node-"} {
			if strings.HasPrefix(k, cm) {
				k = strings.TrimSuffix(cm, "-")
			}
		}
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	want := []string{"ConfigMap/proglog-config", "ConfigMap/proglog-node", "Namespace/proglog-test", "PodDisruptionBudget/proglog", "Service/proglog", "Service/proglog-headless", "StatefulSet/proglog"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("objects after apply: %v, want %v", first, want)
	}
	wantImage := "ghcr.io/proglog/proglog@" + digest
	if got := jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{.spec.template.spec.containers[0].image}"); got != wantImage {
		t.Errorf("StatefulSet image %q, want %q (by digest)", got, wantImage)
	}
	if got := jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{.metadata.managedFields[*].manager}"); got != "proglog-apply" {
		t.Errorf("StatefulSet field managers %q, want proglog-apply (server-side apply)", got)
	}

	// Every setting the manifests give proglog names a flag of the image's `proglog serve`.
	checkSettings(t, runfile(t, "PROGLOG"), kubectl, kubeconfig)

	// 2. //k8s:diff sees nothing to change, and a second apply changes nothing.
	r = runCmd(t, diff, common...)
	if r.code != 0 {
		t.Errorf("diff after apply: exit %d, want 0 (no changes)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCmd(t, apply, append(common, "--create-namespace")...)
	if r.code != 0 {
		t.Fatalf("second apply: exit %d\n%s", r.code, r.stderr)
	}
	if second := objects(t, kubectl, kubeconfig); !mapsEqual(first, second) {
		t.Errorf("second apply changed objects (resourceVersions):\nbefore %v\nafter  %v", first, second)
	}

	// 3. A change shows in //k8s:diff; --dry-run=server admits it and stores nothing.
	r = runCmd(t, diff, append(common, "--overlay", "overlays/dev")...)
	if r.code != 1 || !strings.Contains(r.stdout, "replicas") {
		t.Errorf("diff of overlays/dev: exit %d, want 1 with the replicas change\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("//k8s:diff --overlay overlays/dev (exit %d):\n%s", r.code, r.stdout)
	r = runCmd(t, apply, append(common, "--overlay", "overlays/dev", "--dry-run=server")...)
	if r.code != 0 {
		t.Errorf("--dry-run=server of overlays/dev: exit %d\n%s", r.code, r.stderr)
	}
	if after := objects(t, kubectl, kubeconfig); !mapsEqual(first, after) {
		t.Errorf("--dry-run=server changed objects:\nbefore %v\nafter  %v", first, after)
	}

	// 4. A broken manifest is rejected by the API server and changes nothing.
	r = runCmd(t, apply, append(common, "--overlay", "testdata/broken")...)
	if r.code == 0 || !strings.Contains(r.stderr, "spec.replicas") || !strings.Contains(r.stderr, "must be greater than or equal to 0") {
		t.Errorf("broken manifest: exit %d, want a rejection of spec.replicas\n%s", r.code, r.stderr)
	}
	t.Logf("broken manifest rejected (exit %d):\n%s", r.code, r.stderr)
	if got := jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{.spec.replicas}"); got != "3" {
		t.Errorf("replicas after the rejected apply: %s, want 3", got)
	}
	t.Logf("total %s", time.Since(total).Round(100*time.Millisecond))
}

var (
	helpFlag   = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	argFlag    = regexp.MustCompile(`^--([a-z][a-z0-9-]*)(=|$)`)
	configKey  = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	envSetting = "PROGLOG_"
)

// checkSettings compares the PROGLOG_* variables, arguments and --config
// keys of the applied StatefulSet and ConfigMaps with the flags `serve
// --help` of the binary in the image lists: a renamed flag fails here
// instead of being silently ignored in the cluster.
func checkSettings(t *testing.T, proglog, kubectl, kubeconfig string) {
	t.Helper()
	r := runCmd(t, proglog, "serve", "--help")
	if r.code != 0 {
		t.Fatalf("proglog serve --help: exit %d\n%s", r.code, r.stderr)
	}
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(r.stdout, -1) {
		flags[m[1]] = true
	}
	var used []string
	var sts struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string
						Env  []struct{ Name string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{}")), &sts); err != nil {
		t.Fatal(err)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	for _, a := range c.Args[1:] { // after "serve"
		if m := argFlag.FindStringSubmatch(a); m != nil {
			used = append(used, "argument "+a+"|"+m[1])
		} else {
			t.Errorf("argument %q is not a --flag", a)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, envSetting) {
			used = append(used, "variable "+e.Name+"|"+envToFlag(e.Name))
		}
	}
	var cms struct {
		Items []struct {
			Metadata struct{ Name string }
			Data     map[string]string
		}
	}
	r = runCmd(t, kubectl, "--kubeconfig", kubeconfig, "--namespace", namespace, "get", "configmaps",
		"-l", "app.kubernetes.io/part-of=proglog", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &cms); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		for k, v := range cm.Data {
			switch {
			case strings.HasPrefix(k, envSetting):
				used = append(used, "ConfigMap "+cm.Metadata.Name+" "+k+"|"+envToFlag(k))
			case strings.HasSuffix(k, ".yaml"):
				for _, m := range configKey.FindAllStringSubmatch(v, -1) {
					used = append(used, "ConfigMap "+cm.Metadata.Name+" "+k+" key "+m[1]+"|"+m[1])
				}
			}
		}
	}
	if len(used) < 15 {
		t.Errorf("only %d settings found: %v", len(used), used)
	}
	for _, u := range used {
		what, flag, _ := strings.Cut(u, "|")
		if !flags[flag] {
			t.Errorf("%s: proglog serve has no --%s", what, flag)
		}
	}
	t.Logf("%d settings in the manifests checked against proglog serve --help", len(used))
}

func envToFlag(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, envSetting)), "_", "-")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
