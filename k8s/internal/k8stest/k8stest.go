// Package k8stest holds what the tests that run real Kubernetes components share
// (//k8s/apiserver:apiserver_test, //k8s/node:node_test): the binaries of
// tools/k8s-testenv, server processes tied to the test, polling with a deadline,
// running commands, and etcd + kube-apiserver on 127.0.0.1.
package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Runfile returns the path of the runfile named by env (an rlocationpath set
// in BUILD.bazel), or skips outside Bazel.
func Runfile(t testing.TB, env string) string {
	t.Helper()
	rel, root := os.Getenv(env), os.Getenv("TEST_SRCDIR")
	if rel == "" || root == "" {
		t.Skipf("%s is not set: run with bazel test", env)
	}
	return filepath.Join(root, rel)
}

// Binaries builds (or finds in its cache) the binaries of tools/k8s-testenv
// (TESTENV_BUILD, with the Go SDK of GO_SDK) and returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	script, goBin := Runfile(t, "TESTENV_BUILD"), Runfile(t, "GO_SDK")
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

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago, for
// the flags of server processes (which cannot be handed a listener).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a server process started by Start.
type Process struct {
	// Done is closed when the process has exited.
	Done <-chan struct{}
	cmd  *exec.Cmd
	stop func()
}

// Stop ends the process (SIGTERM, again after 10 s, SIGKILL after 20 s) and
// waits for it. It is idempotent; the test's cleanup calls it too.
func (p *Process) Stop() { p.stop() }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Start runs a server process until the test ends (or Stop); its output goes
// to DIR/NAME.log, whose end is shown when the test fails.
func Start(t testing.TB, dir, name string, args ...string) *Process {
	t.Helper()
	return StartAs(t, dir, filepath.Base(name), append([]string{name}, args...))
}

// StartAs is Start of the command argv, its output in DIR/LABEL.log: for a
// server started through another command (nsenter).
func StartAs(t testing.TB, dir, label string, argv []string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, label+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
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
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// kube-apiserver may ignore the first SIGTERM for a while.
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGTERM, syscall.SIGKILL} {
			cmd.Process.Signal(sig)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				continue
			}
			break
		}
		<-done
		logFile.Close()
		if t.Failed() {
			t.Logf("last output of %s:\n%s", label, Tail(logPath, 8000))
		}
	}
	t.Cleanup(stop)
	return &Process{Done: done, cmd: cmd, stop: stop}
}

// Tail returns the last n bytes of a file (for failure messages).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Eventually calls check every interval until it returns nil, and fails the
// test with check's last error if that has not happened within timeout.
// what names the condition in progress and failure messages.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := Poll(timeout, check); err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
}

// Poll calls check until it returns nil or timeout passes, waiting a little
// longer after each failure (100 ms, doubling up to 2 s); it returns check's
// last error, or nil.
func Poll(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// WaitOK polls url until it answers 200, while the server process runs.
func WaitOK(t testing.TB, p *Process, client *http.Client, url, token string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, url, func() error {
		select {
		case <-p.Done:
			return fmt.Errorf("the server exited")
		default:
		}
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body[:n])
		}
		return nil
	})
}

// WriteFile writes b to path (0600) or fails the test.
func WriteFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Result is what a command run by Run did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs a command to its end (at most 2 minutes) and returns its exit code
// and output. A command that could not run at all has Code -1 and the error
// in Stderr (Run never stops the test: teardowns use it too).
func Run(t testing.TB, name string, args ...string) Result {
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
		return Result{-1, stdout.String(), fmt.Sprintf("%s: %v", name, err)}
	}
	return Result{code, stdout.String(), stderr.String()}
}

// ControlPlane is etcd and kube-apiserver started by StartControlPlane.
type ControlPlane struct {
	Etcd, APIServer *Process
	// Server is the API server's URL, Token a bearer token of a user in
	// system:masters, Kubeconfig a kubeconfig file for both (verifying the
	// server's generated certificate).
	Server, Token, Kubeconfig string
}

// StartControlPlane starts etcd and kube-apiserver on 127.0.0.1 with their
// files in dir (extra flags for the API server in apiserverArgs) and waits
// until the API server is ready.
func StartControlPlane(t testing.TB, bin, dir string, apiserverArgs ...string) *ControlPlane {
	t.Helper()
	etcdClient, etcdPeer := FreePort(t), FreePort(t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcd := Start(t, dir, filepath.Join(bin, "etcd"),
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	WaitOK(t, etcd, http.DefaultClient, clientURL+"/health", "", 60*time.Second)

	// The service account token signing key (required flags).
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	WriteFile(t, filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	WriteFile(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tokenBytes := make([]byte, 16)
	rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)
	WriteFile(t, filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"))

	port := FreePort(t)
	certDir := filepath.Join(dir, "certs")
	args := append([]string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + certDir, // self-signed serving certificate, generated
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC", // the token user is in system:masters
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none", // no "kubernetes" Service endpoints for a loopback address
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}, apiserverArgs...)
	apiserver := Start(t, dir, filepath.Join(bin, "kube-apiserver"), args...)
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	WaitOK(t, apiserver, insecure, server+"/readyz", token, 120*time.Second)

	kubeconfig := filepath.Join(dir, "kubeconfig")
	WriteFile(t, kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
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
	return &ControlPlane{Etcd: etcd, APIServer: apiserver, Server: server, Token: token, Kubeconfig: kubeconfig}
}
