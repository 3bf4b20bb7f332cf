package ui

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// TestRowsCached: a dashboard row kept from an earlier page is the row the template renders now,
// and a change of what the row shows (its view, the page's actions, the clock's year) renders it
// again.
func TestRowsCached(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	rules := viewRules{now: now, longOpen: 4 * time.Hour, lateAfter: 30 * time.Minute, scheduled: true, location: time.UTC, row: true}
	view := func(status string) *wfView {
		st := &batch.State{Workflow: "wf", LoadedAt: now.Add(-time.Hour), Settings: batch.Settings{Schedule: "0 3 * * *"},
			Jobs: batch.Jobs{job("a", map[string]any{"status": status, "batch_id": 7, "batch_start": batch.FormatTime(now.Add(-2 * time.Hour)),
				"batch_end": batch.FormatTime(now.Add(-time.Hour)), "from_date": batch.FormatTime(now.AddDate(-1, 0, 0)), "to_date": batch.FormatTime(now.Add(-2 * time.Hour))})}}
		v := summarize(st, rules)
		explain(v, nil, nil, rules)
		return v
	}
	newUI := func() *UI { return New(Options{Store: struct{ batch.Store }{}}) }
	// fresh renders the row with a UI that kept nothing.
	fresh := func(p *page, v *wfView) string {
		var b strings.Builder
		if err := newUI().pages["dashboard"].ExecuteTemplate(&b, "row", rowData{Page: p, Row: v}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	u := newUI()
	r := httptest.NewRequest("GET", "/", nil)
	pageAt := func(now time.Time, canAct bool) *page {
		p := u.newPage(r, "dashboard", "Workflows", &dashboardView{Scheduled: true})
		p.Now, p.CanAct = now, canAct
		return p
	}
	for _, c := range []struct {
		name string
		p    *page
		v    *wfView
		want string // a part of the row
	}{
		{"first render", pageAt(now, true), view("success"), `data-status="success"`},
		{"kept", pageAt(now.Add(time.Hour), true), view("success"), `data-status="success"`},
		{"the view changed", pageAt(now.Add(time.Hour), true), view("failed"), `data-status="failed"`},
		{"no actions", pageAt(now.Add(time.Hour), false), view("failed"), `data-status="failed"`},
		{"another year", pageAt(now.AddDate(1, 0, 0), false), view("failed"), `2026-11-22 10:00`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := u.rowsHTML(c.p, true, []*wfView{c.v})
			if err != nil {
				t.Fatal(err)
			}
			if want := fresh(c.p, c.v); string(got) != want {
				t.Errorf("row =\n%s\nwant it as rendered afresh:\n%s", got, want)
			}
			if !strings.Contains(string(got), c.want) {
				t.Errorf("row =\n%s\nwant it to hold %s", got, c.want)
			}
		})
	}
	if n := len(u.rows.rows); n != 4 {
		t.Errorf("%d rows kept, want 4 (the second page showed the first's row)", n)
	}
}
