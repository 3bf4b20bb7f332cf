package rdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// A job is stored as three plain-text fields of its workflow's state hash (see lua/lib.lua): its
// runtime record (run:<job>), its configured fields as one JSON object (cfg:<job>) and the
// parameters of its window (win:<job>). The scripts read and write the runtime record without any
// JSON; Go turns it into fields when it reads a state, with the configured fields decoded once per
// distinct text (cfgCache).

// runRecord is a job's runtime fields: status, batch_id, from_date, to_date, batch_start,
// batch_end (dates as microseconds since the epoch, "n" for null), backfill ("1"), metadata (JSON).
// "-" marks an absent field.
type runRecord struct {
	status, batchID, from, to, start, end, backfill, metadata string
}

func (r runRecord) String() string {
	return r.status + " " + r.batchID + " " + r.from + " " + r.to + " " + r.start + " " + r.end + " " + r.backfill + " " + r.metadata
}

// parseRun reads a runtime record; a malformed one reads as no fields.
func parseRun(s string) runRecord {
	var p [7]string
	for i := range p {
		var ok bool
		if p[i], s, ok = strings.Cut(s, " "); !ok {
			return runRecord{status: "-", batchID: "-", from: "-", to: "-", start: "-", end: "-", backfill: "-", metadata: "-"}
		}
	}
	return runRecord{p[0], p[1], p[2], p[3], p[4], p[5], p[6], s}
}

var wordRE = regexp.MustCompile(`^[a-z]+$`)

// splitJob divides a job's fields into the runtime record and the configured fields. A runtime
// field whose value the scripts could not read as theirs (written by hand into an export, say)
// stays with the configured fields, shown as it is and ignored by transitions, as before.
func splitJob(f batch.Fields) (runRecord, batch.Fields) {
	r := runRecord{"-", "-", "-", "-", "-", "-", "-", "-"}
	cfg := make(batch.Fields, len(f))
	for name, v := range f {
		if !setRuntime(&r, name, v) {
			cfg[name] = v
		}
	}
	return r, cfg
}

func setRuntime(r *runRecord, name string, v json.RawMessage) bool {
	switch name {
	case batch.FieldStatus:
		var s string
		if json.Unmarshal(v, &s) != nil || !wordRE.MatchString(s) {
			return false
		}
		r.status = s
	case batch.FieldBatchID:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return false
		}
		r.batchID = string(v)
	case batch.FieldFromDate, batch.FieldToDate, batch.FieldBatchStart, batch.FieldBatchEnd:
		d, ok := dateRecord(v)
		if !ok {
			return false
		}
		switch name {
		case batch.FieldFromDate:
			r.from = d
		case batch.FieldToDate:
			r.to = d
		case batch.FieldBatchStart:
			r.start = d
		default:
			r.end = d
		}
	case batch.FieldBackfill:
		if string(v) != "true" {
			return false
		}
		r.backfill = "1"
	case batch.FieldMetadata:
		var b bytes.Buffer
		if json.Compact(&b, v) != nil {
			return false
		}
		r.metadata = b.String()
	default:
		return false
	}
	return true
}

