package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

var ctx = context.Background()

// env is a running API server on a real listener, over one store backend.
type env struct {
	url   string
	store *rdb.Store
	cfg   string
	now   time.Time
}

func newEnv(t *testing.T, b rdbtest.Backend) *env {
	t.Helper()
	client, emb := b.New(t)
	e := &env{cfg: t.TempDir(), now: time.Date(2026, 11, 22, 13, 49, 30, 0, time.UTC)}
	opts := rdb.Options{Now: func() time.Time { return e.now }}
	if emb != nil {
		opts.Embedded = emb
	}
	e.store = rdb.New(client, opts)
	wf1, err := os.ReadFile("../../cfg/wf1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.writeCfg(t, "wf1", string(wf1))
	srv := httptest.NewServer(api.New(api.Options{Store: e.store, CfgDir: e.cfg, StoreName: b.Name}).Handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *env) writeCfg(t *testing.T, wf, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.cfg, wf+".yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// response is what a request answered.
type response struct {
	status int
	ctype  string
	body   string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return v
}

func (e *env) do(t *testing.T, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: string(data)}
}

func (e *env) get(t *testing.T, path string) response { t.Helper(); return e.do(t, "GET", path, "") }

func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %s", r.status, want, r.body)
	}
}

// jobField digs {job: {field: value}} out of a decoded body.
func jobField(t *testing.T, jobs map[string]any, job, field string) any {
	t.Helper()
	j, ok := jobs[job].(map[string]any)
	if !ok {
		t.Fatalf("no job %s in %v", job, jobs)
	}
	return j[field]
}

