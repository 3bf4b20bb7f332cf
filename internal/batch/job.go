// Package batch is batchy's domain: workflows, jobs and their fields, statuses, the window rules
// of SPEC.md as pure functions, the Store interface and the error codes. It imports no framework.
package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Special fields: the job fields batchy gives a meaning to. Every other field belongs to the user.
const (
	FieldStatus          = "status"
	FieldBatchID         = "batch_id"
	FieldFromDate        = "from_date"
	FieldToDate          = "to_date"
	FieldBatchStart      = "batch_start"
	FieldBatchEnd        = "batch_end"
	FieldReprocessHours  = "reprocess_hours"
	FieldTruncStart      = "trunc_start"
	FieldInitialFromDate = "initial_from_date"
	FieldInfaSection     = "infa_section"
	FieldBackfill        = "backfill"
	// FieldMetadata holds the facts a close or fail reported about the run (rows read, ...).
	FieldMetadata = "metadata"
	// FieldRun is a job's action for the scheduler: a map with an executor type and its settings.
	FieldRun = "run"
	// FieldNeeds lists jobs of the same workflow that must succeed before this one runs.
	FieldNeeds = "needs"
)

// RuntimeFields are the fields transitions write. Reloading a configuration keeps them: a value the
// YAML gives for one only seeds a job that does not have it yet.
var RuntimeFields = []string{FieldStatus, FieldBatchID, FieldFromDate, FieldToDate, FieldBatchStart, FieldBatchEnd, FieldBackfill, FieldMetadata}

// DateFields are the special fields that hold timestamps.
var DateFields = []string{FieldFromDate, FieldToDate, FieldBatchStart, FieldBatchEnd, FieldInitialFromDate}

// IsRuntimeField reports whether a field is written by transitions rather than by configuration.
func IsRuntimeField(name string) bool { return contains(RuntimeFields, name) }

// IsDateField reports whether a special field holds a timestamp.
func IsDateField(name string) bool { return contains(DateFields, name) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Status is a job's state in its batch cycle.
type Status string

// The statuses of SPEC.md, and abandoned, which only appears in history.
const (
	StatusNew       Status = "new"
	StatusOpen      Status = "open"
	StatusSuccess   Status = "success"
	StatusFailed    Status = "failed"
	StatusAbandoned Status = "abandoned"
)

// ParseStatus reads a configured status; the original's "failure" is read as failed.
func ParseStatus(s string) (Status, error) {
	switch s {
	case "new", "open", "success", "failed":
		return Status(s), nil
	case "failure":
		return StatusFailed, nil
	}
	return "", Errorf(EINVALID, "status %q is not one of new, open, success, failed", clip(s))
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// ValidName reports whether s may name a workflow, a job or a field: 1 to 128 of [A-Za-z0-9_.-],
// and not "." or "..", so that no name can traverse a path or act as a glob in a Redis pattern.
func ValidName(s string) bool {
	return nameRE.MatchString(s) && s != "." && s != ".."
}

// CheckName returns an EINVALID error naming what is wrong with a workflow, job or field name.
func CheckName(kind, s string) error {
	if !ValidName(s) {
		return Errorf(EINVALID, "%s name %q is invalid: use 1 to 128 of A-Z a-z 0-9 _ . -", kind, clip(s))
	}
	return nil
}

// Fields are a job's fields, each value kept as its JSON text so that numbers keep their digits and
// every type survives a round trip through the store unchanged.
type Fields map[string]json.RawMessage

// Null is the JSON text of a field without a value (batch_end while a batch is open).
var Null = json.RawMessage("null")

// Names returns the field names, sorted.
func (f Fields) Names() []string {
	return f.appendNames(make([]string, 0, len(f)))
}

// appendNames appends the field names, sorted, to names: a caller that renders a job passes an
// array of its own, so that the list is not allocated per job.
func (f Fields) appendNames(names []string) []string {
	start := len(names)
	for k := range f {
		names = append(names, k)
	}
	slices.Sort(names[start:])
	return names
}

// String returns a string field's value; ok is false when it is absent or not a string.
func (f Fields) String(name string) (s string, ok bool) {
	raw, present := f[name]
	if !present || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Time returns a date field's value; ok is false when it is absent, null or not a date.
func (f Fields) Time(name string) (t time.Time, ok bool) {
	s, ok := f.String(name)
	if !ok {
		return time.Time{}, false
	}
	t, err := ParseTime(s)
	return t, err == nil
}

// Float returns a number field's value; ok is false when it is absent or not a number.
func (f Fields) Float(name string) (v float64, ok bool) {
	raw, present := f[name]
	if !present || json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	return v, true
}

// Int returns an integer field's value; ok is false when it is absent or not an integer.
func (f Fields) Int(name string) (v int64, ok bool) {
	raw, present := f[name]
	if !present || json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	return v, true
}

// Bool returns a boolean field's value; ok is false when it is absent or not a boolean.
func (f Fields) Bool(name string) (v bool, ok bool) {
	raw, present := f[name]
	if !present || json.Unmarshal(raw, &v) != nil {
		return false, false
	}
	return v, true
}

// Status returns the job's status, reading the original's "failure" as failed.
func (f Fields) Status() Status {
	s, _ := f.String(FieldStatus)
	if s == "failure" {
		return StatusFailed
	}
	return Status(s)
}

// MarshalJSON writes the fields with sorted names, keeping each value's JSON text as stored.
func (f Fields) MarshalJSON() ([]byte, error) {
	return f.appendJSON(nil), nil
}

// appendJSON appends the fields as MarshalJSON writes them to b.
func (f Fields) appendJSON(b []byte) []byte {
	var buf [32]string // most jobs have fewer fields: no allocation for the sorted names
	b = append(b, '{')
	for i, name := range f.appendNames(buf[:0]) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, name)
		b = append(b, ':')
		b = append(b, f[name]...)
	}
	return append(b, '}')
}

// appendKey appends name as a JSON string, as json.Marshal writes it. Names are nearly always
// plain ASCII, which json.Marshal would write unchanged between quotes: quoting those here saves
// its reflection and allocations on every field of every answer.
func appendKey(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			key, _ := json.Marshal(name)
			return append(b, key...)
		}
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"')
}

