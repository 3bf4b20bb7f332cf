package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
)

// parse parses a workflow file named "wf" with default limits.
func parse(tb testing.TB, yml string) (*batch.Workflow, error) {
	tb.Helper()
	return config.Parse("wf", []byte(yml), config.Limits{})
}

// mustParse parses a workflow file that must be valid.
func mustParse(tb testing.TB, yml string) *batch.Workflow {
	tb.Helper()
	wf, err := parse(tb, yml)
	if err != nil {
		tb.Fatalf("Parse:\n%s\nerror: %v", yml, err)
	}
	return wf
}

// jobsJSON renders a workflow's jobs as the original routes return them.
func jobsJSON(tb testing.TB, wf *batch.Workflow) string {
	tb.Helper()
	b, err := json.Marshal(wf.Jobs)
	if err != nil {
		tb.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}

// wantError checks an error's code and that its message mentions each of want.
func wantError(tb testing.TB, err error, code string, want ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s", code)
	}
	if got := batch.ErrorCode(err); got != code {
		tb.Errorf("code = %q, want %q (%v)", got, code, err)
	}
	msg := batch.ErrorMessage(err)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			tb.Errorf("message %q does not contain %q", msg, w)
		}
	}
}

func TestParseReferenceWorkflow(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "wf1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wf, err := config.Parse("wf1", data, config.Limits{})
	if err != nil {
		t.Fatalf("Parse(wf1.yaml): %v", err)
	}
	if wf.Name != "wf1" {
		t.Errorf("Name = %q, want wf1", wf.Name)
	}
	if wf.Settings.Exclusive {
		t.Errorf("Settings.Exclusive = true, want the default false")
	}
	var names []string
	for _, j := range wf.Jobs {
		names = append(names, j.Name)
	}
	if got, want := strings.Join(names, ","), "job1,job2,job3"; got != want {
		t.Errorf("jobs = %s, want %s (file order)", got, want)
	}
	want := `{` +
		`"job1":{"batch_end_date":"2016-01-01T23:59","param1":"hello","param2":"2016-01-01","status":"success"},` +
		`"job2":{"from_date":"2016-01-01T23:59:00.000000Z","param1":"hello","reprocess_hours":2,"status":"new","yippee":"2016-01-01"},` +
		`"job3":{"from_date":"2016-01-01T23:59:00.000000Z","param1":"hello","param2":"2016-01-01","reprocess_hours":2,"status":"new","trunc_start":true}` +
		`}`
	if got := jobsJSON(t, wf); got != want {
		t.Errorf("jobs JSON:\n got %s\nwant %s", got, want)
	}

	job3, _ := wf.Jobs.Get("job3")
	t.Run("reprocess_hours is the number 2", func(t *testing.T) {
		if v, ok := job3.Fields.Int("reprocess_hours"); !ok || v != 2 {
			t.Errorf("Int(reprocess_hours) = %v, %v; want 2, true", v, ok)
		}
	})
	t.Run("trunc_start True is true", func(t *testing.T) {
		if v, ok := job3.Fields.Bool("trunc_start"); !ok || !v {
			t.Errorf("Bool(trunc_start) = %v, %v; want true, true", v, ok)
		}
	})
	t.Run("quoted date param stays a string", func(t *testing.T) {
		if v, ok := job3.Fields.String("param2"); !ok || v != "2016-01-01" {
			t.Errorf("String(param2) = %q, %v; want 2016-01-01, true", v, ok)
		}
	})
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want string // the jobs as JSON
	}{
		{"bare date kept as written", "j:\n  d: 2016-01-01\n", `{"j":{"d":"2016-01-01"}}`},
		{"bare timestamp kept as written", "j:\n  d: 2016-01-01T23:59:00Z\n", `{"j":{"d":"2016-01-01T23:59:00Z"}}`},
		{"bare date in a list kept as written", "j:\n  d: [2016-01-01, x]\n", `{"j":{"d":["2016-01-01","x"]}}`},
		{"bare date in a map kept as written", "j:\n  d: {from: 2016-01-01}\n", `{"j":{"d":{"from":"2016-01-01"}}}`},
		{"bare date as from_date normalised", "j:\n  from_date: 2016-01-01\n", `{"j":{"from_date":"2016-01-01T00:00:00.000000Z"}}`},
		{"from_date with offset normalised to UTC", "j:\n  from_date: \"2016-01-02T00:59:00+01:00\"\n", `{"j":{"from_date":"2016-01-01T23:59:00.000000Z"}}`},
		{"naive from_date with a space", "j:\n  from_date: 2016-01-01 23:59\n", `{"j":{"from_date":"2016-01-01T23:59:00.000000Z"}}`},
		{"every date field normalised", "j:\n  to_date: 2016-01-01T23:59\n  batch_start: 2016-01-01T23:59\n  batch_end: 2016-01-01T23:59\n  initial_from_date: 2000-01-01\n",
			`{"j":{"batch_end":"2016-01-01T23:59:00.000000Z","batch_start":"2016-01-01T23:59:00.000000Z","initial_from_date":"2000-01-01T00:00:00.000000Z","to_date":"2016-01-01T23:59:00.000000Z"}}`},
		{"null date allowed", "j:\n  batch_end: null\n  from_date: ~\n", `{"j":{"batch_end":null,"from_date":null}}`},
		{"legacy status failure read as failed", "j:\n  status: failure\n", `{"j":{"status":"failed"}}`},
		{"fractional reprocess_hours", "j:\n  reprocess_hours: 1.5\n", `{"j":{"reprocess_hours":1.5}}`},
		{"reprocess_hours 0", "j:\n  reprocess_hours: 0\n", `{"j":{"reprocess_hours":0}}`},
		{"reprocess_hours 100 years", "j:\n  reprocess_hours: 876000\n", `{"j":{"reprocess_hours":876000}}`},
		{"batch_id", "j:\n  batch_id: 1479822570\n", `{"j":{"batch_id":1479822570}}`},
		{"infa_section", "j:\n  infa_section: 'Global: s_m_load'\n", `{"j":{"infa_section":"Global: s_m_load"}}`},
		{"user types kept", "j:\n  s: hello\n  q: \"12\"\n  n: 12\n  f: 2.5\n  b: false\n  nul:\n  list: [1, a]\n  map: {k: v}\n",
			`{"j":{"b":false,"f":2.5,"list":[1,"a"],"map":{"k":"v"},"n":12,"nul":null,"q":"12","s":"hello"}}`},
		{"big integer keeps its digits", "j:\n  id: 12345678901234567890123\n", `{"j":{"id":12345678901234567890123}}`},
		{"float keeps its digits", "j:\n  pi: 3.14159265358979323846\n", `{"j":{"pi":3.14159265358979323846}}`},
		{"uint64 beyond int64", "j:\n  id: 18446744073709551615\n", `{"j":{"id":18446744073709551615}}`},
		{"number text kept", "j:\n  x: 1.0\n  y: 1e3\n  z: -0\n  w: 2.50\n", `{"j":{"w":2.50,"x":1.0,"y":1e3,"z":-0}}`},
		{"leading zero read as YAML octal, as the original's PyYAML did", "j:\n  x: 017\n", `{"j":{"x":15}}`},
		{"explicitly tagged date kept as written", "j:\n  d: !!timestamp 2016-01-01\n", `{"j":{"d":"2016-01-01"}}`},
		{"YAML-only number forms converted", "j:\n  hex: 0x1F\n  under: 1_000\n", `{"j":{"hex":31,"under":1000}}`},
		{"job without parameters", "j:\n", `{"j":{}}`},
		{"job with an empty map", "j: {}\n", `{"j":{}}`},
		{"job and value aliases", "a: &p\n  x: &v 1\nb: *p\nc:\n  y: *v\n", `{"a":{"x":1},"b":{"x":1},"c":{"y":1}}`},
		{"quoted job names", "\"job1\":\n  x: 1\n'job.2':\n  x: 2\n", `{"job1":{"x":1},"job.2":{"x":2}}`},
		{"file order kept, not sorted", "zz:\n  x: 1\naa:\n  x: 1\nmm:\n  x: 1\n", `{"zz":{"x":1},"aa":{"x":1},"mm":{"x":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf := mustParse(t, tt.yml)
			if got := jobsJSON(t, wf); got != tt.want {
				t.Errorf("jobs JSON:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name          string
		yml           string
		wantExclusive bool
		wantJobs      string
	}{
		{"exclusive", "batchy:\n  exclusive: true\njob1:\n  x: 1\n", true, `{"job1":{"x":1}}`},
		{"explicitly not exclusive", "job1:\n  x: 1\nbatchy:\n  exclusive: false\n", false, `{"job1":{"x":1}}`},
		{"empty settings", "batchy:\njob1:\n  x: 1\n", false, `{"job1":{"x":1}}`},
		{"settings use an anchor of a job", "job1:\n  x: &yes true\nbatchy:\n  exclusive: *yes\n", true, `{"job1":{"x":true}}`},
		{"no settings", "job1:\n  x: 1\n", false, `{"job1":{"x":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf := mustParse(t, tt.yml)
			if wf.Settings.Exclusive != tt.wantExclusive {
				t.Errorf("Settings.Exclusive = %v, want %v", wf.Settings.Exclusive, tt.wantExclusive)
			}
			if got := jobsJSON(t, wf); got != tt.wantJobs {
				t.Errorf("jobs JSON = %s, want %s (the settings key is not a job)", got, tt.wantJobs)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want []string // what the message must mention
	}{
		{"reprocess_hours not a number", "job1:\n  reprocess_hours: abc\n", []string{"job1", "reprocess_hours", "abc"}},
		{"reprocess_hours negative", "job1:\n  reprocess_hours: -1\n", []string{"job1", "reprocess_hours"}},
		{"reprocess_hours past 100 years", "job1:\n  reprocess_hours: 1e8\n", []string{"job1", "reprocess_hours", "876000"}},
		{"reprocess_hours huge", "job1:\n  reprocess_hours: 1e300\n", []string{"job1", "reprocess_hours"}},
		{"date with a fraction the store would round", "job1:\n  from_date: 9999-12-31T23:59:59.999999Z\n", []string{"job1", "from_date", "fraction"}},
		{"reprocess_hours a string of digits", "job1:\n  reprocess_hours: \"2\"\n", []string{"job1", "reprocess_hours"}},
		{"trunc_start not a boolean", "job1:\n  trunc_start: \"yes please\"\n", []string{"job1", "trunc_start", "yes please"}},
		{"trunc_start quoted true", "job1:\n  trunc_start: \"true\"\n", []string{"job1", "trunc_start"}},
		{"status unknown", "job1:\n  status: running\n", []string{"job1", "status", "running"}},
		{"status abandoned is history only", "job1:\n  status: abandoned\n", []string{"job1", "status"}},
		{"status not a string", "job1:\n  status: 1\n", []string{"job1", "status"}},
		{"from_date not a date", "job1:\n  from_date: yesterday\n", []string{"job1", "from_date", "yesterday"}},
		{"from_date a number", "job1:\n  from_date: 20160101\n", []string{"job1", "from_date"}},
		{"from_date out of range", "job1:\n  from_date: \"0000-01-01\"\n", []string{"job1", "from_date"}},
		{"initial_from_date not a date", "job1:\n  initial_from_date: 2016-02-30\n", []string{"job1", "initial_from_date"}},
		{"batch_id negative", "job1:\n  batch_id: -1\n", []string{"job1", "batch_id"}},
		{"batch_id fractional", "job1:\n  batch_id: 1.5\n", []string{"job1", "batch_id"}},
		{"batch_id a string", "job1:\n  batch_id: \"1479822570\"\n", []string{"job1", "batch_id"}},
		{"infa_section with brackets", "job1:\n  infa_section: \"[s_m_load]\"\n", []string{"job1", "infa_section"}},
		{"infa_section with a line break", "job1:\n  infa_section: \"a\\nb\"\n", []string{"job1", "infa_section"}},
		{"infa_section empty", "job1:\n  infa_section: \"\"\n", []string{"job1", "infa_section"}},
		{"backfill configured", "job1:\n  backfill: true\n", []string{"job1", "backfill"}},
		{"job name traverses a path", "../etc:\n  x: 1\n", []string{"../etc"}},
		{"job name is a glob", "a*:\n  x: 1\n", []string{"a*"}},
		{"job name with a space", "a b:\n  x: 1\n", []string{"a b"}},
		{"job name is a list", "[a, b]:\n  x: 1\n", []string{"job name"}},
		{"field name invalid", "job1:\n  a b: 1\n", []string{"job1", "a b"}},
		{"field name is a map", "job1:\n  {a: 1}: 1\n", []string{"job1", "field name"}},
		{"duplicate job", "job1:\n  x: 1\njob1:\n  x: 2\n", []string{"job1", "twice"}},
		{"duplicate job, one quoted", "job1:\n  x: 1\n\"job1\":\n  x: 2\n", []string{"job1", "twice"}},
		{"duplicate field", "job1:\n  x: 1\n  x: 2\n", []string{"job1", "x", "twice"}},
		{"merge key", "base: &b\n  x: 1\njob1:\n  <<: *b\n  y: 2\n", []string{"job1", "<<"}},
		{"top level is a list", "- job1\n- job2\n", []string{"map"}},
		{"top level is a scalar", "hello\n", []string{"map"}},
		{"empty file", "", []string{"no jobs"}},
		{"only a comment", "# nothing here\n", []string{"wf"}},
		{"only settings", "batchy:\n  exclusive: true\n", []string{"no jobs"}},
		{"two documents", "job1:\n  x: 1\n---\njob2:\n  x: 1\n", []string{"one YAML document"}},
		{"job value is a list", "job1:\n  - x\n  - y\n", []string{"job1", "map"}},
		{"job value is a scalar", "job1: hello\n", []string{"job1", "map"}},
		{"settings with an unknown key", "batchy:\n  exclusiv: true\njob1:\n  x: 1\n", []string{"batchy", "exclusiv"}},
		{"settings exclusive not a boolean", "batchy:\n  exclusive: sometimes\njob1:\n  x: 1\n", []string{"batchy"}},
		{"settings error on its line", "job1:\n  x: 1\nbatchy:\n  exclusive: true\n  bogus: 1\n", []string{"settings", "line 5", "bogus"}},
		{"settings key twice", "batchy:\n  exclusive: true\n  exclusive: false\njob1: {}\n", []string{"line 3", "exclusive", "line 2"}},
		{"unknown retries key", "batchy:\n  retries:\n    cnt: 1\njob1: {}\n", []string{"retries", "cnt"}},
		{"settings not a map", "batchy: [1]\njob1:\n  x: 1\n", []string{"batchy"}},
		{"infinity", "job1:\n  x: .inf\n", []string{"job1", "x", "infinity"}},
		{"negative infinity", "job1:\n  x: -.Inf\n", []string{"job1", "x"}},
		{"NaN", "job1:\n  x: .nan\n", []string{"job1", "x", "NaN"}},
		{"infinity nested", "job1:\n  x: {y: [.inf]}\n", []string{"job1", "x"}},
		{"infinity as reprocess_hours", "job1:\n  reprocess_hours: .inf\n", []string{"job1", "reprocess_hours"}},
		{"syntax error", "job1:\n  x: [1\n", []string{"wf"}},
		{"tab indentation", "job1:\n\tx: 1\n", []string{"wf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf, err := parse(t, tt.yml)
			if err == nil {
				t.Fatalf("Parse:\n%s\n= %s, want an error", tt.yml, jobsJSON(t, wf))
			}
			wantError(t, err, batch.EINVALID, append([]string{"wf"}, tt.want...)...)
		})
	}
}

func TestParseInvalidWorkflowName(t *testing.T) {
	for _, name := range []string{"", "..", "../x", "a/b", "a*"} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse(name, []byte("job1:\n  x: 1\n"), config.Limits{})
			wantError(t, err, batch.EINVALID, "workflow name")
		})
	}
}