// TestOriginalRoutes drives the original Batchy's curl calls through a whole cycle.
func TestOriginalRoutes(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)

		// The original answered 200 {} for a workflow it did not know; batchy's own forms 404.
		r := e.get(t, "/get_status/wf1")
		wantStatus(t, r, 200)
		if r.body != "{}" {
			t.Errorf("unknown workflow: %q, want {}", r.body)
		}
		wantStatus(t, e.get(t, "/get_status/wf1/json"), 404)
		wantStatus(t, e.get(t, "/open_batch/wf1"), 404)
		r = e.get(t, "/index")
		wantStatus(t, r, 200)
		if r.body != "Batchy v0.00001" {
			t.Errorf("/index: %q", r.body)
		}

		r = e.get(t, "/load_cfg/wf1")
		wantStatus(t, r, 200)
		jobs := r.json(t)
		if got := jobField(t, jobs, "job2", "status"); got != "new" {
			t.Errorf("job2 status after load = %v", got)
		}
		if !strings.HasPrefix(r.body, "{\n    \"job1\": {\n        \"") {
			t.Errorf("jobs are not in file order: %s", r.body)
		}

		r = e.get(t, "/open_batch/wf1")
		wantStatus(t, r, 200)
		jobs = r.json(t)
		if got := jobField(t, jobs, "job2", "from_date"); got != "2016-01-01T23:59:00.000000Z" {
			t.Errorf("job2 from_date = %v", got)
		}
		if got := jobField(t, jobs, "job2", "batch_id"); got != float64(e.now.Unix()) {
			t.Errorf("job2 batch_id = %v", got)
		}
		if got := jobField(t, jobs, "job3", "trunc_start"); got != true {
			t.Errorf("job3 trunc_start = %#v, want true (types kept)", got)
		}

		r = e.get(t, "/get_status/wf1")
		wantStatus(t, r, 200)
		if got := jobField(t, r.json(t), "job1", "status"); got != "open" {
			t.Errorf("status after open = %v", got)
		}

		e.now = e.now.Add(10 * time.Minute)
		r = e.get(t, "/close_batch/wf1")
		wantStatus(t, r, 200)
		if got := jobField(t, r.json(t), "job1", "status"); got != "success" {
			t.Errorf("status after close = %v", got)
		}

		e.now = time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
		r = e.get(t, "/open_batch/wf1/infa")
		wantStatus(t, r, 200)
		if !strings.HasPrefix(r.ctype, "text/plain") {
			t.Errorf("infa content type = %q", r.ctype)
		}
		// The original's layout and values: a blank line before each section, str(datetime), None.
		for _, want := range []string{"\n[job2]\n", "$$from_date=2026-11-22 11:49:30\n", "$$batch_end=None\n", "$$status=open\n", "$$trunc_start=True\n"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("infa output lacks %q:\n%s", want, r.body)
			}
		}
		if !strings.HasPrefix(r.body, "\n[job1]\n") {
			t.Errorf("infa output does not start with a blank line:\n%s", r.body)
		}
		r = e.get(t, "/get_status/wf1/infa?date_format=MM/DD/YYYY%20HH24:MI:SS")
		wantStatus(t, r, 200)
		for _, want := range []string{"\n[job2]\n", "$$from_date=11/22/2026 11:49:30\n", "$$batch_end=\n", "$$trunc_start=true\n"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("infa output with date_format lacks %q:\n%s", want, r.body)
			}
		}
		// A bad date_format is refused before the batch is opened.
		before := e.get(t, "/get_status/wf1").body
		wantStatus(t, e.get(t, "/open_batch/wf1/infa?date_format=bogus"), 400)
		if after := e.get(t, "/get_status/wf1").body; after != before {
			t.Errorf("a refused open changed the state:\n%s\n%s", before, after)
		}

		r = e.get(t, "/fail_batch/wf1")
		wantStatus(t, r, 200)
		if got := jobField(t, r.json(t), "job3", "status"); got != "failure" {
			t.Errorf("status after fail = %v, want the original's failure", got)
		}
		if got := jobField(t, e.get(t, "/get_status/wf1").json(t), "job3", "status"); got != "failure" {
			t.Errorf("status after fail = %v, want the original's failure", got)
		}
		if r := e.get(t, "/v1/workflows/wf1/jobs/job3"); !strings.Contains(r.body, `"status":"failed"`) {
			t.Errorf("v1 after fail: %s, want failed", r.body)
		}

		e.now = time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
		r = e.get(t, "/open_batch/wf1/env")
		wantStatus(t, r, 200)
		for _, want := range []string{"export BATCHY_WF='wf1'", "export BATCHY_JOB2_FROM_DATE='2026-11-22T11:49:30.000000Z'", "export BATCHY_JOB2_TO_DATE='2026-11-22T15:00:00.000000Z'"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("env output lacks %q:\n%s", want, r.body)
			}
		}

		r = e.get(t, "/open_batch/wf1/json")
		wantStatus(t, r, 200)

		// The original routes stay permissive: closing twice is not an error.
		e.get(t, "/close_batch/wf1")
		wantStatus(t, e.get(t, "/close_batch/wf1"), 200)

		// Reloading keeps the runtime state (the original reset it silently).
		r = e.get(t, "/load_cfg/wf1")
		wantStatus(t, r, 200)
		if got := jobField(t, r.json(t), "job2", "status"); got != "success" {
			t.Errorf("status after reload = %v, want success kept", got)
		}
		r = e.get(t, "/load_cfg/wf1?reset=true")
		wantStatus(t, r, 200)
		if got := jobField(t, r.json(t), "job2", "status"); got != "new" {
			t.Errorf("status after reset = %v, want new", got)
		}
	})
}

