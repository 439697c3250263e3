package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proglog/proglog/go/certs"
)

// TestACLsCommands: acls create, list (text and --json) and delete
// against the clienttest double, and their errors.
func TestACLsCommands(t *testing.T) {
	_, conn := topicDouble(t)
	rule := []string{"--subject", "orders-app", "--object", "orders-*", "--action", "produce"}
	if out := mustRun(t, "", append(append([]string{"acls", "create"}, rule...), conn...)...); out != "created rule: subject orders-app, action produce, object orders-*\n" {
		t.Errorf("acls create printed %q", out)
	}
	out := mustRun(t, "", append([]string{"acls", "list"}, conn...)...)
	want := "SUBJECT     OBJECT    ACTION   SOURCE\n" +
		"orders-app  orders-*  produce  metadata\n" +
		"root        *         *        policy file\n"
	if out != want {
		t.Errorf("acls list printed\n%s\nwant\n%s", out, want)
	}
	out = mustRun(t, "", append([]string{"acls", "list", "--json"}, conn...)...)
	var got []aclJSON
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var j aclJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("acls list --json line %q: %v", line, err)
		}
		got = append(got, j)
	}
	if len(got) != 2 || got[0] != (aclJSON{"orders-app", "orders-*", "produce", false}) || got[1] != (aclJSON{"root", "*", "*", true}) {
		t.Errorf("acls list --json: %+v", got)
	}

	if _, errOut, err := proglogCmd(t, "", append([]string{"acls", "create", "--subject", "a", "--object", "log", "--action", "fly"}, conn...)...); err == nil || !strings.Contains(errOut, "invalid ACL rule") {
		t.Errorf("a rule of an unknown action: %v, %q", err, errOut)
	}
	if _, errOut, err := proglogCmd(t, "", append([]string{"acls", "delete", "--subject", "a", "--object", "log"}, conn...)...); err == nil || !strings.Contains(errOut, `"action" not set`) {
		t.Errorf("delete without --action: %v, %q", err, errOut)
	}

	if out := mustRun(t, "", append(append([]string{"acls", "delete", "--json"}, rule...), conn...)...); out != `{"subject":"orders-app","object":"orders-*","action":"produce","from_policy_file":false}`+"\n" {
		t.Errorf("acls delete --json printed %q", out)
	}
	servers := []string{"--subject", "nobody", "--object", "log", "--action", "servers"}
	mustRun(t, "", append(append([]string{"acls", "create"}, servers...), conn...)...)
	if out := mustRun(t, "", append(append([]string{"acls", "delete"}, servers...), conn...)...); out != "deleted rule: subject nobody, action servers, object log\n" {
		t.Errorf("acls delete printed %q", out)
	}
	if out := mustRun(t, "", append([]string{"acls", "list"}, conn...)...); !strings.HasSuffix(out, "root     *       *       policy file\n") || strings.Contains(out, "orders-app") {
		t.Errorf("acls list after the delete printed %q", out)
	}
}

// TestClientCertificateForANamedSubject: "certs --client orders-app" in
// a serve --dev node's certificate directory writes a certificate the
// node authenticates as orders-app: refused until a rule names that
// subject, allowed once "acls create --subject orders-app" made one.
func TestClientCertificateForANamedSubject(t *testing.T) {
	dataDir := t.TempDir()
	srv := startBinary(t, dataDir)
	files := certs.DevFilesIn(filepath.Join(dataDir, "certs"))
	out := mustRun(t, "", "certs", "--dir", files.Dir, "--client", "orders-app")
	if !strings.Contains(out, files.ClientCert("orders-app")+" "+files.ClientKey("orders-app")) {
		t.Fatalf("certs --client printed %q", out)
	}
	app := []string{"--addr", srv.addr, "--tls-ca", files.CACert, "--tls-cert", files.ClientCert("orders-app"), "--tls-key", files.ClientKey("orders-app")}
	mustFail(t, "permission denied: orders-app may not produce", append([]string{"produce", "--timeout", "5s", "hello"}, app...)...)

	mustRun(t, "", "acls", "create", "--subject", "orders-app", "--object", "log", "--action", "produce", "--addr", srv.addr, "--dev", dataDir)
	// The node applies the rule from its metadata a moment after the
	// change is acknowledged.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, err := proglogCmd(t, "", append([]string{"produce", "--timeout", "5s", "hello"}, app...)...)
		if err == nil {
			if out != "0\n" {
				t.Errorf("produce as orders-app printed %q", out)
			}
			break
		}
		if !strings.Contains(errOut, "orders-app may not produce") || time.Now().After(deadline) {
			t.Fatalf("produce as orders-app after the rule: %v, %q", err, errOut)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}
