package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/scheduler"
)

// badCase is one malformed request: the answer must be a JSON error with this status whose
// message mentions every one of mention (case-insensitive), and the store must not change.
type badCase struct {
	name, method, path, ctype, body string
	status                          int
	mention                         []string
}

// badNames are malformed workflow and job names: globs, path traversal, too long, characters a
// name may not hold. Each is given as it goes in the URL path (escaped).
var badNames = []struct{ label, path string }{
	{"star", "wf%2A"},
	{"star raw", "wf*"},
	{"question mark", "wf%3F"},
	{"bracket", "wf%5Bab%5D"},
	{"traversal", "..%2F..%2Fetc%2Fpasswd"},
	{"dotdot", "%2E%2E"},
	{"slash", "a%2Fb"},
	{"backslash", "a%5Cb"},
	{"space", "w%20f"},
	{"NUL", "w%00f"},
	{"newline", "w%0Af"},
	{"brace", "w%7Bx%7D"},
	{"colon", "w:f"},
	{"non-ASCII", "w%C3%A9"},
	{"too long", strings.Repeat("a", 129)},
}

// TestBadInputEveryRoute sends every route of the server (from Routes) malformed path
// parameters, and every route that takes a body or query parameters malformed ones; then the
// load routes malformed workflow files. Each answer is a 4xx JSON error whose message names the
// problem, and the store's keys are exactly what they were.
func TestBadInputEveryRoute(t *testing.T) {
	for _, b := range rdbtest.Backends {
		if b.Name != "embedded" && b.Name != "redis" {
			continue // the cluster backend adds time, not coverage: input is checked before the store
		}
		t.Run(b.Name, func(t *testing.T) { testBadInputEveryRoute(t, b) })
	}
}

func testBadInputEveryRoute(t *testing.T, b rdbtest.Backend) {
	client, emb := b.New(t)
	opts := rdb.Options{}
	if emb != nil {
		opts.Embedded = emb
	}
	store := rdb.New(client, opts)
	cfg := t.TempDir()
	wf1, err := os.ReadFile("../../cfg/wf1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, "wf1.yaml", string(wf1))
	writeFile(t, cfg, "wf2.yaml", "a: {}\n")
	for name, content := range badYAML() {
		writeFile(t, cfg, name+".yaml", content)
	}
	log := slog.New(slog.DiscardHandler)
	bus := event.NewBus(rdb.NewEventStream(client, store.Keys(), 1000), log)
	// The scheduler is there so that its routes check their input, but never runs.
	sch := scheduler.New(scheduler.Options{Store: store, Runs: store.Scheduler(), Logger: log, Events: bus})
	srv := api.New(api.Options{Store: store, CfgDir: cfg, Events: bus, Scheduler: sch, StoreName: b.Name, Logger: log})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &env{url: hs.URL, store: store, cfg: cfg}

	// Some state to keep: wf1 with a closed batch, an open one and a log event; wf2 loaded.
	wantStatus(t, e.get(t, "/load_cfg/wf1"), 200)
	wantStatus(t, e.get(t, "/load_cfg/wf2"), 200)
	r := e.get(t, "/open_batch/wf1")
	wantStatus(t, r, 200)
	wantStatus(t, e.get(t, "/close_batch/wf1"), 200)
	wantStatus(t, e.get(t, "/open_batch/wf1"), 200)
	wantStatus(t, e.doType(t, "POST", "/v1/workflows/wf1/logs", "text/plain", "a line"), 202)
	id := fmt.Sprint(r.json(t)["job1"].(map[string]any)["batch_id"])
	// wf2's file turns bad after it was loaded: reloading it must keep the loaded state.
	writeFile(t, cfg, "wf2.yaml", "a: [unclosed\n")

	cases := pathCases(t, srv.Routes(), id)
	cases = append(cases, bodyCases()...)
	cases = append(cases, queryCases()...)
	for name := range badYAML() {
		cases = append(cases, yamlCases(name)...)
	}
	cases = append(cases, yamlCases("wf2")...)

	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.method+" "+routeOf(c.path)] = true
		t.Run(c.name, func(t *testing.T) {
			store.FlushIndex(ctx) // the index writes of the changes before: not this request's
			before := rdbtest.Snapshot(t, client)
			r := e.doType(t, c.method, c.path, c.ctype, c.body)
			checkError(t, r, c.status, c.mention)
			store.FlushIndex(ctx) // what this request may have left to write
			if after := rdbtest.Snapshot(t, client); !reflect.DeepEqual(before, after) {
				t.Errorf("the store changed:\n%s", diffSnapshots(before, after))
			}
		})
	}
	// Every route with a parameter got bad input.
	for _, rt := range srv.Routes() {
		if strings.Contains(rt, ":") && !covered[rt] {
			t.Errorf("route %s got no bad input", rt)
		}
	}
}

