package ui

import (
	"net/http"
	"slices"
	"strings"

	"github.com/batchy/batchy/internal/batch"
)

// The dashboard's live updates: the page follows the installation's change stream (GET
// /v1/changes, internal/api), filtered to the range of names it shows, and for each workflow the
// stream reports it fetches that row alone from dashboardRows. An idle page then costs nothing,
// and a change costs the rows it changed, whatever the number of workflows. The page falls back to
// re-fetching its whole fragment on a timer when the stream is not available.

func (u *UI) routesLive() {
	u.mux.HandleFunc("GET /ui/fragment/dashboard/rows", u.dashboardRows)
}

// dashboardRows renders the dashboard's live part with only the rows named by ?wf= (repeated),
// and the counts by status, for the page's script to swap in. ?q= and ?status= are the page's, for
// its filter links. A name that is neither loaded nor configured has no row: the script then
// re-fetches the whole page's fragment.
func (u *UI) dashboardRows(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	names := r.URL.Query()["wf"]
	if len(names) == 0 || len(names) > u.opts.PageSize {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "name 1 to %d workflows with ?wf=", u.opts.PageSize))
		return
	}
	for _, n := range names {
		if err := batch.CheckName("workflow", n); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	status := r.URL.Query().Get("status")
	if !slices.ContainsFunc(filters, func(f struct{ Value, Label, Icon string }) bool { return f.Value == status }) {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "status %q is not a filter this page knows", status))
		return
	}
	sums := u.opts.Summaries
	if sums == nil {
		u.fail(w, r, batch.Errorf(batch.EUNAVAILABLE, "this store keeps no workflow summaries"))
		return
	}
	// The counts, as the dashboard computes them: a change moves a workflow between them.
	v, never, err := u.dashboardCounts(ctx, sums, q, status)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	// The rows, read as the dashboard's page reads its rows (readRows).
	loaded, err := sums.Loaded(ctx, names)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	isLoaded := make(map[string]bool, len(names))
	var shown []string
	for i, name := range names {
		if loaded[i] || slices.Contains(never, name) {
			isLoaded[name] = loaded[i]
			shown = append(shown, name)
		}
	}
	if v.Rows, err = u.readRows(ctx, shown, func(n string) bool { return isLoaded[n] }); err != nil {
		u.fail(w, r, err)
		return
	}
	p := u.newPage(r, "dashboard", "Workflows", v)
	if v.RowHTML, err = u.rowsHTML(p, v.Rows); err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, p)
}
