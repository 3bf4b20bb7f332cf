package format

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/batch"
)

// fuzzJobs builds two jobs from fuzzed parts: job names, a field name, a string value (stored as
// a JSON string) and raw JSON (stored as it is when valid), plus a date and a null, so that every
// kind of value each format renders is there. Names a workflow file could not hold are replaced,
// since the store never holds them.
func fuzzJobs(job, field, value string, raw []byte) batch.Jobs {
	if !batch.ValidName(job) {
		job = "job"
	}
	if !batch.ValidName(field) {
		field = "field"
	}
	f := batch.Fields{
		field:                  json.RawMessage(str(value)),
		"from_date":            json.RawMessage(`"2026-11-22T13:49:30.840061Z"`),
		"batch_end":            batch.Null,
		batch.FieldInfaSection: json.RawMessage(str(value)),
	}
	if json.Valid(raw) {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			f["raw"] = json.RawMessage(b.Bytes())
		}
	}
	return batch.Jobs{{Name: job, Fields: f}, {Name: job + "_2", Fields: batch.Fields{"v": json.RawMessage(str(value)), "batch_id": json.RawMessage(`12`)}}}
}

func addFormatSeeds(f *testing.F) {
	f.Add("job2", "param1", "hello", []byte(`{"a":[1,2.5e10,"x"],"b":null}`))
	f.Add("job", "v", "it's", []byte(`12345678901234567890123`))
	for _, v := range hostile {
		f.Add("job-a", "x.y", v, []byte(str(v)))
	}
	f.Add("a", "b", "\u2028\u0085 line separators", []byte(`"\u2028"`))
	f.Add("a", "b", "\xff\xfe invalid UTF-8", []byte("\"\xff\""))
	f.Add("a", "b", "]\n[forged]\n$$x=1", []byte(`"]\r\n[forged]"`))
}

// FuzzJSON: the json output is valid JSON that reads back as exactly the jobs written, in order.
func FuzzJSON(f *testing.F) {
	addFormatSeeds(f)
	f.Fuzz(func(t *testing.T, job, field, value string, raw []byte) {
		jobs := fuzzJobs(job, field, value, raw)
		out := render(t, JSON, "wf", 1, jobs, Options{})
		if !json.Valid([]byte(out)) {
			t.Fatalf("json output is not valid JSON: %q", out)
		}
		var back batch.Jobs
		if err := json.Unmarshal([]byte(out), &back); err != nil {
			t.Fatalf("json output does not read back: %v\n%s", err, out)
		}
		if len(back) != len(jobs) {
			t.Fatalf("%d jobs read back, want %d", len(back), len(jobs))
		}
		for i, j := range jobs {
			if back[i].Name != j.Name || len(back[i].Fields) != len(j.Fields) {
				t.Fatalf("job %d read back as %s with %d fields, want %s with %d", i, back[i].Name, len(back[i].Fields), j.Name, len(j.Fields))
			}
			for name, v := range j.Fields {
				if !sameJSON(back[i].Fields[name], v) {
					t.Errorf("job %s field %s read back as %s, want %s", j.Name, name, back[i].Fields[name], v)
				}
			}
		}
	})
}

