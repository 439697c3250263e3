package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
)

func newTopicsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Create, list, describe and delete topics",
		Long: "topics manages the cluster's topics: create, list, describe, delete. Each subcommand takes\n" +
			"the client flags of produce and consume (--addr, --dev, --tls-*).",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTopicsCreateCmd(stdout), newTopicsListCmd(stdout), newTopicsDescribeCmd(stdout), newTopicsDeleteCmd(stdout))
	return cmd
}

// newTopicCmd makes a topics subcommand taking the topic's name: it
// connects with the client flags and runs run.
func newTopicCmd(use, short, example string, opts *clientOptions, run func(ctx context.Context, c *client.Client, name string) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return run(cmd.Context(), c, args[0])
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func newTopicsCreateCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	var cfg client.TopicConfig
	cmd := newTopicCmd("create NAME", "Create a topic",
		"  proglog topics create orders --partitions 12 --dev ./proglog-data",
		opts, func(ctx context.Context, c *client.Client, name string) error {
			info, err := c.CreateTopic(ctx, name, cfg)
			if err != nil {
				return err
			}
			return printTopic(stdout, info, opts.json)
		})
	fs := cmd.Flags()
	fs.IntVar(&cfg.Partitions, "partitions", 0, "number of partitions (0: the servers' default, 1)")
	fs.IntVar(&cfg.ReplicationFactor, "replicas", 0, "replicas of each partition (0: the servers' default, the smaller of 3 and the number of servers)")
	fs.Uint64Var(&cfg.RetentionBytes, "retention-bytes", 0, "keep at most this many bytes of records per partition (0: no bound)")
	fs.DurationVar(&cfg.RetentionAge, "retention-age", 0, "remove records older than this (0: no bound)")
	return cmd
}

func newTopicsListCmd(stdout io.Writer) *cobra.Command {
	return newQueryCmd("list", "List the topics",
		"  proglog topics list --dev ./proglog-data",
		func(ctx context.Context, c *client.Client, asJSON bool) error {
			topics, err := c.Topics(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				for _, t := range topics {
					if err := writeJSON(stdout, topicJSON(t)); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS\tRETENTION")
			for _, t := range topics {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", t.Name, len(t.Partitions), t.Config.ReplicationFactor, retention(t.Config))
			}
			return tw.Flush()
		})
}

func newTopicsDescribeCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	return newTopicCmd("describe NAME", "Describe a topic's partitions: replicas and leaders",
		"  proglog topics describe orders --dev ./proglog-data --json",
		opts, func(ctx context.Context, c *client.Client, name string) error {
			info, err := c.Describe(ctx, name)
			if err != nil {
				return err
			}
			return printTopic(stdout, info, opts.json)
		})
}

func newTopicsDeleteCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	return newTopicCmd("delete NAME", "Delete a topic and its records",
		"  proglog topics delete orders --dev ./proglog-data",
		opts, func(ctx context.Context, c *client.Client, name string) error {
			if err := c.DeleteTopic(ctx, name); err != nil {
				return err
			}
			if opts.json {
				return writeJSON(stdout, struct {
					Deleted string `json:"deleted"`
				}{name})
			}
			_, err := fmt.Fprintf(stdout, "deleted topic %s\n", name)
			return err
		})
}

// topicListJSON is a topic in topics list --json.
type topicListJSON struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	RetentionBytes    uint64 `json:"retention_bytes,omitempty"`
	RetentionAge      string `json:"retention_age,omitempty"`
}

func topicJSON(t client.TopicInfo) topicListJSON {
	j := topicListJSON{Name: t.Name, Partitions: len(t.Partitions), ReplicationFactor: t.Config.ReplicationFactor, RetentionBytes: t.Config.RetentionBytes}
	if t.Config.RetentionAge > 0 {
		j.RetentionAge = t.Config.RetentionAge.String()
	}
	return j
}

// partitionJSON is a partition in topics describe --json (and create
// --json): leader and replicas by node ID, with their addresses and
// states, the replicas in sync, and whether fewer are than should be.
// Leader is empty unless LeaderState is leaderElected; StaleLeader is
// the leader the metadata still records when it is not shown.
type partitionJSON struct {
	Topic           string   `json:"topic"`
	Partition       uint32   `json:"partition"`
	Leader          string   `json:"leader"`
	LeaderAddr      string   `json:"leader_addr"`
	LeaderState     string   `json:"leader_state"`
	StaleLeader     string   `json:"stale_leader,omitempty"`
	Replicas        []string `json:"replicas"`
	ReplicaAddrs    []string `json:"replica_addrs"`
	Epoch           uint64   `json:"epoch"`
	ReplicaStates   []string `json:"replica_states"`
	InSync          []string `json:"in_sync"`
	UnderReplicated bool     `json:"under_replicated"`
}

