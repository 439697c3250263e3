package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/proglog/proglog/go/certs"
)

func newCertsCmd(stdout io.Writer) *cobra.Command {
	var (
		dir     string
		hosts   []string
		nodes   []string
		clients []string
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create a development CA, node certificates (one per --node) and client certificates (root, nobody, one per --client)",
		Long: "certs writes ca.pem, ca-key.pem, NODE.pem/NODE-key.pem for each --node, server.pem, server-key.pem and\n" +
			"NAME.pem/NAME-key.pem for the clients root, nobody and each --client into --dir, keeping files that are\n" +
			"still valid. A client certificate's common name is NAME: the subject ACL rules name (acls create\n" +
			"--subject NAME); root is allowed everything by the default policy, nobody and the others nothing until\n" +
			"a rule allows them.\n" +
			"A node certificate names its node (URI SAN spiffe://proglog/node/NODE), has the serverAuth and\n" +
			"clientAuth usages and covers localhost, 127.0.0.1, ::1 and --hosts: give each node its own\n" +
			"(serve --node-name NODE --tls-cert NODE.pem --tls-key NODE-key.pem). server.pem names no node: it is\n" +
			"for gRPC-only tools and tests, and a node refuses to start with it. For development and tests only.",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd.Flags()) },
		RunE: func(*cobra.Command, []string) error {
			for _, c := range clients {
				if slices.Contains(nodes, c) {
					return fmt.Errorf("%q is both a --node and a --client: they would share %s.pem", c, c)
				}
			}
			files, err := certs.EnsureDev(dir, hosts, nodes...)
			if err != nil {
				return err
			}
			if _, err := certs.EnsureDevClients(dir, clients...); err != nil {
				return err
			}
			printDevFiles(stdout, files, nodes, clients)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "./proglog-certs", "directory to write the certificates into")
	cmd.Flags().StringSliceVar(&hosts, "hosts", nil, "extra DNS names or IPs for the node and server certificates (comma-separated)")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "node name to issue a node certificate for (repeat or comma-separate for several)")
	cmd.Flags().StringSliceVar(&clients, "client", nil, "subject to issue a client certificate NAME.pem for, besides root and nobody (repeat or comma-separate for several)")
	return cmd
}

func printDevFiles(w io.Writer, f certs.DevFiles, nodes, clients []string) {
	fmt.Fprintf(w, "dev certificates in %s\n", f.Dir)
	fmt.Fprintf(w, "  CA:     %s\n", f.CACert)
	for _, name := range nodes {
		fmt.Fprintf(w, "  node %-9s %s %s\n", name+":", f.NodeCert(name), f.NodeKey(name))
	}
	fmt.Fprintf(w, "  server: %s %s (names no node)\n", f.ServerCert, f.ServerKey)
	names := slices.Clone(certs.DevClients)
	for _, c := range clients {
		if !slices.Contains(names, c) {
			names = append(names, c)
		}
	}
	for _, name := range names {
		fmt.Fprintf(w, "  client %-7s %s %s\n", name+":", f.ClientCert(name), f.ClientKey(name))
	}
}