// TestV1 drives the v1 API: whole workflow, named jobs, strict ends, history, watermark, backfill.
func TestV1(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/load", ""), 200)

		r := e.do(t, "POST", "/v1/workflows/wf1/open", `{"jobs":["job2"]}`)
		wantStatus(t, r, 200)
		st := r.json(t)
		jobs := st["jobs"].(map[string]any)
		if got := jobField(t, jobs, "job2", "status"); got != "open" {
			t.Errorf("job2 = %v", got)
		}
		if got := jobField(t, jobs, "job3", "status"); got != "new" {
			t.Errorf("job3 opened though not named: %v", got)
		}
		id := int64(st["last_batch_id"].(float64))

		// Closing a job that is not open is a conflict on v1, and changes nothing.
		before := e.get(t, "/v1/workflows/wf1").body
		r = e.do(t, "POST", "/v1/workflows/wf1/jobs/job3/close", "")
		wantStatus(t, r, 409)
		if code := r.json(t)["error"].(map[string]any)["code"]; code != "conflict" {
			t.Errorf("error code = %v", code)
		}
		if after := e.get(t, "/v1/workflows/wf1").body; after != before {
			t.Errorf("a refused close changed the state")
		}

		// A late close for another batch is refused.
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", `{"batch_id":1}`), 409)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", `{"batch_id":`+itoa(id)+`}`), 200)

		r = e.get(t, "/v1/workflows/wf1/jobs/job2")
		wantStatus(t, r, 200)
		if got := r.json(t)["fields"].(map[string]any)["status"]; got != "success" {
			t.Errorf("job2 after close = %v", got)
		}

		// History.
		r = e.get(t, "/v1/workflows/wf1/batches")
		wantStatus(t, r, 200)
		batches := r.json(t)["batches"].([]any)
		if len(batches) != 1 || int64(batches[0].(map[string]any)["batch_id"].(float64)) != id {
			t.Errorf("history = %s", r.body)
		}
		wantStatus(t, e.get(t, "/v1/workflows/wf1/batches/"+itoa(id)), 200)
		wantStatus(t, e.get(t, "/v1/workflows/wf1/batches/123"), 404)

		// Watermark, then the next window starts there.
		r = e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/watermark", `{"from_date":"2026-01-01T00:00"}`)
		wantStatus(t, r, 200)
		r = e.get(t, "/v1/workflows/wf1/next")
		wantStatus(t, r, 200)
		if got := r.json(t)["jobs"].(map[string]any)["job2"].(map[string]any)["from_date"]; got != "2026-01-01T00:00:00.000000Z" {
			t.Errorf("next from_date after watermark = %v", got)
		}

		// Backfill with env output of the opened job only.
		r = e.do(t, "POST", "/v1/workflows/wf1/jobs/job3/open?format=env", `{"from_date":"2025-01-01T00:00:00Z","to_date":"2025-02-01T00:00:00Z"}`)
		wantStatus(t, r, 200)
		if !strings.Contains(r.body, "BATCHY_JOB3_FROM_DATE='2025-01-01T00:00:00.000000Z'") || strings.Contains(r.body, "BATCHY_JOB2_") {
			t.Errorf("backfill env output:\n%s", r.body)
		}
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job3/fail", ""), 200)

		r = e.get(t, "/v1/workflows")
		wantStatus(t, r, 200)
		if !strings.Contains(r.body, `"workflow":"wf1","status":"new"`) || !strings.Contains(r.body, `"loaded":true,"configured":true}`) {
			t.Errorf("workflows = %s\nstate %s", r.body, e.get(t, "/v1/workflows/wf1").body)
		}
		wantStatus(t, e.get(t, "/healthz"), 200)
		wantStatus(t, e.get(t, "/readyz"), 200)
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestBadInput sends malformed requests; each gets a 4xx JSON error naming the problem and leaves
// the stored state exactly as it was.
func TestBadInput(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)
		e.writeCfg(t, "badtype", "job:\n  reprocess_hours: abc\n")
		e.writeCfg(t, "bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n")
		e.writeCfg(t, "broken", "job: [unclosed\n")
		wantStatus(t, e.get(t, "/load_cfg/wf1"), 200)
		wantStatus(t, e.get(t, "/open_batch/wf1"), 200)

		cases := []struct {
			name, method, path, body string
			status                   int
			mention                  string
		}{
			{"glob in name", "GET", "/get_status/wf*", "", 400, "invalid"},
			{"glob in open", "GET", "/open_batch/wf%3F", "", 400, "invalid"},
			{"traversal", "GET", "/load_cfg/..%2F..%2Fetc%2Fpasswd", "", 400, "invalid"},
			{"dotdot", "GET", "/load_cfg/..", "", 400, "invalid"},
			{"name too long", "GET", "/get_status/" + strings.Repeat("a", 129), "", 400, "invalid"},
			{"unknown workflow", "GET", "/open_batch/nope", "", 404, "nope"},
			{"no config file", "GET", "/load_cfg/nope", "", 404, "nope"},
			{"wrong type in YAML", "GET", "/load_cfg/badtype", "", 400, "reprocess_hours"},
			{"alias bomb", "GET", "/load_cfg/bomb", "", 413, "aliases"},
			{"invalid YAML", "GET", "/load_cfg/broken", "", 400, "broken"},
			{"unknown format", "GET", "/open_batch/wf1/xml", "", 400, "xml"},
			{"unknown format v1", "POST", "/v1/workflows/wf1/open?format=xml", "", 400, "xml"},
			{"bad reset", "GET", "/load_cfg/wf1?reset=maybe", "", 400, "reset"},
			{"malformed JSON", "POST", "/v1/workflows/wf1/close", "{", 400, "JSON"},
			{"wrong JSON type", "POST", "/v1/workflows/wf1/open", `{"jobs":"job1"}`, 400, "jobs"},
			{"unknown JSON field", "POST", "/v1/workflows/wf1/open", `{"job":["job1"]}`, 400, "job"},
			{"bad date", "POST", "/v1/workflows/wf1/jobs/job1/watermark", `{"from_date":"yesterday"}`, 400, "from_date"},
			{"missing date", "POST", "/v1/workflows/wf1/jobs/job1/watermark", `{}`, 400, "from_date"},
			{"watermark on open job", "POST", "/v1/workflows/wf1/jobs/job1/watermark", `{"from_date":"2020-01-01"}`, 409, "open"},
			{"unknown job", "POST", "/v1/workflows/wf1/jobs/zz/close", "", 404, "zz"},
			{"bad job name", "POST", "/v1/workflows/wf1/jobs/a*b/close", "", 400, "invalid"},
			{"empty backfill", "POST", "/v1/workflows/wf1/open", `{"from_date":"2026-01-02","to_date":"2026-01-01"}`, 400, "empty"},
			{"backfill over open batch", "POST", "/v1/workflows/wf1/open", `{"from_date":"2020-01-01"}`, 409, "open"},
			{"huge body", "POST", "/v1/workflows/wf1/open", `{"jobs":["` + strings.Repeat("a", 2<<20) + `"]}`, 413, "larger"},
			{"deep body", "POST", "/v1/workflows/wf1/open", strings.Repeat("[", 100000), 400, ""},
			{"bad batch id", "GET", "/v1/workflows/wf1/batches/abc", "", 400, "batch id"},
			{"bad limit", "GET", "/v1/workflows/wf1/batches?limit=0", "", 400, "limit"},
			{"negative batch_id", "POST", "/v1/workflows/wf1/close", `{"batch_id":-1}`, 400, "batch_id"},
			{"wrong method", "DELETE", "/v1/workflows/wf1", "", 405, "DELETE"},
			{"no route", "GET", "/v2/nothing", "", 404, "no route"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before, err := e.store.Dump(ctx, "wf1")
				if err != nil {
					t.Fatal(err)
				}
				r := e.do(t, c.method, c.path, c.body)
				if r.status != c.status {
					t.Errorf("status %d, want %d; body %s", r.status, c.status, clip(r.body))
				}
				var body api.ErrorBody
				if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
					t.Errorf("not a JSON error: %s", clip(r.body))
				}
				if !strings.Contains(strings.ToLower(body.Error.Message), strings.ToLower(c.mention)) {
					t.Errorf("message %q does not mention %q", body.Error.Message, c.mention)
				}
				after, err := e.store.Dump(ctx, "wf1")
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(before, after) {
					t.Errorf("the state changed")
				}
			})
		}
		names, _ := e.store.Workflows(ctx)
		if !reflect.DeepEqual(names, []string{"wf1"}) {
			t.Errorf("workflows after bad input = %v, want only wf1", names)
		}
	})
}

