package format

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fields builds batch.Fields from field/JSON-text pairs.
func fields(tb testing.TB, kv ...string) batch.Fields {
	tb.Helper()
	if len(kv)%2 != 0 {
		tb.Fatalf("fields: odd number of arguments")
	}
	f := batch.Fields{}
	for i := 0; i < len(kv); i += 2 {
		if !json.Valid([]byte(kv[i+1])) {
			tb.Fatalf("fields: %s is not JSON: %s", kv[i], kv[i+1])
		}
		f[kv[i]] = json.RawMessage(kv[i+1])
	}
	return f
}

// str returns the JSON text of s.
func str(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// exampleJobs are the jobs of SPEC.md's example (reference/wf1.yaml) after the first open at
// 2026-11-22T13:49:30Z.
func exampleJobs(tb testing.TB) batch.Jobs {
	tb.Helper()
	const (
		open = `"2026-11-22T13:49:30.000000Z"`
		id   = `1795355370`
	)
	return batch.Jobs{
		{Name: "job1", Fields: fields(tb,
			"param1", `"hello"`, "param2", `"2016-01-01"`, "status", `"open"`,
			"batch_end_date", `"2016-01-01T23:59"`,
			"from_date", `"1776-07-04T23:59:00.000000Z"`, "to_date", open,
			"batch_start", open, "batch_end", `null`, "batch_id", id)},
		{Name: "job2", Fields: fields(tb,
			"reprocess_hours", `2`, "param1", `"hello"`, "yippee", `"2016-01-01"`,
			"from_date", `"2016-01-01T23:59:00.000000Z"`, "to_date", open, "status", `"open"`,
			"batch_start", open, "batch_end", `null`, "batch_id", id)},
		{Name: "job3", Fields: fields(tb,
			"reprocess_hours", `2`, "trunc_start", `true`, "param1", `"hello"`, "param2", `"2016-01-01"`,
			"from_date", `"2016-01-01T00:00:00.000000Z"`, "to_date", open, "status", `"open"`,
			"batch_start", open, "batch_end", `null`, "batch_id", id)},
	}
}

// render runs Write and fails the test on an error.
func render(tb testing.TB, f Format, wf string, batchID int64, jobs batch.Jobs, opts Options) string {
	tb.Helper()
	var b strings.Builder
	if err := Write(&b, f, wf, batchID, jobs, opts); err != nil {
		tb.Fatalf("Write(%s): %v", f, err)
	}
	return b.String()
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(tb testing.TB, name, got string) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		tb.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	jobs := exampleJobs(t)
	for _, c := range []struct {
		file string
		f    Format
	}{
		{"wf1.infa", Infa},
		{"wf1.env", Env},
		{"wf1.json", JSON},
	} {
		t.Run(c.file, func(t *testing.T) {
			golden(t, c.file, render(t, c.f, "wf1", jobs.BatchID(), jobs, Options{}))
		})
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"", JSON, false},
		{"json", JSON, false},
		{"infa", Infa, false},
		{"env", Env, false},
		{"xml", "", true},
		{"INFA", "", true},
		{" env", "", true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := Parse(c.in)
			if got != c.want || (err != nil) != c.wantErr {
				t.Fatalf("Parse(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.wantErr)
			}
			if err == nil {
				return
			}
			if code := batch.ErrorCode(err); code != batch.EINVALID {
				t.Errorf("error code = %q, want %q", code, batch.EINVALID)
			}
			msg := batch.ErrorMessage(err)
			for _, want := range []string{c.in, "json", "infa", "env"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
		})
	}
}

func TestContentType(t *testing.T) {
	for _, c := range []struct {
		f    Format
		want string
	}{
		{JSON, "application/json"},
		{"", "application/json"},
		{Infa, "text/plain; charset=utf-8"},
		{Env, "text/plain; charset=utf-8"},
	} {
		if got := c.f.ContentType(); got != c.want {
			t.Errorf("%q.ContentType() = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	err := Write(&strings.Builder{}, Format("xml"), "wf1", 0, nil, Options{})
	if batch.ErrorCode(err) != batch.EINVALID {
		t.Fatalf("Write(xml) error = %v, want %s", err, batch.EINVALID)
	}
}

func TestJSON(t *testing.T) {
	jobs := batch.Jobs{
		{Name: "b", Fields: fields(t, "x", `"<a&b>"`, "n", `12345678901234567890`)},
		{Name: "a", Fields: fields(t)},
	}
	// Job order is kept and the stored text is not HTML-escaped.
	want := `{"b":{"n":12345678901234567890,"x":"<a&b>"},"a":{}}`
	if got := render(t, JSON, "wf", 0, jobs, Options{}); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := render(t, "", "wf", 0, nil, Options{}); got != "{}" {
		t.Errorf("no jobs: got %s, want {}", got)
	}
}

func TestInfaValues(t *testing.T) {
	for _, c := range []struct {
		name   string
		fields []string
		want   string
	}{
		{"infa_section overrides the job name", []string{"infa_section", `"Global"`, "a", `"x"`},
			"[Global]\n$$a=x\n$$infa_section=Global\n"},
		{"empty infa_section falls back to the job name", []string{"infa_section", `""`},
			"[job]\n$$infa_section=\n"},
		{"non-string infa_section falls back to the job name", []string{"infa_section", `7`},
			"[job]\n$$infa_section=7\n"},
		{"line breaks in infa_section", []string{"infa_section", str("a]\n[b")},
			"[a] [b]\n$$infa_section=a] [b\n"},
		{"null is empty", []string{"a", `null`, "batch_end", `null`}, "[job]\n$$a=\n$$batch_end=\n"},
		{"booleans", []string{"t", `true`, "f", `false`}, "[job]\n$$f=false\n$$t=true\n"},
		{"big and decimal numbers keep their text", []string{"big", `123456789012345678901234567890`, "dec", `1.50`, "exp", `1e3`, "neg", `-0.25`},
			"[job]\n$$big=123456789012345678901234567890\n$$dec=1.50\n$$exp=1e3\n$$neg=-0.25\n"},
		{"strings are unquoted and unescaped", []string{"s", `"say \"hi\" \\ \u00e9 $$x=1"`},
			"[job]\n$$s=say \"hi\" \\ é $$x=1\n"},
		{"line breaks become spaces", []string{"s", str("a\nb\r\nc\rd\n[evil]\n$$status=success")},
			"[job]\n$$s=a b  c d [evil] $$status=success\n"},
		{"lists and maps as compact JSON", []string{"l", `[1, "two", null]`, "m", `{"k": [true], "z": {}}`},
			"[job]\n$$l=[1,\"two\",null]\n$$m={\"k\":[true],\"z\":{}}\n"},
		{"line breaks inside JSON strings are escaped, not raw", []string{"l", `["a\nb"]`},
			"[job]\n$$l=[\"a\\nb\"]\n"},
		{"dates in special fields", []string{"from_date", `"2016-01-01T23:59:00.000000Z"`, "initial_from_date", `"1776-07-04T23:59"`},
			"[job]\n$$from_date=01/01/2016 23:59:00\n$$initial_from_date=07/04/1776 23:59:00\n"},
		{"dates with a zone are shown in UTC", []string{"to_date", `"2026-11-22T08:49:30-05:00"`},
			"[job]\n$$to_date=11/22/2026 13:49:30\n"},
		{"a special date field that is not a date is a string", []string{"to_date", `"soon"`, "batch_start", `5`},
			"[job]\n$$batch_start=5\n$$to_date=soon\n"},
		{"other fields are not dates", []string{"param2", `"2016-01-01"`, "batch_end_date", `"2016-01-01T23:59"`},
			"[job]\n$$batch_end_date=2016-01-01T23:59\n$$param2=2016-01-01\n"},
		{"no fields", nil, "[job]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			jobs := batch.Jobs{{Name: "job", Fields: fields(t, c.fields...)}}
			if got := render(t, Infa, "wf", 0, jobs, Options{}); got != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

func TestInfaDateFormat(t *testing.T) {
	at := time.Date(2026, 11, 22, 13, 49, 30, 840061000, time.UTC) // a Sunday, day 326
	for _, c := range []struct {
		format string
		at     time.Time
		want   string
	}{
		{"", at, "11/22/2026 13:49:30"},
		{DefaultInfaDateFormat, at, "11/22/2026 13:49:30"},
		{"MM/DD/YYYY HH24:MI:SS.US", at, "11/22/2026 13:49:30.840061"},
		{"mm/dd/yyyy hh24:mi:ss", at, "11/22/2026 13:49:30"},
		{"YYYY-MM-DDTHH24:MI:SS", at, "2026-11-22T13:49:30"},
		{`YYYY-MM-DD"T"HH24:MI:SS.MS"Z"`, at, "2026-11-22T13:49:30.840Z"},
		{"YYYYMMDDHH24MISS", at, "20261122134930"},
		{"YYYY YYY YY Y RR", at, "2026 026 26 6 26"},
		{"MONTH MON MM Q", at, "November Nov 11 4"},
		{"Mon DD, YYYY", at, "Nov 22, 2026"},
		{"DAY DY D DD DDD", at, "Sunday Sun 1 22 326"},
		{"W WW", at, "4 47"},
		{"J", at, "2461367"},
		{"HH12:MI AM HH PM", at, "01:49 PM 01 PM"},
		{"HH:MI:SS A.M. p.m.", time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC), "12:05:00 A.M. A.M."},
		{"HH12 AM", time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), "12 PM"},
		{"SS.MS.US.NS", at, "30.840.840061.840061000"},
		{"SSSSS", at, "49770"},
		{"SSSSS", time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC), "00007"},
		{`"Week" WW "of" YYYY`, at, "Week 47 of 2026"},
		{`""`, at, ""},
		{"DD-MON-YY;HH24", at, "22-Nov-26;13"},
		{"YYYY-MM-DD", time.Date(1776, 7, 4, 23, 59, 0, 0, time.UTC), "1776-07-04"},
		{"J", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), "2451544"},
		{"J", time.Date(1776, 7, 4, 23, 59, 0, 0, time.UTC), "2369916"},
		{"YYYY-MM-DD HH24", time.Date(2026, 11, 22, 22, 0, 0, 0, time.FixedZone("X", 5*3600)), "2026-11-22 17"},
		{"été YYYY", at, "été 2026"},
	} {
		t.Run(c.format, func(t *testing.T) {
			f, err := parseInfaDateFormat(c.format)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := f.format(c.at); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDateTokensLongestFirst(t *testing.T) {
	for i := 1; i < len(dateTokens); i++ {
		if len(dateTokens[i].name) > len(dateTokens[i-1].name) {
			t.Errorf("token %s comes after the shorter %s: the tokenizer would never match it", dateTokens[i].name, dateTokens[i-1].name)
		}
	}
}

func TestCheckInfaDateFormat(t *testing.T) {
	for _, c := range []struct {
		format string
		bad    string // "" when valid, else a text the message must contain
	}{
		{"", ""},
		{DefaultInfaDateFormat, ""},
		{`YYYY-MM-DD"T"HH24:MI:SS"Z"`, ""},
		{"YYYY-MM-DD X", `"X"`},
		{"FOO", `"FOO"`},
		{"YYYY-MM-DDZ", `"Z"`},
		{"HH24:MI:SS.FF", `"FF"`},
		{"TZ", `"Z"`},
		{`YYYY "unterminated`, "not closed"},
		{"YYYY\nMM", "control character"},
		{"\"a\nb\"", "control character"},
	} {
		t.Run(c.format, func(t *testing.T) {
			err := CheckInfaDateFormat(c.format)
			if c.bad == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if batch.ErrorCode(err) != batch.EINVALID {
				t.Fatalf("error = %v, want %s", err, batch.EINVALID)
			}
			if msg := batch.ErrorMessage(err); !strings.Contains(msg, c.bad) {
				t.Errorf("message %q does not contain %q", msg, c.bad)
			}
		})
	}
}

func TestInfaBadDateFormat(t *testing.T) {
	var b strings.Builder
	err := Write(&b, Infa, "wf", 0, exampleJobs(t), Options{InfaDateFormat: "YYYY-QQQ-XX"})
	if batch.ErrorCode(err) != batch.EINVALID {
		t.Fatalf("error = %v, want %s", err, batch.EINVALID)
	}
	if b.Len() != 0 {
		t.Errorf("output written despite the error: %q", b.String())
	}
}

func TestEnvName(t *testing.T) {
	for _, c := range []struct{ job, field, want string }{
		{"job2", "from_date", "BATCHY_JOB2_FROM_DATE"},
		{"load-sales.v2", "Param1", "BATCHY_LOAD_SALES_V2_PARAM1"},
		{"job_a", "x", "BATCHY_JOB_A_X"},
		{"job-a", "x", "BATCHY_JOB_A_X"},
		{"jöb", "a b", "BATCHY_J_B_A_B"},
		{"", "", "BATCHY__"},
	} {
		if got := EnvName(c.job, c.field); got != c.want {
			t.Errorf("EnvName(%q, %q) = %q, want %q", c.job, c.field, got, c.want)
		}
	}
}

func TestEnvVars(t *testing.T) {
	jobs := batch.Jobs{
		{Name: "b", Fields: fields(t,
			"s", str("it's $(x)\x00!"), "n", `123456789012345678901`, "t", `true`, "z", `null`,
			"from_date", `"2016-01-01T23:59:00.000000Z"`, "l", `[1, {"a": "b"}]`)},
		{Name: "a", Fields: fields(t, "x", `"1"`)},
	}
	for _, c := range []struct {
		name    string
		batchID int64
		want    []string
	}{
		{"with a batch", 42, []string{
			"BATCHY_WF=wf1", "BATCHY_BATCH_ID=42",
			"BATCHY_B_FROM_DATE=2016-01-01T23:59:00.000000Z", `BATCHY_B_L=[1,{"a":"b"}]`,
			"BATCHY_B_N=123456789012345678901", "BATCHY_B_S=it's $(x)!", "BATCHY_B_T=true", "BATCHY_B_Z=",
			"BATCHY_A_X=1",
		}},
		{"without a batch", 0, []string{
			"BATCHY_WF=wf1",
			"BATCHY_B_FROM_DATE=2016-01-01T23:59:00.000000Z", `BATCHY_B_L=[1,{"a":"b"}]`,
			"BATCHY_B_N=123456789012345678901", "BATCHY_B_S=it's $(x)!", "BATCHY_B_T=true", "BATCHY_B_Z=",
			"BATCHY_A_X=1",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := EnvVars("wf1", c.batchID, jobs)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestEnvReservedNamesWin: a job "batch" with a field "id" (BATCHY_BATCH_ID) cannot change the
// batch's variables: they are set again after the jobs', and a shell ends with the batch's.
func TestEnvReservedNamesWin(t *testing.T) {
	jobs := batch.Jobs{{Name: "batch", Fields: fields(t, "id", str("not-the-batch-id"))}, {Name: "b", Fields: fields(t, "x", `1`)}}
	got := EnvVars("wf1", 42, jobs)
	want := []string{"BATCHY_WF=wf1", "BATCHY_BATCH_ID=42", "BATCHY_BATCH_ID=not-the-batch-id", "BATCHY_B_X=1", "BATCHY_WF=wf1", "BATCHY_BATCH_ID=42"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var b strings.Builder
	if err := EnvScript(&b, "wf1", 42, jobs); err != nil {
		t.Fatal(err)
	}
	values, _ := shell(t, b.String(), []string{"BATCHY_BATCH_ID", "BATCHY_WF"})
	if len(values) != 2 || values[0] != "42" || values[1] != "wf1" {
		t.Errorf("after eval: BATCHY_BATCH_ID, BATCHY_WF = %q, want 42, wf1", values)
	}
}

func TestEnvScript(t *testing.T) {
	jobs := batch.Jobs{{Name: "j", Fields: fields(t, "q", str("it's"), "z", `null`)}}
	want := "export BATCHY_WF='wf'\nexport BATCHY_BATCH_ID='7'\nexport BATCHY_J_Q='it'\\''s'\nexport BATCHY_J_Z=''\n"
	if got := render(t, Env, "wf", 7, jobs, Options{}); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// hostile are values that would run code or break out of naive quoting.
var hostile = []string{
	"it's",
	"'",
	"''",
	`'\''`,
	"$(touch pwned)",
	"`touch pwned`",
	"${HOME}",
	"$HOME",
	"a\nb\nexport BATCHY_WF=owned",
	"trailing newline\n",
	"\n",
	"\r\n",
	`back\slash\\ and \'`,
	`"double" "quotes`,
	"!history !!",
	"; touch pwned; #",
	"' ; touch pwned ; echo '",
	"tab\there",
	"nul\x00byte",
	"\x01\x7f control",
	"unicode é ✓ 😀",
	"",
	" leading and trailing spaces ",
	"*glob?[a]",
	"~",
	"$'\\x41'",
	"-n",
}

// bashEval evals script in bash and returns the values of names, in order.
func bashEval(t *testing.T, script string, names []string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "env.sh")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each value is printed followed by a NUL, which no value can hold.
	cmd := exec.Command(bash, "-c", `set -eu; eval "$(cat "$1")"; shift; for n in "$@"; do printf '%s\0' "${!n}"; done`, "bash", file)
	cmd.Args = append(cmd.Args, names...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v\n%s\nscript:\n%s", err, stderr.String(), script)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Errorf("eval ran a command from a value")
	}
	got := strings.Split(string(out), "\x00")
	return got[:len(got)-1]
}

// checkEval renders jobs as env, evals it in bash and compares every variable with EnvVars.
func checkEval(t *testing.T, wf string, jobs batch.Jobs, want map[string]string) {
	t.Helper()
	vars := EnvVars(wf, 1, jobs)
	var names, values []string
	for _, v := range vars {
		name, value, _ := strings.Cut(v, "=")
		names = append(names, name)
		values = append(values, value)
	}
	got := bashEval(t, render(t, Env, wf, 1, jobs, Options{}), names)
	if len(got) != len(names) {
		t.Fatalf("bash printed %d values, want %d", len(got), len(names))
	}
	for i, name := range names {
		if got[i] != values[i] {
			t.Errorf("%s: bash has %q, EnvVars %q", name, got[i], values[i])
		}
		if w, ok := want[name]; ok && got[i] != w {
			t.Errorf("%s: bash has %q, want %q", name, got[i], w)
		}
	}
}

func TestEnvBashEval(t *testing.T) {
	f := batch.Fields{}
	want := map[string]string{"BATCHY_WF": "wf1", "BATCHY_BATCH_ID": "1"}
	for i, v := range hostile {
		name := "v" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		f[name] = json.RawMessage(str(v))
		want[EnvName("job", name)] = strings.ReplaceAll(v, "\x00", "")
	}
	f["list"] = json.RawMessage(`["it's", "$(touch pwned)", "a\nb"]`)
	want[EnvName("job", "list")] = `["it's","$(touch pwned)","a\nb"]`
	checkEval(t, "wf1", batch.Jobs{{Name: "job", Fields: f}}, want)
}

func TestEnvBashEvalRandom(t *testing.T) {
	// Random strings over the characters a shell treats specially.
	const alphabet = "'\"\\`$(){}[]!#;&|<>*?~ \t\n\r\x00\x01abc=-é😀"
	runes := []rune(alphabet)
	r := rand.New(rand.NewSource(1))
	f := batch.Fields{}
	for i := 0; i < 300; i++ {
		var b strings.Builder
		for n := r.Intn(20); n > 0; n-- {
			b.WriteRune(runes[r.Intn(len(runes))])
		}
		f[strings.Repeat("x", 1+i/26)+string(rune('a'+i%26))] = json.RawMessage(str(b.String()))
	}
	checkEval(t, "wf1", batch.Jobs{{Name: "job", Fields: f}}, nil)
}

func TestEnvVarsExec(t *testing.T) {
	// EnvVars goes straight into a process environment: every value must arrive intact.
	sh, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	f := batch.Fields{}
	for i, v := range hostile {
		f["v"+string(rune('a'+i/26))+string(rune('a'+i%26))] = json.RawMessage(str(v))
	}
	jobs := batch.Jobs{{Name: "job", Fields: f}}
	vars := EnvVars("wf1", 9, jobs)
	cmd := exec.Command(sh, "-c", `for n in "$@"; do printf '%s\0' "${!n}"; done`, "bash")
	for _, v := range vars {
		name, _, _ := strings.Cut(v, "=")
		cmd.Args = append(cmd.Args, name)
	}
	cmd.Env = vars
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("exec with EnvVars: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	for i, v := range vars {
		_, want, _ := strings.Cut(v, "=")
		if got[i] != want {
			t.Errorf("%s: process has %q, want %q", cmd.Args[3+i], got[i], want)
		}
	}
}

// TestAppendAsWrite checks that Append renders what Write writes, after what b holds.
func TestAppendAsWrite(t *testing.T) {
	jobs := batch.Jobs{
		{Name: "job1", Fields: batch.Fields{"status": json.RawMessage(`"open"`), "batch_id": json.RawMessage(`7`), "from_date": json.RawMessage(`"2026-11-22T13:49:30.000000Z"`), "p": json.RawMessage(`"<a & b>"`)}},
		{Name: "job\"2", Fields: batch.Fields{}},
	}
	for _, f := range []Format{"", JSON, Infa, Env} {
		t.Run(string(f), func(t *testing.T) {
			var want bytes.Buffer
			if err := Write(&want, f, "wf1", 7, jobs, Options{}); err != nil {
				t.Fatal(err)
			}
			got, err := Append([]byte("prefix"), f, "wf1", 7, jobs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+want.String() {
				t.Errorf("Append = %q, want %q", got, "prefix"+want.String())
			}
		})
	}
}
