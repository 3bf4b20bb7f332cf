// Command waitsy blocks a shell script until upstream batchy workflows have succeeded:
//
//	waitsy -wf wf1 && run_my_etl.sh
//
// It long-polls the server's /v1/wait, woken by push the moment the last job closes, and falls back
// to polling /get_status against servers without it (the original Python Batchy included).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // --tz works without a zoneinfo database

	"github.com/spf13/pflag"

	"github.com/batchy/batchy/client"
	"github.com/batchy/batchy/internal/batch"
)

// Exit codes, as --help and the README give them.
const (
	exitReady       = 0
	exitFailed      = 1
	exitTimeout     = 2
	exitUsage       = 3
	exitUnreachable = 4
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHead = `waitsy blocks until upstream batchy workflows (or single jobs) have succeeded.

Usage:
  waitsy [flags] TARGET...       TARGET is a workflow (wf1) or one of its jobs (wf1:job3)
  waitsy -wf wf1 [-wf wf2]       the original waitsy's form (also --workflow wf1)

Example:
  waitsy -wf wf1 && run_my_etl.sh

As the original, a failed upstream job does not end the wait: a rerun may still succeed today. The
failure shows on the status line and in --json; --fail-fast exits 1 at once instead.

Exit codes:
  0    every target succeeded since --since
  1    a target failed since --since (only with --fail-fast)
  2    --timeout passed first
  3    usage error, or an unknown workflow or job
  4    the server could not be reached until --timeout passed
  130  interrupted (Ctrl-C)

Flags:
`

// options are waitsy's parsed flags.
type options struct {
	targets  []batch.Target
	url      string
	token    string
	since    time.Time
	timeout  time.Duration
	failFast bool
	interval time.Duration
	quiet    bool
	json     bool
}

func parse(args []string, stderr io.Writer) (*options, int, bool) {
	fs := pflag.NewFlagSet("waitsy", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o       options
		wfs     []string
		longWfs []string
		since   string
		tz      string
		timeout string
	)
	fs.StringArrayVar(&wfs, "wf", nil, "a workflow to wait for (repeatable; -wf works as in the original)")
	// A flag of its own: two array flags on one slice would each replace what the other set.
	fs.StringArrayVar(&longWfs, "workflow", nil, "the same as --wf (the original's long form)")
	fs.StringVar(&o.url, "url", envOr("BATCHY_URL", "http://localhost:5000"), "batchy server (env BATCHY_URL)")
	fs.StringVar(&o.token, "token", os.Getenv("BATCHY_TOKEN"), "API token for a server with auth (env BATCHY_TOKEN)")
	fs.StringVar(&since, "since", "today", "what counts as a fresh success: today (midnight in --tz), a duration (6h), or an RFC 3339 time")
	fs.StringVar(&tz, "tz", envOr("BATCHY_TZ", "UTC"), "time zone of 'today' (env BATCHY_TZ)")
	fs.StringVar(&timeout, "timeout", "", "give up after this long (e.g. 30m); default: wait forever, as the original")
	fs.BoolVar(&o.failFast, "fail-fast", false, "exit 1 as soon as a watched job has failed since --since; without it a failure is waited through for a rerun, as the original did")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "polling interval against servers without push")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	fs.BoolVar(&o.json, "json", false, "print a final JSON report on stdout")
	fs.Usage = func() { fmt.Fprint(stderr, usageHead+fs.FlagUsages()) }

	// pflag reads "--fail-fast false" as the flag and a target named "false": say how to write it.
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--fail-fast", "--json", "--quiet", "-q":
			if v := args[i+1]; v == "true" || v == "false" {
				fmt.Fprintf(stderr, "waitsy: write %s=%s: a flag's value follows an equals sign (see waitsy --help)\n", args[i], v)
				return nil, exitUsage, false
			}
		}
	}
	if err := fs.Parse(legacyFlags(args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, exitReady, false
		}
		fmt.Fprintf(stderr, "waitsy: %v (see waitsy --help)\n", err)
		return nil, exitUsage, false
	}
	usageErr := func(format string, a ...any) (*options, int, bool) {
		fmt.Fprintf(stderr, "waitsy: "+format+" (see waitsy --help)\n", a...)
		return nil, exitUsage, false
	}
	for _, s := range append(append(wfs, longWfs...), fs.Args()...) {
		t, err := batch.ParseTarget(s)
		if err != nil {
			return usageErr("%s", batch.ErrorMessage(err))
		}
		o.targets = append(o.targets, t)
	}
	if len(o.targets) == 0 {
		return usageErr("name at least one workflow to wait for")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return usageErr("--tz %q is not a known time zone", tz)
	}
	if o.since, err = parseSince(since, time.Now(), loc); err != nil {
		return usageErr("%v", err)
	}
	if timeout != "" {
		if o.timeout, err = time.ParseDuration(timeout); err != nil || o.timeout <= 0 {
			return usageErr("--timeout %q must be a positive duration such as 30s or 2h", timeout)
		}
	}
	if o.interval <= 0 {
		return usageErr("--interval must be positive")
	}
	if !strings.HasPrefix(o.url, "http://") && !strings.HasPrefix(o.url, "https://") {
		return usageErr("--url %q must start with http:// or https://", o.url)
	}
	return &o, 0, true
}

