package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

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
// none), committed offset (null when nothing is committed), end (the
// partition's next offset; null when it could not be read) and lag (null
// without both).
type groupPartJSON struct {
	Topic     string  `json:"topic"`
	Partition uint32  `json:"partition"`
	Owner     string  `json:"owner"`
	Committed *uint64 `json:"committed"`
	End       *uint64 `json:"end"`
	Lag       *uint64 `json:"lag"`
}

// Reading the partitions' ends in groups describe: at most
// endsInParallel at once, each waiting at most endWait (and --timeout).
const (
	endsInParallel = 16
	endWait        = 5 * time.Second
)

func newGroupsDescribeCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Describe a consumer group: members, their partitions, committed offsets and lag",
		Long: "describe prints a group's members (subscriptions, the generation each acknowledged, the\n" +
			"partitions each owns) and, for every partition of the topics the group subscribes to or has\n" +
			"committed offsets of: its owner, the committed offset (the next record the group has to\n" +
			"process), the partition's end (its next offset, asked of its leader) and the lag, end minus\n" +
			"committed (\"-\" when nothing is committed). The ends are read in parallel, each for at most\n" +
			"5s (or --timeout): a partition whose end cannot be read (no leader, or no \"consume\" permission\n" +
			"on its topic: LAG needs it) shows END and LAG \"-\" and a warning on standard error. With --json\n" +
			"one object (end and lag null where unknown).",
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
			j, err := describeGroup(ctx, c, args[0], min(opts.timeout, endWait), cmd.ErrOrStderr())
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

// describeGroup gathers group's description and each partition's end,
// read in parallel and each waited for at most wait; the partitions whose
// end could not be read are warned of on stderr.
func describeGroup(ctx context.Context, c *client.Client, group string, wait time.Duration, stderr io.Writer) (groupJSON, error) {
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
			pj := groupPartJSON{Topic: name, Partition: p.Partition, Owner: owner[tp]}
			if off, ok := committed[tp]; ok {
				pj.Committed = &off
			}
			j.Partitions = append(j.Partitions, pj)
		}
	}
	errs := make([]error, len(j.Partitions))
	sem := make(chan struct{}, endsInParallel)
	var wg sync.WaitGroup
	for i := range j.Partitions {
		pj := &j.Partitions[i]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			wctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			b, err := c.Topic(pj.Topic).Partition(pj.Partition).Bounds(wctx)
			if err != nil {
				errs[i] = err
				return
			}
			end := b.Next
			pj.End = &end
			if pj.Committed != nil {
				lag := end - min(*pj.Committed, end)
				pj.Lag = &lag
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return groupJSON{}, err
	}
	for i, err := range errs {
		if err != nil {
			fmt.Fprintf(stderr, "proglog: warning: end of %s/%d unknown (END and LAG shown as -): %s\n",
				j.Partitions[i].Topic, j.Partitions[i].Partition, strings.TrimPrefix(err.Error(), "proglog: "))
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
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, dash(p.Owner), orDash(p.Committed), orDash(p.End), orDash(p.Lag))
	}
	return tw.Flush()
}

// orDash is *n, or "-" for nil.
func orDash(n *uint64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