// TestStoreDown: with Redis gone, requests answer 503 quickly and the server stays up.
func TestStoreDown(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	store := rdb.New(srv.Client(t), rdb.Options{})
	hs := httptest.NewServer(api.New(api.Options{Store: store, CfgDir: t.TempDir(), StoreName: "redis"}).Handler())
	defer hs.Close()
	e := &env{url: hs.URL}
	srv.Stop()
	r := e.get(t, "/get_status/wf1")
	wantStatus(t, r, 503)
	if code := r.json(t)["error"].(map[string]any)["code"]; code != batch.EUNAVAILABLE {
		t.Errorf("code = %v", code)
	}
	if strings.Contains(r.body, "127.0.0.1") {
		t.Errorf("the error leaks the store's address: %s", r.body)
	}
	wantStatus(t, e.get(t, "/readyz"), 503)
	wantStatus(t, e.get(t, "/healthz"), 200)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// TestRunMetadata: a close may carry facts about the run, kept on the job and in history until
// the next open.
func TestRunMetadata(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)
		e.get(t, "/load_cfg/wf1")
		r := e.do(t, "POST", "/v1/workflows/wf1/open", `{"jobs":["job2"]}`)
		id := int64(r.json(t)["last_batch_id"].(float64))
		r = e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", `{"metadata":{"rows_read":12345678901234567890,"source":"crm","ok":true}}`)
		wantStatus(t, r, 200)
		if !strings.Contains(r.body, `"metadata":{"ok":true,"rows_read":12345678901234567890,"source":"crm"}`) {
			t.Errorf("metadata not on the job: %s", r.body)
		}
		if h := e.get(t, "/v1/workflows/wf1/batches/"+itoa(id)); !strings.Contains(h.body, `"rows_read":12345678901234567890`) {
			t.Errorf("metadata not in history: %s", h.body)
		}
		r = e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/open", "")
		if strings.Contains(r.body, "rows_read") {
			t.Errorf("the next open kept the previous run's metadata: %s", r.body)
		}
		before, _ := e.store.Dump(ctx, "wf1")
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", `{"metadata":{"bad name":1}}`), 400)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", `{"metadata":[1]}`), 400)
		if after, _ := e.store.Dump(ctx, "wf1"); !reflect.DeepEqual(before, after) {
			t.Errorf("a refused close changed the state")
		}
	})
}

