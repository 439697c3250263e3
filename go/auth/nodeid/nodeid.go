package nodeid

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// The parts of a node URI (see the package documentation).
const (
	Scheme      = "spiffe"
	TrustDomain = "proglog"
	PathPrefix  = "/node/"
)

// MaxNameLen is the longest node name a certificate can carry.
const MaxNameLen = 128

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	// ErrInvalidName: a node name outside the allowed characters or length.
	ErrInvalidName = errors.New("nodeid: invalid node name")
	// ErrNoIdentity: a certificate carries no node URI.
	ErrNoIdentity = errors.New("nodeid: certificate names no node")
	// ErrAmbiguous: a certificate carries more than one node URI.
	ErrAmbiguous = errors.New("nodeid: certificate names several nodes")
	// ErrNotNodeCert: a certificate is not fit to be a node's own (another
	// node's name, a missing key usage, no SAN for the node's host).
	ErrNotNodeCert = errors.New("nodeid: not a certificate for this node")
)

// ValidName reports whether name may be a node name, with the reason.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w %q: must be 1 to %d characters", ErrInvalidName, name, MaxNameLen)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '.' || r == '_' || r == '-')
		if !ok {
			return fmt.Errorf("%w %q: letters, digits, '.', '_' and '-' only, starting with a letter or digit", ErrInvalidName, name)
		}
	}
	return nil
}

// URI returns the URI that names node name in its certificate.
func URI(name string) (*url.URL, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	return &url.URL{Scheme: Scheme, Host: TrustDomain, Path: PathPrefix + name}, nil
}

// Name returns the node named by u, and whether u is a node URI at all.
func Name(u *url.URL) (string, bool) {
	if u == nil || u.Scheme != Scheme || u.Host != TrustDomain || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, PathPrefix) {
		return "", false
	}
	name := strings.TrimPrefix(u.Path, PathPrefix)
	if ValidName(name) != nil {
		return "", false
	}
	return name, true
}

// FromCertificate returns the node cert names: the name in its one node URI.
func FromCertificate(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("%w: no certificate", ErrNoIdentity)
	}
	var names []string
	for _, u := range cert.URIs {
		if n, ok := Name(u); ok {
			names = append(names, n)
		}
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("%w: certificate %q has no %s://%s%s<name> URI SAN", ErrNoIdentity, cert.Subject.CommonName, Scheme, TrustDomain, PathPrefix)
	case 1:
		return names[0], nil
	default:
		return "", fmt.Errorf("%w: certificate %q names %v", ErrAmbiguous, cert.Subject.CommonName, names)
	}
}

// Verify checks that cert can be node name's own certificate at host: it
// names exactly node name, allows the serverAuth and clientAuth usages, and
// is valid for host (a DNS name or IP address; empty skips the check). It
// does not check the chain or validity dates; TLS peers do.
func Verify(cert *x509.Certificate, name, host string) error {
	got, err := FromCertificate(cert)
	if err != nil {
		return err
	}
	if got != name {
		return fmt.Errorf("%w: it names node %q, this node is %q", ErrNotNodeCert, got, name)
	}
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		what  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		if !slices.Contains(cert.ExtKeyUsage, u.usage) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return fmt.Errorf("%w: it lacks the %s extended key usage (a node serves and dials with it)", ErrNotNodeCert, u.what)
		}
	}
	if host != "" {
		if err := cert.VerifyHostname(host); err != nil {
			return fmt.Errorf("%w: no SAN matches the advertised host %q (DNS %v, IP %v)", ErrNotNodeCert, host, cert.DNSNames, cert.IPAddresses)
		}
	}
	return nil
}