// routeOf turns a request path back into its route pattern, for the coverage check.
func routeOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	names := map[int]string{}
	switch {
	case len(parts) >= 3 && parts[1] != "v1":
		names[2] = ":wf"
		names[3] = ":format"
	case len(parts) >= 4 && parts[2] == "workflows":
		names[3] = ":wf"
		if len(parts) >= 6 {
			switch parts[4] {
			case "jobs":
				names[5] = ":job"
			case "batches", "runs":
				names[5] = ":id"
			}
		}
	}
	for i, n := range names {
		if i < len(parts) {
			parts[i] = n
		}
	}
	return strings.Join(parts, "/")
}

// pathCases gives each route's path parameters malformed values, one parameter at a time, the
// others valid.
func pathCases(t *testing.T, routes []string, batchID string) []badCase {
	t.Helper()
	valid := map[string]string{":wf": "wf1", ":job": "job2", ":format": "json"}
	var out []badCase
	sort.Strings(routes)
	for _, rt := range routes {
		method, pattern, _ := strings.Cut(rt, " ")
		if !strings.Contains(pattern, ":") {
			continue
		}
		if strings.Contains(pattern, "*") {
			t.Errorf("route %s has a catch-all parameter this test does not know", rt)
			continue
		}
		segs := strings.Split(pattern, "/")
		build := func(param, value string) string {
			out := make([]string, len(segs))
			for i, s := range segs {
				switch {
				case s == param:
					out[i] = value
				case s == ":id" && strings.Contains(pattern, "/batches/"):
					out[i] = batchID
				case s == ":id":
					out[i] = "r1"
				case strings.HasPrefix(s, ":"):
					out[i] = valid[s]
				default:
					out[i] = s
				}
			}
			return strings.Join(out, "/")
		}
		for _, s := range segs {
			switch {
			case s == ":wf" || s == ":job":
				kind := map[string]string{":wf": "workflow", ":job": "job"}[s]
				for _, n := range badNames {
					out = append(out, badCase{
						name: rt + " " + kind + " " + n.label, method: method, path: build(s, n.path),
						status: 400, mention: []string{kind + " name", "invalid"},
					})
				}
			case s == ":format":
				for _, f := range []string{"xml", "JSON", "env%3B", "%2A"} {
					out = append(out, badCase{name: rt + " format " + f, method: method, path: build(s, f), status: 400, mention: []string{"format", "json, infa or env"}})
				}
			case s == ":id" && strings.Contains(pattern, "/batches/"):
				for _, id := range []string{"abc", "-1", "0", "1e3", "%2A", "99999999999999999999"} {
					out = append(out, badCase{name: rt + " id " + id, method: method, path: build(s, id), status: 400, mention: []string{"batch id"}})
				}
			case s == ":id":
				for _, n := range badNames {
					out = append(out, badCase{name: rt + " id " + n.label, method: method, path: build(s, n.path), status: 400, mention: []string{"run id", "invalid"}})
				}
			case strings.HasPrefix(s, ":"):
				t.Errorf("route %s has a parameter %s this test does not know", rt, s)
			}
		}
	}
	return out
}

