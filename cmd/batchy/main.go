// Command batchy is the batch state service: it keeps each workflow's batch windows and statuses in
// Redis (or an embedded store) and serves them over HTTP.
//
//	batchy serve              run the HTTP service
//	batchy validate [DIR]     check workflow files without a server
//	batchy export [FILE]      write all workflows and their history as JSON
//	batchy import FILE        restore workflows from an export
//	batchy config [flags]     print the effective configuration, secrets hidden
//	batchy healthcheck        exit 0 when the local batchy answers /readyz with 200
//	batchy pause WF           pause a workflow's triggers on a running batchy
//	batchy resume WF          resume them
//	batchy backfill WF        one run per interval over --from, --to on a running batchy
//
// main only wires: flags, the store, the API, start and stop.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // --tz works in minimal containers without a zoneinfo database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad flags or arguments
)

const usage = `batchy keeps the batch state of ETL workflows: which window of data each job processes next.

Usage:
  batchy serve [flags]          run the HTTP service
  batchy validate [DIR]         check the workflow files in DIR (default: --cfg-dir) without a server
  batchy export [FILE]          write every workflow's state and history as JSON (default: stdout)
  batchy import FILE            restore workflows from an export (replaces those in the file)
  batchy config [flags]         print serve's effective configuration (flags, env, --config file), secrets hidden
  batchy healthcheck            exit 0 when the local batchy is ready (for container health checks)
  batchy pause WF [--reason R]  pause a workflow's triggers (cron, catch-up, after:) on a running batchy
  batchy resume WF              resume them
  batchy backfill WF --from T --to T   backfill: one run per interval (window: schedule), oldest first
  batchy version                print the version

Run "batchy COMMAND --help" for a command's flags. Every flag can also be set in the environment as
BATCHY_<FLAG> (--redis-url is BATCHY_REDIS_URL) or as a key of the YAML file given with --config
(redis-url: ...); a flag on the command line wins over the environment, which wins over the file.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "validate":
		return validate(rest, stdout, stderr)
	case "export":
		return export(ctx, rest, stdout, stderr)
	case "import":
		return importCmd(ctx, rest, stdout, stderr)
	case "config":
		return configCmd(rest, stdout, stderr)
	case "healthcheck":
		return healthcheck(rest, stdout, stderr)
	case "pause", "resume":
		return pauseCmd(ctx, cmd == "pause", rest, stdout, stderr)
	case "backfill":
		return backfillCmd(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "batchy", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "batchy: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
