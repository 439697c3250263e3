// Command proglog runs a proglog commit-log server.
//
//	proglog serve --dev                  # single node; dev certificates and gossip key in ./proglog-data
//	proglog serve --tls-cert s.pem --tls-key s-key.pem --tls-ca ca.pem --gossip-key-file g.key --bootstrap
//	proglog serve ... --node-name n2 --join n1.internal:8402   # another node of the cluster
//	proglog certs --dir ./certs --hosts log.internal,10.0.0.5
//	proglog --version
//	proglog produce --dev ./proglog-data hello world   # or one record per stdin line
//	proglog consume --dev ./proglog-data --from 0 --follow --json
//	proglog servers --dev ./proglog-data
//
// Running proglog with no subcommand is the same as "proglog serve". Every
// serve flag may also come from the environment as PROGLOG_<FLAG> (upper
// case, dashes as underscores, e.g. PROGLOG_DATA_DIR) or from the YAML file
// of --config; a flag given on the command line wins over the environment,
// which wins over the file. SIGINT or SIGTERM make the node leave its
// cluster and shut down gracefully, and the process exits 0. README.md
// documents every serve setting.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3" (Bazel:
// x_defs = {"main.version": "..."}).
var version = "dev"

func main() {
	// Under `bazel run` the process starts in its runfiles tree; relative paths
	// (--data-dir, --dir, certificate files) mean the directory the user ran
	// the command from.
	if dir := os.Getenv("BUILD_WORKING_DIRECTORY"); dir != "" {
		if err := os.Chdir(dir); err != nil {
			fmt.Fprintln(os.Stderr, "proglog:", err)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
	return 0
}

// errorLine is err as the command prints it: prefixed with "proglog: "
// once, though the client's errors start with it too, also when wrapped
// ("proglog: bounds of orders/0: permission denied: ...").
func errorLine(err error) string {
	msg := strings.ReplaceAll(err.Error(), ": proglog: ", ": ")
	if strings.HasPrefix(msg, "proglog: ") {
		return msg
	}
	return "proglog: " + msg
}
