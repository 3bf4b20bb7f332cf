package ui_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/ui"
)

// rowRE finds the dashboard's workflow rows.
var rowRE = regexp.MustCompile(`<tr id="wf-([^"]+)" class="wf[^"]*" data-workflow="[^"]+" data-status="([^"]+)"`)

// rows returns the workflows a dashboard shows, with their overall status, in order.
func rows(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1]+"="+m[2])
	}
	return out
}

func wantContains(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("the page does not contain %q", s)
		}
	}
}

func wantNotContains(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(body, s) {
			t.Errorf("the page contains %q", s)
		}
	}
}

// TestDashboardListsWorkflows renders every workflow with its jobs' status, on both stores.
func TestDashboardListsWorkflows(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		client, _ := b.New(t)
		e := newEnv(t, client, envOptions{})
		e.post(t, "/v1/workflows/wf1/load", "")
		e.post(t, "/v1/workflows/wf1/open", "")
		e.post(t, "/v1/workflows/wf1/jobs/job3/fail", "")

		body := e.page(t, "/")
		// wf1's job1 has no watermark: its window starts at the original's "everything" date,
		// which reads as such.
		wantContains(t, body, `<span title="1776-07-04 23:59:00Z: no watermark yet, so everything">the beginning</span>`)
		// sales is configured but not loaded: listed, with a load action, in name order.
		if got, want := strings.Join(rows(body), " "), "sales=not loaded wf1=failed"; got != want {
			t.Errorf("rows: got %s, want %s", got, want)
		}
		wantContains(t, body,
			`<a href="/ui/workflows/wf1">wf1</a>`,
			`<span class="job-name">job1</span> <span class="badge st-open"><span aria-hidden="true">▶</span> open</span>`,
			`<span class="job-name">job3</span> <span class="badge st-failed"><span aria-hidden="true">✖</span> failed</span>`,
			`class="wf attention"`, "failed: job3", // failing stands out, in words
			`<script src="/ui/static/ui.js?v=`,
			`data-fragment="/ui/fragment/dashboard"`,
		)
		// The fragment is the live part alone.
		frag := e.page(t, "/ui/fragment/dashboard")
		if strings.Contains(frag, "<html") || !strings.Contains(frag, `id="dash" data-live`) || len(rows(frag)) != 2 {
			t.Errorf("fragment:\n%s", frag)
		}
		// The rows' action menus fetch their buttons when opened: a load for sales, wf1's close
		// of its open jobs.
		wantContains(t, e.page(t, "/ui/fragment/dashboard/actions/wf1"),
			`data-api="/v1/workflows/wf1/close"`, `data-body="{&#34;jobs&#34;:[&#34;job1&#34;,&#34;job2&#34;]}"`)
		wantContains(t, e.page(t, "/ui/fragment/dashboard/actions/sales"), `data-api="/v1/workflows/sales/load"`)
	})
}

