package ui

import (
	"net/http/httptest"
	"reflect"
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
		p := u.newPage(r, "dashboard", "Workflows", &dashboardView{})
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
			rows, err := u.rowsHTML(c.p, []*wfView{c.v})
			if err != nil {
				t.Fatal(err)
			}
			got := string(rows[0])
			if want := fresh(c.p, c.v); got != want {
				t.Errorf("row =\n%s\nwant it as rendered afresh:\n%s", got, want)
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("row =\n%s\nwant it to hold %s", got, c.want)
			}
		})
	}
	if n := len(u.rows.rows); n != 4 {
		t.Errorf("%d rows kept, want 4 (the second page showed the first's row)", n)
	}
}

// TestRowKeyHoldsEveryField changes each field of a row's view in turn, down to its jobs' fields
// and its settings', and wants a new row key for each: a row is kept by that key, so a field the
// key missed would show a stale row.
func TestRowKeyHoldsEveryField(t *testing.T) {
	p := &page{Now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), CanAct: true}
	base := func() *wfView {
		return &wfView{Name: "wf", Status: "success", Jobs: []jobView{{Name: "a", Params: []field{{"k", "v"}}}},
			Settings: batch.Settings{KeepRuns: &batch.KeepRuns{}}}
	}
	want := string(appendRowKey(nil, p, base()))
	if again := string(appendRowKey(nil, p, base())); again != want {
		t.Fatalf("the same view gave two keys:\n%s\n%s", want, again)
	}
	seen := map[string]string{want: "the base view"}
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch {
		case v.Type() == reflect.TypeFor[time.Time]():
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		case v.Kind() == reflect.Slice && v.Len() > 0:
			walk(path+"[0]", v.Index(0))
		case v.Kind() == reflect.Pointer && !v.IsNil():
			walk(path, v.Elem())
			return
		}
		view := base()
		field := reflect.ValueOf(view).Elem()
		for _, step := range strings.Split(strings.TrimPrefix(path, "."), ".") {
			name, first := strings.CutSuffix(step, "[0]")
			field = field.FieldByName(name)
			if field.Kind() == reflect.Pointer {
				field = field.Elem()
			}
			if first {
				field = field.Index(0)
			}
		}
		if !setNonZero(field) {
			t.Fatalf("%s: cannot set a %s", path, field.Type())
		}
		key := string(appendRowKey(nil, p, view))
		if other, ok := seen[key]; ok {
			t.Errorf("changing %s gave the key of %s", path, other)
		}
		seen[key] = path
	}
	walk("", reflect.ValueOf(base()).Elem())
	if len(seen) < 40 {
		t.Errorf("only %d fields were changed: the walk missed some", len(seen)-1)
	}
	for _, c := range []struct{ a, b *page }{{p, &page{Now: p.Now.AddDate(1, 0, 0), CanAct: true}}, {p, &page{Now: p.Now}}} {
		if string(appendRowKey(nil, c.a, base())) == string(appendRowKey(nil, c.b, base())) {
			t.Errorf("pages %+v and %+v gave the same key", c.a, c.b)
		}
	}
}

// setNonZero sets v (a leaf: string, number, bool, time or slice) to a value not its zero.
func setNonZero(v reflect.Value) bool {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
	case v.Kind() == reflect.String:
		v.SetString("changed")
	case v.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	case v.CanInt():
		v.SetInt(v.Int() + 7)
	case v.CanFloat():
		v.SetFloat(v.Float() + 0.5)
	case v.Kind() == reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	default:
		return false
	}
	return true
}
