package ui_test

import (
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
