package mux

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.ReadTimeout != DefaultReadTimeout || c.HandshakeTimeout != DefaultHandshakeTimeout || c.MaxConns != DefaultMaxConns {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("DefaultConfig without TLS must not validate: %v", err)
	}
	c.InsecurePlaintext = true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	pool := x509.NewCertPool()
	good := func() Config {
		c := DefaultConfig()
		c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool}
		c.PeerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"zero read timeout":      func(c *Config) { c.ReadTimeout = 0 },
		"negative handshake":     func(c *Config) { c.HandshakeTimeout = -time.Second },
		"negative MaxConns":      func(c *Config) { c.MaxConns = -1 },
		"no server TLS":          func(c *Config) { c.ServerTLS = nil },
		"no peer TLS":            func(c *Config) { c.PeerTLS = nil },
		"insecure with TLS":      func(c *Config) { c.InsecurePlaintext = true },
		"server without cert":    func(c *Config) { c.ServerTLS.Certificates = nil },
		"server without CAs":     func(c *Config) { c.ServerTLS.ClientCAs = nil },
		"peer without cert":      func(c *Config) { c.PeerTLS.Certificates = nil },
		"peer skipping verifies": func(c *Config) { c.PeerTLS.InsecureSkipVerify = true },
	} {
		c := good()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}
