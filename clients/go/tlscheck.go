package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// diagnoseTLS tells a TLS mistake from an unreachable server when New's
// first discovery failed: gRPC reports both as UNAVAILABLE, and a client
// certificate the server refuses as a broken pipe. It opens one TLS
// connection to each seed, completes the handshake and waits for the
// server's first bytes (HTTP/2 sends SETTINGS at once; a server that
// refuses the client's certificate sends an alert instead). It returns an
// error matching ErrTLS naming the problem, or nil if no seed showed one.
func diagnoseTLS(ctx context.Context, seeds []string, cfg *tls.Config) error {
	for _, addr := range seeds {
		if err := probeTLS(ctx, addr, cfg); err != nil {
			return err
		}
	}
	return nil
}

func probeTLS(ctx context.Context, addr string, cfg *tls.Config) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil // unreachable, not a TLS problem
	}
	defer raw.Close()
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"h2"}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return tlsProblem(addr, cfg, err)
	}
	deadline := time.Now().Add(time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetReadDeadline(deadline)
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return tlsProblem(addr, cfg, err)
	}
	return nil
}

// tlsProblem turns a handshake or first-read error into an ErrTLS error
// naming what is wrong, or nil when err is not a TLS failure.
func tlsProblem(addr string, cfg *tls.Config, err error) error {
	var verr *tls.CertificateVerificationError
	var alert *net.OpError // crypto/tls reports an alert from the peer as a "remote error"
	switch {
	case errors.As(err, &verr):
		return fmt.Errorf("%w: the certificate of server %s is not trusted (is the CA file the one that signed the servers' certificates?): %v", ErrTLS, addr, err)
	case errors.As(err, &alert) && alert.Op == "remote error":
		what := "the client certificate"
		if len(cfg.Certificates) == 0 && cfg.GetClientCertificate == nil {
			what = "a connection without a client certificate (WithTLSFiles gave none)"
		}
		return fmt.Errorf("%w: server %s refused %s (is it signed by the CA the servers trust?): %v", ErrTLS, addr, what, err)
	}
	return nil
}