// bodyCases are malformed JSON bodies for every route that reads one.
func bodyCases() []badCase {
	huge := `{"jobs":["` + strings.Repeat("a", 2<<20) + `"]}`
	deepArray := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	deepObject := `{"metadata":` + strings.Repeat(`{"a":`, 20_000) + "1" + strings.Repeat("}", 20_000) + "}"
	posts := map[string][]struct{ label, body, mention string }{
		"/v1/workflows/wf1/load": {
			{"reset string", `{"reset":"yes"}`, "reset"},
			{"reset number", `{"reset":1}`, "reset"},
		},
		"/v1/workflows/wf1/open": {
			{"jobs string", `{"jobs":"job1"}`, "jobs"},
			{"jobs numbers", `{"jobs":[1,2]}`, "jobs"},
			{"bad job name", `{"jobs":["a*b"]}`, "job name"},
			{"traversal job", `{"jobs":["../../etc/passwd"]}`, "job name"},
			{"from_date number", `{"from_date":20260101}`, "from_date"},
			{"bad from_date", `{"from_date":"yesterday"}`, "from_date"},
			{"month 13", `{"from_date":"2026-13-01T00:00:00Z"}`, "from_date"},
			{"Feb 30", `{"from_date":"2026-02-30"}`, "from_date"},
			{"year 10000", `{"from_date":"10000-01-01T00:00:00Z"}`, "from_date"},
			{"bad to_date", `{"from_date":"2026-01-01","to_date":"soon"}`, "to_date"},
			{"to_date alone", `{"to_date":"2026-01-01"}`, "from_date"},
		},
		"/v1/workflows/wf1/pause": {
			{"reason number", `{"reason":1}`, "reason"},
			{"reason too long", `{"reason":"` + strings.Repeat("x", 501) + `"}`, "reason"},
			{"reason control", `{"reason":"a\u0007b"}`, "control"},
		},
		"/v1/workflows/wf1/resume": {
			{"reason", `{"reason":"x"}`, "reason"},
		},
		"/v1/workflows/wf1/backfill": {
			{"no dates", `{}`, "from_date"},
			{"no to_date", `{"from_date":"2026-01-01"}`, "to_date"},
			{"bad from_date", `{"from_date":"yesterday","to_date":"2026-01-01"}`, "from_date"},
			{"empty window", `{"from_date":"2026-01-02","to_date":"2026-01-01"}`, "empty"},
			{"future", `{"from_date":"2026-01-01","to_date":"9999-01-01"}`, "future"},
			{"bad job", `{"jobs":["a*b"],"from_date":"2026-01-01","to_date":"2026-01-02"}`, "job name"},
		},
		"/v1/workflows/wf1/jobs/job1/open": {
			{"bad from_date", `{"from_date":"2026-01-01T25:00"}`, "from_date"},
		},
		"/v1/workflows/wf1/close": {
			{"batch_id string", `{"batch_id":"1"}`, "batch_id"},
			{"batch_id float", `{"batch_id":1.5}`, "batch_id"},
			{"batch_id negative", `{"batch_id":-5}`, "batch_id"},
			{"batch_id overflow", `{"batch_id":99999999999999999999}`, "batch_id"},
			{"metadata list", `{"metadata":[1]}`, "metadata"},
			{"metadata bad name", `{"metadata":{"a b":1}}`, "metadata field"},
			{"jobs object", `{"jobs":{"job1":true}}`, "jobs"},
		},
		"/v1/workflows/wf1/fail": {
			{"metadata string", `{"metadata":"x"}`, "metadata"},
			{"glob metadata name", `{"metadata":{"*":1}}`, "metadata field"},
		},
		"/v1/workflows/wf1/jobs/job1/close": {
			{"batch_id bool", `{"batch_id":true}`, "batch_id"},
		},
		"/v1/workflows/wf1/jobs/job1/fail": {
			{"metadata null name", `{"metadata":{"":1}}`, "metadata field"},
			{"metadata number beyond a float", `{"metadata":{"rows":[1,{"x":1e999}]}}`, "too large"},
		},
		"/v1/workflows/wf2/jobs/a/watermark": {
			{"no from_date", `{}`, "from_date"},
			{"from_date null", `{"from_date":null}`, "from_date"},
			{"from_date number", `{"from_date":1}`, "from_date"},
			{"bad from_date", `{"from_date":"2026-01-01T00:00:00+25:00"}`, "from_date"},
		},
		"/v1/workflows/wf1/runs": {
			{"jobs string", `{"jobs":"job1"}`, "jobs"},
			{"bad job name", `{"jobs":["a?b"]}`, "job name"},
			{"bad from_date", `{"from_date":"x"}`, "from_date"},
			{"field twice", `{"from_date":"2026-01-01T00:00:00Z","from_date":""}`, "twice"},
			{"fire_time without window", `{"fire_time":"2026-01-01T00:00:00Z"}`, "window"},
			{"bad fire_time", `{"fire_time":"noon"}`, "fire_time"},
		},
		"/v1/workflows/wf1/runs/r1/cancel": {
			{"reason number", `{"reason":1}`, "reason"},
			{"reason too long", `{"reason":"` + strings.Repeat("x", 501) + `"}`, "reason"},
		},
	}
	var out []badCase
	for path, list := range posts {
		add := func(label, body string, status int, mention ...string) {
			out = append(out, badCase{name: "POST " + path + " " + label, method: "POST", path: path, ctype: "application/json", body: body, status: status, mention: mention})
		}
		for _, c := range list {
			add(c.label, c.body, 400, c.mention)
		}
		add("malformed", `{"jobs":`, 400, "json")
		add("not an object", `[1,2]`, 400, "request body")
		add("trailing data", `{} {}`, 400, "after the json")
		add("stray closing brace", `{}}`, 400, "after the json")
		add("field name in another case", `{"JOBS":[]}`, 400, "jobs")
		add("unknown field", `{"nope":1}`, 400, "nope")
		add("huge", huge, 413, "larger than")
		add("deep array", deepArray, 400, "request body")
		add("deep object", deepObject, 400, "request body")
	}
	// The log route reads JSON with a JSON content type and text lines otherwise.
	logs := "/v1/workflows/wf1/logs"
	for _, c := range []struct {
		label, ctype, body string
		status             int
		mention            string
	}{
		{"level number", "application/json", `{"level":1,"message":"x"}`, 400, "level"},
		{"unknown level", "application/json", `{"level":"loud","message":"x"}`, 400, "level"},
		{"empty message", "application/json", `{"message":""}`, 400, "message"},
		{"unknown field", "application/json", `{"msg":"x"}`, 400, "msg"},
		{"bad job", "application/json", `{"message":"x","job":"a*"}`, 400, "job"},
		{"malformed", "application/json", `{"message":`, 400, "json"},
		{"stray bracket", "application/json", `{"message":"x"}]`, 400, "after the json"},
		{"field name in another case", "application/json", `[{"Message":"x"}]`, 400, "message"},
		{"content type in capitals", "Application/JSON", `{"msg":"x"}`, 400, "msg"},
		{"deep", "application/json", deepArray, 400, "request body"},
		{"huge JSON", "application/json", huge, 413, "larger than"},
		{"huge text", "text/plain", strings.Repeat("a line\n", 300_000), 413, "larger than"},
		{"text line over 64 KiB", "text/plain", "ok\n" + strings.Repeat("a", 64<<10+1) + "\n", 400, "line 2: message must be 1 to 65536 bytes"},
		{"empty text", "text/plain", "\n\n", 400, "no log lines"},
	} {
		out = append(out, badCase{name: "POST " + logs + " " + c.label, method: "POST", path: logs, ctype: c.ctype, body: c.body, status: c.status, mention: []string{c.mention}})
	}
	return out
}

