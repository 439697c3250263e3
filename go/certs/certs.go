package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/proglog/proglog/go/auth/nodeid"
)

// DefaultValidity is how long certificates issued without an explicit
// NotAfter stay valid.
const DefaultValidity = 365 * 24 * time.Hour

// clockSkew backdates NotBefore so that peers whose clocks lag slightly still
// accept a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

var (
	// ErrNoPEM means a file held no PEM block of the expected type.
	ErrNoPEM = errors.New("certs: no PEM block found")
	// ErrNotCA means a certificate loaded as an authority is not a CA.
	ErrNotCA = errors.New("certs: certificate is not a CA")
	// ErrKeyMismatch means a private key does not match its certificate.
	ErrKeyMismatch = errors.New("certs: private key does not match certificate")
	// ErrNoCommonName means a client certificate was requested without a name.
	ErrNoCommonName = errors.New("certs: common name is required")
	// ErrReservedName means a node was requested under a name whose files
	// EnsureDev uses for something else (ca, server, a dev client).
	ErrReservedName = errors.New("certs: reserved file name")
)

// Authority is a certificate authority able to issue leaf certificates.
type Authority struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM and KeyPEM are Cert and Key encoded for writing.
	CertPEM, KeyPEM []byte
}

// KeyPair is an issued certificate with its private key.
type KeyPair struct {
	Cert            *x509.Certificate
	Key             *ecdsa.PrivateKey
	CertPEM, KeyPEM []byte
}

// Request describes a leaf certificate to issue.
type Request struct {
	// CommonName is the subject CN. For client certificates it is the
	// principal; for servers it is informational (clients check SANs).
	CommonName string
	// Hosts become DNS or IP subject alternative names.
	Hosts []string
	// URIs become URI subject alternative names (a node's identity, see
	// go/auth/nodeid).
	URIs []*url.URL
	// Server and Client select the extended key usages; at least one should be set.
	Server, Client bool
	// NotBefore defaults to now minus a few minutes of clock skew; NotAfter
	// defaults to NotBefore + DefaultValidity. Tests set both in the past to
	// get an expired certificate.
	NotBefore, NotAfter time.Time
}

// NewAuthority creates a self-signed CA valid for validity (DefaultValidity if zero).
func NewAuthority(commonName string, validity time.Duration) (*Authority, error) {
	if validity <= 0 {
		validity = DefaultValidity
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"proglog"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Leaves only: a dev CA has no business minting intermediates.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: create CA certificate: %w", err)
	}
	return newAuthority(der, key)
}

func newAuthority(der []byte, key *ecdsa.PrivateKey) (*Authority, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key, CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// LoadAuthority reads a CA certificate and its key from PEM files.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	cert, err := ReadCertificate(certFile)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s", ErrNotCA, certFile)
	}
	key, err := ReadKey(keyFile)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s and %s", ErrKeyMismatch, certFile, keyFile)
	}
	return newAuthority(cert.Raw, key)
}

// Issue signs a leaf certificate described by req.
func (a *Authority) Issue(req Request) (*KeyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-clockSkew)
	}
	notAfter := req.NotAfter
	if notAfter.IsZero() {
		notAfter = notBefore.Add(DefaultValidity)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: []string{"proglog"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		// ECDSA keys sign; they never encipher keys, so DigitalSignature only.
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	tmpl.URIs = req.URIs
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, &key.PublicKey, a.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign certificate for %q: %w", req.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse issued certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// IssueServer issues a server certificate for hosts plus the loopback names
// (localhost, 127.0.0.1, ::1), which local clients and tests always use.
func (a *Authority) IssueServer(hosts ...string) (*KeyPair, error) {
	all := withLoopback(hosts)
	return a.Issue(Request{CommonName: all[0], Hosts: all, Server: true})
}

// IssueNode issues node name's certificate (see go/auth/nodeid): its node
// URI, the serverAuth and clientAuth usages, and SANs for hosts plus the
// loopback names.
func (a *Authority) IssueNode(name string, hosts ...string) (*KeyPair, error) {
	uri, err := nodeid.URI(name)
	if err != nil {
		return nil, err
	}
	return a.Issue(Request{CommonName: name, Hosts: withLoopback(hosts), URIs: []*url.URL{uri}, Server: true, Client: true})
}

// IssueClient issues a client certificate whose subject CN is commonName.
func (a *Authority) IssueClient(commonName string) (*KeyPair, error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, ErrNoCommonName
	}
	return a.Issue(Request{CommonName: commonName, Client: true})
}

// Write stores the CA certificate and key (key mode 0600).
func (a *Authority) Write(certFile, keyFile string) error {
	return writePair(certFile, a.CertPEM, keyFile, a.KeyPEM)
}

// Write stores the certificate and key (key mode 0600).
func (p *KeyPair) Write(certFile, keyFile string) error {
	return writePair(certFile, p.CertPEM, keyFile, p.KeyPEM)
}

// Pool returns a cert pool holding only this CA, for verifying peers.
func (a *Authority) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(a.Cert)
	return pool
}

// ReadCertificate parses the first CERTIFICATE block of a PEM file.
func ReadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: read certificate: %w", err)
	}
	block := findBlock(data, "CERTIFICATE")
	if block == nil {
		return nil, fmt.Errorf("%w: CERTIFICATE in %s", ErrNoPEM, path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: parse certificate %s: %w", path, err)
	}
	return cert, nil
}

// ReadKey parses an ECDSA private key from a PKCS#8 or SEC 1 PEM file.
func ReadKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: read key: %w", err)
	}
	if block := findBlock(data, "PRIVATE KEY"); block != nil {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: parse key %s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("certs: key %s is %T, want ECDSA", path, k)
		}
		return ec, nil
	}
	if block := findBlock(data, "EC PRIVATE KEY"); block != nil {
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: parse key %s: %w", path, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: PRIVATE KEY in %s", ErrNoPEM, path)
}

func findBlock(data []byte, typ string) *pem.Block {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil
		}
		if block.Type == typ {
			return block
		}
	}
}

func newKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	return key, nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits, as CAs are expected to use unpredictable serials.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: generate serial: %w", err)
	}
	return n, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writePair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) error {
	// Key first: a certificate without its key on disk would look complete
	// to EnsureDev's existence checks after a crash.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, certPEM, 0o644)
}

// writeFileAtomic writes via a temp file and rename so readers never see a
// partial PEM file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: chmod %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

func withLoopback(hosts []string) []string {
	all := []string{"localhost", "127.0.0.1", "::1"}
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		all = append(all, h)
	}
	return all
}
