package event

import (
	"bytes"
	"encoding/json"
)

// appendJSON appends one event as JSON (no trailing newline). An event whose fields cannot be
// encoded (a NaN, a channel) is written with its fields replaced by the encoding error: a batch that
// can never be written would otherwise be retried forever and hold back every later event.
func appendJSON(buf *bytes.Buffer, e *Event) {
	start := buf.Len()
	enc := json.NewEncoder(buf)
	// Log lines routinely hold '<', '>' and '&'; escaping them helps no reader of a log file.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		buf.Truncate(start)
		c := *e
		c.Fields = map[string]any{"batchy_encode_error": err.Error()}
		if err := enc.Encode(&c); err != nil {
			// Unreachable: every remaining field is a string, a time or an integer.
			buf.Truncate(start)
			buf.WriteString(`{"level":"error","message":"event could not be encoded"}`)
		}
	}
	// Encode ends with a newline; the callers decide on the separator.
	if n := buf.Len(); n > start && buf.Bytes()[n-1] == '\n' {
		buf.Truncate(n - 1)
	}
}

// appendJSONLine appends one event as a JSON line.
func appendJSONLine(buf *bytes.Buffer, e *Event) {
	appendJSON(buf, e)
	buf.WriteByte('\n')
}
