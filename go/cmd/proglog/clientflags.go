package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/certs"
)

// clientOptions are the connection flags of produce, consume and servers.
type clientOptions struct {
	addr                   string
	tlsCA, tlsCert, tlsKey string
	dev                    string
	timeout                time.Duration
	json                   bool
}

func defaultClientOptions() *clientOptions {
	return &clientOptions{addr: "127.0.0.1:8400", timeout: client.DefaultCallTimeout}
}

func (o *clientOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.addr, "addr", o.addr, "server to connect to: host:port, or several comma-separated (the rest of the cluster is discovered)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "CA certificates that verify the servers (PEM; default: the system roots)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "client certificate (PEM); its common name is the identity the ACL checks")
	fs.StringVar(&o.tlsKey, "tls-key", "", "client private key (PEM)")
	fs.StringVar(&o.dev, "dev", "", "use the development certificates of a `serve --dev` data directory (the CA and the \"root\" client in <data-dir>/certs)")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "deadline of each call to the cluster, retries included (connecting waits at most 10s of it)")
	fs.BoolVar(&o.json, "json", false, "print JSON, one object per line")
}

// clientEnv applies PROGLOG_* variables to a client command's flags, except
// --dev, whose PROGLOG_DEV means something else to serve (a boolean).
func clientEnv(fs *pflag.FlagSet) error {
	if f := fs.Lookup("dev"); f != nil && !f.Changed {
		f.Changed = true
		defer func() { f.Changed = false }()
	}
	return applyEnv(fs)
}

// connect opens a client with the flags' TLS settings.
func (o *clientOptions) connect(ctx context.Context) (*client.Client, error) {
	ca, cert, key := o.tlsCA, o.tlsCert, o.tlsKey
	if o.dev != "" {
		if ca != "" || cert != "" || key != "" {
			return nil, errors.New("--dev and --tls-ca/--tls-cert/--tls-key are exclusive")
		}
		files := certs.DevFilesIn(filepath.Join(o.dev, "certs"))
		ca, cert, key = files.CACert, files.ClientCert("root"), files.ClientKey("root")
	}
	if cert == "" || key == "" {
		return nil, errors.New("a client certificate is required: give --tls-cert and --tls-key (and --tls-ca), or --dev <data-dir> for a dev server's certificates")
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout is %v, must be positive", o.timeout)
	}
	return client.New(ctx, o.addr, client.WithTLSFiles(ca, cert, key),
		client.WithDialTimeout(min(o.timeout, client.DefaultDialTimeout)), client.WithCallTimeout(o.timeout))
}

// newQueryCmd makes a client command without arguments: it connects with
// the client flags and runs run with the client and whether --json was
// given.
func newQueryCmd(use, short, example string, run func(ctx context.Context, c *client.Client, json bool) error) *cobra.Command {
	opts := defaultClientOptions()
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return run(cmd.Context(), c, opts.json)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}