// legacyFlags lets the original's single-dash "-wf" through pflag, which would read it as -w -f.
// Arguments after "--" are targets, left as they are.
func legacyFlags(args []string) []string {
	out := make([]string, len(args))
	flags := true
	for i, a := range args {
		if a == "--" {
			flags = false
		}
		if flags && (a == "-wf" || strings.HasPrefix(a, "-wf=")) {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// parseSince reads --since: "today", a duration back from now, or a time.
func parseSince(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if s == "today" {
		return batch.Midnight(now, loc), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration back from now must be positive", s)
		}
		return now.Add(-d), nil
	}
	t, err := batch.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: use today, a duration such as 6h, or an RFC 3339 time (%s)", s, batch.ErrorMessage(err))
	}
	return t, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, code, ok := parse(args, stderr)
	if !ok {
		if code == exitUsage && slices.ContainsFunc(args, func(a string) bool { return a == "--json" || a == "--json=true" }) {
			// A script reading the report gets one for a usage error too.
			writeReport(stdout, code, time.Time{}, nil)
		}
		return code
	}
	out := newReporter(stderr, o.quiet)
	tickCtx, stopTicking := context.WithCancel(ctx)
	go out.tick(tickCtx, time.Now())
	res, code := wait(ctx, o, client.New(o.url, o.token), out)
	stopTicking()
	out.finish(res, code)
	if o.json {
		writeReport(stdout, code, o.since, res)
	}
	return code
}

// writeReport prints the --json report; since is empty when the arguments were not understood.
func writeReport(w io.Writer, code int, since time.Time, res *client.WaitResult) {
	report := struct {
		State    string              `json:"state"`
		ExitCode int                 `json:"exit_code"`
		Since    string              `json:"since"`
		Jobs     []batch.JobStanding `json:"jobs"`
	}{State: stateName(code), ExitCode: code, Jobs: []batch.JobStanding{}}
	if !since.IsZero() {
		report.Since = batch.FormatTime(since)
	}
	if res != nil {
		report.Jobs = res.Jobs
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(report)
}

func stateName(code int) string {
	return map[int]string{exitReady: "ready", exitFailed: "failed", exitTimeout: "timeout", exitUsage: "error",
		exitUnreachable: "unreachable", exitInterrupted: "interrupted"}[code]
}

// wait loops until the targets are ready, one failed, the timeout passes or ctx ends.
func wait(ctx context.Context, o *options, c *client.Client, out *reporter) (*client.WaitResult, int) {
	start := time.Now()
	var deadline time.Time
	if o.timeout > 0 {
		deadline = start.Add(o.timeout)
	}
	push := true
	backoff := 100 * time.Millisecond
	var last *client.WaitResult
	reached := false // the last attempt reached the server
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return last, exitInterrupted
		}
		// The first request answers at once, so the state shows from the start; the next ones
		// hold until something changes.
		req := client.WaitRequest{Targets: o.targets, Since: o.since, FailFast: o.failFast, Timeout: 60 * time.Second}
		if attempt == 0 {
			req.Timeout = 0
		}
		// A request gives up after the server's hold plus a margin, and never much past --timeout:
		// a server that accepts and never answers must not hold waitsy beyond it.
		reqDeadline := time.Now().Add(req.Timeout + 15*time.Second)
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 && attempt > 0 {
				if reached {
					return last, exitTimeout
				}
				return last, exitUnreachable
			}
			req.Timeout = max(0, min(req.Timeout, left.Round(time.Millisecond)+time.Millisecond))
			reqDeadline = deadline.Add(time.Second) // time for the server's answer at the deadline
		}
		var res *client.WaitResult
		var err error
		if push {
			rctx, cancel := context.WithDeadline(ctx, reqDeadline)
			res, err = c.Wait(rctx, req)
			cancel()
			if errors.Is(err, client.ErrNoWaitEndpoint) {
				out.note("the server has no push wait endpoint: polling every %s", o.interval)
				push = false
				continue
			}
		} else {
			rctx, cancel := context.WithDeadline(ctx, minTime(reqDeadline, time.Now().Add(30*time.Second)))
			res, err = c.Poll(rctx, req)
			cancel()
		}
		if ctx.Err() != nil {
			return last, exitInterrupted
		}
		if err != nil {
			var apiErr *client.Error
			busy := errors.As(err, &apiErr) && (apiErr.Status == http.StatusTooManyRequests || apiErr.Status == http.StatusRequestTimeout)
			if apiErr != nil && apiErr.Status >= 400 && apiErr.Status < 500 && !busy {
				// An unknown workflow or job, a bad parameter, a refused token: waiting won't help.
				out.errorf("%s", apiErr.Message)
				return last, exitUsage
			}
			// Reached but busy (429: this client holds its most waits), unable to answer (5xx:
			// its store is down), or not reached: retry.
			reached = busy
			if busy {
				out.note("the server is busy (%s): retrying in %s", apiErr.Message, backoff.Round(time.Millisecond))
			} else {
				out.note("cannot reach %s (%v): retrying in %s", o.url, err, backoff.Round(time.Millisecond))
			}
			if !sleep(ctx, jitter(backoff), deadline) {
				if ctx.Err() != nil {
					return last, exitInterrupted
				}
				if reached {
					return last, exitTimeout // the server answered, busy: the targets are what timed out
				}
				return last, exitUnreachable
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		reached, backoff, last = true, 100*time.Millisecond, res
		out.progress(res, time.Since(start))
		switch res.State {
		case batch.Ready:
			return res, exitReady
		case batch.Failed:
			return res, exitFailed
		}
		if !push && !sleep(ctx, o.interval, deadline) {
			if ctx.Err() != nil {
				return last, exitInterrupted
			}
			return last, exitTimeout
		}
	}
}

// sleep waits d, or until the deadline (false) or ctx's end (false).
func sleep(ctx context.Context, d time.Duration, deadline time.Time) bool {
	if !deadline.IsZero() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		if left < d {
			d = left
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return deadline.IsZero() || time.Now().Before(deadline)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// reporter prints progress: one live line on a terminal, its clock ticking every second, and
// timestamped lines on changes otherwise. Its methods may be called from several goroutines.
type reporter struct {
	mu       sync.Mutex
	w        io.Writer
	quiet    bool
	terminal bool
	lastLine string
	live     bool   // a live line is on screen
	summary  string // the live line's text
}

func newReporter(w io.Writer, quiet bool) *reporter {
	r := &reporter{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			r.terminal = true
		}
	}
	return r
}

// summary says which jobs are still pending or failed.
func summary(res *client.WaitResult) string {
	var pending, failed []string
	ready := 0
	for _, j := range res.Jobs {
		name := j.Workflow + ":" + j.Job
		switch j.Readiness {
		case batch.Ready:
			ready++
		case batch.Failed:
			failed = append(failed, name)
		default:
			pending = append(pending, name+" ("+j.Status+")")
		}
	}
	sort.Strings(pending)
	s := fmt.Sprintf("%d/%d ready", ready, len(res.Jobs))
	if len(pending) > 0 {
		s += "; waiting for " + strings.Join(pending, ", ")
	}
	if len(failed) > 0 {
		if res.State == batch.Failed {
			s += "; failed: " + strings.Join(failed, ", ")
		} else {
			s += "; failed, waiting for a rerun: " + strings.Join(failed, ", ")
		}
	}
	return s
}

// tick redraws the live line every second until ctx ends, so its clock moves while a wait is held.
func (r *reporter) tick(ctx context.Context, start time.Time) {
	if !r.terminal || r.quiet {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			if r.live {
				r.drawLive(time.Since(start))
			}
			r.mu.Unlock()
		}
	}
}

func (r *reporter) drawLive(elapsed time.Duration) {
	fmt.Fprintf(r.w, "\r\033[K%s [%s]", r.summary, elapsed.Round(time.Second))
	r.live = true
}

func (r *reporter) progress(res *client.WaitResult, elapsed time.Duration) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	line := summary(res)
	if r.terminal {
		r.summary = line
		r.drawLive(elapsed)
		return
	}
	if line != r.lastLine {
		r.lastLine = line
		fmt.Fprintf(r.w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
	}
}

func (r *reporter) clearLive() {
	if r.live {
		fmt.Fprint(r.w, "\r\033[K")
		r.live = false
	}
}

func (r *reporter) note(format string, a ...any) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLive()
	fmt.Fprintf(r.w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, a...))
	r.lastLine = ""
}

func (r *reporter) errorf(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLive()
	fmt.Fprintf(r.w, "waitsy: %s\n", fmt.Sprintf(format, a...))
}

func (r *reporter) finish(res *client.WaitResult, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLive()
	if r.quiet && code != exitFailed && code != exitUnreachable {
		return
	}
	var msg string
	switch code {
	case exitReady:
		msg = "ready"
	case exitFailed:
		msg = "upstream failed"
	case exitTimeout:
		msg = "timed out"
	case exitUnreachable:
		msg = "server unreachable"
	case exitInterrupted:
		msg = "interrupted"
	default:
		return
	}
	if res != nil {
		msg += ": " + summary(res)
	}
	fmt.Fprintf(r.w, "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
}
