package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
)

func newGroupsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "List and describe consumer groups",
		Long: "groups shows the cluster's consumer groups: list, describe. Each subcommand takes the client\n" +
			"flags of produce and consume (--addr, --dev, --tls-*).",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newGroupsListCmd(stdout), newGroupsDescribeCmd(stdout))
	return cmd
}

func newGroupsListCmd(stdout io.Writer) *cobra.Command {
	return newQueryCmd("list", "List the consumer groups (those with members or committed offsets)",
		"  proglog groups list --dev ./proglog-data",
		func(ctx context.Context, c *client.Client, asJSON bool) error {
			groups, err := c.ListGroups(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				for _, g := range groups {
					if err := writeJSON(stdout, groupListJSON{Group: g.Group, Generation: g.Generation, Members: g.Members}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tGENERATION\tMEMBERS")
			for _, g := range groups {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", g.Group, g.Generation, g.Members)
			}
			return tw.Flush()
		})
}

// groupListJSON is a group in groups list --json.
type groupListJSON struct {
	Group      string `json:"group"`
	Generation uint64 `json:"generation"`
	Members    int    `json:"members"`
}

// groupJSON is groups describe --json.
type groupJSON struct {
	Group      string          `json:"group"`
	Generation uint64          `json:"generation"`
	Members    []memberJSON    `json:"members"`
	Partitions []groupPartJSON `json:"partitions"`
}

type memberJSON struct {
	MemberID       string   `json:"member_id"`
	ClientID       string   `json:"client_id"`
	Topics         []string `json:"topics"`
	SessionTimeout string   `json:"session_timeout"`
	Generation     uint64   `json:"generation"`
	Owned          []string `json:"owned"`
	Target         []string `json:"target"`
}

// groupPartJSON is one partition of a group's topics: its owner (empty:
// none), committed offset and lag (null when nothing is committed), and
// end (the partition's next offset).
type groupPartJSON struct {
	Topic     string  `json:"topic"`
	Partition uint32  `json:"partition"`
	Owner     string  `json:"owner"`
	Committed *uint64 `json:"committed"`
	End       uint64  `json:"end"`
	Lag       *uint64 `json:"lag"`
}

func newGroupsDescribeCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Describe a consumer group: members, their partitions, committed offsets and lag",
		Long: "describe prints a group's members (subscriptions, the generation each acknowledged, the\n" +
			"partitions each owns) and, for every partition of the topics the group subscribes to or has\n" +
			"committed offsets of: its owner, the committed offset (the next record the group has to\n" +
			"process), the partition's end (its next offset, asked of its leader) and the lag, end minus\n" +
			"committed (\"-\" when nothing is committed). With --json one object.",
		Example: "  proglog groups describe billing --dev ./proglog-data --json",
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := opts.connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := describeGroup(ctx, c, args[0])
			if err != nil {
				return err
			}
			if opts.json {
				return writeJSON(stdout, j)
			}
			return printGroup(stdout, j)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

// describeGroup gathers group's description and each partition's end.
func describeGroup(ctx context.Context, c *client.Client, group string) (groupJSON, error) {
	info, err := c.DescribeGroup(ctx, group)
	if err != nil {
		return groupJSON{}, err
	}
	j := groupJSON{Group: info.Group, Generation: info.Generation, Members: []memberJSON{}, Partitions: []groupPartJSON{}}
	owner := map[client.TopicPartition]string{}
	topics := map[string]bool{}
	for _, m := range info.Members {
		j.Members = append(j.Members, memberJSON{MemberID: m.MemberID, ClientID: m.ClientID, Topics: m.Topics,
			SessionTimeout: m.SessionTimeout.String(), Generation: m.Generation, Owned: tpNames(m.Owned), Target: tpNames(m.Target)})
		for _, tp := range m.Owned {
			owner[tp] = m.MemberID
		}
		for _, t := range m.Topics {
			topics[t] = true
		}
	}
	committed := map[client.TopicPartition]uint64{}
	for _, o := range info.Offsets {
		if o.Committed {
			committed[o.TopicPartition] = o.Offset
			topics[o.Topic] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		t, err := c.Describe(ctx, name)
		if errors.Is(err, client.ErrUnknownTopic) {
			continue // deleted meanwhile
		}
		if err != nil {
			return groupJSON{}, err
		}
		for _, p := range t.Partitions {
			tp := client.TopicPartition{Topic: name, Partition: p.Partition}
			b, err := c.Topic(name).Partition(p.Partition).Bounds(ctx)
			if err != nil {
				return groupJSON{}, fmt.Errorf("bounds of %s/%d: %w", name, p.Partition, err)
			}
			pj := groupPartJSON{Topic: name, Partition: p.Partition, Owner: owner[tp], End: b.Next}
			if off, ok := committed[tp]; ok {
				lag := b.Next - min(off, b.Next)
				pj.Committed, pj.Lag = &off, &lag
			}
			j.Partitions = append(j.Partitions, pj)
		}
	}
	return j, nil
}

func tpNames(tps []client.TopicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
	}
	return out
}

// printGroup prints a group as two tables: members, partitions.
func printGroup(w io.Writer, j groupJSON) error {
	fmt.Fprintf(w, "group %s: generation %d, %d members\n", j.Group, j.Generation, len(j.Members))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tCLIENT\tGENERATION\tSESSION\tTOPICS\tOWNED")
	for _, m := range j.Members {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", m.MemberID, dash(m.ClientID), m.Generation, m.SessionTimeout,
			strings.Join(m.Topics, ","), dash(strings.Join(m.Owned, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOWNER\tCOMMITTED\tEND\tLAG")
	for _, p := range j.Partitions {
		committed, lag := "-", "-"
		if p.Committed != nil {
			committed, lag = fmt.Sprint(*p.Committed), fmt.Sprint(*p.Lag)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", p.Topic, p.Partition, dash(p.Owner), committed, p.End, lag)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
