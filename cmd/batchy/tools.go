package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/scheduler"
)

// validate checks every workflow file of a directory, printing one line per file.
func validate(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("validate", pflag.ContinueOnError)
	var (
		cfgDir   string
		maxBytes int64
	)
	fs.StringVar(&cfgDir, "cfg-dir", "cfg", "directory of workflow files, when DIR is not given")
	fs.Int64Var(&maxBytes, "max-config-bytes", 1<<20, "largest workflow file accepted, as batchy serve's flag")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy validate [DIR]\n\nChecks every workflow file in DIR without a server; exits 1 if any is invalid. Warns (exit 0)\nof a from_date in the future: batchy would refuse to open that job until then.\n%s", fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	switch fs.NArg() {
	case 0:
	case 1:
		cfgDir = fs.Arg(0)
	default:
		fmt.Fprintln(stderr, "batchy validate: give at most one directory")
		return exitUsage
	}
	entries, err := os.ReadDir(cfgDir)
	if err != nil {
		fmt.Fprintf(stderr, "batchy validate: %v\n", err)
		return exitError
	}
	type result struct {
		file string
		wf   *batch.Workflow
		err  error
	}
	var results []result
	after := map[string][]string{} // the valid workflows' after: targets, for cycles across files
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ext)
		data, err := os.ReadFile(filepath.Join(cfgDir, e.Name()))
		var wf *batch.Workflow
		if err == nil {
			if wf, err = config.Parse(name, data, config.Limits{MaxBytes: maxBytes}); err == nil {
				err = scheduler.Validate(wf, nil, nil)
			}
			if err == nil {
				after[wf.Name] = wf.Settings.After
			} else {
				err = errors.New(batch.ErrorMessage(err)) // the file's problem, without error codes
			}
		}
		results = append(results, result{e.Name(), wf, err})
	}
	bad, seen := 0, len(results)
	for _, r := range results {
		if r.err == nil {
			lookup := func(wf string) ([]string, bool) { a, ok := after[wf]; return a, ok }
			if cycle := scheduler.AfterCycle(r.wf.Name, r.wf.Settings.After, lookup); cycle != nil {
				r.err = fmt.Errorf("workflow %s: after: waits for itself (%s)", r.wf.Name, strings.Join(cycle, " after "))
			}
		}
		if r.err == nil {
			fmt.Fprintf(stdout, "ok      %s: workflow %s, %d jobs\n", r.file, r.wf.Name, len(r.wf.Jobs))
			for _, w := range futureDates(r.wf, time.Now()) {
				fmt.Fprintf(stdout, "warning %s: %s\n", r.file, w)
			}
			continue
		}
		bad++
		fmt.Fprintf(stdout, "invalid %s: %v\n", r.file, r.err)
	}
	if seen == 0 {
		fmt.Fprintf(stderr, "batchy validate: no .yaml or .yml files in %s\n", cfgDir)
		return exitError
	}
	if bad > 0 {
		return exitError
	}
	return exitOK
}

// futureDates warns of each job whose from_date or initial_from_date lies after now: its window
// would start after it ends, so batchy refuses to open it until then (SPEC.md "No inverted
// window"). A warning, not an error: the date may be meant, and passes.
func futureDates(wf *batch.Workflow, now time.Time) []string {
	var out []string
	for _, j := range wf.Jobs {
		name := batch.FieldFromDate
		if _, ok := j.Fields[name]; !ok {
			name = batch.FieldInitialFromDate // the first window's start when there is no from_date
		}
		if t, ok := j.Fields.Time(name); ok && t.After(now) {
			out = append(out, fmt.Sprintf("job %s: %s %s is in the future: opening it is refused until then (its window would start after it ends)", j.Name, name, batch.FormatTime(t)))
		}
	}
	return out
}

// Export is the file batchy export writes and batchy import reads.
type Export struct {
	Version    int          `json:"version"`
	ExportedAt time.Time    `json:"exported_at"`
	Workflows  []batch.Dump `json:"workflows"`
}