// aliasBomb returns the "billion laughs" document: a job whose fields are levels of lists, each
// holding width aliases of the one before, expanding to width^levels values from a few hundred
// bytes.
func aliasBomb(levels, width int) string {
	var b strings.Builder
	b.WriteString("job1:\n")
	b.WriteString("  a0: &a0 [" + strings.TrimSuffix(strings.Repeat(`"lol",`, width), ",") + "]\n")
	for i := 1; i < levels; i++ {
		refs := make([]string, width)
		for k := range refs {
			refs[k] = "*a" + itoa(i-1)
		}
		b.WriteString("  a" + itoa(i) + ": &a" + itoa(i) + " [" + strings.Join(refs, ",") + "]\n")
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

// nested returns a job whose field x holds a list nested depth times.
func nested(depth int) string {
	return "job1:\n  x: " + strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth) + "\n"
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		lim  config.Limits
		// wantCode is "" when the file must be accepted.
		wantCode string
		want     []string
	}{
		{"larger than MaxBytes", "job1:\n  x: 1\n", config.Limits{MaxBytes: 10}, batch.ETOOLARGE, []string{"10 bytes"}},
		{"exactly MaxBytes", "job1:\n  x: 1\n", config.Limits{MaxBytes: 13}, "", nil},
		{"larger than the default 1 MiB", "job1:\n  x: 1\n#" + strings.Repeat("x", 1<<20) + "\n", config.Limits{}, batch.ETOOLARGE, []string{"1048576"}},
		// Depth counts the document (0), the top map (1), a job's map (2), a field's value (3).
		{"at MaxDepth", nested(1), config.Limits{MaxDepth: 4}, "", nil},
		{"deeper than MaxDepth", nested(2), config.Limits{MaxDepth: 4}, batch.ETOOLARGE, []string{"deeper than 4"}},
		{"deeper than the default 32", nested(40), config.Limits{}, batch.ETOOLARGE, []string{"deeper than 32"}},
		{"within the default depth", nested(20), config.Limits{}, "", nil},
		{"more than MaxNodes", "job1:\n  x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n", config.Limits{MaxNodes: 10}, batch.ETOOLARGE, []string{"more than 10"}},
		{"aliases count as what they expand to", "job1:\n  x: &x [1, 2, 3]\n  y: *x\n  z: *x\n", config.Limits{MaxNodes: 12}, batch.ETOOLARGE, []string{"aliases"}},
		{"alias bomb", aliasBomb(9, 9), config.Limits{}, batch.ETOOLARGE, []string{"aliases"}},
		{"small alias tree within limits", aliasBomb(3, 3), config.Limits{}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("wf", []byte(tt.yml), tt.lim)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Parse: %v, want no error", err)
				}
				return
			}
			wantError(t, err, tt.wantCode, append([]string{"wf"}, tt.want...)...)
		})
	}
}

