package clienttest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/proglog/proglog/go/certs"
)

// serverTLS requires a client certificate signed by the development CA,
// as proglog servers do.
func serverTLS(files certs.DevFiles) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(files.ServerCert, files.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	caPEM, err := os.ReadFile(files.CACert)
	if err != nil {
		return nil, fmt.Errorf("clienttest: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("clienttest: no certificate in %s", files.CACert)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}
