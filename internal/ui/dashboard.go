package ui

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

// Dashboard filter (?status=) of the configured workflows never loaded, besides the overall
// statuses.
const filterUnloaded = "unloaded"

// filters are the dashboard's status filters, in the order the page offers them.
var filters = []struct{ Value, Label, Icon string }{
	{"", "All", ""},
	{statusFailed, "Failed", "✖"},
	{statusOpen, "Open", "▶"},
	{statusNew, "New", "○"},
	{statusAbandoned, "Abandoned", "↺"},
	{statusSuccess, "Succeeded", "✔"},
	{filterUnloaded, "Not loaded", "…"},
}

// dashboardView is what the dashboard template gets.
type dashboardView struct {
	Query, Status string
	Rows          []*wfView
	// RowHTML is the rows as the "row" template renders them (rowsHTML): what the page shows of
	// Rows, so whatever renders the page or its live part sets it first.
	RowHTML []template.HTML
	// Total is the number of workflows, loaded or configured; Counts by filter.
	Total   int
	Counts  map[string]int
	Filters []filterLink
	// FirstURL leads back to the first page, NextURL to the next one ("" on the last).
	FirstURL, NextURL string
}

type filterLink struct {
	Value, Label, Icon, URL string
	Count                   int
	Current                 bool
}

// dashboard lists the workflows a page at a time, by name, filtered by name prefix (?q=) and
// status (?status=), from the cursor (?cursor=, the last name of the previous page). It reads the
// summaries' index for the page and the counts, then the states of the page's rows only: its cost
// is the page's, whatever the number of workflows.
func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	status := r.URL.Query().Get("status")
	cursor := r.URL.Query().Get("cursor")
	valid := false
	for _, f := range filters {
		valid = valid || f.Value == status
	}
	if !valid {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "status %q is not a filter this page knows", status))
		return
	}
	if cursor != "" && !batch.ValidName(cursor) {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "cursor %q is not a workflow name: follow the page's links", cursor))
		return
	}
	sums := u.opts.Summaries
	if sums == nil {
		u.fail(w, r, batch.Errorf(batch.EUNAVAILABLE, "this store keeps no workflow summaries"))
		return
	}
	v, unloaded, err := u.dashboardCounts(ctx, sums, q, status)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	// A search that is no name's prefix matches nothing (and is shown back as typed).
	if q == "" || batch.ValidName(q) {
		var next string
		v.Rows, next, err = u.page(ctx, sums, status, q, cursor, unloaded)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		if next != "" {
			v.NextURL = dashboardURL("/", q, status, next)
		}
	}
	if cursor != "" {
		v.FirstURL = dashboardURL("/", q, status, "")
	}
	title := "Workflows"
	if q != "" || status != "" {
		title = "Workflows (filtered)"
	}
	p := u.newPage(r, "dashboard", title, v)
	p.Fragment = dashboardURL("/ui/fragment/dashboard", q, status, cursor)
	if v.RowHTML, err = u.rowsHTML(p, v.Rows); err != nil {
		u.log.Error("ui: rendering a dashboard row", "err", err)
		http.Error(w, "the page could not be rendered; details are in batchy's log", http.StatusInternalServerError)
		return
	}
	u.render(w, r, http.StatusOK, p)
}

// dashboardCounts returns the dashboard's view with the counts per status of the whole
// installation and the filters' links, and the configured workflows never loaded: what the page
// and its live rows (live.go) both show above the rows.
func (u *UI) dashboardCounts(ctx context.Context, sums batch.SummaryReader, q, status string) (*dashboardView, []string, error) {
	counts, total, err := sums.StatusCounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	never, err := u.never.Get(ctx, u.opts.CfgDir, total, sums.Loaded)
	if err != nil {
		return nil, nil, err
	}
	v := &dashboardView{Query: q, Status: status, Total: total + len(never), Counts: map[string]int{"": total + len(never), filterUnloaded: len(never)}}
	for st, n := range counts {
		v.Counts[string(st)] = n
	}
	for _, f := range filters {
		v.Filters = append(v.Filters, filterLink{Value: f.Value, Label: f.Label, Icon: f.Icon, Count: v.Counts[f.Value],
			Current: f.Value == status, URL: dashboardURL("/", q, f.Value, "")})
	}
	return v, never, nil
}

