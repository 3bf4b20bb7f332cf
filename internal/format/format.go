// Package format renders a workflow's jobs in batchy's output formats: json for programs, infa for
// Informatica parameter files and env for shell scripts and process environments. Every function
// is pure (no I/O but the given writer, no clock, no globals) so that the server, the CLI and the
// scheduler render the same bytes and the rules are table-tested on their own.
package format

import (
	"bytes"
	"io"

	"github.com/batchy/batchy/internal/batch"
)

// Format is an output format name, as written in routes (/open_batch/<wf>/<format>) and in
// ?format= query parameters.
type Format string

// The formats of SPEC.md. The zero Format renders as JSON, the default of every route.
const (
	JSON Format = "json"
	Infa Format = "infa"
	Env  Format = "env"
)

// Parse returns the format named s; "" means JSON because the original routes make the format
// optional. Names are exact (lower case) so that a route has one spelling.
func Parse(s string) (Format, error) {
	switch f := Format(s); f {
	case "":
		return JSON, nil
	case JSON, Infa, Env:
		return f, nil
	}
	return "", batch.Errorf(batch.EINVALID, "format %q is unknown: use json, infa or env", clip(s))
}

// ContentType returns the HTTP content type of f; infa and env are text so that browsers and curl
// show them as they are, ready to save or eval.
func (f Format) ContentType() string {
	switch f {
	case Infa, Env:
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}

// DefaultInfaDateFormat is Informatica's own default date format, so that parameter files work
// with a session's default settings.
const DefaultInfaDateFormat = "MM/DD/YYYY HH24:MI:SS"

// Options tune rendering; the zero value renders as SPEC.md describes.
type Options struct {
	// InfaDateFormat is the date format of the infa output, in Informatica's TO_CHAR notation (see
	// CheckInfaDateFormat); "" means DefaultInfaDateFormat and OriginalDates the original's
	// Python str() (2026-11-22 13:49:30.840061, None, True, False).
	InfaDateFormat string
	// Original renders json and infa in the original Batchy's layout, for its routes: indented
	// JSON (see OriginalJSON), a blank line before each infa section, and the status failed
	// written as the original's "failure". False is the v1 layout. env is the same either way.
	Original bool
}

// Write renders jobs of workflow wf in format f to w; batchID is the batch the jobs belong to (0
// if none), which only env shows. JSON is the original's {job: {field: value}} object with the jobs
// in order and no trailing newline, like the v1 JSON answers.
func Write(w io.Writer, f Format, wf string, batchID int64, jobs batch.Jobs, opts Options) error {
	switch f {
	case JSON, "":
		if opts.Original {
			_, err := w.Write(OriginalJSON(nil, jobs))
			return err
		}
		// MarshalJSON directly rather than json.Marshal, which would HTML-escape the stored text.
		_, err := w.Write(jobs.AppendJSON(nil))
		return err
	case Infa:
		return InfaFile(w, jobs, opts)
	case Env:
		return EnvScript(w, wf, batchID, jobs)
	}
	_, err := Parse(string(f))
	return err
}

// Append appends jobs rendered as Write renders them to b. JSON, every transition's answer, is
// written straight into b, without Write's copy through a writer.
func Append(b []byte, f Format, wf string, batchID int64, jobs batch.Jobs, opts Options) ([]byte, error) {
	if f == JSON || f == "" {
		if opts.Original {
			return OriginalJSON(b, jobs), nil
		}
		return jobs.AppendJSON(b), nil
	}
	w := bytes.NewBuffer(b)
	err := Write(w, f, wf, batchID, jobs, opts)
	return w.Bytes(), err
}

// clip shortens user input quoted back in an error message, so that a long value cannot flood a
// response or a log line.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
