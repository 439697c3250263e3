package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
)

func newServersCmd(stdout io.Writer) *cobra.Command {
	return newQueryCmd("servers", "List the servers of the cluster, which one leads, and their liveness",
		"  proglog servers --dev ./proglog-data --json",
		func(ctx context.Context, c *client.Client, asJSON bool) error {
			servers, err := c.Servers(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				for _, s := range servers {
					b, err := json.Marshal(struct {
						ID           string `json:"id"`
						RPCAddr      string `json:"rpc_addr"`
						IsLeader     bool   `json:"is_leader"`
						State        string `json:"state"`
						MetadataRole string `json:"metadata_role"`
					}{s.ID, s.RPCAddr, s.IsLeader, s.State.String(), metadataRole(s)})
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%s\n", b)
				}
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tADDRESS\tROLE\tSTATE\tMETADATA")
			for _, s := range servers {
				role := "follower"
				if s.IsLeader {
					role = "leader"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.RPCAddr, role, s.State, metadataRole(s))
			}
			return tw.Flush()
		})
}

// metadataRole is "voter" or "non-voter": s's part in the metadata group.
func metadataRole(s client.Server) string {
	if s.MetadataVoter {
		return "voter"
	}
	return "non-voter"
}