// page returns the rows of one page, and the cursor of the next ("" on the last): loaded
// workflows from the summaries' index (by status, or all of them merged with the configured ones
// never loaded, in name order), configured ones never loaded alone for that filter.
func (u *UI) page(ctx context.Context, sums batch.SummaryReader, status, prefix, cursor string, never []string) ([]*wfView, string, error) {
	size := u.opts.PageSize
	var names []string
	var loadedNext string
	if status != filterUnloaded {
		pg, err := sums.Summaries(ctx, batch.SummaryQuery{Status: batch.Status(status), Prefix: prefix, Cursor: cursor, Limit: size, NamesOnly: true})
		if err != nil {
			return nil, "", err
		}
		for _, s := range pg.Summaries {
			names = append(names, s.Workflow)
		}
		loadedNext = pg.Next
	}
	loaded := len(names)
	if status == "" || status == filterUnloaded {
		for _, n := range never {
			if n > cursor && strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
	}
	isLoaded := make(map[string]bool, loaded)
	for _, n := range names[:loaded] {
		isLoaded[n] = true
	}
	slices.Sort(names)
	next := ""
	if len(names) > size {
		names = names[:size]
		next = names[size-1]
	} else if loadedNext != "" {
		next = loadedNext
	}
	rows, err := u.readRows(ctx, names, func(n string) bool { return isLoaded[n] })
	if err != nil {
		return nil, "", err
	}
	return rows, next, nil
}

// readRows builds the dashboard rows of names, in their order: a loaded one (isLoaded) from its state
// and its newest runs, read for all the rows in a fixed number of round trips whatever their
// number; the others as configured but never loaded. A workflow deleted while read is left out.
func (u *UI) readRows(ctx context.Context, names []string, isLoaded func(string) bool) ([]*wfView, error) {
	var loadedNames []string
	for _, name := range names {
		if isLoaded(name) {
			loadedNames = append(loadedNames, name)
		}
	}
	states, err := u.states(ctx, loadedNames)
	if err != nil {
		return nil, err
	}
	var runs [][]*scheduler.Run
	if u.opts.Scheduler != nil {
		if runs, err = u.opts.Scheduler.NewestRuns(ctx, loadedNames, runsRead); err != nil {
			return nil, err
		}
	}
	rules := u.rules()
	rules.row = true
	out := make([]*wfView, 0, len(names))
	k := 0 // the next of loadedNames
	for _, name := range names {
		if !isLoaded(name) {
			out = append(out, unloaded(name))
			continue
		}
		st := states[k]
		var rowRuns []*scheduler.Run
		if runs != nil {
			rowRuns = runs[k]
		}
		k++
		if st == nil {
			continue // deleted while we read
		}
		v := summarize(st, rules)
		if err := u.explainRuns(ctx, v, rowRuns, rules); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// states reads the workflows' states, nil for one not loaded: in one round trip when the
// summaries' store reads many at once (rdb.Store), else one at a time.
func (u *UI) states(ctx context.Context, wfs []string) ([]*batch.State, error) {
	if r, ok := u.opts.Summaries.(batch.StatesReader); ok {
		return r.States(ctx, wfs)
	}
	out := make([]*batch.State, len(wfs))
	for i, wf := range wfs {
		st, err := u.opts.Store.State(ctx, wf)
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

func dashboardURL(path, q, status, cursor string) string {
	vals := url.Values{}
	if q != "" {
		vals.Set("q", q)
	}
	if status != "" {
		vals.Set("status", status)
	}
	if cursor != "" {
		vals.Set("cursor", cursor)
	}
	if len(vals) == 0 {
		return path
	}
	return path + "?" + vals.Encode()
}

func (u *UI) rules() viewRules {
	return viewRules{now: u.opts.Now().UTC(), longOpen: u.opts.LongOpen, lateAfter: u.opts.LateAfter,
		scheduled: u.opts.Scheduler != nil, location: u.opts.Location}
}
