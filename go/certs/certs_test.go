package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/proglog/proglog/go/auth/nodeid"
)

func TestEnsureDevCreatesVerifiableSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := EnsureDev(dir, []string{"proglog.internal", "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadAuthority(files.CACert, files.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ReadCertificate(files.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "proglog.internal", "10.1.2.3"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: h, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server cert for %s: %v", h, err)
		}
	}
	for _, name := range DevClients {
		c, err := ReadCertificate(files.ClientCert(name))
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != name {
			t.Errorf("client CN = %q, want %q", c.Subject.CommonName, name)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("client %s: %v", name, err)
		}
		if _, err := tls.LoadX509KeyPair(files.ClientCert(name), files.ClientKey(name)); err != nil {
			t.Errorf("client %s key pair: %v", name, err)
		}
	}
	for _, key := range []string{files.CAKey, files.ServerKey, files.ClientKey("root"), files.ClientKey("nobody")} {
		st, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", key, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", st.Mode().Perm())
	}
}

func TestEnsureDevKeepsValidFilesAndRepairsMissing(t *testing.T) {
	dir := t.TempDir()
	files, err := EnsureDev(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	caBefore, srvBefore, rootBefore := read(files.CACert), read(files.ServerCert), read(files.ClientCert("root"))

	// Second run with the same hosts: nothing changes.
	if _, err := EnsureDev(dir, nil); err != nil {
		t.Fatal(err)
	}
	if read(files.CACert) != caBefore || read(files.ServerCert) != srvBefore || read(files.ClientCert("root")) != rootBefore {
		t.Fatal("EnsureDev rewrote valid files")
	}

	// A missing client is reissued by the same CA; a new host reissues the server only.
	if err := os.Remove(files.ClientCert("nobody")); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDev(dir, []string{"new.example"}); err != nil {
		t.Fatal(err)
	}
	if read(files.CACert) != caBefore || read(files.ClientCert("root")) != rootBefore {
		t.Fatal("EnsureDev replaced the CA or a valid client")
	}
	if read(files.ServerCert) == srvBefore {
		t.Fatal("server certificate not reissued for a new host")
	}
	srv, _ := ReadCertificate(files.ServerCert)
	if err := srv.VerifyHostname("new.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files.ClientCert("nobody")); err != nil {
		t.Fatal(err)
	}

	// Losing the CA key replaces the CA and therefore every leaf.
	if err := os.Remove(files.CAKey); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDev(dir, nil); err != nil {
		t.Fatal(err)
	}
	if read(files.CACert) == caBefore || read(files.ClientCert("root")) == rootBefore {
		t.Fatal("leaves of a replaced CA were kept")
	}
}

func TestIssueExpiredAndForeign(t *testing.T) {
	ca, err := NewAuthority("a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAuthority("b", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	expired, err := ca.Issue(Request{CommonName: "root", Client: true, NotBefore: past, NotAfter: past.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var invalid x509.CertificateInvalidError
	_, err = expired.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("expired cert verify = %v, want Expired", err)
	}
	foreign, err := other.IssueClient("root")
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := foreign.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); !errors.As(err, &unknown) {
		t.Fatalf("foreign cert verify = %v, want UnknownAuthorityError", err)
	}
	if _, err := ca.IssueClient(" "); !errors.Is(err, ErrNoCommonName) {
		t.Fatalf("empty CN: %v", err)
	}
}

