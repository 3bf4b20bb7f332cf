package ui_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestDashboardRows: the rows fragment renders the named rows alone, as the dashboard renders
// them, with the counts by status, for the page to swap in the rows the change stream reported.
func TestDashboardRows(t *testing.T) {
	e := newEnv(t, rdbtest.StartRedis(t).Client(t), envOptions{})
	e.load(t, "alpha", "a:\n  table: t\n")
	e.load(t, "beta", "b:\n  table: t\n")
	e.post(t, "/v1/workflows/beta/open", "")
	e.post(t, "/v1/workflows/beta/fail", "")

	frag := e.page(t, "/ui/fragment/dashboard/rows?wf=beta&wf=sales&wf=gone")
	// sales is configured, not loaded; gone is neither: it has no row.
	if got, want := strings.Join(rows(frag), " "), "beta=failed sales=not loaded"; got != want {
		t.Errorf("rows: got %s, want %s", got, want)
	}
	whole := e.page(t, "/ui/fragment/dashboard")
	row := func(html, wf string) string {
		start := strings.Index(html, `<tr id="wf-`+wf+`"`)
		if start < 0 {
			t.Fatalf("no row %s in\n%s", wf, html)
		}
		return html[start : start+strings.Index(html[start:], "</tr>")]
	}
	if got, want := row(frag, "beta"), row(whole, "beta"); got != want {
		t.Errorf("the rows fragment's row differs from the dashboard's:\n got %s\nwant %s", got, want)
	}
	wantContains(t, frag, `<nav class="counts"`, `Failed <strong>1</strong>`, `Not loaded <strong>2</strong>`)

	for _, bad := range []string{"", "?wf=a%20b", "?wf=beta&status=nope"} {
		if r := e.get(t, "/ui/fragment/dashboard/rows"+bad); r.status != 400 {
			t.Errorf("GET /ui/fragment/dashboard/rows%s: %d, want 400", bad, r.status)
		}
	}
}

// TestRunPageFollowsItsEvents: a run in progress refreshes on its own events (the workflow's
// event stream, filtered to the run), its timer a safety net; a finished one follows nothing.
func TestRunPageFollowsItsEvents(t *testing.T) {
	e := newEnv(t, rdbtest.StartRedis(t).Client(t), envOptions{})
	e.load(t, "ledger_sync", failingWorkflow)
	body := e.post(t, "/v1/workflows/ledger_sync/runs", "").body
	id := regexp.MustCompile(`"id": ?"([^"]+)"`).FindStringSubmatch(body)
	if id == nil {
		t.Fatalf("no run id in %s", body)
	}
	queued := e.page(t, "/ui/workflows/ledger_sync/runs/"+id[1])
	wantContains(t, queued, `data-follow="/v1/workflows/ledger_sync/events/stream?run=`+id[1]+`"`, `data-refresh="15"`,
		`data-fragment="/ui/fragment/workflows/ledger_sync/runs/`+id[1]+`"`)
	// Without events there is nothing to follow: the page polls.
	quiet := newEnv(t, rdbtest.StartRedis(t).Client(t), envOptions{noEvents: true})
	quiet.load(t, "ledger_sync", failingWorkflow)
	body = quiet.post(t, "/v1/workflows/ledger_sync/runs", "").body
	id = regexp.MustCompile(`"id": ?"([^"]+)"`).FindStringSubmatch(body)
	polled := quiet.page(t, "/ui/workflows/ledger_sync/runs/"+id[1])
	wantContains(t, polled, `data-refresh="5"`, `data-fragment=`)
	wantNotContains(t, polled, "data-follow=")
}
