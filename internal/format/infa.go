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
// A parameter file is read line by line, so every CR or LF in a name or a value is written as a
// space: a value can never start a line of its own, such as a forged section or parameter.
func InfaFile(w io.Writer, jobs batch.Jobs, opts Options) error {
	df, err := parseInfaDateFormat(opts.InfaDateFormat)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, j := range jobs {
		section, ok := j.Fields.String(batch.FieldInfaSection)
		if !ok || section == "" {
			section = j.Name
		}
		b.WriteString("[" + oneLine(section) + "]\n")
		for _, name := range j.Fields.Names() {
			v := text(j.Fields[name])
			if batch.IsDateField(name) {
				if t, ok := j.Fields.Time(name); ok {
					v = df.format(t)
				}
			}
			b.WriteString("$$" + oneLine(name) + "=" + oneLine(v) + "\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// lineBreaks writes each CR and LF as a space.
var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")

// oneLine keeps a name or a value on its line of a parameter file.
func oneLine(s string) string { return lineBreaks.Replace(s) }

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
