package format

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// The original's layout is checked against golden files that Python 2.7's json.dumps(indent=4)
// and str() wrote (testdata/original.py, see its header), with batchy's values.
func TestOriginalGolden(t *testing.T) {
	jobs := exampleJobs(t)
	failed := exampleJobs(t)
	for _, j := range failed {
		j.Fields["status"] = json.RawMessage(`"failed"`)
		j.Fields["batch_end"] = json.RawMessage(`"2026-11-22T14:00:00.250000Z"`)
	}
	for _, c := range []struct {
		file string
		f    Format
		jobs batch.Jobs
		opts Options
	}{
		{"wf1.original.json", JSON, jobs, Options{Original: true}},
		{"wf1.original.infa", Infa, jobs, Options{Original: true, InfaDateFormat: OriginalDates}},
		{"wf1.failed.original.json", JSON, failed, Options{Original: true}},
		{"wf1.failed.original.infa", Infa, failed, Options{Original: true, InfaDateFormat: OriginalDates}},
		// The improved dates on the original route: the original's layout, Informatica's dates.
		{"wf1.original-layout.infa", Infa, jobs, Options{Original: true}},
	} {
		t.Run(c.file, func(t *testing.T) {
			golden(t, c.file, render(t, c.f, "wf1", c.jobs.BatchID(), c.jobs, c.opts))
		})
	}
}

func TestOriginalJSONValues(t *testing.T) {
	for _, c := range []struct {
		name, value, want string
	}{
		{"string", `"hello"`, `"hello"`},
		{"escapes as Python", `"q\" b\\ \n\r\t\b\f \u0001"`, `"q\" b\\ \n\r\t\b\f \u0001"`},
		{"non-ASCII and separators escaped", "\"é \u0085 \u2028 \u2029 \x7f\"", `"\u00e9 \u0085 \u2028 \u2029 \u007f"`},
		{"beyond the BMP as a surrogate pair", `"😀"`, `"\ud83d\ude00"`},
		{"HTML is not escaped", `"<a&b>"`, `"<a&b>"`},
		{"numbers keep their text", `12345678901234567890`, `12345678901234567890`},
		{"booleans and null", `[true, false, null]`, "[\n            true, \n            false, \n            null\n        ]"},
		{"empty list and map", `[[], {}]`, "[\n            [], \n            {}\n        ]"},
		{"nested map sorted", `{"z": 1, "a": {"b": "c"}}`, "{\n            \"a\": {\n                \"b\": \"c\"\n            }, \n            \"z\": 1\n        }"},
	} {
		t.Run(c.name, func(t *testing.T) {
			jobs := batch.Jobs{{Name: "j", Fields: fields(t, "v", c.value)}}
			want := "{\n    \"j\": {\n        \"v\": " + c.want + "\n    }\n}"
			if got := string(OriginalJSON(nil, jobs)); got != want {
				t.Errorf("got:\n%q\nwant:\n%q", got, want)
			}
		})
	}
	if got := string(OriginalJSON(nil, nil)); got != "{}" {
		t.Errorf("no jobs: %q, want {}", got)
	}
	if got := string(OriginalJSON(nil, batch.Jobs{{Name: "j", Fields: batch.Fields{}}})); got != "{\n    \"j\": {}\n}" {
		t.Errorf("job without fields: %q", got)
	}
}

func TestPyText(t *testing.T) {
	for raw, want := range map[string]string{
		`"x"`: "x", `null`: "None", `true`: "True", `false`: "False", `2`: "2", `-7`: "-7",
		`123456789012345678901234567890`: "123456789012345678901234567890",
		`2.0`:                            "2.0", `1.5`: "1.5", `0.30000000000000004`: "0.3", `1e3`: "1000.0", `1.5e20`: "1.5e+20", `1e-5`: "1e-05",
		`[1, "a"]`: `[1,"a"]`,
	} {
		if got := pyText(json.RawMessage(raw)); got != want {
			t.Errorf("pyText(%s) = %q, want %q", raw, got, want)
		}
	}
}