func retention(cfg client.TopicConfig) string {
	var parts []string
	if cfg.RetentionBytes > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes", cfg.RetentionBytes))
	}
	if cfg.RetentionAge > 0 {
		parts = append(parts, cfg.RetentionAge.String())
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// The leader_state of a partition in topics describe --json.
const (
	leaderElected    = "elected"        // a leader, on a server not known to be down
	leaderNone       = "none"           // no leader known: an election
	leaderFailed     = "leader_failed"  // the recorded leader's server failed
	leaderLeaving    = "leader_leaving" // the recorded leader's server is leaving
	leaderNoMajority = "no_majority"    // fewer replicas in sync than a majority: none can lead
)

// partitionLeader is the leader topics describe shows for p: its ID and
// address, empty unless state is leaderElected. The metadata keeps the
// last leader a partition reported until another is elected, so a leader
// whose server failed or is leaving, or one of a partition with fewer
// replicas in sync than a majority (it cannot commit, and steps down), is
// not shown; why says which.
func partitionLeader(p client.PartitionInfo) (id, addr, state, why string) {
	for _, r := range p.Replicas {
		if r.ID != p.LeaderID {
			continue
		}
		switch r.State {
		case client.ServerFailed:
			return "", "", leaderFailed, fmt.Sprintf("no leader (%s failed)", r.ID)
		case client.ServerLeaving:
			return "", "", leaderLeaving, fmt.Sprintf("no leader (%s leaving)", r.ID)
		}
	}
	switch {
	case len(p.InSync) < len(p.Replicas)/2+1:
		return "", "", leaderNoMajority, fmt.Sprintf("no leader (%d of %d replicas in sync)", len(p.InSync), len(p.Replicas))
	case p.LeaderID == "":
		return "", "", leaderNone, "no leader (an election)"
	}
	return p.LeaderID, p.Leader, leaderElected, ""
}

// printTopic prints a topic's partitions: with asJSON one object per
// partition per line, otherwise a header line and a table.
func printTopic(w io.Writer, t client.TopicInfo, asJSON bool) error {
	rf := t.Config.ReplicationFactor
	if asJSON {
		for _, p := range t.Partitions {
			id, addr, state, _ := partitionLeader(p)
			j := partitionJSON{Topic: t.Name, Partition: p.Partition, Leader: id, LeaderAddr: addr, LeaderState: state, Epoch: p.Epoch,
				Replicas: []string{}, ReplicaAddrs: []string{}, ReplicaStates: []string{}, InSync: []string{}, UnderReplicated: p.UnderReplicated(rf)}
			if state != leaderElected {
				j.StaleLeader = p.LeaderID
			}
			for _, r := range p.Replicas {
				j.Replicas = append(j.Replicas, r.ID)
				j.ReplicaAddrs = append(j.ReplicaAddrs, r.RPCAddr)
				j.ReplicaStates = append(j.ReplicaStates, r.State.String())
			}
			j.InSync = append(j.InSync, p.InSync...)
			if err := writeJSON(w, j); err != nil {
				return err
			}
		}
		return nil
	}
	under, leaderless := 0, 0
	for _, p := range t.Partitions {
		if p.UnderReplicated(rf) {
			under++
		}
		if _, _, state, _ := partitionLeader(p); state != leaderElected {
			leaderless++
		}
	}
	var warn string
	if under > 0 {
		warn = fmt.Sprintf(", %d under-replicated", under)
	}
	if leaderless > 0 {
		warn += fmt.Sprintf(", %d without a leader", leaderless)
	}
	fmt.Fprintf(w, "topic %s: %s, %s, retention %s%s\n", t.Name, plural(len(t.Partitions), "partition"), plural(rf, "replica"), retention(t.Config), warn)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tIN-SYNC\tSTATUS")
	for _, p := range t.Partitions {
		leader, _, _, why := partitionLeader(p)
		if leader == "" {
			leader = "-"
		}
		ids := make([]string, len(p.Replicas))
		for i, r := range p.Replicas {
			ids[i] = r.ID
		}
		inSync, status := strings.Join(p.InSync, ","), "ok"
		if inSync == "" {
			inSync = "-"
		}
		switch {
		case why != "":
			status = why
		case p.UnderReplicated(rf):
			status = "under-replicated"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.Partition, leader, strings.Join(ids, ","), inSync, status)
	}
	return tw.Flush()
}

// plural is n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
