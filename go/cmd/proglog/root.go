package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix prefixes the environment variable of each flag.
const envPrefix = "PROGLOG_"

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	rootOpts := defaultServeOptions()
	root := &cobra.Command{
		Use:           "proglog",
		Short:         "proglog is a replicated commit-log service",
		Long:          "proglog serves an append-only commit log over gRPC with mutual TLS, ACLs, metrics and tracing.\nWith no subcommand it runs \"serve\".",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true, // run prints the error once
		Args:          cobra.NoArgs,
		PreRunE:       func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), rootOpts, stdout)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("proglog {{.Version}}\n")
	rootOpts.addFlags(root.Flags())

	root.AddCommand(newServeCmd(stdout), newCertsCmd(stdout),
		newProduceCmd(stdout), newConsumeCmd(stdout), newServersCmd(stdout), newBoundsCmd(stdout), newTopicsCmd(stdout),
		newGroupsCmd(stdout), newACLsCmd(stdout))
	return root
}

func newServeCmd(stdout io.Writer) *cobra.Command {
	opts := defaultServeOptions()
	cmd := &cobra.Command{
		Use:     "serve",
		Short:   "Run the server until SIGINT or SIGTERM",
		Long:    serveLong,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), opts, stdout)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

// applyEnv sets every flag not given on the command line from its
// PROGLOG_<FLAG> environment variable, if set.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", name, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("bad environment: %s", strings.Join(errs, "; "))
	}
	return nil
}
