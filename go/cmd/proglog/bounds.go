package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newBoundsCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	cmd := &cobra.Command{
		Use:     "bounds",
		Short:   "Print the log's readable offsets, [lowest, next), as the leader sees them",
		Example: "  proglog bounds --dev ./proglog-data --json",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			b, err := c.Bounds(cmd.Context())
			if err != nil {
				return err
			}
			if opts.json {
				out, err := json.Marshal(struct {
					Lowest uint64 `json:"lowest"`
					Next   uint64 `json:"next"`
				}{b.Lowest, b.Next})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\n", out)
				return nil
			}
			fmt.Fprintf(stdout, "lowest %d\nnext %d\n", b.Lowest, b.Next)
			return nil
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}
