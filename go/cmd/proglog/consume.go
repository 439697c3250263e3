package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
)

func newConsumeCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	var (
		from      uint64
		follow    bool
		topic     string
		partition uint32
		group     string
		max       int
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print records from an offset on",
		Long: "consume prints the value of every record from --from to the end of the log, one per line.\n" +
			"With --follow it then waits for new records until interrupted; without it, a --from past the\n" +
			"end is an error that gives the partition's offsets. With --json each record is a\n" +
			"JSON object: offset, value (a string; value_base64 instead when it is not UTF-8), key\n" +
			"(likewise), timestamp (RFC 3339) and headers. --topic and --partition choose the partition\n" +
			"read (default: partition 0 of the topic \"log\"). --max N stops after N records.\n\n" +
			"With --group G it joins the consumer group G instead, reads the partitions of --topic the\n" +
			"group assigns it from the group's committed offsets (from the oldest record where nothing is\n" +
			"committed) until each is at its end (with --follow: until interrupted) or --max records,\n" +
			"then commits the position after the last record printed and leaves the group, so the\n" +
			"next run continues there. With --json a group's records also carry topic and partition.\n" +
			"A run that read nothing and owned fewer partitions than the topic has warns on standard\n" +
			"error which members own the others (one stopped without leaving keeps them until its\n" +
			"session ends) and exits 0.",
		Example: "  proglog consume --dev ./proglog-data --from 10\n" +
			"  proglog consume --dev ./proglog-data --follow --json\n" +
			"  proglog consume --dev ./proglog-data --topic orders --partition 3 --from 0\n" +
			"  proglog consume --dev ./proglog-data --topic orders --group billing --max 100",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if max < 0 {
				return fmt.Errorf("--max is %d, must not be negative", max)
			}
			if group != "" && (cmd.Flags().Changed("partition") || cmd.Flags().Changed("from")) {
				return errors.New("--group reads the partitions the group assigns from its committed offsets: --partition and --from do not apply")
			}
			c, err := opts.connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if group != "" {
				return consumeGroup(ctx, c, stdout, cmd.ErrOrStderr(), group, topic, max, follow, opts)
			}
			part := c.Topic(topic).Partition(partition)
			var ropts []client.RecordsOption
			if !follow {
				if err := checkFrom(ctx, part, topic, from); err != nil {
					return err
				}
				ropts = append(ropts, client.StopAtEnd()) // the end of the log now
			}
			out := bufio.NewWriter(stdout)
			defer out.Flush()
			n := 0
			for rec, err := range part.Records(ctx, from, ropts...) {
				if err != nil {
					if follow && ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
				if err := printRecord(out, rec, opts.json, nil); err != nil {
					return err
				}
				if follow {
					if err := out.Flush(); err != nil {
						return err
					}
				}
				if n++; n == max {
					break
				}
			}
			return nil
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.Flags().Uint64Var(&from, "from", 0, "offset of the first record")
	cmd.Flags().BoolVar(&follow, "follow", false, "after the last record, wait for new ones until interrupted")
	cmd.Flags().StringVar(&topic, "topic", client.DefaultTopic, "topic to read")
	cmd.Flags().Uint32Var(&partition, "partition", 0, "partition of the topic to read")
	cmd.Flags().StringVar(&group, "group", "", "read as a member of this consumer group, from its committed offsets, and commit")
	cmd.Flags().IntVar(&max, "max", 0, "stop after this many records (0: no limit)")
	return cmd
}

// checkFrom refuses a --from past the end of the partition, which
// without --follow would print nothing and look like success: the error
// gives the partition's bounds. (With --follow, waiting for the offset
// is what was asked.)
func checkFrom(ctx context.Context, part *client.Partition, topic string, from uint64) error {
	b, err := part.Bounds(ctx)
	if err != nil {
		return err
	}
	if from <= b.Next {
		return nil
	}
	holds := fmt.Sprintf("holds offsets %d to %d", b.Lowest, b.Next-1)
	if b.Lowest >= b.Next {
		holds = "holds no records"
	}
	return fmt.Errorf("--from %d is past the end of %s/%d: it %s, and the next record produced gets offset %d (add --follow to wait for offset %d)",
		from, topic, part.ID(), holds, b.Next, from)
}

// consumeGroup is consume --group: it joins group, prints up to max
// records (0: no limit) of the partitions of topic it owns until each is
// at its end (or, with follow, until ctx ends), then commits and leaves.
// A run that read nothing and owned fewer partitions than the topic has
// tells on stderr which other members own the rest.
func consumeGroup(ctx context.Context, c *client.Client, stdout, stderr io.Writer, group, topic string, max int, follow bool, opts *clientOptions) (err error) {
	copts := []client.ConsumerOption{client.WithClientID(clientID())}
	if !follow {
		copts = append(copts, client.WithStopAtEnd())
	}
	cons, err := c.Consumer(ctx, group, []string{topic}, copts...)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	defer func() {
		// Commit the position after the last record printed, and leave,
		// also when interrupted.
		ferr := out.Flush()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.timeout)
		defer cancel()
		err = errors.Join(err, ferr, cons.Close(cctx))
	}()
	for n := 0; max == 0 || n < max; n++ {
		m, err := cons.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			if n == 0 {
				warnOwnedElsewhere(ctx, c, cons, stderr, group, topic)
			}
			return nil // every partition it owns at its end
		case err != nil && follow && ctx.Err() != nil:
			return nil // interrupted
		case err != nil:
			return err
		}
		if err := printRecord(out, m.Record, opts.json, &m); err != nil {
			return err
		}
		if follow {
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// warnOwnedElsewhere tells on stderr which partitions of topic other
// members of group own, when cons owns fewer than the topic has: they
// were not read. A member that stopped without leaving keeps its
// partitions until its session ends.
func warnOwnedElsewhere(ctx context.Context, c *client.Client, cons *client.Consumer, stderr io.Writer, group, topic string) {
	n, err := c.Topic(topic).Partitions(ctx)
	if err != nil || len(cons.Assignment()) >= n {
		return
	}
	info, err := c.DescribeGroup(ctx, group)
	if err != nil {
		fmt.Fprintf(stderr, "proglog: warning: this member owned %d of the %d partitions of %s, and the group could not be described: %s\n",
			len(cons.Assignment()), n, topic, strings.TrimPrefix(err.Error(), "proglog: "))
		return
	}
	for _, m := range info.Members {
		if m.MemberID == cons.MemberID() {
			continue
		}
		var owned []string
		for _, tp := range m.Owned {
			if tp.Topic == topic {
				owned = append(owned, fmt.Sprintf("%s/%d", tp.Topic, tp.Partition))
			}
		}
		if len(owned) > 0 {
			fmt.Fprintf(stderr, "proglog: warning: %s not read: owned by member %s (%s); if it stopped without leaving, the group gives them to the others when its session ends, within %v\n",
				strings.Join(owned, ", "), m.MemberID, dash(m.ClientID), m.SessionTimeout)
		}
	}
}

// clientID names this process in DescribeGroup: host/pid.
func clientID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("proglog consume %s/%d", host, os.Getpid())
}

// jsonRecord is the --json form of a record.
type jsonRecord struct {
	// Topic and Partition are set for a group's records.
	Topic       string       `json:"topic,omitempty"`
	Partition   *uint32      `json:"partition,omitempty"`
	Offset      uint64       `json:"offset"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 *string      `json:"value_base64,omitempty"`
	Key         *string      `json:"key,omitempty"`
	KeyBase64   *string      `json:"key_base64,omitempty"`
	Timestamp   string       `json:"timestamp,omitempty"`
	Headers     []jsonHeader `json:"headers,omitempty"`
}

type jsonHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// text returns b as a string if it is UTF-8, else as base64 in the second
// result; nil both for an absent key.
func text(b []byte, always bool) (s, b64 *string) {
	if len(b) == 0 && !always {
		return nil, nil
	}
	if utf8.Valid(b) {
		v := string(b)
		return &v, nil
	}
	v := base64.StdEncoding.EncodeToString(b)
	return nil, &v
}

// printRecord prints rec; m, when not nil, is the group message it came
// in, whose topic and partition --json adds.
func printRecord(w io.Writer, rec *client.Record, asJSON bool, m *client.Message) error {
	if !asJSON {
		_, err := fmt.Fprintf(w, "%s\n", rec.Value)
		return err
	}
	j := jsonRecord{Offset: rec.Offset}
	if m != nil {
		j.Topic, j.Partition = m.Topic, &m.Partition
	}
	j.Value, j.ValueBase64 = text(rec.Value, true)
	j.Key, j.KeyBase64 = text(rec.Key, false)
	if !rec.Timestamp.IsZero() {
		j.Timestamp = rec.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	for _, h := range rec.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueBase64 = text(h.Value, true)
		j.Headers = append(j.Headers, jh)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