// queryCases are malformed query parameters.
func queryCases() []badCase {
	var out []badCase
	add := func(method, path, mention string) {
		out = append(out, badCase{name: method + " " + path, method: method, path: path, status: 400, mention: []string{mention}})
	}
	add("GET", "/load_cfg/wf1?reset=maybe", "reset")
	add("GET", "/v1/workflows/wf1?format=xml", "xml")
	add("GET", "/v1/workflows/wf1/jobs/job1?format=ENV", "env")
	add("POST", "/v1/workflows/wf1/open?format=yaml", "yaml")
	add("POST", "/v1/workflows/wf1/jobs/job1/open?format=%2A", "format")
	for _, v := range []string{"0", "1001", "-1", "abc", "1e2"} {
		add("GET", "/v1/workflows/wf1/batches?limit="+v, "limit")
		add("GET", "/v1/workflows/wf1/runs?limit="+v, "limit")
		add("GET", "/v1/workflows/wf1/events?limit="+v, "limit")
	}
	add("GET", "/v1/workflows/wf1/batches?before=x", "before")
	add("GET", "/v1/workflows/wf1/events?level=loud", "level")
	add("GET", "/v1/workflows/wf1/events?job=a*b", "job")
	add("GET", "/v1/workflows/wf1/events?batch=abc", "batch")
	add("GET", "/v1/workflows/wf1/events?since=yesterday", "since")
	add("GET", "/v1/workflows/wf1/events?before=*", "before")
	add("GET", "/v1/workflows/wf1/events/stream?level=loud", "level")
	add("GET", "/v1/workflows/wf1/events/stream?last_event_id=x", "event id")
	add("GET", "/v1/wait", "target")
	add("GET", "/v1/wait?target=wf*", "workflow")
	add("GET", "/v1/wait?target=..%2Fetc", "workflow")
	add("GET", "/v1/wait?target=wf1:a%3Fb", "job")
	add("GET", "/v1/wait?target=wf1&timeout=forever", "timeout")
	add("GET", "/v1/wait?target=wf1&timeout=-1s", "timeout")
	add("GET", "/v1/wait?target=wf1&since=2026-02-30", "since")
	add("GET", "/v1/wait?target=wf1&fail_fast=perhaps", "fail_fast")
	return out
}

