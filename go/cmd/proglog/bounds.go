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
	var (
		topic     string
		partition uint32
	)
	cmd := newQueryCmd("bounds", "Print a partition's readable offsets, [lowest, next), as its leader sees them",
		"  proglog bounds --dev ./proglog-data --json\n  proglog bounds --dev ./proglog-data --topic orders --partition 3",
		func(ctx context.Context, c *client.Client, asJSON bool) error {
			b, err := c.Topic(topic).Partition(partition).Bounds(ctx)
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
	cmd.Flags().StringVar(&topic, "topic", client.DefaultTopic, "topic of the partition")
	cmd.Flags().Uint32Var(&partition, "partition", 0, "partition of the topic")
	return cmd
}
