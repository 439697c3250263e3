package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/proglog/proglog/go/certs"
)

func newCertsCmd(stdout io.Writer) *cobra.Command {
	var (
		dir   string
		hosts []string
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create a development CA, server and client (root, nobody) certificates",
		Long: "certs writes ca.pem, ca-key.pem, server.pem, server-key.pem and NAME.pem/NAME-key.pem for the\n" +
			"clients root and nobody into --dir, keeping files that are still valid. The server certificate\n" +
			"covers localhost, 127.0.0.1, ::1 and --hosts. For development and tests only.",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd.Flags()) },
		RunE: func(*cobra.Command, []string) error {
			files, err := certs.EnsureDev(dir, hosts)
			if err != nil {
				return err
			}
			printDevFiles(stdout, files)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "./proglog-certs", "directory to write the certificates into")
	cmd.Flags().StringSliceVar(&hosts, "hosts", nil, "extra DNS names or IPs for the server certificate (comma-separated)")
	return cmd
}

func printDevFiles(w io.Writer, f certs.DevFiles) {
	fmt.Fprintf(w, "dev certificates in %s\n", f.Dir)
	fmt.Fprintf(w, "  CA:     %s\n", f.CACert)
	fmt.Fprintf(w, "  server: %s %s\n", f.ServerCert, f.ServerKey)
	for _, name := range certs.DevClients {
		fmt.Fprintf(w, "  client %-7s %s %s\n", name+":", f.ClientCert(name), f.ClientKey(name))
	}
}