// Job is one job of a workflow with its fields.
type Job struct {
	Name   string
	Fields Fields
}

// Jobs is a workflow's jobs in configuration order; as JSON it is the original's {job: {field: value}}
// object, with the jobs in that order.
type Jobs []Job

// MarshalJSON writes {job: {field: value}} keeping the jobs' order.
func (jobs Jobs) MarshalJSON() ([]byte, error) {
	return jobs.AppendJSON(nil), nil
}

// AppendJSON appends the jobs as MarshalJSON writes them to b, in one buffer for the whole answer.
func (jobs Jobs) AppendJSON(b []byte) []byte {
	if b == nil {
		b = make([]byte, 0, jobs.jsonSize()) // one allocation for the whole answer
	}
	b = append(b, '{')
	for i, j := range jobs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, j.Name)
		b = append(b, ':')
		b = j.Fields.appendJSON(b)
	}
	return append(b, '}')
}

// jsonSize is the length of the jobs' JSON text when no name needs escaping.
func (jobs Jobs) jsonSize() int {
	n := 2
	for _, j := range jobs {
		n += len(j.Name) + 6 // "name":{},
		for k, v := range j.Fields {
			n += len(k) + len(v) + 4 // "k":v,
		}
	}
	return n
}

// UnmarshalJSON reads {job: {field: value}}, keeping the jobs in the order the object lists them.
func (jobs *Jobs) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("jobs must be a JSON object of job names to field objects")
	}
	out := Jobs{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		var f Fields
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("job %s: %w", name, err)
		}
		out = append(out, Job{Name: name, Fields: f})
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*jobs = out
	return nil
}

// Get returns the named job.
func (jobs Jobs) Get(name string) (Job, bool) {
	for _, j := range jobs {
		if j.Name == name {
			return j, true
		}
	}
	return Job{}, false
}

// BatchID returns the highest batch_id among the jobs: the batch they were last opened in together.
func (jobs Jobs) BatchID() int64 {
	var id int64
	for _, j := range jobs {
		if v, ok := j.Fields.Int(FieldBatchID); ok && v > id {
			id = v
		}
	}
	return id
}