func TestDashboardFilters(t *testing.T) {
	e := newEmbedded(t, envOptions{})
	e.post(t, "/v1/workflows/wf1/load", "")
	e.post(t, "/v1/workflows/sales/load", "")
	e.load(t, "crm_export", "extract:\n  table: crm\n")
	e.post(t, "/v1/workflows/crm_export/open", "")
	e.load(t, "broken", "a: {}\nb: {}\n")
	e.post(t, "/v1/workflows/broken/open", "")
	e.post(t, "/v1/workflows/broken/jobs/b/fail", "")

	for _, c := range []struct{ query, want string }{
		{"", "broken=failed crm_export=open sales=new wf1=new"},
		{"?q=sal", "sales=new"}, // the start of a name
		{"?q=SAL", ""},          // names are case-sensitive
		{"?q=rm", ""},           // not a part of it
		{"?status=open", "crm_export=open"},
		{"?status=failed", "broken=failed"},
		{"?status=new&q=wf", "wf1=new"},
		{"?status=success", ""},
		{"?status=unloaded", ""},
		{"?q=nothing-like-this", ""},
		{"?q=%3Cb%3E", ""}, // no name's start: nothing
	} {
		t.Run(c.query, func(t *testing.T) {
			body := e.page(t, "/"+c.query)
			if got := strings.Join(rows(body), " "); got != c.want {
				t.Errorf("rows: got %q, want %q", got, c.want)
			}
			if c.want == "" {
				wantContains(t, body, "No workflow matches these filters.")
			}
		})
	}
	body := e.page(t, "/?status=failed")
	wantContains(t, body, `<a class="count f-failed" href="/?status=failed" aria-current="page">`, `Failed <strong>1</strong>`,
		`<option value="failed" selected>Failed</option>`, `data-fragment="/ui/fragment/dashboard?status=failed"`)
	for _, q := range []string{"status=bogus", "status=attention", "cursor=a%20b"} {
		if r := e.get(t, "/?"+q); r.status != http.StatusBadRequest || !strings.Contains(r.body, strings.Split(q, "=")[0]) {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}

// TestDashboardPaging lists 1,000 workflows 50 to a page, by name, from a cursor; the
// configured workflows never loaded come in name order among them.
func TestDashboardPaging(t *testing.T) {
	e := newEmbedded(t, envOptions{noCfg: true})
	const n = 1000
	for i := range n {
		e.load(t, fmt.Sprintf("wf%04d", i), "extract: {}\nload: {}\n")
	}
	e.writeCfg(t, "wf0049a", "a: {}\n") // configured, not loaded
	start := time.Now()
	body := e.page(t, "/")
	t.Logf("dashboard of %d workflows rendered in %s", n, time.Since(start))
	r := rows(body)
	if len(r) != 50 || r[0] != "wf0000=new" || r[49] != "wf0049=new" {
		t.Fatalf("page 1: %d rows %v", len(r), r)
	}
	wantContains(t, body, "Showing 50 workflows, more on the next page (1001 in all)", `<a href="/?cursor=wf0049" rel="next">`,
		`New <strong>1000</strong>`, `Not loaded <strong>1</strong>`)
	wantNotContains(t, body, `rel="first"`)

	body = e.page(t, "/?cursor=wf0049")
	if r := rows(body); len(r) != 50 || r[0] != "wf0049a=not loaded" || r[1] != "wf0050=new" || r[49] != "wf0098=new" {
		t.Fatalf("page 2: %v", r)
	}
	wantContains(t, body, `<a href="/" rel="first">`, `<a href="/?cursor=wf0098" rel="next">`)

	body = e.page(t, "/?cursor=wf0960")
	if r := rows(body); len(r) != 39 || r[0] != "wf0961=new" || r[38] != "wf0999=new" {
		t.Fatalf("last page: %v", r)
	}
	wantNotContains(t, body, `rel="next"`)

	// Paging keeps the filters.
	body = e.page(t, "/?q=wf09&cursor=wf0949")
	if r := rows(body); len(r) != 50 || r[0] != "wf0950=new" || r[49] != "wf0999=new" {
		t.Fatalf("filtered page: %v", r)
	}
	wantContains(t, body, `<a href="/?q=wf09" rel="first">`)
	wantNotContains(t, body, `rel="next"`)
}

// TestReadOnly renders no action for a user who may not act, and every action for one who may.
func TestReadOnly(t *testing.T) {
	operator := func(r *http.Request) bool { return r.Header.Get("X-Test-Role") == "operator" }
	e := newEmbedded(t, envOptions{ui: func(o *ui.Options) { o.CanAct = operator }})
	e.post(t, "/v1/workflows/wf1/load", "")
	e.post(t, "/v1/workflows/wf1/open", "")
	e.post(t, "/v1/workflows/wf1/runs", "")
	actions := []string{"data-api=", `<form class="action"`, `class="menu"`, ">Actions<", "Change the state", `class="act`, "Dismiss"}
	for _, path := range []string{"/", "/ui/workflows/wf1", "/ui/fragment/dashboard", "/ui/fragment/workflows/wf1", "/ui/workflows/sales", "/ui/fragment/dashboard/actions/wf1"} {
		r := e.get(t, path)
		if r.status != 200 && r.status != 404 && r.status != 403 {
			t.Fatalf("%s: %d", path, r.status)
		}
		wantNotContains(t, r.body, actions...)
	}
	// The dashboard's rows hold their menus' shells, whose buttons come when one opens.
	for path, want := range map[string]string{"/": `class="menu"`, "/ui/fragment/dashboard/actions/wf1": "data-api=", "/ui/workflows/wf1": "data-api="} {
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req.Header.Set("X-Test-Role", "operator")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantContains(t, readAll(t, res), want)
	}
}

// TestHostileValues shows field values, metadata and log lines as text, never as markup.
func TestHostileValues(t *testing.T) {
	e := newEmbedded(t, envOptions{})
	e.writeCfg(t, "evil", `
batchy:
  schedule: "0 2 * * *"
job:
  title: "<script>alert('title')</script>"
  quote: "\" onmouseover=\"alert(1)"
  link: "javascript:alert(1)"
  run: {type: http, url: "http://x/</pre><script>alert(2)</script>", headers: {Authorization: "Bearer s3cret"}}
`)
	e.post(t, "/v1/workflows/evil/load", "")
	e.post(t, "/v1/workflows/evil/open", "")
	e.post(t, "/v1/workflows/evil/logs", `{"message":"<img src=x onerror=alert(3)>","job":"job"}`)
	e.post(t, "/v1/workflows/evil/close", `{"metadata":{"note":"</code><script>alert(4)</script>"}}`)
	for _, path := range []string{"/", "/ui/workflows/evil", "/ui/fragment/workflows/evil", "/?q=%3Cscript%3E%22"} {
		body := e.page(t, path)
		wantNotContains(t, body, "<script>alert", "<img src=x", `" onmouseover="`, "s3cret")
	}
	body := e.page(t, "/ui/workflows/evil")
	wantContains(t, body,
		"&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;",
		"&lt;img src=x onerror=alert(3)&gt;",
		"&lt;/code&gt;&lt;script&gt;alert(4)&lt;/script&gt;",
		"(hidden)",
	)
	body = e.page(t, "/?q=%3Cscript%3E%22")
	wantContains(t, body, `value="&lt;script&gt;&#34;"`)
}

func TestWorkflowPage(t *testing.T) {
	e := newEmbedded(t, envOptions{})
	base := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
	e.clock.Set(base)
	e.post(t, "/v1/workflows/sales/load", "")
	// Three batches: 10 minutes, a failure after 25 minutes, 5 minutes; then one open.
	for i, c := range []struct {
		took time.Duration
		end  string
	}{{10 * time.Minute, "close"}, {25 * time.Minute, "fail"}, {5 * time.Minute, "close"}} {
		e.clock.Set(base.Add(time.Duration(i) * 24 * time.Hour))
		e.post(t, "/v1/workflows/sales/open", "")
		e.clock.Set(base.Add(time.Duration(i)*24*time.Hour + c.took))
		e.post(t, "/v1/workflows/sales/"+c.end, `{"metadata":{"rows_read":42}}`)
	}
	e.clock.Set(base.Add(3 * 24 * time.Hour))
	e.post(t, "/v1/workflows/sales/open", "")
	if r := e.do(t, "POST", "/v1/workflows/sales/logs?job=extract_orders", "text/plain", "read 10 rows\n"); r.status != 202 {
		t.Fatalf("logs: %d %s", r.status, r.body)
	}
	run := e.post(t, "/v1/workflows/sales/runs", `{"from_date":"2026-01-01T00:00:00Z","to_date":"2026-02-01T00:00:00Z"}`)
	e.clock.Set(base.Add(3*24*time.Hour + 90*time.Second))

	body := e.page(t, "/ui/workflows/sales")
	wantContains(t, body,
		`<h1 id="h-wf"><span class="wf-name">sales</span> <span class="badge st-open">`,
		`<tr id="job-extract_orders" data-job="extract_orders" data-status="open">`,
		"1m30s <span class=\"muted\">so far</span>",
		"<dt>source_table</dt><dd>orders</dd>", // parameters
		"<dt>batch_size</dt><dd>5000</dd>",
		`<svg class="durations"`, "Durations of the 4 batches listed, oldest on the left: median 10m00s, longest 25m00s",
		`<rect class="bar st-failed"`, `<rect class="bar-hatch"`,
		`<title>batch 1795140000: success, 10m00s</title>`,
		`&#34;rows_read&#34;:42`, // metadata in history
		`<h2 id="h-runs">Runs</h2>`, `<span class="tag">backfill</span>`, "queued",
		`data-api="/v1/workflows/sales/runs/`, // cancel
		`id="tail" class="tail" role="log"`, `data-stream="/v1/workflows/sales/events/stream?last_event_id=`,
		"batch 1795399200 opened", // an event in the tail
		`<h2 id="h-config">Configuration as loaded</h2>`,
		`data-api="/v1/workflows/sales/jobs/{job}/watermark"`,
		`data-api="/v1/workflows/sales/runs" data-confirm="Backfill sales`,
		`data-api="/v1/workflows/sales/jobs/extract_orders/close"`,
	)
	if !strings.Contains(run.body, `"state":"queued"`) {
		t.Errorf("run: %s", run.body)
	}
	if n := strings.Count(body, `<rect class="bar `); n != 4 {
		t.Errorf("%d bars, want 4", n)
	}
	if n := strings.Count(body, `<tr data-batch=`); n != 4 {
		t.Errorf("%d batches in history, want 4", n)
	}

	// The event filters reach the stream.
	body = e.page(t, "/ui/workflows/sales?level=error&job=extract_orders")
	wantContains(t, body, `data-stream="/v1/workflows/sales/events/stream?job=extract_orders&amp;last_event_id=`, `&amp;level=error"`,
		`data-fragment="/ui/fragment/workflows/sales?job=extract_orders&amp;level=error"`, "batch 1795226400 failed")
	wantNotContains(t, body, "batch 1795399200 opened")

	frag := e.page(t, "/ui/fragment/workflows/sales")
	for _, id := range []string{"wf-summary", "wf-jobs", "wf-runs", "wf-history", "wf-config"} {
		wantContains(t, frag, `id="`+id+`" data-live`)
	}
	wantNotContains(t, frag, "<html", `id="tail"`, "Change the state")

	for path, want := range map[string]int{
		"/ui/workflows/nope":             404,
		"/ui/workflows/a%20b":            400,
		"/ui/workflows/sales?before=x":   400,
		"/ui/workflows/sales?level=loud": 400,
		"/ui/nothing":                    404,
	} {
		if r := e.get(t, path); r.status != want {
			t.Errorf("%s: %d, want %d", path, r.status, want)
		}
	}
	// A configured workflow that is not loaded offers its load.
	r := e.get(t, "/ui/workflows/wf1")
	if r.status != 404 || !strings.Contains(r.body, `data-api="/v1/workflows/wf1/load"`) {
		t.Errorf("unloaded workflow page: %d %s", r.status, r.body)
	}
}

// TestWithoutSchedulerOrEvents hides what a server without them cannot show.
func TestWithoutSchedulerOrEvents(t *testing.T) {
	e := newEmbedded(t, envOptions{noEvents: true, noScheduler: true})
	e.post(t, "/v1/workflows/sales/load", "")
	body := e.page(t, "/ui/workflows/sales")
	wantNotContains(t, body, `id="tail"`, `id="wf-runs"`, "Run now")
	wantContains(t, body, `data-api="/v1/workflows/sales/open" data-confirm="Backfill sales`)
	wantNotContains(t, e.page(t, "/"), "Run now")
}

func TestStaticAndHeaders(t *testing.T) {
	e := newEmbedded(t, envOptions{})
	r := e.get(t, "/")
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	v := regexp.MustCompile(`ui\.js\?v=(\w+)`).FindStringSubmatch(r.body)
	if v == nil {
		t.Fatal("no versioned script")
	}
	for _, f := range []string{"ui.js", "ui.css"} {
		r := e.get(t, "/ui/static/"+f+"?v="+v[1])
		if r.status != 200 || len(r.body) < 100 || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q", f, r.status, r.header.Get("Cache-Control"))
		}
	}
	if r := e.get(t, "/ui/"); r.status != 200 || !strings.Contains(r.body, "Workflows") {
		t.Errorf("/ui/ does not lead to the dashboard: %d", r.status)
	}
}

// TestCSRFToken hands the page the token an auth layer wants back.
func TestCSRFToken(t *testing.T) {
	e := newEmbedded(t, envOptions{ui: func(o *ui.Options) {
		o.CSRFToken = func(*http.Request) string { return `tok"en` }
	}})
	wantContains(t, e.page(t, "/"), `<meta name="batchy-csrf" content="tok&#34;en">`)
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