func export(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("export", pflag.ContinueOnError)
	var sf storeFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy export [flags] [FILE]\n\nWrites every workflow's state and history as JSON to FILE (atomically) or stdout.\nWith the embedded store, stop the server first: its data file is locked while it runs.\n%s", fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "batchy export: give at most one output file")
		return exitUsage
	}
	store, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "batchy export: %v\n", err)
		return exitError
	}
	defer store.Close()
	names, err := store.Workflows(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "batchy export: %s\n", batch.ErrorMessage(err))
		return exitError
	}
	out := Export{Version: 1, ExportedAt: time.Now().UTC(), Workflows: []batch.Dump{}}
	for _, n := range names {
		d, err := store.Dump(ctx, n)
		if err != nil {
			fmt.Fprintf(stderr, "batchy export: workflow %s: %s\n", n, batch.ErrorMessage(err))
			return exitError
		}
		out.Workflows = append(out.Workflows, *d)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "batchy export: %v\n", err)
		return exitError
	}
	data = append(data, '\n')
	if fs.NArg() == 0 {
		stdout.Write(data)
		return exitOK
	}
	if err := rdb.WriteFileAtomic(fs.Arg(0), data, 0o600); err != nil {
		fmt.Fprintf(stderr, "batchy export: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stderr, "exported %d workflows to %s\n", len(out.Workflows), fs.Arg(0))
	return exitOK
}

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("import", pflag.ContinueOnError)
	var sf storeFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy import [flags] FILE\n\nRestores the workflows of an export (FILE, or - for stdin), replacing their state and history.\nWorkflows not in the file are left alone. With the embedded store, stop the server first.\n%s", fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "batchy import: give the export file to read (- for stdin)")
		return exitUsage
	}
	var data []byte
	var err error
	if fs.Arg(0) == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "batchy import: %v\n", err)
		return exitError
	}
	var in Export
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fmt.Fprintf(stderr, "batchy import: %s is not a batchy export: %v\n", fs.Arg(0), err)
		return exitError
	}
	if in.Version != 1 {
		fmt.Fprintf(stderr, "batchy import: export version %d is not supported (this batchy reads version 1)\n", in.Version)
		return exitError
	}
	store, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "batchy import: %v\n", err)
		return exitError
	}
	defer store.Close()
	for i := range in.Workflows {
		d := &in.Workflows[i]
		if err := store.Restore(ctx, d); err != nil {
			fmt.Fprintf(stderr, "batchy import: workflow %s: %s\n", d.Workflow, batch.ErrorMessage(err))
			return exitError
		}
		fmt.Fprintf(stdout, "imported %s: %d jobs, %d batches\n", d.Workflow, len(d.Jobs), len(d.Batches))
	}
	return exitOK
}

// healthcheck asks a local batchy's /readyz, for container health checks (the image has no curl):
// exit 0 when it is ready, 1 when it is not or does not answer.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("healthcheck", pflag.ContinueOnError)
	var (
		config  string
		addr    string
		tlsCert string
		timeout time.Duration
	)
	fs.StringVar(&config, "config", "", "serve's --config file: its addr and tls-cert are used")
	fs.StringVar(&addr, "addr", "127.0.0.1:5000", "the address batchy serve listens on (its --addr; 0.0.0.0 means this machine)")
	fs.StringVar(&tlsCert, "tls-cert", "", "batchy serves HTTPS (its --tls-cert): the check uses HTTPS and does not verify the certificate of this local call")
	fs.DurationVar(&timeout, "timeout", 5*time.Second, "how long the check waits")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy healthcheck [flags]\n\nAsks the local batchy's /readyz: exit 0 when ready, 1 when not. Reads --config, BATCHY_ADDR and BATCHY_TLS_CERT like serve.\n%s", fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "batchy healthcheck: --addr %q: %v\n", addr, err)
		return exitUsage
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // serve listens on every address: ask over loopback
	}
	client := &http.Client{Timeout: timeout}
	scheme := "http"
	if tlsCert != "" {
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // a local liveness call, not a trust decision
	}
	res, err := client.Get(scheme + "://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		fmt.Fprintf(stderr, "batchy healthcheck: %v\n", err)
		return exitError
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(body))
	if res.StatusCode != http.StatusOK {
		return exitError
	}
	return exitOK
}
