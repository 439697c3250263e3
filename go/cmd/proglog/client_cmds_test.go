package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// proglogCmd runs the test binary as the proglog binary with args, feeding
// it stdin, and returns its stdout; stderr goes to the test log on failure.
func proglogCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := proglogCmd(t, stdin, args...)
	if err != nil {
		t.Fatalf("proglog %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func TestProduceConsumeThroughTheCLI(t *testing.T) {
	dataDir := t.TempDir()
	srv := startBinary(t, dataDir)
	conn := []string{"--addr", srv.addr, "--dev", dataDir}

	// Lines of standard input, in batches of two (the last one alone).
	out := mustRun(t, "first\nsecond line\r\nthird\n\nfifth", append([]string{"produce", "--batch", "2", "--key", "k"}, conn...)...)
	if out != "0\n1\n2\n3\n4\n" {
		t.Fatalf("produce printed %q, want the offsets 0..4", out)
	}
	// Arguments, one record each, JSON output.
	out = mustRun(t, "", append([]string{"produce", "--json", "six", "seven"}, conn...)...)
	if out != "{\"offset\":5}\n{\"offset\":6}\n" {
		t.Fatalf("produce --json printed %q", out)
	}

	out = mustRun(t, "", append([]string{"consume"}, conn...)...)
	if want := "first\nsecond line\nthird\n\nfifth\nsix\nseven\n"; out != want {
		t.Fatalf("consume printed %q, want %q", out, want)
	}
	out = mustRun(t, "", append([]string{"consume", "--from", "4", "--json"}, conn...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("consume --from 4 --json printed %q", out)
	}
	var rec jsonRecord
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Offset != 4 || rec.Value == nil || *rec.Value != "fifth" || rec.Key == nil || *rec.Key != "k" || rec.Timestamp == "" {
		t.Fatalf("record 4 as JSON: %s", lines[0])
	}
	if _, err := time.Parse(time.RFC3339Nano, rec.Timestamp); err != nil {
		t.Fatalf("timestamp: %v", err)
	}
	// Past the end: an error giving the bounds; at the end: nothing,
	// successfully.
	if out, errOut, err := proglogCmd(t, "", append([]string{"consume", "--from", "100"}, conn...)...); err == nil || out != "" ||
		errOut != "proglog: --from 100 is past the end of log/0: it holds offsets 0 to 6, and the next record produced gets offset 7 (add --follow to wait for offset 100)\n" {
		t.Fatalf("consume past the end: %v, printed %q, stderr %q", err, out, errOut)
	}
	if out := mustRun(t, "", append([]string{"consume", "--from", "7"}, conn...)...); out != "" {
		t.Fatalf("consume at the end printed %q", out)
	}

	// --follow prints new records as they come, until interrupted.
	exe, _ := os.Executable()
	follow := exec.Command(exe, append([]string{"consume", "--follow", "--from", "6"}, conn...)...)
	follow.Env = append(os.Environ(), runMainEnv+"=1")
	fout := &outputWatcher{serving: make(chan []string, 1)}
	follow.Stdout = fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	mustRun(t, "eight\n", append([]string{"produce"}, conn...)...)
	deadline := time.Now().Add(15 * time.Second)
	for fout.String() != "seven\neight\n" {
		if time.Now().After(deadline) {
			t.Fatalf("consume --follow printed %q, want seven and eight", fout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	follow.Process.Signal(os.Interrupt)
	if err := follow.Wait(); err != nil {
		t.Fatalf("consume --follow after SIGINT: %v", err)
	}

	out = mustRun(t, "", append([]string{"servers", "--json"}, conn...)...)
	var s struct {
		ID       string `json:"id"`
		RPCAddr  string `json:"rpc_addr"`
		IsLeader bool   `json:"is_leader"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.RPCAddr != srv.addr || !s.IsLeader {
		t.Fatalf("servers --json printed %q (%v)", out, err)
	}
	if out := mustRun(t, "", append([]string{"servers"}, conn...)...); !strings.Contains(out, srv.addr) || !strings.Contains(out, "leader") {
		t.Fatalf("servers printed %q", out)
	}

	out = mustRun(t, "", append([]string{"bounds", "--json"}, conn...)...)
	var b struct{ Lowest, Next uint64 }
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Lowest != 0 || b.Next != 8 {
		t.Fatalf("bounds --json printed %q (%v), want lowest 0 and next 8", out, err)
	}
	if out := mustRun(t, "", append([]string{"bounds"}, conn...)...); out != "lowest 0\nnext 8\n" {
		t.Fatalf("bounds printed %q", out)
	}

	// The nobody certificate is refused, with the reason.
	certDir := filepath.Join(dataDir, "certs")
	_, errOut, err := proglogCmd(t, "", "produce", "--addr", srv.addr, "--tls-ca", filepath.Join(certDir, "ca.pem"),
		"--tls-cert", filepath.Join(certDir, "nobody.pem"), "--tls-key", filepath.Join(certDir, "nobody-key.pem"), "denied")
	if err == nil || !strings.Contains(errOut, "permission denied") || strings.Contains(errOut, "proglog: proglog:") {
		t.Fatalf("produce as nobody: %v, stderr %q (want the reason, prefixed once)", err, errOut)
	}
}

func TestClientCommandsRejectBadSettings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"produce", "x"}, "client certificate is required"},
		{[]string{"consume", "--dev", dir, "--tls-ca", "ca.pem"}, "exclusive"},
		{[]string{"produce", "--dev", dir, "--batch", "0", "x"}, "--batch is 0"},
		{[]string{"servers", "--dev", dir}, "read CA file"},
		{[]string{"bounds", "--dev", dir}, "read CA file"},
		{[]string{"consume", "extra"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runInProcess(t, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("code %d, stderr %q, want 1 and %q", code, errOut, tc.want)
			}
		})
	}
	// PROGLOG_DEV is serve's boolean: client commands ignore it.
	t.Setenv("PROGLOG_DEV", "true")
	if code, _, errOut := runInProcess(t, "servers"); code != 1 || !strings.Contains(errOut, "client certificate is required") {
		t.Fatalf("PROGLOG_DEV=true: code %d, stderr %q", code, errOut)
	}
}
