package format

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batchy/batchy/internal/batch"
)

// The original Batchy (batchy.py, Python 2 and Flask) answered its routes with
// json.dumps(data, default=json_serial, indent=4) and, for /open_batch/<wf>/infa, with its
// infa_param(): "\n[" + str(job) + "]\n" then "$$" + str(field) + "=" + str(value) + "\n" per field.
// Existing scripts and mappings read those bytes, so the original routes write them again; what
// batchy changed on purpose (dates in JSON, key order, the fixed bugs) is listed in
// docs/coming-from-original.md.

// OriginalDates, given as the infa date format, writes values as the original's Python str() did:
// dates as str(datetime) (2026-11-22 13:49:30.840061, the fraction left out when it is zero), null
// as None and booleans as True and False.
const OriginalDates = "original"

// originalFailure is the word the original's /fail_batch wrote, which the original routes show
// for batchy's failed.
const originalFailure = "failure"

// OriginalJSON appends jobs as the original's json.dumps(indent=4) under Python 2 wrote them: four
// spaces per level, ": " after a key and ", " between items (so a line ends with a space, as
// Python 2's did), every character outside printable ASCII escaped as \uXXXX (ensure_ascii), an
// empty object as {}, and no trailing newline. Jobs keep their order and fields are sorted by name
// (the original's order was Python's dict order, which no script could rely on). The status
// failed is written as the original's "failure".
func OriginalJSON(b []byte, jobs batch.Jobs) []byte {
	if len(jobs) == 0 {
		return append(b, "{}"...)
	}
	b = append(b, '{')
	for i, j := range jobs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, "\n    "...)
		b = pyString(b, j.Name)
		b = append(b, ": "...)
		if len(j.Fields) == 0 {
			b = append(b, "{}"...)
			continue
		}
		b = append(b, '{')
		for k, name := range j.Fields.Names() {
			if k > 0 {
				b = append(b, ", "...)
			}
			b = append(b, "\n        "...)
			b = pyString(b, name)
			b = append(b, ": "...)
			raw := j.Fields[name]
			if name == batch.FieldStatus && j.Fields.Status() == batch.StatusFailed {
				raw = json.RawMessage(`"` + originalFailure + `"`)
			}
			b = pyValue(b, raw, 2)
		}
		b = append(b, "\n    }"...)
	}
	return append(b, "\n}"...)
}

// pyValue appends a stored JSON value re-encoded in json.dumps(indent=4)'s layout at nesting level
// depth. Numbers keep their stored text.
func pyValue(b []byte, raw json.RawMessage, depth int) []byte {
	if plainScalar(raw) {
		return append(b, raw...) // as json.dumps writes it: most values, without decoding them
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return append(b, raw...) // stored values are valid JSON; keep anything else as it is
	}
	return pyAny(b, v, depth)
}

// plainScalar reports whether a stored JSON value is one json.dumps would write with the same
// bytes: a number, true, false, null, or a string of printable ASCII without escapes.
func plainScalar(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return false
		}
		for _, c := range raw[1 : len(raw)-1] {
			if c < ' ' || c > '~' || c == '\\' || c == '"' {
				return false
			}
		}
		return true
	case c == '-' || c >= '0' && c <= '9':
		for _, c := range raw {
			if c <= ' ' {
				return false
			}
		}
		return true
	}
	s := string(raw)
	return s == "true" || s == "false" || s == "null"
}

func pyAny(b []byte, v any, depth int) []byte {
	indent := func(b []byte, level int) []byte {
		b = append(b, '\n')
		return append(b, strings.Repeat("    ", level)...)
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, v...)
	case string:
		return pyString(b, v)
	case []any:
		if len(v) == 0 {
			return append(b, "[]"...)
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = indent(b, depth+1)
			b = pyAny(b, e, depth+1)
		}
		b = indent(b, depth)
		return append(b, ']')
	case map[string]any:
		if len(v) == 0 {
			return append(b, "{}"...)
		}
		b = append(b, '{')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = indent(b, depth+1)
			b = pyString(b, k)
			b = append(b, ": "...)
			b = pyAny(b, v[k], depth+1)
		}
		b = indent(b, depth)
		return append(b, '}')
	}
	return append(b, "null"...)
}

// pyString appends s quoted as Python's json module with ensure_ascii does: \" \\ \n \r \t \b \f,
// and every other character outside printable ASCII (space to ~) as \uXXXX in lower-case hex, a
// character beyond the BMP as its UTF-16 surrogate pair. So no control character, U+0085 or
// U+2028 ever reaches a client raw.
func pyString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r >= ' ' && r <= '~':
			b = append(b, byte(r))
		case r > 0xffff:
			r -= 0x10000
			b = u(b, 0xd800+(r>>10))
			b = u(b, 0xdc00+(r&0x3ff))
		default:
			b = u(b, r)
		}
	}
	return append(b, '"')
}

// originalInfa writes jobs in the original's infa_param() layout: a blank line before each
// section, then its $$field=value lines; values as InfaFile writes them (see infaValue).
func originalInfa(w io.Writer, jobs batch.Jobs, opts Options) error {
	df, err := parseInfaDateFormat(opts.InfaDateFormat)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, j := range jobs {
		b.WriteString("\n")
		writeInfaJob(&b, j, df, opts)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// pyTime writes t (in UTC) as Python's str(datetime) does: "2006-01-02 15:04:05.000000", without
// the fraction when the microseconds are zero.
func pyTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// pyText returns a stored JSON value as the original's str() wrote it: strings as they are, null
// as None, booleans as True and False, whole numbers as their digits and other numbers as Python
// 2's str(float) (12 significant digits, 2.0 keeping its ".0"). Lists and maps are written as
// compact JSON (Python wrote its repr, [u'a'], which no reader would want).
func pyText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch s := string(raw); {
	case s == "null":
		return "None"
	case s == "true":
		return "True"
	case s == "false":
		return "False"
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		if !strings.ContainsAny(s, ".eE") {
			return s
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return s
		}
		out := strconv.FormatFloat(f, 'g', 12, 64)
		if !strings.ContainsAny(out, ".eIN") {
			out += ".0"
		}
		return out
	}
	return text(raw)
}

// isControl reports whether r is a control character (C0, DEL, C1 such as U+0085) or a Unicode
// line or paragraph separator: characters that a line-based reader may take for a line break or
// that a terminal acts on.
func isControl(r rune) bool {
	return r < ' ' || r >= 0x7f && r <= 0x9f || r == '\u2028' || r == '\u2029'
}

// hasControl reports whether s holds a character isControl reports.
func hasControl(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < ' ' || c == 0x7f {
			return true
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if isControl(r) {
			return true
		}
		i += n
	}
	return false
}
