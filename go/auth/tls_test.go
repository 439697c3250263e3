package auth

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglog/proglog/go/certs"
)

// handshake runs a TLS handshake over a loopback pair and returns the
// server's view of the connection and both sides' errors.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		s := tls.Server(c, srvCfg)
		err = s.Handshake()
		if err == nil {
			// TLS 1.3 reports client-certificate failures to the client
			// only on its first read, so read one byte.
			_, err = s.Read(make([]byte, 1))
		}
		done <- result{s.ConnectionState(), err}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
	var cliErr error
	if err != nil {
		cliErr = err
	} else {
		_, cliErr = c.Write([]byte{1})
		if cliErr == nil {
			_, cliErr = c.Read(make([]byte, 1)) // surfaces a rejected client cert
			if cliErr != nil && strings.Contains(cliErr.Error(), "EOF") {
				cliErr = nil
			}
		}
		c.Close()
	}
	r := <-done
	return r.state, r.err, cliErr
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := certs.EnsureDev(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := TLSConfig{CertFile: files.ServerCert, KeyFile: files.ServerKey, CAFile: files.CACert}.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS12 || srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("server config: min %x, client auth %v", srv.MinVersion, srv.ClientAuth)
	}
	cli, err := TLSConfig{CertFile: files.ClientCert("root"), KeyFile: files.ClientKey("root"), CAFile: files.CACert, ServerName: "localhost"}.Client()
	if err != nil {
		t.Fatal(err)
	}
	state, srvErr, cliErr := handshake(t, srv, cli)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("handshake: server %v, client %v", srvErr, cliErr)
	}
	if state.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", state.Version)
	}
	if cn := state.VerifiedChains[0][0].Subject.CommonName; cn != "root" {
		t.Errorf("verified CN %q", cn)
	}

	// No client certificate: rejected when required.
	anon, _ := TLSConfig{CAFile: files.CACert, ServerName: "localhost"}.Client()
	if _, srvErr, _ := handshake(t, srv, anon); srvErr == nil {
		t.Error("server accepted a client without a certificate")
	}
	// ... but allowed through (with no verified chain) when optional.
	opt, _ := TLSConfig{CertFile: files.ServerCert, KeyFile: files.ServerKey, CAFile: files.CACert, OptionalClientCert: true}.Server()
	state, srvErr, _ = handshake(t, opt, anon)
	if srvErr != nil || len(state.VerifiedChains) != 0 {
		t.Errorf("optional client cert: err %v, chains %d", srvErr, len(state.VerifiedChains))
	}

	// TLS 1.1 clients are refused.
	old := cli.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, srvErr, _ := handshake(t, srv, old); srvErr == nil {
		t.Error("server accepted TLS 1.1")
	}
	// TLS 1.2 still works.
	v12 := cli.Clone()
	v12.MaxVersion = tls.VersionTLS12
	if state, srvErr, _ := handshake(t, srv, v12); srvErr != nil || state.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2: err %v version %x", srvErr, state.Version)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := (TLSConfig{}).Server(); err == nil {
		t.Error("server without cert accepted")
	}
	if _, err := (TLSConfig{CertFile: filepath.Join(dir, "x.pem"), KeyFile: filepath.Join(dir, "x-key.pem")}).Server(); err == nil {
		t.Error("missing files accepted")
	}
	files, _ := certs.EnsureDev(dir, nil)
	if _, err := (TLSConfig{CAFile: files.CAKey}).Client(); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Errorf("CA file without certificates: %v", err)
	}
}
