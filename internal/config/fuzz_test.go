package config_test

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
)

// storedDate is the one form a date field is stored in, which the Lua scripts read.
var storedDate = regexp.MustCompile(`^"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"$`)

// FuzzParse: whatever the file holds, Parse returns either a workflow whose every job and field
// name is valid, every value JSON and every special field normalised and within its rules, the
// same on every call; or an EINVALID or ETOOLARGE error naming the workflow. It never panics,
// and never expands an alias bomb.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/wf1.yaml", "../../cfg/wf1.yaml", "../../cfg/sales.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"job:\n  from_date: 2016-01-01T23:59\n  status: failure\n  reprocess_hours: 1.5\n  trunc_start: yes\n",
		"job:\n  batch_id: 12345678901234567890\n  big: 12345678901234567890123\n  oct: 017\n  hex: 0x1F\n  under: 1_000\n",
		"job:\n  when: 2016-01-01\n  nested: {a: [2016-01-01, {b: 2016-01-01T10:00:00Z}]}\n",
		"batchy:\n  exclusive: true\n  schedule: \"@daily\"\n  retries: {count: 2, backoff: 1m}\na:\n  needs: [b]\nb: {}\n",
		"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
		"job1:\n  x: &a [*a]\n",
		"base: &b {x: 1}\na: *b\nc:\n  <<: *b\n",
		"job: [unclosed\n",
		"a: {}\n---\nb: {}\n",
		"? [a, b]\n: {}\n",
		"a:\n  x: .inf\n  y: .nan\n  z: ~\n  w: !!binary aGVsbG8=\n",
		"a:\n  from_date: null\n  batch_end: ~\n  infa_section: \"s\"\n",
		"\"..\": {}\n\"a*\": {}\n",
		"a:\n  !!str 1: x\n  2: y\n",
		"%YAML 1.2\n---\na: {x: !custom 1}\n",
		"\xef\xbb\xbfa: {}\n",
		"a:\n  s: \"\\u0000\\t\\n'\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wf, err := config.Parse("wf", data, config.Limits{})
		if err != nil {
			if code := batch.ErrorCode(err); code != batch.EINVALID && code != batch.ETOOLARGE {
				t.Fatalf("Parse: code %q (%v), want %q or %q", code, err, batch.EINVALID, batch.ETOOLARGE)
			}
			if msg := batch.ErrorMessage(err); !strings.Contains(msg, "wf") {
				t.Errorf("message %q does not name the workflow", msg)
			}
			return
		}
		if len(wf.Jobs) == 0 {
			t.Fatal("a workflow without jobs was accepted")
		}
		for _, j := range wf.Jobs {
			if !batch.ValidName(j.Name) || j.Name == batch.SettingsKey {
				t.Errorf("job name %q accepted", j.Name)
			}
			for name, raw := range j.Fields {
				checkField(t, j.Name, name, raw)
			}
		}
		if _, err := json.Marshal(wf.Jobs); err != nil {
			t.Errorf("the jobs do not marshal: %v", err)
		}
		again, err := config.Parse("wf", data, config.Limits{})
		if err != nil || !reflect.DeepEqual(again, wf) {
			t.Errorf("a second Parse differs: %v", err)
		}
	})
}

// checkField checks one parsed field against the rules of the special fields.
func checkField(t *testing.T, job, name string, raw json.RawMessage) {
	t.Helper()
	if !batch.ValidName(name) {
		t.Errorf("job %s: field name %q accepted", job, name)
	}
	if !json.Valid(raw) {
		t.Fatalf("job %s: field %s is not JSON: %q", job, name, raw)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("job %s: field %s does not decode: %v", job, name, err)
	}
	// The document is depth 0, the jobs' map 1, a job's map 2, a field's value 3.
	if d := 3 + height(v); d > 32 {
		t.Errorf("job %s: field %s nests %d levels deep, past the default MaxDepth 32", job, name, d)
	}
	f := batch.Fields{name: raw}
	switch {
	case name == batch.FieldStatus:
		switch f.Status() {
		case batch.StatusNew, batch.StatusOpen, batch.StatusSuccess, batch.StatusFailed:
		default:
			t.Errorf("job %s: status %s accepted", job, raw)
		}
		if string(raw) == `"failure"` {
			t.Errorf("job %s: status failure kept, want failed", job)
		}
	case batch.IsDateField(name):
		if string(raw) != "null" && !storedDate.MatchString(string(raw)) {
			t.Errorf("job %s: %s is %s, not a stored date", job, name, raw)
		}
	case name == batch.FieldBatchID:
		if v, ok := f.Int(name); !ok || v < 0 {
			t.Errorf("job %s: batch_id %s accepted", job, raw)
		}
	case name == batch.FieldReprocessHours:
		if v, ok := f.Float(name); !ok || v < 0 {
			t.Errorf("job %s: reprocess_hours %s accepted", job, raw)
		}
	case name == batch.FieldTruncStart:
		if _, ok := f.Bool(name); !ok {
			t.Errorf("job %s: trunc_start %s accepted", job, raw)
		}
	case name == batch.FieldInfaSection:
		if s, ok := f.String(name); !ok || s == "" || strings.ContainsAny(s, "[]\r\n") {
			t.Errorf("job %s: infa_section %s accepted", job, raw)
		}
	case name == batch.FieldBackfill || name == batch.FieldMetadata:
		t.Errorf("job %s: %s is set by batchy, but the file set it", job, name)
	}
}

// height is how many levels below v its lists and maps reach, as checkSize counts YAML nodes
// (an empty list or map is as high as a scalar).
func height(v any) int {
	h := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			h = max(h, height(e)+1)
		}
	case map[string]any:
		for _, e := range v {
			h = max(h, height(e)+1)
		}
	}
	return h
}
