package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
)

func newProduceCmd(stdout io.Writer) *cobra.Command {
	opts := defaultClientOptions()
	var (
		key       string
		batch     int
		topic     string
		partition int
	)
	cmd := &cobra.Command{
		Use:   "produce [VALUE...]",
		Short: "Append records: the arguments, or else one per line of standard input",
		Long: "produce appends one record per argument or, without arguments, one per line of standard input\n" +
			"(without its line ending), and prints each record's offset on a line of its own.\n" +
			"With --batch N, records are sent N at a time; each batch is written atomically.\n" +
			"Records go to partition 0 of the topic \"log\" unless --topic or --partition is given: then a\n" +
			"record goes to --partition, or else to the partition of its --key (Kafka's default\n" +
			"partitioner), or else to one partition the client picks; each line printed is then the\n" +
			"record's partition and offset.",
		Example: "  proglog produce --dev ./proglog-data hello world\n" +
			"  seq 100 | proglog produce --dev ./proglog-data --batch 50 --key numbers\n" +
			"  proglog produce --dev ./proglog-data --topic orders --key customer-42 '{\"total\": 12}'",
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return fmt.Errorf("--batch is %d, must be at least 1", batch)
			}
			if partition < -1 {
				return fmt.Errorf("--partition is %d, must be a partition number (0 or more)", partition)
			}
			c, err := opts.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			p := &producer{c: c, cmd: cmd, out: bufio.NewWriter(stdout), json: opts.json, batch: batch, partition: partition}
			if key != "" {
				p.key = []byte(key)
			}
			if cmd.Flags().Changed("topic") || partition >= 0 {
				p.topic = c.Topic(topic)
			}
			defer p.out.Flush()
			if len(args) > 0 {
				for _, a := range args {
					if err := p.add([]byte(a)); err != nil {
						return err
					}
				}
				return p.flush()
			}
			return p.fromLines(cmd.InOrStdin())
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&key, "key", "", "key of every record produced")
	cmd.Flags().IntVar(&batch, "batch", 1, "records per ProduceBatch call")
	cmd.Flags().StringVar(&topic, "topic", client.DefaultTopic, "topic to produce to")
	cmd.Flags().IntVar(&partition, "partition", -1, "partition to produce to (-1: by --key, or one the client picks)")
	return cmd
}

type producer struct {
	c       *client.Client
	cmd     *cobra.Command
	out     *bufio.Writer
	json    bool
	key     []byte
	batch   int
	pending []*client.Record
	// topic, when set, is where records go (--topic or --partition given),
	// to partition (-1: by key, or the topic's sticky partition); the
	// output then names each record's partition.
	topic     *client.Topic
	partition int
}

func (p *producer) add(value []byte) error {
	p.pending = append(p.pending, &client.Record{Value: value, Key: p.key})
	if len(p.pending) >= p.batch {
		return p.flush()
	}
	return nil
}

// flush sends the pending records and prints their offsets.
func (p *producer) flush() error {
	if len(p.pending) == 0 {
		return nil
	}
	ctx := p.cmd.Context()
	var first uint64
	var err error
	var part *client.Partition
	switch {
	case p.topic == nil && len(p.pending) == 1:
		first, err = p.c.Produce(ctx, p.pending[0])
	case p.topic == nil:
		first, err = p.c.ProduceBatch(ctx, p.pending)
	default:
		if part, err = p.target(ctx); err != nil {
			return err
		}
		if len(p.pending) == 1 {
			first, err = part.Produce(ctx, p.pending[0])
		} else {
			first, err = part.ProduceBatch(ctx, p.pending)
		}
	}
	if err != nil {
		return err
	}
	for i := range p.pending {
		off := first + uint64(i)
		switch {
		case part != nil && p.json:
			b, _ := json.Marshal(struct {
				Partition uint32 `json:"partition"`
				Offset    uint64 `json:"offset"`
			}{part.ID(), off})
			fmt.Fprintf(p.out, "%s\n", b)
		case part != nil:
			fmt.Fprintln(p.out, part.ID(), off)
		case p.json:
			b, _ := json.Marshal(struct {
				Offset uint64 `json:"offset"`
			}{off})
			fmt.Fprintf(p.out, "%s\n", b)
		default:
			fmt.Fprintln(p.out, off)
		}
	}
	p.pending = p.pending[:0]
	// Show progress as it happens when reading a pipe.
	return p.out.Flush()
}

// target returns the partition the pending records go to: --partition,
// or the partition of the key (the same for every record), or the
// topic's sticky one.
func (p *producer) target(ctx context.Context) (*client.Partition, error) {
	if p.partition >= 0 {
		return p.topic.Partition(uint32(p.partition)), nil
	}
	n, err := p.topic.PartitionFor(ctx, p.key)
	if err != nil {
		return nil, err
	}
	return p.topic.Partition(n), nil
}

// fromLines produces each line of r.
func (p *producer) fromLines(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			if err := p.add(bytes.Clone(line)); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return p.flush()
		}
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
	}
}
