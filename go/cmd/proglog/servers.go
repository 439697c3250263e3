package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newServersCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	cmd := &cobra.Command{
		Use:     "servers",
		Short:   "List the servers of the cluster and which one leads",
		Example: "  proglog servers --dev ./proglog-data --json",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			servers, err := c.Servers(cmd.Context())
			if err != nil {
				return err
			}
			if opts.json {
				for _, s := range servers {
					b, err := json.Marshal(struct {
						ID       string `json:"id"`
						RPCAddr  string `json:"rpc_addr"`
						IsLeader bool   `json:"is_leader"`
					}{s.ID, s.RPCAddr, s.IsLeader})
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%s\n", b)
				}
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tADDRESS\tROLE")
			for _, s := range servers {
				role := "follower"
				if s.IsLeader {
					role = "leader"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.RPCAddr, role)
			}
			return tw.Flush()
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}
