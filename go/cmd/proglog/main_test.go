package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// runMainEnv makes the test binary act as the proglog binary, so the smoke
// test runs the real main (signals, exit code) without a separate build.
const runMainEnv = "GO_TEST_PROGLOG_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func runInProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runInProcess(t, "--version")
	if code != 0 || out != "proglog dev\n" {
		t.Fatalf("--version: code %d, output %q", code, out)
	}
}

func TestServeRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"serve", "--data-dir", dir}, nil, "TLS is required"},
		{[]string{"--data-dir", dir}, nil, "TLS is required"}, // bare root serves too
		{[]string{"serve", "--dev", "--tls-cert", "x.pem", "--data-dir", dir}, nil, "exclusive"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--trace-exporter", "jaeger"}, nil, "unknown trace exporter"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--trace-exporter", "file"}, nil, "needs a file"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_MAX_RECORD_BYTES": "-5"}, "--max-record-bytes is -5"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_LOG_LEVEL": "loud"}, "unknown log level"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_MAX_RECORD_BYTES": "lots"}, "PROGLOG_MAX_RECORD_BYTES"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--acl-policy", filepath.Join(dir, "missing.csv")}, nil, "read ACL policy"},
		{[]string{"serve", "extra-arg"}, nil, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errOut := runInProcess(t, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("code %d, stderr %q, want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, out, errOut := runInProcess(t, "certs", "--dir", dir, "--hosts", "log.example,10.9.8.7")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	files := certs.DevFilesIn(dir)
	if !strings.Contains(out, files.ClientCert("root")) || !strings.Contains(out, files.ClientKey("nobody")) {
		t.Fatalf("output does not name the client files:\n%s", out)
	}
	srv, err := certs.ReadCertificate(files.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"log.example", "10.9.8.7", "localhost"} {
		if err := srv.VerifyHostname(h); err != nil {
			t.Errorf("server cert: %v", err)
		}
	}
}

var servingLine = regexp.MustCompile(`serving on (\S+) \(metrics: (http://\S+/metrics)\)`)

// outputWatcher collects a child's stdout (exec copies into it from its
// own goroutine, hence the lock) and reports the serving line once.
type outputWatcher struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	serving chan []string
	sent    bool
}

func (w *outputWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.sent {
		if m := servingLine.FindStringSubmatch(w.buf.String()); m != nil {
			w.sent = true
			w.serving <- m
		}
	}
	return len(p), nil
}

func (w *outputWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// child is a running "proglog serve --dev" process.
type child struct {
	cmd              *exec.Cmd
	addr, metricsURL string
	stdout           *outputWatcher
	exited           chan error
}

// wait waits up to d for the child to exit; ok is false on timeout.
func (c *child) wait(d time.Duration) (err error, ok bool) {
	select {
	case err := <-c.exited:
		c.exited <- err // keep it for the cleanup
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// startBinary runs "proglog serve --dev" as a child process and waits for
// the line with the addresses it serves on.
func startBinary(t *testing.T, dataDir string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve", "--dev", "--data-dir", dataDir, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stdout := &outputWatcher{serving: make(chan []string, 1)}
	cmd.Stdout = stdout
	stderr := &outputWatcher{serving: make(chan []string, 1)}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	select {
	case m := <-stdout.serving:
		return &child{cmd: cmd, addr: m[1], metricsURL: m[2], stdout: stdout, exited: exited}
	case err := <-exited:
		t.Fatalf("server exited before serving (%v); stderr:\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("no serving line; stderr:\n%s", stderr)
	}
	return nil
}

func TestServeDevSmoke(t *testing.T) {
	dataDir := t.TempDir()
	c := startBinary(t, dataDir)
	stdout := c.stdout

	files := certs.DevFilesIn(filepath.Join(dataDir, "certs"))
	if !strings.Contains(stdout.String(), files.ClientCert("root")) {
		t.Errorf("--dev did not print the client certificate paths:\n%s", stdout)
	}
	tlsCfg, err := auth.TLSConfig{CertFile: files.ClientCert("root"), KeyFile: files.ClientKey("root"), CAFile: files.CACert}.Client()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	if _, err := logv1.NewLogClient(conn).Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("persisted")}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(c.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `proglog_rpc_requests_total{code="OK",method="/log.v1.Log/Produce"} 1`) {
		t.Errorf("metrics lack the produce:\n%s", body)
	}

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := c.wait(15 * time.Second); !ok {
		t.Fatal("server did not exit within 15s of SIGTERM")
	} else if err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(stdout.String(), "proglog stopped") {
		t.Errorf("no clean-stop line:\n%s", stdout)
	}

	// A restart reuses the certificates and finds the record on disk.
	caBefore, _ := os.ReadFile(files.CACert)
	c2 := startBinary(t, dataDir)
	caAfter, _ := os.ReadFile(files.CACert)
	if !bytes.Equal(caBefore, caAfter) {
		t.Error("restart regenerated the dev CA")
	}
	conn2, err := grpc.NewClient(c2.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	got, err := logv1.NewLogClient(conn2).Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil || string(got.Record.Value) != "persisted" {
		t.Fatalf("after restart: %v %v", got, err)
	}
	c2.cmd.Process.Signal(syscall.SIGINT)
	if err, ok := c2.wait(15 * time.Second); !ok || err != nil {
		t.Fatalf("exit after SIGINT: exited %v, err %v", ok, err)
	}
}