// badYAML are workflow files that must not load: name -> content.
func badYAML() map[string]string {
	bomb := "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		bomb += n + ": &" + n + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 10), ",") + "]\n"
		prev = n
	}
	return map[string]string{
		"broken":      "job: [unclosed\n",
		"tabs":        "job:\n\tfrom_date: x\n",
		"bomb":        bomb,
		"deep":        "job:\n  x: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n",
		"huge":        "job:\n  x: \"" + strings.Repeat("a", 1<<20) + "\"\n",
		"badtype":     "job:\n  reprocess_hours: abc\n",
		"negative":    "job:\n  reprocess_hours: -1\n",
		"baddate":     "job:\n  from_date: yesterday\n",
		"feb30":       "job:\n  from_date: 2026-02-30\n",
		"badstatus":   "job:\n  status: running\n",
		"badtrunc":    "job:\n  trunc_start: maybe\n",
		"badid":       "job:\n  batch_id: -3\n",
		"twodocs":     "a: {}\n---\nb: {}\n",
		"list":        "- a\n- b\n",
		"scalar":      "hello\n",
		"empty":       "",
		"nojobs":      "batchy:\n  exclusive: true\n",
		"badjobname":  "\"a b\": {}\n",
		"globjob":     "\"a*\": {}\n",
		"dotdotjob":   "\"..\": {}\n",
		"badfield":    "job:\n  \"x y\": 1\n",
		"dupjob":      "a: {}\na: {}\n",
		"dupfield":    "a:\n  x: 1\n  x: 2\n",
		"merge":       "base: &b {x: 1}\na:\n  <<: *b\n",
		"params":      "a: [1, 2]\n",
		"settings":    "batchy:\n  nope: 1\na: {}\n",
		"badtz":       "batchy:\n  timezone: Mars/Olympus\na: {}\n",
		"badcron":     "batchy:\n  schedule: \"61 * * * *\"\na: {}\n",
		"needscycle":  "a:\n  needs: [b]\nb:\n  needs: [a]\n",
		"binary":      "\x00\x01\x02\xff\xfe",
		"infinity":    "a:\n  x: .inf\n",
		"mapkey":      "? [a, b]\n: {}\n",
		"metadata":    "a:\n  metadata: {x: 1}\n",
		"backfill":    "a:\n  backfill: true\n",
		"infasection": "a:\n  infa_section: \"x]\\n[y\"\n",
	}
}

// yamlCases load a bad file through both load routes.
func yamlCases(name string) []badCase {
	status := 400
	if name == "bomb" || name == "deep" || name == "huge" {
		status = 413
	}
	mention := []string{name}
	if name == "empty" {
		mention = []string{"no jobs"}
	}
	return []badCase{
		{name: "GET /load_cfg/" + name, method: "GET", path: "/load_cfg/" + name, status: status, mention: mention},
		{name: "POST load " + name, method: "POST", path: "/v1/workflows/" + name + "/load", status: status, mention: mention},
		{name: "POST load reset " + name, method: "POST", path: "/v1/workflows/" + name + "/load", ctype: "application/json", body: `{"reset":true}`, status: status, mention: mention},
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkError checks that r is a JSON error {"error":{"code","message"}} with the wanted status,
// the code that goes with it, and a message that mentions each of mention.
func checkError(t *testing.T, r response, status int, mention []string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, clip(r.body))
	}
	var body api.ErrorBody
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
		t.Errorf("not a JSON error body (%v): %s", err, clip(r.body))
		return
	}
	if !strings.HasPrefix(r.ctype, "application/json") {
		t.Errorf("content type %q", r.ctype)
	}
	want := map[int]string{400: "invalid", 404: "not_found", 405: "method_not_allowed", 409: "conflict", 413: "too_large"}[status]
	if body.Error.Code != want {
		t.Errorf("code %q, want %q", body.Error.Code, want)
	}
	for _, m := range mention {
		if !strings.Contains(strings.ToLower(body.Error.Message), strings.ToLower(m)) {
			t.Errorf("message %q does not mention %q", body.Error.Message, m)
		}
	}
}

func diffSnapshots(before, after map[string]string) string {
	var b strings.Builder
	for k, v := range before {
		if w, ok := after[k]; !ok {
			fmt.Fprintf(&b, "- %s\n", k)
		} else if w != v {
			fmt.Fprintf(&b, "~ %s\n  before %s\n  after  %s\n", k, clip(v), clip(w))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(&b, "+ %s %s\n", k, clip(v))
		}
	}
	return b.String()
}

// doType is do with a content type.
func (e *env) doType(t *testing.T, method, path, ctype, body string) response {
	t.Helper()
	if ctype == "" {
		return e.do(t, method, path, body)
	}
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: string(data)}
}
