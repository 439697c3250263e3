package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
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

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/proglog/proglog/go/agent"
	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/certs"
	"github.com/proglog/proglog/go/internal/testutil"
	"github.com/proglog/proglog/go/replication"
	"github.com/proglog/proglog/go/seglog"
	"github.com/proglog/proglog/go/server"
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
		{[]string{"serve", "--dev", "--data-dir", dir, "--max-streams", "-1"}, nil, "--max-streams (-1) must be 0 (no cap) or positive"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_LOG_LEVEL": "loud"}, "unknown log level"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_MAX_RECORD_BYTES": "lots"}, "PROGLOG_MAX_RECORD_BYTES"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--acl-policy", filepath.Join(dir, "missing.csv")}, nil, "read ACL policy"},
		{[]string{"serve", "extra-arg"}, nil, "unknown command"},
		{[]string{"serve", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "--data-dir", dir}, nil, "a gossip key is required"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--gossip-key", "a2V5", "--gossip-key-file", "k"}, nil, "exclusive"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--gossip-key", "c2hvcnQ="}, nil, "gossip key is 5 bytes"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--gossip-key-file", filepath.Join(dir, "missing.key")}, nil, "read gossip key"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--read-consistency", "eventual"}, nil, "--read-consistency"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--id", "a", "--node-name", "b"}, nil, "disagree"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--sync", "sometimes"}, nil, "--sync \"sometimes\""},
		{[]string{"serve", "--dev", "--data-dir", dir, "--sync", "interval", "--sync-interval", "0s"}, nil, "--sync-interval is 0s"},
		{[]string{"serve", "--dev", "--data-dir", dir, "--join", "nohost"}, nil, "StartJoinAddrs"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_HEALTH_ADDR": "8403"}, `HealthAddr "8403"`},
		{[]string{"serve", "--dev", "--data-dir", dir, "--config", filepath.Join(dir, "missing.yaml")}, nil, "config file"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_CONFIG": writeFile(t, dir, "bad.yaml", "dev: true\nport: 5\n")}, "bad.yaml:2: port: unknown setting"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_CONFIG": writeFile(t, dir, "nested.yaml", "join:\n  a: b\n")}, "want a value or a list"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_CONFIG": writeFile(t, dir, "type.yaml", "voter: maybe\n")}, "voter: invalid argument"},
		{[]string{"serve", "--dev", "--data-dir", dir}, map[string]string{"PROGLOG_CONFIG": writeFile(t, dir, "list.yaml", "- a\n")}, "want a mapping"},
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

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeSettingsPrecedence: flags > PROGLOG_* > --config file >
// defaults, and what --dev and --join imply.
func TestServeSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "proglog.yaml", `# settings
data-dir: /from/file
addr: 127.0.0.9:7000
log-level: debug
join: [10.0.0.1:8402, "10.0.0.2:8402"]
raft-heartbeat-timeout: 2s
voter: false
`)
	t.Setenv("PROGLOG_CONFIG", conf)
	t.Setenv("PROGLOG_LOG_LEVEL", "warn")
	t.Setenv("PROGLOG_ADDR", "127.0.0.8:7000")
	o := defaultServeOptions()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse([]string{"--addr", "127.0.0.7:7000"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if err := o.applyConfigFile(); err != nil {
		t.Fatal(err)
	}
	switch {
	case o.addr != "127.0.0.7:7000":
		t.Errorf("addr %q: the flag must win", o.addr)
	case o.logLevel != "warn":
		t.Errorf("log-level %q: the environment must beat the file", o.logLevel)
	case o.dataDir != "/from/file" || o.voter || o.raftHeartbeat != 2*time.Second:
		t.Errorf("file settings not applied: %+v", o)
	case strings.Join(o.join, " ") != "10.0.0.1:8402 10.0.0.2:8402":
		t.Errorf("join %q", o.join)
	case o.shutdownTimeout != server.DefaultShutdownTimeout:
		t.Errorf("default lost: %v", o.shutdownTimeout)
	}
	if got := o.serfBindAddr(); got != "127.0.0.7:8402" {
		t.Errorf("default serf address %q, want the --addr host with port 8402", got)
	}
	o.addr = "127.0.0.1:0"
	if got := o.serfBindAddr(); got != "127.0.0.1:0" {
		t.Errorf("default serf address for port 0: %q", got)
	}

	// Bootstrap: explicit wins; otherwise only --dev without --join.
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--dev"}, true},
		{[]string{"--dev", "--join", "127.0.0.1:9"}, false},
		{[]string{"--dev", "--bootstrap=false"}, false},
		{[]string{"--gossip-key", "x"}, false},
		{[]string{"--gossip-key", "x", "--bootstrap"}, true},
		{[]string{"--dev", "--join", "127.0.0.1:9", "--bootstrap"}, true},
	} {
		o := defaultServeOptions()
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.addFlags(fs)
		if err := fs.Parse(append(tc.args, "--data-dir", t.TempDir())); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.agentConfig(io.Discard, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Bootstrap != tc.want {
			t.Errorf("%v: bootstrap %v, want %v", tc.args, cfg.Bootstrap, tc.want)
		}
	}

	// --sync and --sync-interval reach the agent; the default is durable.
	for _, tc := range []struct {
		args     []string
		want     seglog.SyncPolicy
		interval time.Duration
	}{
		{nil, seglog.SyncAlways, seglog.DefaultSyncInterval},
		{[]string{"--sync", "interval", "--sync-interval", "2m"}, seglog.SyncInterval, 2 * time.Minute},
		{[]string{"--sync", "never"}, seglog.SyncNever, seglog.DefaultSyncInterval},
	} {
		o := defaultServeOptions()
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.addFlags(fs)
		if err := fs.Parse(append(tc.args, "--dev", "--data-dir", t.TempDir())); err != nil {
			t.Fatal(err)
		}
		if err := o.validate(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		cfg, err := o.agentConfig(io.Discard, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Sync != tc.want || cfg.SyncInterval != tc.interval {
			t.Errorf("%v: Sync %v every %v, want %v every %v", tc.args, cfg.Sync, cfg.SyncInterval, tc.want, tc.interval)
		}
	}

	// Retention, segment size and the Raft log's byte thresholds reach
	// the agent; by default everything is kept.
	for _, tc := range []struct {
		args            []string
		retention       seglog.Retention
		segment, th, tr uint64
	}{
		{nil, seglog.Retention{}, seglog.DefaultMaxStoreBytes, replication.DefaultSnapshotThresholdBytes, replication.DefaultTrailingBytes},
		{[]string{"--retention-bytes", "1000000000", "--retention-age", "168h", "--segment-bytes", "8388608",
			"--raft-snapshot-threshold-bytes", "99000000", "--raft-trailing-bytes", "7000000"},
			seglog.Retention{MaxBytes: 1e9, MaxAge: 168 * time.Hour}, 8 << 20, 99e6, 7e6},
	} {
		o := defaultServeOptions()
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.addFlags(fs)
		if err := fs.Parse(append(tc.args, "--dev", "--data-dir", t.TempDir())); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.agentConfig(io.Discard, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Retention != tc.retention || cfg.SegmentBytes != tc.segment ||
			cfg.Raft.SnapshotThresholdBytes != tc.th || cfg.Raft.TrailingBytes != tc.tr {
			t.Errorf("%v: retention %+v, segment %d, raft %+v", tc.args, cfg.Retention, cfg.SegmentBytes, cfg.Raft)
		}
	}

	// The metadata group's settings reach the agent, with its defaults.
	for _, tc := range []struct {
		args          []string
		voters, rf    int
		replaceAfter  time.Duration
		preferredWait time.Duration
	}{
		{nil, 3, 3, 10 * time.Minute, 10 * time.Second},
		{[]string{"--controller-voters", "5", "--replica-replacement-delay", "30m", "--default-replication-factor", "1", "--preferred-leader-delay", "0"}, 5, 1, 30 * time.Minute, 0},
	} {
		o := defaultServeOptions()
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.addFlags(fs)
		if err := fs.Parse(append(tc.args, "--dev", "--data-dir", t.TempDir())); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.agentConfig(io.Discard, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ControllerVoters != tc.voters || cfg.DefaultReplicationFactor != tc.rf || cfg.ReplicaReplacementDelay != tc.replaceAfter ||
			cfg.PreferredLeaderDelay != tc.preferredWait {
			t.Errorf("%v: controller voters %d, default replication factor %d, replacement delay %v, preferred leader delay %v", tc.args,
				cfg.ControllerVoters, cfg.DefaultReplicationFactor, cfg.ReplicaReplacementDelay, cfg.PreferredLeaderDelay)
		}
	}
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, out, errOut := runInProcess(t, "certs", "--dir", dir, "--hosts", "log.example,10.9.8.7", "--node", "n1", "--node", "n2,n3")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	files := certs.DevFilesIn(dir)
	if !strings.Contains(out, files.ClientCert("root")) || !strings.Contains(out, files.ClientKey("nobody")) {
		t.Fatalf("output does not name the client files:\n%s", out)
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, files.NodeCert(name)) {
			t.Errorf("output does not name %s's certificate:\n%s", name, out)
		}
		c, err := certs.ReadCertificate(files.NodeCert(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := nodeid.Verify(c, name, "log.example"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if code, _, errOut := runInProcess(t, "certs", "--dir", dir, "--node", "root"); code == 0 || !strings.Contains(errOut, "reserved") {
		t.Errorf("certs --node root: code %d, %s", code, errOut)
	}
	if code, _, errOut := runInProcess(t, "certs", "--dir", dir, "--client", "n1"); code == 0 || !strings.Contains(errOut, "reserved") {
		t.Errorf("certs --client n1 (a node's): code %d, %s", code, errOut)
	}
	if code, _, errOut := runInProcess(t, "certs", "--dir", dir, "--node", "n4", "--client", "n4"); code == 0 || !strings.Contains(errOut, "both a --node and a --client") {
		t.Errorf("certs --node n4 --client n4: code %d, %s", code, errOut)
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

// servingLine matches what serve prints once the node knows a leader: the
// API address, the metrics URL (or "off"), the gossip address (and the
// leader, of the default topic or of the metadata: see leaderText).
var servingLine = regexp.MustCompile(`serving on (\S+) \(metrics: (\S+)\)\nnode \S+, gossip on (\S+), leader \S+[^\n]*\n`)

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

// child is a running "proglog serve" process.
type child struct {
	cmd              *exec.Cmd
	addr, metricsURL string
	serfAddr         string
	stdout, stderr   *outputWatcher
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
// the lines with the addresses it serves on.
func startBinary(t *testing.T, dataDir string) *child {
	t.Helper()
	return startServe(t, "--dev", "--data-dir", dataDir, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn")
}

// startServe runs "proglog serve args..." as a child process and waits
// until it serves (it knows a leader).
func startServe(t *testing.T, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"serve"}, args...)...)
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
		err := <-exited
		exited <- err
	})
	select {
	case m := <-stdout.serving:
		return &child{cmd: cmd, addr: m[1], metricsURL: m[2], serfAddr: m[3], stdout: stdout, stderr: stderr, exited: exited}
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("server exited before serving (%v); stderr:\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("no serving line; stderr:\n%s", stderr)
	}
	return nil
}

func TestServeDevSmoke(t *testing.T) {
	dataDir := t.TempDir()
	// Port 0 everywhere; the health port is read back from the log.
	c := startServe(t, "--dev", "--data-dir", dataDir, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--health-addr", "127.0.0.1:0", "--log-level", "info")
	stdout := c.stdout
	healthAddr := logField(t, c.stderr.String(), "started; waiting for a leader", "health_addr")

	files := certs.DevFilesIn(filepath.Join(dataDir, "certs"))
	if !strings.Contains(stdout.String(), files.ClientCert("root")) {
		t.Errorf("--dev did not print the client certificate paths:\n%s", stdout)
	}
	conn := rootConn(t, files, c.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Serving means ready: a one-node cluster with itself as leader.
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	// --health-addr: the same, without TLS, and nothing else.
	plain, err := grpc.NewClient(healthAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, svc := range []string{"", server.LivenessService} {
		h, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("plaintext health %q on --health-addr: %v %v", svc, h, err)
		}
	}
	if _, err := logv1.NewLogClient(plain).Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Consume on --health-addr: %v, want Unimplemented", err)
	}
	lc := logv1.NewLogClient(conn)
	if resp, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("persisted")}}); err != nil || resp.Offset != 0 {
		t.Fatalf("produce: %v, %v", resp, err)
	}
	for _, c := range []logv1.Consistency{logv1.Consistency_CONSISTENCY_LINEARIZABLE, logv1.Consistency_CONSISTENCY_FOLLOWER} {
		got, err := lc.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Consistency: c})
		if err != nil || string(got.Record.Value) != "persisted" {
			t.Fatalf("consume %v: %v, %v", c, got, err)
		}
	}
	servers, err := lc.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil || len(servers.Servers) != 1 || !servers.Servers[0].IsLeader || servers.Servers[0].RpcAddr != c.addr {
		t.Fatalf("GetServers: %v, %v", servers, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "gossip.key")); err != nil {
		t.Errorf("--dev did not store a gossip key: %v", err)
	}
	// The metadata group and the default topic's partition (go/broker's
	// layout).
	for _, sub := range []string{"meta", filepath.Join("topics", "log")} {
		if _, err := os.Stat(filepath.Join(dataDir, sub)); err != nil {
			t.Errorf("no %s directory: %v", sub, err)
		}
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

	// A restart reuses the certificates and the gossip key and finds the
	// record on disk.
	caBefore, _ := os.ReadFile(files.CACert)
	keyBefore, _ := os.ReadFile(filepath.Join(dataDir, "gossip.key"))
	c2 := startBinary(t, dataDir)
	caAfter, _ := os.ReadFile(files.CACert)
	keyAfter, _ := os.ReadFile(filepath.Join(dataDir, "gossip.key"))
	if !bytes.Equal(caBefore, caAfter) || !bytes.Equal(keyBefore, keyAfter) {
		t.Error("restart regenerated the dev CA or gossip key")
	}
	conn2 := rootConn(t, files, c2.addr)
	got, err := logv1.NewLogClient(conn2).Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil || string(got.Record.Value) != "persisted" {
		t.Fatalf("after restart: %v %v", got, err)
	}
	c2.cmd.Process.Signal(syscall.SIGINT)
	if err, ok := c2.wait(15 * time.Second); !ok || err != nil {
		t.Fatalf("exit after SIGINT: exited %v, err %v", ok, err)
	}
}

// A node started with the shared server.pem of older setups (or another
// node's certificate) refuses to start and names the fix.
func TestServeRefusesCertificateNotNamingTheNode(t *testing.T) {
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), nil, "n2")
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{files.ServerCert, files.ServerKey}, {files.NodeCert("n2"), files.NodeKey("n2")}} {
		code, _, errOut := runInProcess(t, "serve", "--node-name", "n1", "--data-dir", filepath.Join(dir, "n1"),
			"--addr", "127.0.0.1:0", "--serf-addr", "127.0.0.1:0", "--metrics-addr=", "--bootstrap",
			"--tls-cert", pair[0], "--tls-key", pair[1], "--tls-ca", files.CACert, "--gossip-key", key)
		if code == 0 || !strings.Contains(errOut, "proglog certs --node n1") {
			t.Errorf("serve with %s: code %d, stderr %s", pair[0], code, errOut)
		}
	}
}

// rootConn is a connection to addr as the dev client "root" of files,
// closed when the test ends.
func rootConn(t *testing.T, files certs.DevFiles, addr string) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := auth.TLSConfig{CertFile: files.ClientCert("root"), KeyFile: files.ClientKey("root"), CAFile: files.CACert}.Client()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// logField returns field of the first JSON log line with message msg.
func logField(t *testing.T, logs, msg, field string) string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil || entry["msg"] != msg {
			continue
		}
		if v, ok := entry[field].(string); ok && v != "" {
			return v
		}
		t.Fatalf("log line %q has no %s", line, field)
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return ""
}

// The serving banner names the mode: only a --dev node calls itself a
// development server, whatever the build's version string.
func TestServeBannerNamesTheMode(t *testing.T) {
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), []string{"127.0.0.1"}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	c := startServe(t, "--node-name", "n1", "--bootstrap", "--data-dir", filepath.Join(dir, "n1"),
		"--addr", "127.0.0.1:0", "--serf-addr", "127.0.0.1:0", "--metrics-addr=", "--log-level", "warn",
		"--tls-cert", files.NodeCert("n1"), "--tls-key", files.NodeKey("n1"), "--tls-ca", files.CACert, "--gossip-key", key)
	if out := c.stdout.String(); !strings.HasPrefix(out, "proglog serving on ") || strings.Contains(out, "dev") {
		t.Errorf("non-dev banner:\n%s", out)
	}
	d := startBinary(t, filepath.Join(dir, "dev"))
	if out := d.stdout.String(); !strings.Contains(out, "proglog development server (--dev) serving on ") {
		t.Errorf("dev banner:\n%s", out)
	}
}