func TestPyTime(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 12, 4, 2, 32, 50, 965060000, time.UTC), "2026-12-04 02:32:50.965060"},
		{time.Date(1776, 7, 4, 23, 59, 0, 0, time.UTC), "1776-07-04 23:59:00"},
		{time.Date(2026, 1, 2, 3, 4, 5, 60000, time.UTC), "2026-01-02 03:04:05.000060"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC), "2026-01-02 03:04:05"}, // below a microsecond
		{time.Date(2026, 1, 2, 8, 4, 5, 0, time.FixedZone("EST", -5*3600)), "2026-01-02 13:04:05"},
	} {
		if got := pyTime(c.t); got != c.want {
			t.Errorf("pyTime(%s) = %q, want %q", c.t, got, c.want)
		}
	}
}

// controls are the characters that must never reach infa or env output raw.
var controls = []string{"\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\u0085", "\u009b", "\u2028", "\u2029"}

func TestInfaControlCharacters(t *testing.T) {
	for _, opts := range []Options{{}, {Original: true, InfaDateFormat: OriginalDates}} {
		for _, c := range controls {
			jobs := batch.Jobs{{Name: "job", Fields: fields(t, "v", str("a"+c+"b"), "infa_section", str("s"+c))}}
			got := render(t, Infa, "wf", 0, jobs, opts)
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			for _, l := range lines {
				if hasControl(l) {
					t.Errorf("%q (original %v): a line holds a control character: %q", c, opts.Original, l)
				}
			}
			if !strings.Contains(got, "$$v=a"+strings.Repeat(" ", len([]rune(c)))+"b\n") {
				t.Errorf("%q (original %v): the value is not written with a space per control character:\n%q", c, opts.Original, got)
			}
		}
	}
}

func TestEnvControlCharacters(t *testing.T) {
	f := batch.Fields{}
	want := map[string]string{}
	values := append(append([]string{}, controls...), "-n\x01", "%s\x01\\n\\'", "'\x01'", "end\n\n", "\n", "é\u0085é")
	for i, c := range values {
		name := "v" + string(rune('a'+i))
		f[name] = json.RawMessage(str(c))
		want[EnvName("job", name)] = strings.ReplaceAll(c, "\x00", "")
	}
	jobs := batch.Jobs{{Name: "job", Fields: f}}
	script := render(t, Env, "wf1", 1, jobs, Options{})
	for _, l := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		if hasControl(l) {
			t.Errorf("a line holds a control character: %q", l)
		}
	}
	checkEval(t, "wf1", jobs, want)
	// dash, the /bin/sh of Debian and Ubuntu, reads the same script to the same values.
	dash, err := exec.LookPath("dash")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dash is not installed")
		}
		t.Skip("dash is not installed")
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	cmd := exec.Command(dash, "-c", `eval "$1"; shift; for n in "$@"; do eval "printf '%s\\0' \"\${$n}\""; done`, "dash", script)
	cmd.Args = append(cmd.Args, names...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dash: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	if len(got) != len(names)+1 {
		t.Fatalf("dash printed %d values, want %d: %q", len(got)-1, len(names), out)
	}
	for i, name := range names {
		if got[i] != want[name] {
			t.Errorf("dash: %s = %q, want %q", name, got[i], want[name])
		}
	}
}

// FuzzOriginalJSON: the original-layout JSON is printable ASCII and line breaks only, and reads
// back as the same values as the v1 JSON (failed read as the original's failure).
func FuzzOriginalJSON(f *testing.F) {
	addFormatSeeds(f)
	f.Add("j", "status", "failed", []byte(`{"z":[[],{}],"a":"\u00e9\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, job, field, value string, raw []byte) {
		jobs := fuzzJobs(job, field, value, raw)
		got := OriginalJSON(nil, jobs)
		for i, c := range got {
			if (c < ' ' || c > '~') && c != '\n' {
				t.Fatalf("byte %d is %q: not printable ASCII\n%s", i, c, got)
			}
		}
		var a, b map[string]map[string]any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, got)
		}
		if err := json.Unmarshal(jobs.AppendJSON(nil), &b); err != nil {
			t.Fatalf("the v1 JSON is not JSON: %v", err)
		}
		for _, j := range b {
			if j["status"] == "failed" {
				j["status"] = "failure"
			}
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("reads back differently:\n%v\n%v", a, b)
		}
	})
}
