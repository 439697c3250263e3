package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print records from an offset on",
		Long: "consume prints the value of every record from --from to the end of the log, one per line.\n" +
			"With --follow it then waits for new records until interrupted; without it, a --from past the\n" +
			"end is an error that gives the partition's offsets. With --json each record is a\n" +
			"JSON object: offset, value (a string; value_base64 instead when it is not UTF-8), key\n" +
			"(likewise), timestamp (RFC 3339) and headers. --topic and --partition choose the partition\n" +
			"read (default: partition 0 of the topic \"log\").",
		Example: "  proglog consume --dev ./proglog-data --from 10\n" +
			"  proglog consume --dev ./proglog-data --follow --json\n" +
			"  proglog consume --dev ./proglog-data --topic orders --partition 3 --from 0",
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := opts.connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
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
			for rec, err := range part.Records(ctx, from, ropts...) {
				if err != nil {
					if follow && ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
				if err := printRecord(out, rec, opts.json); err != nil {
					return err
				}
				if follow {
					if err := out.Flush(); err != nil {
						return err
					}
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

// jsonRecord is the --json form of a record.
type jsonRecord struct {
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

func printRecord(w io.Writer, rec *client.Record, asJSON bool) error {
	if !asJSON {
		_, err := fmt.Fprintf(w, "%s\n", rec.Value)
		return err
	}
	j := jsonRecord{Offset: rec.Offset}
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