// TestAfterCycleRefused: loading a workflow whose after: leads back to itself, directly or through
// loaded workflows, is a 400 that names the cycle, and stores nothing.
func TestAfterCycleRefused(t *testing.T) {
	e := newEnv(t, rdbtest.Backends[0])
	e.writeCfg(t, "self", "batchy:\n  after: [self]\na: {}\n")
	e.writeCfg(t, "up", "batchy:\n  after: [\"down:b\"]\na: {}\n")
	e.writeCfg(t, "down", "batchy:\n  after: [up]\nb: {}\n")
	if r := e.get(t, "/load_cfg/self"); r.status != 400 || !strings.Contains(r.body, "self after self") {
		t.Errorf("load self: %d %s", r.status, r.body)
	}
	if r := e.get(t, "/load_cfg/up"); r.status != 200 { // down is not loaded yet: no cycle so far
		t.Fatalf("load up: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/workflows/down/load", ""); r.status != 400 || !strings.Contains(r.body, "down after up after down") {
		t.Errorf("load down: %d %s", r.status, r.body)
	}
	if r := e.get(t, "/v1/workflows/down"); r.status != 404 {
		t.Errorf("down was stored: %d %s", r.status, r.body)
	}
}

// TestOriginalOptions checks --strict-original and ?date_format= on v1.
func TestOriginalOptions(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	now := time.Date(2026, 11, 22, 13, 49, 30, 840061000, time.UTC)
	store := rdb.New(client, rdb.Options{Now: func() time.Time { return now }})
	dir := t.TempDir()
	wf1, err := os.ReadFile("../../cfg/wf1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "wf1.yaml"), wf1, 0o644)
	srv := httptest.NewServer(api.New(api.Options{Store: store, CfgDir: dir, StrictOriginal: true, OriginalInfaDateFormat: "YYYY-MM-DD"}).Handler())
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL}

	r := e.get(t, "/get_status/nosuch")
	wantStatus(t, r, 404)
	if !strings.Contains(r.body, "not loaded") {
		t.Errorf("strict unknown workflow: %s", r.body)
	}
	wantStatus(t, e.get(t, "/load_cfg/wf1"), 200)
	// --original-infa-date-format changes the original route's dates, not its layout.
	r = e.get(t, "/open_batch/wf1/infa")
	wantStatus(t, r, 200)
	if !strings.HasPrefix(r.body, "\n[job1]\n") || !strings.Contains(r.body, "$$batch_start=2026-11-22\n") || !strings.Contains(r.body, "$$batch_end=\n") {
		t.Errorf("original route with a date format:\n%s", r.body)
	}
	// v1 answers the original's dates when asked, in its own layout.
	r = e.get(t, "/v1/workflows/wf1?format=infa&date_format=original")
	wantStatus(t, r, 200)
	if !strings.HasPrefix(r.body, "[job1]\n") || !strings.Contains(r.body, "$$batch_start=2026-11-22 13:49:30.840061\n") || !strings.Contains(r.body, "$$batch_end=None\n") {
		t.Errorf("v1 with date_format=original:\n%s", r.body)
	}
	r = e.get(t, "/v1/workflows/wf1?format=infa")
	if !strings.Contains(r.body, "$$batch_start=11/22/2026 13:49:30\n") {
		t.Errorf("v1 default dates:\n%s", r.body)
	}
	wantStatus(t, e.get(t, "/v1/workflows/wf1?format=infa&date_format=nonsense"), 400)
}
