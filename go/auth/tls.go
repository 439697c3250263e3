package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig names the files of one side of a TLS connection.
type TLSConfig struct {
	// CertFile and KeyFile are this side's certificate and key: required for
	// a server, and for a client that authenticates itself (mutual TLS).
	CertFile, KeyFile string
	// CAFile holds the CA certificates that verify the peer. For a server it
	// enables client-certificate verification; for a client, empty means the
	// system roots.
	CAFile string
	// ServerName is the name a client checks the server certificate for;
	// empty lets gRPC use the host of the dialed address.
	ServerName string
	// OptionalClientCert makes a server with a CAFile accept handshakes
	// without a client certificate (certificates that are sent are still
	// verified). Such calls then fail authentication in the interceptors
	// with codes.Unauthenticated instead of at the handshake. Default false:
	// a client certificate is required.
	OptionalClientCert bool
}

// Server returns a server-side TLS configuration: the certificate from
// CertFile/KeyFile and, if CAFile is set, verification of client
// certificates against it.
func (c TLSConfig) Server() (*tls.Config, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, fmt.Errorf("auth: server TLS needs both a certificate and a key file (got cert %q, key %q)", c.CertFile, c.KeyFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: load server key pair %s, %s: %w", c.CertFile, c.KeyFile, err)
	}
	cfg := baseConfig()
	cfg.Certificates = []tls.Certificate{cert}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if c.OptionalClientCert {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

// Client returns a client-side TLS configuration verifying the server
// against CAFile (or the system roots) and presenting CertFile/KeyFile if set.
func (c TLSConfig) Client() (*tls.Config, error) {
	cfg := baseConfig()
	cfg.ServerName = c.ServerName
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: load client key pair %s, %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Only consulted for TLS 1.2 (1.3 suites are fixed and all AEAD):
		// forward-secret ECDHE with AEAD ciphers.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

func loadPool(caFile string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("auth: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("auth: no PEM certificates in CA file %s", caFile)
	}
	return pool, nil
}
