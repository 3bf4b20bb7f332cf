package ui_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// failingWorkflow is an exec workflow whose second job needs the first and fails with exit 2.
const failingWorkflow = `batchy:
  deadline: "00:00"
extract:
  run: {type: exec, command: ["sh", "-c", "echo read 10 rows; echo slow source >&2"]}
ledger:
  needs: [extract]
  run: {type: exec, command: ["sh", "-c", "echo connecting to ledger-db; echo connection refused >&2; exit 2"]}
`

// runOnce queues a run of wf and lets the scheduler execute it to its end.
func (e *env) runOnce(t *testing.T, wf string) string {
	t.Helper()
	body := e.post(t, "/v1/workflows/"+wf+"/runs", "").body
	id := regexp.MustCompile(`"id": ?"([^"]+)"`).FindStringSubmatch(body)
	if id == nil {
		t.Fatalf("no run id in %s", body)
	}
	if err := e.sch.Tick(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.sch.Wait()
	return id[1]
}

// TestRunPage: a failed exec run shows its cause on the dashboard row, linked to a page with the
// jobs' timeline, the attempts' exit codes and the run's log lines, filterable and downloadable.
func TestRunPage(t *testing.T) {
	client, _ := rdbtest.Backends[0].New(t)
	e := newEnv(t, client, envOptions{})
	e.load(t, "ledger_sync", failingWorkflow)
	id := e.runOnce(t, "ledger_sync")

	dash := e.page(t, "/")
	wantContains(t, dash, `data-phase="failed"`, "failed (final)", "ledger exit 2", `href="/ui/workflows/ledger_sync/runs/`+id+`#attempt-1-ledger"`)

	body := e.page(t, "/ui/workflows/ledger_sync/runs/"+id)
	wantContains(t, body, `<svg class="gantt"`, `id="attempt-1"`, `id="attempt-1-ledger"`, "exit 2", "needs extract",
		"connecting to ledger-db", "connection refused", "read 10 rows", `href="/ui/workflows/ledger_sync/runs/`+id+`/log.txt"`)
	if n := strings.Count(body, `class="gbar st-`); n != 2 {
		t.Errorf("%d bars in the timeline, want 2", n)
	}
	// Filtered by job and level: only ledger's warnings.
	body = e.page(t, "/ui/workflows/ledger_sync/runs/"+id+"?job=ledger&level=warn")
	wantContains(t, body, "connection refused")
	wantNotContains(t, body, "read 10 rows", "connecting to ledger-db")

	r := e.get(t, "/ui/workflows/ledger_sync/runs/"+id+"/log.txt?job=ledger")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("log download: %d %v", r.status, r.header)
	}
	wantContains(t, r.body, "ledger attempt=1 log: connecting to ledger-db\n", "warn  ledger attempt=1 log: connection refused\n")
	wantNotContains(t, r.body, "read 10 rows")

	// A finished run no longer refreshes; its live part is served as a fragment all the same.
	wantNotContains(t, e.page(t, "/ui/workflows/ledger_sync/runs/"+id), "data-fragment=")
	wantContains(t, e.page(t, "/ui/fragment/workflows/ledger_sync/runs/"+id), `<div id="run-live" data-live>`, `id="attempt-1-ledger"`)

	// The batch of the attempt has its page, linked from the history.
	batchID := regexp.MustCompile(`Attempt 1</strong>, batch (\d+)`).FindStringSubmatch(e.page(t, "/ui/workflows/ledger_sync/runs/"+id))
	if batchID == nil {
		t.Fatal("no batch on the run page")
	}
	wantContains(t, e.page(t, "/ui/workflows/ledger_sync"), `href="/ui/workflows/ledger_sync/batches/`+batchID[1]+`"`)
	bp := e.page(t, "/ui/workflows/ledger_sync/batches/"+batchID[1])
	wantContains(t, bp, "Batch "+batchID[1]+" of ledger_sync", `data-job="ledger" data-status="failed"`, `<span class="type">fail</span>`, `href="/ui/workflows/ledger_sync/runs/`+id+`"`)
	if r := e.get(t, "/ui/workflows/ledger_sync/batches/x"); r.status != 400 {
		t.Errorf("a batch id that is no number: %d", r.status)
	}

	// The workflow page links its runs to their pages.
	wantContains(t, e.page(t, "/ui/workflows/ledger_sync"), `href="/ui/workflows/ledger_sync/runs/`+id+`"`)
	if r := e.get(t, "/ui/workflows/ledger_sync/runs/nope"); r.status != 404 {
		t.Errorf("an unknown run: %d", r.status)
	}
}

// TestCompressed: pages, fragments and static files are compressed for a browser that accepts it.
func TestCompressed(t *testing.T) {
	client, _ := rdbtest.Backends[0].New(t)
	e := newEnv(t, client, envOptions{})
	e.load(t, "ledger_sync", failingWorkflow)
	for _, path := range []string{"/", "/ui/fragment/dashboard", "/ui/workflows/ledger_sync", "/ui/static/ui.css", "/ui/static/ui.js"} {
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: %d, Content-Encoding %q", path, res.StatusCode, res.Header.Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		plain, _ := io.ReadAll(zr)
		t.Logf("%s: %d bytes, %d compressed", path, len(plain), len(raw))
	}
}