func TestLoadAuthorityRejectsMismatchedKey(t *testing.T) {
	dir := t.TempDir()
	a, _ := NewAuthority("a", 0)
	b, _ := NewAuthority("b", 0)
	if err := a.Write(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-key.pem"), b.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("err = %v, want ErrKeyMismatch", err)
	}
	leaf, _ := a.IssueClient("x")
	if err := leaf.Write(filepath.Join(dir, "x.pem"), filepath.Join(dir, "x-key.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(filepath.Join(dir, "x.pem"), filepath.Join(dir, "x-key.pem")); !errors.Is(err, ErrNotCA) {
		t.Fatalf("err = %v, want ErrNotCA", err)
	}
}

func TestEnsureDevIssuesOneCertificatePerNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := EnsureDev(dir, []string{"proglog.internal"}, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadAuthority(files.CACert, files.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n1", "n2"} {
		c, err := ReadCertificate(files.NodeCert(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := nodeid.Verify(c, name, "proglog.internal"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s chain: %v", name, err)
		}
		if _, err := tls.LoadX509KeyPair(files.NodeCert(name), files.NodeKey(name)); err != nil {
			t.Errorf("%s key pair: %v", name, err)
		}
	}
	// The shared server certificate names no node.
	srv, err := ReadCertificate(files.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeid.FromCertificate(srv); !errors.Is(err, nodeid.ErrNoIdentity) {
		t.Errorf("server.pem identity: %v, want ErrNoIdentity", err)
	}
	// A node file holding another node's certificate is replaced.
	n2, _ := os.ReadFile(files.NodeCert("n2"))
	n2Key, _ := os.ReadFile(files.NodeKey("n2"))
	if err := os.WriteFile(files.NodeCert("n1"), n2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.NodeKey("n1"), n2Key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDev(dir, []string{"proglog.internal"}, "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	if c, _ := ReadCertificate(files.NodeCert("n1")); nodeid.Verify(c, "n1", "") != nil {
		t.Error("EnsureDev kept n2's certificate as n1's")
	}
}

func TestEnsureDevRejectsBadNodeNames(t *testing.T) {
	for _, name := range []string{"root", "ca", "server", "../x", ""} {
		if _, err := EnsureDev(t.TempDir(), nil, name); err == nil {
			t.Errorf("EnsureDev(node %q) succeeded", name)
		}
	}
}

// EnsureDevClients issues a client certificate whose subject common name
// is the name asked for (the subject the ACLs check), signed by the dev
// CA, keeps it while valid, replaces one of another subject, and refuses
// names whose files are the PKI's own.
func TestEnsureDevClientsIssuesNamedClients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := EnsureDevClients(dir, "orders-app"); err == nil {
		t.Fatal("EnsureDevClients without a CA succeeded")
	}
	files, err := EnsureDev(dir, nil, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDevClients(dir, "orders-app", "billing"); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadAuthority(files.CACert, files.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orders-app", "billing"} {
		c, err := ReadCertificate(files.ClientCert(name))
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != name {
			t.Errorf("client CN = %q, want %q", c.Subject.CommonName, name)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("client %s: %v", name, err)
		}
		if _, err := tls.LoadX509KeyPair(files.ClientCert(name), files.ClientKey(name)); err != nil {
			t.Errorf("client %s key pair: %v", name, err)
		}
		if st, err := os.Stat(files.ClientKey(name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s key: %v, %v", name, st, err)
		}
	}

	// Kept while valid; another subject's certificate under the name is
	// replaced.
	before, err := os.ReadFile(files.ClientCert("orders-app"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ from, to string }{{files.ClientCert("billing"), files.ClientCert("root")}, {files.ClientKey("billing"), files.ClientKey("root")}} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := EnsureDevClients(dir, "orders-app", "root"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(files.ClientCert("orders-app")); string(after) != string(before) {
		t.Error("a valid client certificate was replaced")
	}
	if c, err := ReadCertificate(files.ClientCert("root")); err != nil || c.Subject.CommonName != "root" {
		t.Errorf("root.pem holding billing's certificate: after EnsureDevClients %v, %v", c.Subject, err)
	}

	for _, name := range []string{"ca", "server", "ca-key", "n1-key", "n1"} {
		if _, err := EnsureDevClients(dir, name); !errors.Is(err, ErrReservedName) {
			t.Errorf("EnsureDevClients(%q): %v, want ErrReservedName", name, err)
		}
	}
	for _, name := range []string{"", "../x", "a/b", "-x"} {
		if _, err := EnsureDevClients(dir, name); !errors.Is(err, nodeid.ErrInvalidName) {
			t.Errorf("EnsureDevClients(%q): %v, want nodeid.ErrInvalidName", name, err)
		}
	}
	if c, err := ReadCertificate(files.NodeCert("n1")); err != nil || nodeid.Verify(c, "n1", "") != nil {
		t.Errorf("node n1's certificate after the refusals: %v", err)
	}
}
