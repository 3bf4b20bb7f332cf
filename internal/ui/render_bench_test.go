package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// BenchmarkDashboardRender renders a dashboard of 50 rows as the scale bench's workflows give
// them (two jobs each, a quarter scheduled, a quarter with after:): the page's cost beside its
// reads.
func BenchmarkDashboardRender(b *testing.B) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	u := New(Options{Store: struct{ batch.Store }{}, Now: func() time.Time { return now }})
	rules := u.rules()
	rules.scheduled = true
	var rows []*wfView
	for i := range 50 {
		st := &batch.State{Workflow: fmt.Sprintf("s%05d", i), LoadedAt: now.Add(-time.Hour),
			Jobs: batch.Jobs{job("extract", map[string]any{"table": "orders"}), job("load", map[string]any{"reprocess_hours": 2})}}
		switch i % 4 {
		case 0:
			st.Settings.Schedule = "0 3 1 1 *"
		case 1:
			st.Settings.After = []string{fmt.Sprintf("s%05d", i-1)}
		}
		v := summarize(st, rules)
		explain(v, nil, nil, rules)
		rows = append(rows, v)
	}
	v := &dashboardView{Rows: rows, Total: 10000, Counts: map[string]int{"": 10000}}
	for _, f := range filters {
		v.Filters = append(v.Filters, filterLink{Value: f.Value, Label: f.Label, Icon: f.Icon, URL: dashboardURL("/", "", f.Value, "")})
	}
	r := httptest.NewRequest("GET", "/", nil)
	// renderPage renders the page as the dashboard does once it has read its rows.
	renderPage := func(w http.ResponseWriter, r *http.Request) {
		p := u.newPage(r, "dashboard", "Workflows", v)
		var err error
		if v.RowHTML, err = u.rowsHTML(p, v.Rows); err != nil {
			panic(err) // a bug of the templates: no page to measure
		}
		u.render(w, r, 200, p)
	}
	// The same behind the UI's compression, as a browser gets it.
	u.mux.HandleFunc("GET /bench", renderPage)
	gz := httptest.NewRequest("GET", "/bench", nil)
	gz.Header.Set("Accept-Encoding", "gzip")
	for _, c := range []struct {
		name   string
		rows   int
		canAct bool
		cold   bool // every row rendered anew, as after a change of them all
		gzip   bool
	}{{"rows=0", 0, true, false, false}, {"rows=50", 50, true, false, false}, {"rows=50,read-only", 50, false, false, false},
		{"rows=50,cold", 50, true, true, false}, {"rows=50,gzip", 50, true, false, true}} {
		b.Run(c.name, func(b *testing.B) {
			v.Rows = rows[:c.rows]
			u.opts.CanAct = func(*http.Request) bool { return c.canAct }
			b.ReportAllocs()
			var size int
			for b.Loop() {
				if c.cold {
					u.rows = newRowCache()
				}
				w := httptest.NewRecorder()
				if c.gzip {
					u.ServeHTTP(w, gz)
				} else {
					renderPage(w, r)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "B/page")
		})
	}
}
