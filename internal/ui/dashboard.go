package ui

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
)

// Dashboard filters (?status=), besides the overall statuses.
const (
	filterAttention = "attention"
	filterUnloaded  = "unloaded"
)

// filters are the dashboard's status filters, in the order the page offers them.
var filters = []struct{ Value, Label, Icon string }{
	{"", "All", ""},
	{filterAttention, "Needs attention", "⚠"},
	{statusFailed, "Failed", "✖"},
	{statusOpen, "Open", "▶"},
	{statusNew, "New", "○"},
	{statusSuccess, "Succeeded", "✔"},
	{filterUnloaded, "Not loaded", "…"},
}

// dashboardView is what the dashboard template gets.
type dashboardView struct {
	Query, Status string
	Rows          []*wfView
	// Total is the number of workflows; Matched of those the filters keep.
	Total, Matched int
	Counts         map[string]int
	Filters        []filterLink
	Page, Pages    int
	PrevURL        string
	NextURL        string
	First, Last    int // 1-based positions of the rows shown
	Scheduled      bool
}

type filterLink struct {
	Value, Label, Icon, URL string
	Count                   int
	Current                 bool
}

// dashboard lists every workflow, filtered (?q=, ?status=) and paged (?page=) on the server.
func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	status := r.URL.Query().Get("status")
	valid := false
	for _, f := range filters {
		valid = valid || f.Value == status
	}
	if !valid {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "status %q is not a filter this page knows", status))
		return
	}
	pageNo, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || pageNo < 1 {
		pageNo = 1
	}
	all, err := u.workflows(ctx)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	v := &dashboardView{Query: q, Status: status, Total: len(all), Counts: map[string]int{}, Scheduled: u.opts.Scheduler != nil}
	var matched []*wfView
	needle := strings.ToLower(q)
	for _, wv := range all {
		if !matchesQuery(wv, needle) {
			continue
		}
		for _, f := range filters {
			if matchesStatus(wv, f.Value) {
				v.Counts[f.Value]++
			}
		}
		if matchesStatus(wv, status) {
			matched = append(matched, wv)
		}
	}
	for _, f := range filters {
		v.Filters = append(v.Filters, filterLink{Value: f.Value, Label: f.Label, Icon: f.Icon, Count: v.Counts[f.Value],
			Current: f.Value == status, URL: dashboardURL("/", q, f.Value, 1)})
	}
	v.Matched = len(matched)
	size := u.opts.PageSize
	v.Pages = max(1, (len(matched)+size-1)/size)
	v.Page = min(pageNo, v.Pages)
	start := (v.Page - 1) * size
	end := min(start+size, len(matched))
	v.Rows = matched[start:end]
	v.First, v.Last = start+1, end
	if v.Page > 1 {
		v.PrevURL = dashboardURL("/", q, status, v.Page-1)
	}
	if v.Page < v.Pages {
		v.NextURL = dashboardURL("/", q, status, v.Page+1)
	}
	title := "Workflows"
	if q != "" || status != "" {
		title = "Workflows (filtered)"
	}
	p := u.newPage(r, "dashboard", title, v)
	p.Fragment = dashboardURL("/ui/fragment/dashboard", q, status, v.Page)
	u.render(w, r, http.StatusOK, p)
}

func dashboardURL(path, q, status string, page int) string {
	vals := url.Values{}
	if q != "" {
		vals.Set("q", q)
	}
	if status != "" {
		vals.Set("status", status)
	}
	if page > 1 {
		vals.Set("page", strconv.Itoa(page))
	}
	if len(vals) == 0 {
		return path
	}
	return path + "?" + vals.Encode()
}

// matchesQuery keeps workflows whose name or one of whose jobs' names contains the (lower-case)
// search text.
func matchesQuery(w *wfView, needle string) bool {
	if needle == "" || strings.Contains(strings.ToLower(w.Name), needle) {
		return true
	}
	for _, j := range w.Jobs {
		if strings.Contains(strings.ToLower(j.Name), needle) {
			return true
		}
	}
	return false
}

func matchesStatus(w *wfView, filter string) bool {
	switch filter {
	case "":
		return true
	case filterAttention:
		return w.Attention()
	case filterUnloaded:
		return !w.Loaded
	}
	return w.Loaded && w.Status == filter
}

// stateReaders bounds the state reads in flight for one dashboard.
const stateReaders = 16

// workflows returns a view of every loaded workflow, and of every configured one not loaded yet,
// sorted by name. States are read concurrently: with a thousand workflows, one after the other
// would make the page wait for a thousand round trips.
func (u *UI) workflows(ctx context.Context) ([]*wfView, error) {
	names, err := u.opts.Store.Workflows(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]*wfView, len(names))
	errs := make([]error, len(names))
	rules := u.rules()
	var wg sync.WaitGroup
	sem := make(chan struct{}, stateReaders)
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := u.opts.Store.State(ctx, name)
			if err != nil {
				errs[i] = err
				return
			}
			views[i] = summarize(st, rules)
		}()
	}
	wg.Wait()
	loaded := map[string]bool{}
	out := make([]*wfView, 0, len(names))
	for i, v := range views {
		if errs[i] != nil {
			if batch.ErrorCode(errs[i]) == batch.ENOTFOUND {
				continue // deleted while we read
			}
			return nil, errs[i]
		}
		loaded[v.Name] = true
		out = append(out, v)
	}
	if u.opts.CfgDir != "" {
		configured, err := config.List(u.opts.CfgDir)
		if err != nil && batch.ErrorCode(err) != batch.ENOTFOUND {
			return nil, err
		}
		for _, name := range configured {
			if !loaded[name] {
				out = append(out, unloaded(name))
			}
		}
	}
	sortViews(out)
	return out, nil
}

// sortViews puts the workflows that need a person (failing, late, long open) first, so that the
// first page shows them, then orders by name.
func sortViews(views []*wfView) {
	slices.SortFunc(views, func(a, b *wfView) int {
		if a.Attention() != b.Attention() {
			if a.Attention() {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

func (u *UI) rules() viewRules {
	return viewRules{now: u.opts.Now().UTC(), longOpen: u.opts.LongOpen, lateAfter: u.opts.LateAfter,
		scheduled: u.opts.Scheduler != nil, location: u.opts.Location}
}