// A node holding no replica of the default topic names the metadata
// group's leader in its banner, saying so (it printed an empty leader):
// with --default-replication-factor 1 the default topic stays on the
// bootstrap node, and a second node joins without a replica of it.
func TestServeBannerOnANodeWithoutTheDefaultTopic(t *testing.T) {
	dir := t.TempDir()
	files, err := certs.EnsureDev(filepath.Join(dir, "certs"), []string{"127.0.0.1"}, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	key, err := agent.GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	node := func(name string, extra ...string) *child {
		args := []string{"--node-name", name, "--data-dir", filepath.Join(dir, name),
			"--addr", "127.0.0.1:0", "--serf-addr", "127.0.0.1:0", "--metrics-addr=", "--log-level", "warn",
			"--tls-cert", files.NodeCert(name), "--tls-key", files.NodeKey(name), "--tls-ca", files.CACert, "--gossip-key", key}
		return startServe(t, append(args, extra...)...)
	}
	n1 := node("n1", "--bootstrap", "--default-replication-factor", "1")
	if out := n1.stdout.String(); !strings.Contains(out, "leader n1\n") {
		t.Errorf("n1 hosts the default topic and leads it; banner:\n%s", out)
	}
	n2 := node("n2", "--join", n1.serfAddr)
	if out, want := n2.stdout.String(), `leader n1 of the metadata (no replica of topic "log" on this node)`; !strings.Contains(out, want) {
		t.Errorf("n2 banner:\n%s\nwant a line with %q", out, want)
	}
}

// Everything a node writes in its data directory (the Raft log, stable
// store and snapshots, the data log, the dev gossip key and keys) is
// private to its user: no group or other permission bit. Only the dev
// certificates, which are public, may be readable, inside a private
// directory.
func TestDataDirIsPrivate(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "node") // created by the node
	c := startServe(t, "--dev", "--data-dir", dataDir, "--addr", "127.0.0.1:0", "--metrics-addr=", "--log-level", "warn",
		"--raft-snapshot-interval", "10ms", "--raft-snapshot-threshold", "5")
	files := certs.DevFilesIn(filepath.Join(dataDir, "certs"))
	conn := rootConn(t, files, c.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lc := logv1.NewLogClient(conn)
	for i := range 20 {
		if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Raft snapshots on its own schedule: wait for one of the default
	// topic's partition on disk (DataDir/topics/log/<created>/0).
	testutil.Eventually(t, "a snapshot", 30*time.Second, func() bool {
		dirs, _ := filepath.Glob(filepath.Join(dataDir, "topics", "log", "*", "0", "raft", "snapshots", "*"))
		return len(dirs) > 0
	})
	var checked int
	err := filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed or removed while walked: a snapshot being written (*.tmp) or pruned
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // as above
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		public := filepath.Dir(rel) == "certs" && strings.HasSuffix(rel, ".pem") && !strings.HasSuffix(rel, "-key.pem")
		if perm := info.Mode().Perm(); perm&0o077 != 0 && !public {
			t.Errorf("%s has mode %v, want no group or other permission", rel, info.Mode())
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("walked only %d entries", checked)
	}
}
