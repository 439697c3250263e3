package nodeid_test

import (
	"crypto/x509"
	"errors"
	"net/url"
	"testing"

	"github.com/proglog/proglog/go/auth/nodeid"
	"github.com/proglog/proglog/go/certs"
)

func TestURIRoundTrip(t *testing.T) {
	u, err := nodeid.URI("n1.example-2_b")
	if err != nil {
		t.Fatal(err)
	}
	if got := u.String(); got != "spiffe://proglog/node/n1.example-2_b" {
		t.Errorf("URI = %s", got)
	}
	if name, ok := nodeid.Name(u); !ok || name != "n1.example-2_b" {
		t.Errorf("Name = %q, %v", name, ok)
	}
	for _, bad := range []string{"", "-x", "a/b", "a b", "ä", string(make([]byte, nodeid.MaxNameLen+1))} {
		if _, err := nodeid.URI(bad); !errors.Is(err, nodeid.ErrInvalidName) {
			t.Errorf("URI(%q): %v, want ErrInvalidName", bad, err)
		}
	}
	for _, s := range []string{"spiffe://other/node/n1", "https://proglog/node/n1", "spiffe://proglog/user/n1", "spiffe://proglog/node/n1/x", "spiffe://proglog/node/n1?q=1"} {
		u, _ := url.Parse(s)
		if name, ok := nodeid.Name(u); ok {
			t.Errorf("Name(%s) = %q, want not a node URI", s, name)
		}
	}
}

func TestFromCertificateAndVerify(t *testing.T) {
	ca, err := certs.NewAuthority("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := ca.IssueNode("n1", "node1.internal")
	if err != nil {
		t.Fatal(err)
	}
	if name, err := nodeid.FromCertificate(n1.Cert); err != nil || name != "n1" {
		t.Fatalf("FromCertificate = %q, %v", name, err)
	}
	if err := nodeid.Verify(n1.Cert, "n1", "node1.internal"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := nodeid.Verify(n1.Cert, "n1", "127.0.0.1"); err != nil {
		t.Errorf("Verify loopback: %v", err)
	}
	server, _ := ca.IssueServer("node1.internal")
	client, _ := ca.IssueClient("root")
	u1, _ := nodeid.URI("n1")
	u2, _ := nodeid.URI("n2")
	serverOnly, _ := ca.Issue(certs.Request{CommonName: "n1", Hosts: []string{"127.0.0.1"}, URIs: []*url.URL{u1}, Server: true})
	two, _ := ca.Issue(certs.Request{CommonName: "n1", URIs: []*url.URL{u1, u2}, Server: true, Client: true})
	for _, tc := range []struct {
		what       string
		cert       *x509.Certificate
		name, host string
		want       error
	}{
		{"shared server.pem", server.Cert, "n1", "node1.internal", nodeid.ErrNoIdentity},
		{"client certificate", client.Cert, "n1", "", nodeid.ErrNoIdentity},
		{"another node's", n1.Cert, "n2", "", nodeid.ErrNotNodeCert},
		{"no clientAuth", serverOnly.Cert, "n1", "", nodeid.ErrNotNodeCert},
		{"wrong host", n1.Cert, "n1", "node2.internal", nodeid.ErrNotNodeCert},
		{"two node URIs", two.Cert, "n1", "", nodeid.ErrAmbiguous},
	} {
		if err := nodeid.Verify(tc.cert, tc.name, tc.host); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.what, err, tc.want)
		}
	}
}
