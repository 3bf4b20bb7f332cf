package format

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"

	"github.com/batchy/batchy/internal/batch"
)

// InfaFile writes jobs as an Informatica parameter file: for each job in order a section header
// [<infa_section, or the job name if infa_section is absent, empty or not a string>], then one
// $$<field>=<value> line per field sorted by name, infa_section included. Values are unquoted:
// strings as they are, numbers and booleans as their JSON text (a big integer keeps its digits),
// null as an empty value, lists and maps as compact JSON, and the special date fields (from_date,
// to_date, batch_start, batch_end, initial_from_date) holding a date in opts.InfaDateFormat, in UTC.
// A parameter file is read line by line, so every control character in a name or a value is
// written as a space (see oneLine). With opts.Original it writes the original's layout instead
// (see originalInfa).
func InfaFile(w io.Writer, jobs batch.Jobs, opts Options) error {
	if opts.Original {
		return originalInfa(w, jobs, opts)
	}
	df, err := parseInfaDateFormat(opts.InfaDateFormat)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, j := range jobs {
		writeInfaJob(&b, j, df, opts)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// writeInfaJob writes one job's section header and $$field=value lines. A nil df is
// OriginalDates: values as the original's Python str() wrote them.
func writeInfaJob(b *strings.Builder, j batch.Job, df infaDateFormat, opts Options) {
	section, ok := j.Fields.String(batch.FieldInfaSection)
	if !ok || section == "" {
		section = j.Name
	}
	b.WriteString("[" + oneLine(section) + "]\n")
	for _, name := range j.Fields.Names() {
		raw := j.Fields[name]
		var v string
		if df == nil {
			v = pyText(raw)
		} else {
			v = text(raw)
		}
		if batch.IsDateField(name) {
			if t, ok := j.Fields.Time(name); ok {
				if df == nil {
					v = pyTime(t)
				} else {
					v = df.format(t)
				}
			}
		}
		if opts.Original && name == batch.FieldStatus && j.Fields.Status() == batch.StatusFailed {
			v = originalFailure
		}
		b.WriteString("$$" + oneLine(name) + "=" + oneLine(v) + "\n")
	}
}

// oneLine keeps a name or a value on its line of a parameter file: every control character (CR
// and LF, but also NUL, tab, DEL, C1 such as U+0085 NEL) and U+2028 and U+2029 is written as a
// space. A parameter file has no escape syntax, so a value can never start a line of its own,
// such as a forged section or parameter, nor hide a character a reader might act on.
func oneLine(s string) string {
	if !hasControl(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

// text returns a field's JSON value as text for the line-based formats: a string without its
// quotes, null as "", a list or map as compact JSON, and a number or boolean as its JSON text
// unchanged, so that a big integer or a decimal keeps its exact digits.
func text(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case 'n':
		if string(raw) == "null" {
			return ""
		}
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '[', '{':
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
	}
	return string(raw)
}
