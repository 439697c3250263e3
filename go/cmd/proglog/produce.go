package main

import (
	"bufio"
	"bytes"
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
		key   string
		batch int
	)
	cmd := &cobra.Command{
		Use:   "produce [VALUE...]",
		Short: "Append records: the arguments, or else one per line of standard input",
		Long: "produce appends one record per argument or, without arguments, one per line of standard input\n" +
			"(without its line ending), and prints each record's offset on a line of its own.\n" +
			"With --batch N, records are sent N at a time; each batch is written atomically.",
		Example: "  proglog produce --dev ./proglog-data hello world\n" +
			"  seq 100 | proglog produce --dev ./proglog-data --batch 50 --key numbers",
		PreRunE: func(cmd *cobra.Command, _ []string) error { return clientEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return fmt.Errorf("--batch is %d, must be at least 1", batch)
			}
			c, err := opts.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			p := &producer{c: c, cmd: cmd, out: bufio.NewWriter(stdout), json: opts.json, batch: batch}
			if key != "" {
				p.key = []byte(key)
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
	if len(p.pending) == 1 {
		first, err = p.c.Produce(ctx, p.pending[0])
	} else {
		first, err = p.c.ProduceBatch(ctx, p.pending)
	}
	if err != nil {
		return err
	}
	for i := range p.pending {
		off := first + uint64(i)
		if p.json {
			b, _ := json.Marshal(struct {
				Offset uint64 `json:"offset"`
			}{off})
			fmt.Fprintf(p.out, "%s\n", b)
		} else {
			fmt.Fprintln(p.out, off)
		}
	}
	p.pending = p.pending[:0]
	// Show progress as it happens when reading a pipe.
	return p.out.Flush()
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