// dateRecord writes a stored date (JSON text in batch.TimeLayout, or null) as the record's
// microseconds; ok is false for any other text, which the record could not give back unchanged.
func dateRecord(v json.RawMessage) (string, bool) {
	if string(v) == "null" {
		return "n", true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	t, err := batch.ParseTime(s)
	if err != nil || batch.FormatTime(t) != s {
		return "", false
	}
	return strconv.FormatInt(t.UnixMicro(), 10), true
}

// count is the number of fields the record holds.
func (r runRecord) count() int {
	n := 0
	for _, v := range [...]string{r.status, r.batchID, r.from, r.to, r.start, r.end, r.backfill, r.metadata} {
		if v != "-" {
			n++
		}
	}
	return n
}

// appendTo adds the record's fields to f. Every state read and every transition's answer runs it
// for every job, so the values are written into one buffer, one allocation for all of them.
func (r runRecord) appendTo(f batch.Fields) error {
	const date = len(batch.TimeLayout) + 2 // a quoted date of years 1-9999
	buf := make([]byte, 0, len(r.status)+2+len(r.batchID)+4*date+len(r.metadata))
	// value returns what was appended since start, capped so that later appends never write into
	// it (they go to a new array should the buffer ever be short).
	value := func(start int) json.RawMessage { return buf[start:len(buf):len(buf)] }
	if r.status != "-" {
		start := len(buf)
		buf = append(append(append(buf, '"'), r.status...), '"')
		f[batch.FieldStatus] = value(start)
	}
	if r.batchID != "-" {
		start := len(buf)
		buf = append(buf, r.batchID...)
		f[batch.FieldBatchID] = value(start)
	}
	for _, d := range [...]struct{ name, v string }{{batch.FieldFromDate, r.from}, {batch.FieldToDate, r.to}, {batch.FieldBatchStart, r.start}, {batch.FieldBatchEnd, r.end}} {
		switch d.v {
		case "-":
		case "n":
			f[d.name] = batch.Null
		default:
			n, err := strconv.ParseInt(d.v, 10, 64)
			if err != nil {
				return fmt.Errorf("rdb: %s %q is not a time", d.name, d.v)
			}
			start := len(buf)
			buf = append(batch.AppendTime(append(buf, '"'), time.UnixMicro(n)), '"')
			f[d.name] = value(start)
		}
	}
	if r.backfill == "1" {
		f[batch.FieldBackfill] = jsonTrue
	}
	if r.metadata != "-" {
		start := len(buf)
		buf = append(buf, r.metadata...)
		f[batch.FieldMetadata] = value(start)
	}
	return nil
}

// jsonTrue is shared by every backfill field: callers never change a field's text.
var jsonTrue = json.RawMessage("true")

// windowRecord is what the open script needs of a job's configured fields:
// "<reprocess_hours in µs> <trunc_start 0|1> <initial_from_date in µs>".
func windowRecord(f batch.Fields) string {
	trunc := "0"
	if b, _ := f.Bool(batch.FieldTruncStart); b {
		trunc = "1"
	}
	initial := batch.DefaultInitialFromDate
	if t, ok := f.Time(batch.FieldInitialFromDate); ok {
		initial = t
	}
	return strconv.FormatInt(batch.ReprocessDuration(f).Microseconds(), 10) + " " + trunc + " " + strconv.FormatInt(initial.UnixMicro(), 10)
}

// decodeCache decodes each distinct text once: configured fields and settings change only when a
// workflow is loaded, but every state read carries them. It is a memo of text to value, so
// replicas share nothing through it; it is emptied when it grows past decodeCacheSize. Callers
// never change what it returns.
type decodeCache[V any] struct {
	mu     sync.RWMutex
	m      map[string]V
	decode func(string) (V, error)
}

const decodeCacheSize = 4096

func newDecodeCache[V any](decode func(string) (V, error)) *decodeCache[V] {
	return &decodeCache[V]{m: map[string]V{}, decode: decode}
}

func (c *decodeCache[V]) get(s string) (V, error) {
	c.mu.RLock()
	v, ok := c.m[s]
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := c.decode(s)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if len(c.m) >= decodeCacheSize {
		clear(c.m)
	}
	c.m[s] = v
	c.mu.Unlock()
	return v, nil
}

// codec turns stored text into batch values.
type codec struct {
	cfg      *decodeCache[batch.Fields]
	settings *decodeCache[batch.Settings]
	// loadedAt reads the time a workflow was loaded, which every reply carries too.
	loadedAt *decodeCache[time.Time]
}

func newCodec() codec {
	return codec{
		cfg: newDecodeCache(func(s string) (batch.Fields, error) {
			var f batch.Fields
			if err := json.Unmarshal([]byte(s), &f); err != nil {
				return nil, fmt.Errorf("rdb: stored fields: %w", err)
			}
			return f, nil
		}),
		settings: newDecodeCache(func(s string) (batch.Settings, error) {
			var st batch.Settings
			if err := json.Unmarshal([]byte(s), &st); err != nil {
				return st, fmt.Errorf("rdb: stored settings: %w", err)
			}
			return st, nil
		}),
		loadedAt: newDecodeCache(batch.ParseTime),
	}
}

// jobFields returns a job's fields from its runtime record and configured fields.
func (c codec) jobFields(run, cfg string) (batch.Fields, error) {
	conf, err := c.cfg.get(cfg)
	if err != nil {
		return nil, err
	}
	r := parseRun(run)
	// Sized exactly: a map of up to 8 fields is one small allocation, a larger one several.
	f := make(batch.Fields, len(conf)+r.count())
	for k, v := range conf {
		f[k] = v
	}
	if err := r.appendTo(f); err != nil {
		return nil, err
	}
	return f, nil
}

// historyFields reads a history entry: the runtime record, a newline, the configured fields.
func (c codec) historyFields(entry string) (batch.Fields, error) {
	run, cfg, _ := strings.Cut(entry, "\n")
	return c.jobFields(run, cfg)
}
