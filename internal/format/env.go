package format

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/batchy/batchy/internal/batch"
)

// Names of the variables that env output sets once, whatever the jobs.
const (
	EnvWorkflow = "BATCHY_WF"
	EnvBatchID  = "BATCHY_BATCH_ID"
)

// EnvScript writes jobs as shell export lines: BATCHY_WF, BATCHY_BATCH_ID (only when batchID > 0),
// then for each job in order and each field sorted by name BATCHY_<JOB>_<FIELD> (see EnvName).
// Values are those of EnvVars, each in single quotes, the one quoting in which a shell expands
// nothing; an embedded quote ends the quoting, is written as \' and reopens it. So eval "$(curl ...)"
// is safe whatever a value holds ($(...), backticks, backslashes, line breaks). A value holding a
// control character is written through printf instead (see exportLine), so that the output itself
// holds none.
func EnvScript(w io.Writer, wf string, batchID int64, jobs batch.Jobs) error {
	var b strings.Builder
	for _, v := range envVars(wf, batchID, jobs) {
		b.WriteString(exportLine(v.name, v.value))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// EnvVars returns the variables of EnvScript as NAME=value pairs (unquoted), in the same order, for
// executors that pass them to a process environment (exec.Cmd.Env). Values are text: strings as
// they are, dates as stored (RFC 3339), null as "", numbers and booleans as their JSON text, lists
// and maps as compact JSON; NUL bytes are dropped, since neither a shell variable nor an
// environment entry can hold one. When two names collide (see EnvName) both pairs are returned and
// the later wins, as it does in a shell and in exec.Cmd.Env.
func EnvVars(wf string, batchID int64, jobs batch.Jobs) []string {
	vars := envVars(wf, batchID, jobs)
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = v.name + "=" + v.value
	}
	return out
}

// envVar is one variable of the env output.
type envVar struct{ name, value string }

func envVars(wf string, batchID int64, jobs batch.Jobs) []envVar {
	reserved := []envVar{{EnvWorkflow, noNUL(wf)}}
	if batchID > 0 {
		reserved = append(reserved, envVar{EnvBatchID, strconv.FormatInt(batchID, 10)})
	}
	vars := append([]envVar(nil), reserved...)
	collided := false
	for _, j := range jobs {
		for _, name := range j.Fields.Names() {
			v := envVar{EnvName(j.Name, name), noNUL(text(j.Fields[name]))}
			collided = collided || v.name == EnvWorkflow || v.name == EnvBatchID
			vars = append(vars, v)
		}
	}
	if collided {
		// A job's field named like a variable of the batch (job "batch", field "id") must not
		// change it: the batch's variables are set again, last, so they win.
		vars = append(vars, reserved...)
	}
	return vars
}

// EnvName returns the variable of a job's field, BATCHY_<JOB>_<FIELD>: upper-cased, with every
// character outside [A-Z0-9_] written as _, so that any job or field name gives a valid shell
// name. Distinct names can therefore collide (job-a and job_a): CheckNames refuses such workflows
// at load; should a stored one still have them, the later variable wins, except over BATCHY_WF
// and BATCHY_BATCH_ID (job "batch", field "id"), which always hold the batch's.
func EnvName(job, field string) string {
	return "BATCHY_" + envPart(job) + "_" + envPart(field)
}

func envPart(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// exportLine returns the line that exports name=value. A value with a control character (see
// isControl: a line break, ESC, U+0085, U+2028, ...) would carry it raw inside single quotes, where
// a shell keeps it but a terminal acts on it and a line-based reader splits on it; such a value is
// built by printf from octal escapes instead, which every POSIX shell's printf reads (dash's
// included; $'...' quoting is not in older shells). The "_" and the assignment after it keep the
// trailing line breaks that command substitution would strip.
func exportLine(name, value string) string {
	if !hasControl(value) {
		return "export " + name + "=" + shellQuote(value) + "\n"
	}
	var f strings.Builder
	for i, r := range value {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(value[i:], "\uFFFD"):
			// A byte that is not UTF-8: written as it is (range reads it as U+FFFD).
			f.WriteString(fmt.Sprintf("\\%03o", value[i]))
		case isControl(r) || i == 0 && r == '-': // a leading - would read as an option of printf
			var buf [4]byte
			for _, c := range buf[:utf8.EncodeRune(buf[:], r)] {
				f.WriteString(fmt.Sprintf("\\%03o", c))
			}
		case r == '\\':
			f.WriteString(`\\`)
		case r == '%':
			f.WriteString("%%")
		default:
			f.WriteRune(r)
		}
	}
	return "export " + name + "=\"$(printf " + shellQuote(f.String()+"_") + ")\"; " + name + "=\"${" + name + "%_}\"\n"
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func noNUL(s string) string { return strings.ReplaceAll(s, "\x00", "") }