// String returns the status's name.
func (s Status) String() string { return string(s) }

// Hidden stands for a secret value wherever state is shown.
const Hidden = "(hidden)"

// secretRunKeys are the settings of a run: field whose values are secrets (HTTP headers carry
// tokens, environment variables passwords).
var secretRunKeys = []string{"headers", "env"}

// WithoutSecrets returns the fields with the values of run:'s headers and env replaced by Hidden
// and the credentials of its url hidden (HideURLSecrets), for showing; f itself is not changed. Fields without such secrets are returned as they are.
func (f Fields) WithoutSecrets() Fields {
	g, _ := f.withoutSecrets()
	return g
}

// withoutSecrets is WithoutSecrets, telling whether anything was hidden.
func (f Fields) withoutSecrets() (Fields, bool) {
	raw, ok := f[FieldRun]
	if !ok {
		return f, false
	}
	var run map[string]any
	if json.Unmarshal(raw, &run) != nil {
		return f, false
	}
	changed := false
	if u, ok := run["url"].(string); ok {
		if hidden := HideURLSecrets(u); hidden != u {
			run["url"], changed = hidden, true
		}
	}
	if c, ok := run["completion"].(map[string]any); ok {
		// An asynchronous http job's status URL may carry credentials as its url does.
		if p, ok := c["poll"].(string); ok {
			if hidden := HideURLSecrets(p); hidden != p {
				c["poll"], changed = hidden, true
			}
		}
	}
	for _, k := range secretRunKeys {
		if m, ok := run[k].(map[string]any); ok {
			for key := range m {
				m[key] = Hidden
				changed = true
			}
		}
	}
	if !changed {
		return f, false
	}
	out, err := json.Marshal(run)
	if err != nil {
		return f, false
	}
	g := make(Fields, len(f))
	for k, v := range f {
		g[k] = v
	}
	g[FieldRun] = out
	return g, true
}

// WithoutSecrets returns the jobs with their fields' secrets hidden (see Fields.WithoutSecrets);
// jobs is not changed. Jobs without such secrets, as most are, are returned as they are: every
// answer is shown through here, and most would otherwise be copied for nothing.
func (jobs Jobs) WithoutSecrets() Jobs {
	var out Jobs
	for i, j := range jobs {
		f, changed := j.Fields.withoutSecrets()
		if !changed {
			continue
		}
		if out == nil {
			out = slices.Clone(jobs)
		}
		out[i] = Job{Name: j.Name, Fields: f}
	}
	if out == nil {
		return jobs
	}
	return out
}

// HideURLSecrets returns a URL with what may be a credential hidden: the password of its userinfo,
// a username without a password (a token, as nats://TOKEN@host takes it) and the values of query
// parameters named like credentials (?password=, ?token=, ?sslkey=, ?api_key=, ?sig=...); other
// parameters (?sslmode=, ?subject_prefix=) stay, so two sinks remain distinguishable. Text that is
// not a URL is hidden whole.
func HideURLSecrets(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Hidden
	}
	if URLMisread(raw) {
		return u.Scheme + "://" + Hidden
	}
	if u.User == nil && u.RawQuery == "" && u.Fragment == "" {
		return raw // nothing to hide: the URL stays exactly as given
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "xxxxx", ""
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if credentialName(k) {
				q[k] = []string{"xxxxx"}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// URLMisread reports whether a URL's user information cannot be read as such: a password holding
// an unescaped '#', '/' or '?' ends it early, and url.Parse then reads the password as part of the
// path, query or fragment and the host as whatever follows. Such a URL is neither shown nor used
// (go-redis would quietly connect to localhost).
func URLMisread(raw string) bool {
	if !strings.Contains(raw, "@") {
		return false
	}
	u, err := url.Parse(raw)
	return err != nil || u.User == nil || strings.Contains(u.Path+u.RawQuery+u.Fragment+u.Opaque, "@")
}

// credentialName reports whether a query parameter's name says it holds a credential.
func credentialName(name string) bool {
	n := strings.ToLower(name)
	for _, part := range []string{"pass", "pwd", "token", "secret", "key", "auth", "sig", "cred", "session"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}
