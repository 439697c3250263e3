package certs

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/proglog/proglog/go/auth/nodeid"
)

// DevClients are the client identities EnsureDev issues: "root" is allowed
// everything by the default ACL and "nobody" nothing.
var DevClients = []string{"root", "nobody"}

// renewBefore makes EnsureDev replace certificates about to expire, so a dev
// server restarted weekly never starts with a certificate that dies mid-run.
const renewBefore = 7 * 24 * time.Hour

// DevFiles names the files of a development certificate directory.
type DevFiles struct {
	Dir                   string
	CACert, CAKey         string
	ServerCert, ServerKey string
}

// DevFilesIn returns the file names EnsureDev uses in dir.
func DevFilesIn(dir string) DevFiles {
	return DevFiles{
		Dir:        dir,
		CACert:     filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
	}
}

// NodeCert is the certificate file of node name.
func (f DevFiles) NodeCert(name string) string { return filepath.Join(f.Dir, name+".pem") }

// NodeKey is the key file of node name.
func (f DevFiles) NodeKey(name string) string { return filepath.Join(f.Dir, name+"-key.pem") }

// ClientCert is the certificate file of client name.
func (f DevFiles) ClientCert(name string) string { return filepath.Join(f.Dir, name+".pem") }

// ClientKey is the key file of client name.
func (f DevFiles) ClientKey(name string) string { return filepath.Join(f.Dir, name+"-key.pem") }

// EnsureDev makes dir hold a usable development PKI and returns its file
// names. It keeps every valid file and (re)creates only what is missing: a
// new CA (and then every leaf) if the CA is absent, unreadable or expiring;
// a server certificate if absent, not from the CA, expiring, or not valid for
// one of hosts or the loopback names; a node certificate (IssueNode) for each
// of nodes under the same conditions or if it does not name its node; a
// client certificate for each of DevClients if absent, not from the CA or
// expiring.
//
// The server certificate names no node: it serves gRPC for tools and tests,
// and a proglog node refuses it (see go/auth/nodeid).
func EnsureDev(dir string, hosts []string, nodes ...string) (DevFiles, error) {
	files := DevFilesIn(dir)
	for _, n := range nodes {
		if n == "ca" || n == "server" || slices.Contains(DevClients, n) {
			return files, fmt.Errorf("%w: node %q (its files would overwrite %s.pem)", ErrReservedName, n, n)
		}
		if err := nodeid.ValidName(n); err != nil {
			return files, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, fmt.Errorf("certs: create %s: %w", dir, err)
	}
	// An unreadable CA is replaced rather than reported: it is dev material
	// that EnsureDev itself owns, and the leaves it signed go with it.
	ca, err := LoadAuthority(files.CACert, files.CAKey)
	if err != nil || expiring(ca.Cert) {
		ca, err = NewAuthority("proglog dev CA", 0)
		if err != nil {
			return files, err
		}
		if err := ca.Write(files.CACert, files.CAKey); err != nil {
			return files, err
		}
	}
	all := withLoopback(hosts)
	if !leafOK(ca, files.ServerCert, files.ServerKey, x509.ExtKeyUsageServerAuth, all) {
		kp, err := ca.IssueServer(all...)
		if err != nil {
			return files, err
		}
		if err := kp.Write(files.ServerCert, files.ServerKey); err != nil {
			return files, err
		}
	}
	for _, name := range nodes {
		certFile, keyFile := files.NodeCert(name), files.NodeKey(name)
		if leafOK(ca, certFile, keyFile, x509.ExtKeyUsageServerAuth, all) && namesNode(certFile, name) {
			continue
		}
		kp, err := ca.IssueNode(name, all...)
		if err != nil {
			return files, err
		}
		if err := kp.Write(certFile, keyFile); err != nil {
			return files, err
		}
	}
	if err := ensureClients(ca, files, DevClients); err != nil {
		return files, err
	}
	return files, nil
}

// EnsureDevClients makes dir, a development PKI EnsureDev made, hold a
// client certificate for each of names: NAME.pem and NAME-key.pem, signed
// by its CA, with the clientAuth usage and subject common name NAME, the
// subject the servers' ACLs check. Like EnsureDev it keeps a valid
// certificate of that name and replaces a missing, foreign or expiring
// one. A name must be a valid file name (go/auth/nodeid's ValidName);
// ca, server, a name ending in -key and the name of a node whose
// certificate is in dir are refused (ErrReservedName): their files are
// the PKI's own.
func EnsureDevClients(dir string, names ...string) (DevFiles, error) {
	files := DevFilesIn(dir)
	for _, n := range names {
		if err := nodeid.ValidName(n); err != nil {
			return files, fmt.Errorf("certs: client %q: %w", n, err)
		}
		if n == "ca" || n == "server" || strings.HasSuffix(n, "-key") {
			return files, fmt.Errorf("%w: client %q (its files would overwrite the PKI's own)", ErrReservedName, n)
		}
		if cert, err := ReadCertificate(files.ClientCert(n)); err == nil {
			if node, err := nodeid.FromCertificate(cert); err == nil {
				return files, fmt.Errorf("%w: client %q (%s.pem is node %q's certificate)", ErrReservedName, n, n, node)
			}
		}
	}
	ca, err := LoadAuthority(files.CACert, files.CAKey)
	if err != nil {
		return files, fmt.Errorf("certs: the development CA of %s (run EnsureDev first): %w", dir, err)
	}
	return files, ensureClients(ca, files, names)
}

// ensureClients issues a client certificate for each of names unless a
// valid one of that subject is in files' directory.
func ensureClients(ca *Authority, files DevFiles, names []string) error {
	for _, name := range names {
		certFile, keyFile := files.ClientCert(name), files.ClientKey(name)
		if leafOK(ca, certFile, keyFile, x509.ExtKeyUsageClientAuth, nil) && namesSubject(certFile, name) {
			continue
		}
		kp, err := ca.IssueClient(name)
		if err != nil {
			return err
		}
		if err := kp.Write(certFile, keyFile); err != nil {
			return err
		}
	}
	return nil
}

// namesSubject reports whether certFile's subject common name is name.
func namesSubject(certFile, name string) bool {
	cert, err := ReadCertificate(certFile)
	return err == nil && cert.Subject.CommonName == name
}

// leafOK reports whether certFile/keyFile form a pair signed by ca, valid for
// usage, not expiring, and valid for every host.
func leafOK(ca *Authority, certFile, keyFile string, usage x509.ExtKeyUsage, hosts []string) bool {
	cert, err := ReadCertificate(certFile)
	if err != nil || expiring(cert) {
		return false
	}
	key, err := ReadKey(keyFile)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return false
	}
	opts := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}
	if _, err := cert.Verify(opts); err != nil {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// namesNode reports whether certFile is node name's certificate.
func namesNode(certFile, name string) bool {
	cert, err := ReadCertificate(certFile)
	return err == nil && nodeid.Verify(cert, name, "") == nil
}

func expiring(cert *x509.Certificate) bool {
	return time.Now().Add(renewBefore).After(cert.NotAfter)
}