func TestParseRecursiveAlias(t *testing.T) {
	// An anchor that contains itself would expand forever; it must be refused, not followed.
	_, err := parse(t, "job1:\n  x: &a [*a]\n")
	if err == nil {
		t.Fatal("Parse of a self-referencing alias: no error")
	}
	if code := batch.ErrorCode(err); code != batch.ETOOLARGE && code != batch.EINVALID {
		t.Errorf("code = %q, want %q or %q", code, batch.ETOOLARGE, batch.EINVALID)
	}
}

// writeFiles creates files (name → content) in a new temporary directory and returns it.
func writeFiles(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func TestPathAndLoadFile(t *testing.T) {
	const job = "job1:\n  x: 1\n"
	root := writeFiles(t, map[string]string{
		"outside.yaml": job, // next to cfg/, reachable only by traversal
		"cfg/":         "",
	})
	dir := filepath.Join(root, "cfg")
	for name, content := range map[string]string{
		"a.yaml":   job,
		"b.yml":    job,
		"c.yaml":   "job1:\n  x: yaml\n",
		"c.yml":    "job1:\n  x: yml\n",
		"bad.yaml": "job1:\n  reprocess_hours: abc\n",
		"big.yaml": job + "#" + strings.Repeat("x", 100) + "\n",
		"d.json":   `{"job1":{}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Path", func(t *testing.T) {
		tests := []struct {
			name     string
			want     string // file name in dir
			wantCode string
		}{
			{"a", "a.yaml", ""},
			{"b", "b.yml", ""},
			{"c", "c.yaml", ""}, // .yaml is tried first
			{"d", "", batch.ENOTFOUND},
			{"missing", "", batch.ENOTFOUND},
			{"../outside", "", batch.EINVALID},
			{"..", "", batch.EINVALID},
			{"a*", "", batch.EINVALID},
			{"", "", batch.EINVALID},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := config.Path(dir, tt.name)
				if tt.wantCode != "" {
					wantError(t, err, tt.wantCode)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if want := filepath.Join(dir, tt.want); got != want {
					t.Errorf("Path = %s, want %s", got, want)
				}
			})
		}
	})

	t.Run("LoadFile", func(t *testing.T) {
		tests := []struct {
			name     string
			lim      config.Limits
			want     string // jobs JSON
			wantCode string
			wantMsg  []string
		}{
			{name: "a", want: `{"job1":{"x":1}}`},
			{name: "b", want: `{"job1":{"x":1}}`},
			{name: "c", want: `{"job1":{"x":"yaml"}}`},
			{name: "missing", wantCode: batch.ENOTFOUND, wantMsg: []string{"missing"}},
			{name: "../outside", wantCode: batch.EINVALID, wantMsg: []string{"../outside"}},
			{name: "bad", wantCode: batch.EINVALID, wantMsg: []string{"bad", "job1", "reprocess_hours"}},
			{name: "big", lim: config.Limits{MaxBytes: 50}, wantCode: batch.ETOOLARGE, wantMsg: []string{"big"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wf, err := config.LoadFile(dir, tt.name, tt.lim)
				if tt.wantCode != "" {
					wantError(t, err, tt.wantCode, tt.wantMsg...)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if wf.Name != tt.name {
					t.Errorf("Name = %q, want %q", wf.Name, tt.name)
				}
				if got := jobsJSON(t, wf); got != tt.want {
					t.Errorf("jobs JSON = %s, want %s", got, tt.want)
				}
			})
		}
	})

	t.Run("LoadFile missing directory", func(t *testing.T) {
		_, err := config.LoadFile(filepath.Join(root, "nope"), "a", config.Limits{})
		wantError(t, err, batch.ENOTFOUND)
	})

	// A directory or a FIFO named like a workflow file is refused at once (a FIFO would block a
	// plain open until something writes to it).
	t.Run("LoadFile not a regular file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "d.yaml"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(dir, "f.yaml"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"d", "f"} {
			done := make(chan error, 1)
			go func() { _, err := config.LoadFile(dir, name, config.Limits{}); done <- err }()
			select {
			case err := <-done:
				wantError(t, err, batch.EINVALID)
				if !strings.Contains(batch.ErrorMessage(err), "not a regular file") {
					t.Errorf("LoadFile(%s): %v", name, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("LoadFile(%s) blocks", name)
			}
		}
	})
}

func TestList(t *testing.T) {
	t.Run("names", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"wf1.yaml":      "",
			"wf2.yml":       "",
			"both.yaml":     "",
			"both.yml":      "",
			"a.b.yaml":      "",
			"readme.md":     "",
			"wf3.yaml.bak":  "",
			"wf4.json":      "",
			".yaml":         "",
			"..yaml":        "",
			"bad name.yaml": "",
			"a*b.yaml":      "",
			"jöb.yaml":      "",
			"dir.yaml/":     "",
		})
		got, err := config.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(got, ","), "a.b,both,wf1,wf2"; got != want {
			t.Errorf("List = %s, want %s", got, want)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		got, err := config.List(t.TempDir())
		if err != nil || len(got) != 0 {
			t.Errorf("List = %v, %v; want none, nil", got, err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := config.List(filepath.Join(t.TempDir(), "nope"))
		wantError(t, err, batch.ENOTFOUND, "nope")
	})
}

// TestNameCollisions: names that env or infa output would merge are refused, naming both.
func TestNameCollisions(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"jobs job-1 and job_1", "job-1: {a: 1}\njob_1: {b: 2}\n", []string{"jobs job-1 and job_1", "BATCHY_JOB_1_BACKFILL"}},
		{"jobs differing in case", "Load: {}\nload: {}\n", []string{"jobs Load and load", "BATCHY_LOAD_"}},
		{"fields of one job", "j:\n  max-rows: 1\n  max_rows: 2\n", []string{"job j: fields max-rows and max_rows", "BATCHY_J_MAX_ROWS"}},
		{"a field against a runtime field", "j:\n  Status: x\n", []string{"job j: fields Status and status"}},
		{"across the job/field boundary", "a_b: {c: 1}\na: {b_c: 2}\n", []string{"jobs a_b and a", "BATCHY_A_B_C", "fields c and b_c"}},
		{"the batch id's variable", "batch: {id: 7}\n", []string{"job batch, field id", "BATCHY_BATCH_ID"}},
		{"one Informatica section", "a: {infa_section: Global}\nb: {infa_section: Global}\n", []string{"jobs a and b", "[Global]"}},
		{"a section named like another job", "a: {infa_section: b}\nb: {}\n", []string{"jobs a and b", "[b]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse("wf", []byte(c.yaml), config.Limits{})
			wantError(t, err, batch.EINVALID, c.want...)
		})
	}
	// Names that stay apart are fine, the original's example included.
	for _, y := range []string{"job1: {}\njob2: {}\njob3: {}\n", "a: {infa_section: Global}\nb: {}\n", "a.b: {x: 1}\nc: {x: 1}\n"} {
		if _, err := config.Parse("wf", []byte(y), config.Limits{}); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}
