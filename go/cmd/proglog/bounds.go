package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
)

func newBoundsCmd(stdout io.Writer) *cobra.Command {
	return newQueryCmd("bounds", "Print the log's readable offsets, [lowest, next), as the leader sees them",
		"  proglog bounds --dev ./proglog-data --json",
		func(ctx context.Context, c *client.Client, asJSON bool) error {
			b, err := c.Bounds(ctx)
			if err != nil {
				return err
			}
			if asJSON {
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
		})
}
