package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchy/batchy/client"
	"github.com/batchy/batchy/internal/batch"
)

// remoteFlags are the flags of the subcommands that ask a running batchy over HTTP.
type remoteFlags struct {
	url     string
	token   string
	timeout time.Duration
}

func (r *remoteFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&r.url, "url", "http://localhost:5000", "the batchy server (env BATCHY_URL)")
	fs.StringVar(&r.token, "token", "", "an API token with the operate role, for a server with tokens (env BATCHY_TOKEN)")
	fs.DurationVar(&r.timeout, "timeout", 30*time.Second, "how long the request may take")
}

// client checks the flags and returns a client; an error is a usage error.
func (r *remoteFlags) client() (*client.Client, error) {
	if !strings.HasPrefix(r.url, "http://") && !strings.HasPrefix(r.url, "https://") {
		return nil, fmt.Errorf("--url %q must start with http:// or https://", r.url)
	}
	return client.New(r.url, r.token), nil
}

// pauseCmd pauses (pause true) or resumes a workflow's triggers on a running batchy.
func pauseCmd(ctx context.Context, pause bool, args []string, stdout, stderr io.Writer) int {
	name := "resume"
	if pause {
		name = "pause"
	}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	var (
		remote remoteFlags
		reason string
	)
	remote.add(fs)
	if pause {
		fs.StringVar(&reason, "reason", "", "why, shown with the paused workflow (at most 500 characters)")
	}
	fs.Usage = func() {
		what := "Pauses a workflow's triggers: no cron, catch-up or after: run starts until it is resumed; manual runs still run."
		if !pause {
			what = "Resumes a workflow's triggers: missed fire times run as its catchup setting says."
		}
		fmt.Fprintf(stderr, "Usage: batchy %s WORKFLOW [flags]\n\n%s\n%s", name, what, fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "batchy %s: give one workflow name\n", name)
		fs.Usage()
		return exitUsage
	}
	wf := fs.Arg(0)
	if err := batch.CheckName("workflow", wf); err != nil {
		fmt.Fprintf(stderr, "batchy %s: %s\n", name, batch.ErrorMessage(err))
		return exitUsage
	}
	c, err := remote.client()
	if err != nil {
		fmt.Fprintf(stderr, "batchy %s: %v\n", name, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, remote.timeout)
	defer cancel()
	var st *batch.State
	if pause {
		st, err = c.Pause(ctx, wf, reason)
	} else {
		st, err = c.Resume(ctx, wf)
	}
	if err != nil {
		fmt.Fprintf(stderr, "batchy %s: %v\n", name, err)
		return exitError
	}
	switch {
	case st.Paused && st.PausedAt != nil && st.PauseReason != "":
		fmt.Fprintf(stdout, "%s: paused since %s (%s)\n", wf, batch.FormatTime(*st.PausedAt), st.PauseReason)
	case st.Paused && st.PausedAt != nil:
		fmt.Fprintf(stdout, "%s: paused since %s\n", wf, batch.FormatTime(*st.PausedAt))
	default:
		fmt.Fprintf(stdout, "%s: triggers active\n", wf)
	}
	return exitOK
}

// backfillCmd asks a running batchy for a backfill: under window: schedule one run per interval.
func backfillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("backfill", pflag.ContinueOnError)
	var (
		remote   remoteFlags
		from, to string
		jobs     []string
	)
	remote.add(fs)
	fs.StringVar(&from, "from", "", "start of the backfill (RFC 3339, or 2026-01-01, 2026-01-01T02:00), required")
	fs.StringVar(&to, "to", "", "end of the backfill, not in the future; required")
	fs.StringSliceVar(&jobs, "jobs", nil, "only these jobs (comma-separated; default all)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy backfill WORKFLOW --from TIME --to TIME [flags]\n\nUnder window: schedule, creates one run per interval of the schedule within [from, to], run oldest first,\none after another; otherwise one run over [from, to). Prints one line per run.\n%s", fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "batchy backfill: give one workflow name")
		fs.Usage()
		return exitUsage
	}
	wf := fs.Arg(0)
	if err := batch.CheckName("workflow", wf); err != nil {
		fmt.Fprintf(stderr, "batchy backfill: %s\n", batch.ErrorMessage(err))
		return exitUsage
	}
	var times [2]time.Time
	for i, v := range []struct{ flag, value string }{{"--from", from}, {"--to", to}} {
		if v.value == "" {
			fmt.Fprintf(stderr, "batchy backfill: %s is required\n", v.flag)
			return exitUsage
		}
		t, err := batch.ParseTime(v.value)
		if err != nil {
			fmt.Fprintf(stderr, "batchy backfill: %s %q is not a time such as 2026-01-01T02:00:00Z\n", v.flag, v.value)
			return exitUsage
		}
		times[i] = t
	}
	for _, j := range jobs {
		if err := batch.CheckName("job", j); err != nil {
			fmt.Fprintf(stderr, "batchy backfill: %s\n", batch.ErrorMessage(err))
			return exitUsage
		}
	}
	c, err := remote.client()
	if err != nil {
		fmt.Fprintf(stderr, "batchy backfill: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, remote.timeout)
	defer cancel()
	runs, err := c.Backfill(ctx, wf, times[0], times[1], jobs)
	if err != nil {
		fmt.Fprintf(stderr, "batchy backfill: %v\n", err)
		return exitError
	}
	for _, r := range runs {
		switch {
		case r.Interval != nil:
			fmt.Fprintf(stdout, "%s  [%s, %s)\n", r.ID, batch.FormatTime(r.Interval.From), batch.FormatTime(r.Interval.To))
		case r.From != nil && r.To != nil:
			fmt.Fprintf(stdout, "%s  [%s, %s)\n", r.ID, batch.FormatTime(*r.From), batch.FormatTime(*r.To))
		default:
			fmt.Fprintln(stdout, r.ID)
		}
	}
	return exitOK
}