// sameJSON compares two JSON values by meaning (key order, spacing). Numbers compare by their
// text, since a valid JSON number such as 1E700 does not fit a float64.
func sameJSON(a, b json.RawMessage) bool {
	x, errX := decodeJSON(a)
	y, errY := decodeJSON(b)
	if errX != nil || errY != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// FuzzInfa: whatever the values and the date format, the infa output is one section line per job
// and one $$name=value line per field, in order: no value can start a line of its own.
func FuzzInfa(f *testing.F) {
	addFormatSeeds(f)
	f.Fuzz(func(t *testing.T, job, field, value string, raw []byte) {
		jobs := fuzzJobs(job, field, value, raw)
		dateFormat := ""
		if len(raw) < 40 && CheckInfaDateFormat(string(raw)) == nil {
			dateFormat = string(raw) // the raw bytes double as a date format when they are one
		}
		out := render(t, Infa, "wf", 1, jobs, Options{InfaDateFormat: dateFormat})
		if !strings.HasSuffix(out, "\n") {
			t.Fatalf("infa output does not end with a line break: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		i := 0
		for _, j := range jobs {
			if i >= len(lines) {
				t.Fatalf("output ends before job %s:\n%s", j.Name, out)
			}
			if l := lines[i]; !strings.HasPrefix(l, "[") || !strings.HasSuffix(l, "]") || strings.ContainsAny(l, "\r\n") {
				t.Fatalf("line %d is not a section header: %q", i+1, l)
			}
			i++
			for _, name := range j.Fields.Names() {
				if i >= len(lines) {
					t.Fatalf("output ends before %s.%s:\n%s", j.Name, name, out)
				}
				if l := lines[i]; !strings.HasPrefix(l, "$$"+name+"=") || strings.Contains(l, "\r") {
					t.Fatalf("line %d is %q, want $$%s=...", i+1, l, name)
				}
				i++
			}
		}
		if i != len(lines) {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), i, out)
		}
	})
}

// envLine is one statement of the env output, exactly: export NAME='...' where the quoted part
// holds no single quote except as the '\” sequence (close, escaped quote, reopen); or, for a
// value with a control character, export NAME="$(printf '...')"; NAME="${NAME%_}" where the
// quoted part is a printf format that ends with the "_" the second assignment removes.
var envLine = regexp.MustCompile(`^export (BATCHY_[A-Z0-9_]*)=(?:'((?:[^']|'\\'')*)'|"\$\(printf '((?:[^']|'\\'')*)_'\)"; (BATCHY_[A-Z0-9_]*)="\$\{(BATCHY_[A-Z0-9_]*)%_\}")$`)

// splitEnv cuts env output into its statements: each ends with a line break after its closing
// quote (a value may itself hold line breaks).
var envStatement = regexp.MustCompile(`(?s)export [A-Z0-9_]*=(?:'(?:[^']|'\\'')*'|"\$\(printf '(?:[^']|'\\'')*'\)"; [A-Z0-9_]*="\$\{[A-Z0-9_]*%_\}")\n`)

// printfText is what printf writes for a format made only of text, \\, \ooo and %%.
func printfText(t *testing.T, f string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == '\\' && i+1 < len(f) && f[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case f[i] == '\\' && i+3 < len(f):
			n, err := strconv.ParseUint(f[i+1:i+4], 8, 8)
			if err != nil {
				t.Fatalf("bad octal escape in %q", f)
			}
			b.WriteByte(byte(n))
			i += 3
		case f[i] == '%' && i+1 < len(f) && f[i+1] == '%':
			b.WriteByte('%')
			i++
		case f[i] == '\\' || f[i] == '%':
			t.Fatalf("a printf format with a lone %c: %q", f[i], f)
		default:
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// FuzzEnv: every statement of the env output is exactly export NAME='...', with the value
// single-quoted so that it reads back as the value EnvVars gives and a shell expands nothing. For
// a sample of inputs the output is run by sh, which must set exactly those values and run
// nothing.
func FuzzEnv(f *testing.F) {
	addFormatSeeds(f)
	f.Add("job", "cmd", "$(touch pwned)`touch pwned2`'$(touch pwned3)'\\", []byte(`"$(touch pwned4)"`))
	f.Fuzz(func(t *testing.T, job, field, value string, raw []byte) {
		jobs := fuzzJobs(job, field, value, raw)
		wf := job // the workflow's name is rendered too
		out := render(t, Env, wf, 7, jobs, Options{})
		vars := EnvVars(wf, 7, jobs)
		statements := envStatement.FindAllStringIndex(out, -1)
		covered := 0
		for _, s := range statements {
			if s[0] != covered {
				t.Fatalf("text that is not an export statement at byte %d: %q", covered, out[covered:s[0]])
			}
			covered = s[1]
		}
		if covered != len(out) {
			t.Fatalf("text that is not an export statement at byte %d: %q", covered, out[covered:])
		}
		if len(statements) != len(vars) {
			t.Fatalf("%d statements, want %d (EnvVars):\n%s", len(statements), len(vars), out)
		}
		for i, s := range statements {
			m := envLine.FindStringSubmatch(strings.TrimSuffix(out[s[0]:s[1]], "\n"))
			if m == nil {
				t.Fatalf("statement %d is not export NAME='...': %q", i+1, out[s[0]:s[1]])
			}
			name, value, _ := strings.Cut(vars[i], "=")
			if m[1] != name {
				t.Errorf("statement %d sets %s, want %s", i+1, m[1], name)
			}
			got := strings.ReplaceAll(m[2], `'\''`, "'")
			if m[3] != "" || strings.HasPrefix(out[s[0]:], "export "+name+"=\"") {
				if m[4] != name || m[5] != name {
					t.Errorf("statement %d: printf form for %s names %s and %s", i+1, name, m[4], m[5])
				}
				got = printfText(t, strings.ReplaceAll(m[3], `'\''`, "'"))
				if strings.HasPrefix(m[3], "-") {
					t.Errorf("statement %d: a printf format starting with -: %q", i+1, m[3])
				}
			}
			if got != value {
				t.Errorf("%s reads back as %q, want %q", name, got, value)
			}
			if strings.ContainsRune(value, 0) {
				t.Errorf("%s holds a NUL byte", name)
			}
		}
		if sampled(job, field, value, raw) {
			shellRun(t, out, vars)
		}
	})
}

// sampled picks about one input in 16, by a hash of the input so that a failure reproduces, to
// run through sh (a process per input would slow the fuzzer down too much).
func sampled(parts ...any) bool {
	h := fnv.New32a()
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			h.Write([]byte(p))
		case []byte:
			h.Write(p)
		}
	}
	return h.Sum32()%16 == 0
}

// shellRun runs out with sh in an empty directory, then prints the environment: every variable of
// vars must hold its value exactly, and nothing may have run (no file created).
func shellRun(t *testing.T, out string, vars []string) {
	t.Helper()
	var names []string
	want := map[string]string{} // the last assignment of a name wins in a shell
	for _, v := range vars {
		name, value, _ := strings.Cut(v, "=")
		names = append(names, name)
		want[name] = value
	}
	values, created := shell(t, out, names)
	if len(created) > 0 {
		t.Fatalf("running the env output created %v: a command ran\n%s", created, out)
	}
	if len(values) != len(names) {
		t.Fatalf("sh printed %d values, want %d", len(values), len(names))
	}
	for i, name := range names {
		if values[i] != want[name] {
			t.Errorf("sh has %s=%q, want %q", name, values[i], want[name])
		}
	}
}

// shell runs script with sh in an empty directory and then prints the variables names; it returns
// their values and the files the script created.
func shell(t *testing.T, script string, names []string) (values, created []string) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh is not installed")
	}
	dir := t.TempDir()
	// Each variable NUL-terminated: a value may hold line breaks.
	script += "printf '%s\\0'"
	for _, n := range names {
		script += ` "$` + n + `"`
	}
	cmd := exec.Command(sh, "-c", script+"\n")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh failed: %v\n%s", err, script)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		created = append(created, e.Name())
	}
	values = strings.Split(string(got), "\x00")
	return values[:len(values)-1], created
}

// TestEnvShellRunsNothing runs the env output of hostile values through sh, as eval would: no
// command runs and every value arrives as it was.
func TestEnvShellRunsNothing(t *testing.T) {
	// The check itself: unquoted, the same value runs its command.
	if _, created := shell(t, "export X=\"$(touch pwned)\"\n", []string{"X"}); len(created) != 1 {
		t.Fatalf("the shell check does not notice a command that ran (files: %v)", created)
	}
	for i, v := range append(hostile, "$(touch pwned)", "`touch pwned`", "'$(touch pwned)'", "\\'; touch pwned; '") {
		jobs := fuzzJobs("job", "field", v, []byte(str(v)))
		out := render(t, Env, "wf", int64(i+1), jobs, Options{})
		shellRun(t, out, EnvVars("wf", int64(i+1), jobs))
	}
}
