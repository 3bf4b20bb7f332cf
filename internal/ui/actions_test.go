package ui_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/ui"
)

// buttonIDRE finds the ids of action buttons.
var buttonIDRE = regexp.MustCompile(`<button type="button" class="act[^"]*"[^>]* id="([^"]+)"`)

func buttonIDs(html string) string {
	var out []string
	for _, m := range buttonIDRE.FindAllStringSubmatch(html, -1) {
		out = append(out, m[1])
	}
	return strings.Join(out, " ")
}

// workflowButtons returns the buttons acting on the whole workflow on its page (kept inline
// there): what a dashboard row's menu holds, as the row used to.
func workflowButtons(t *testing.T, e *env, wf string) string {
	t.Helper()
	body := e.page(t, "/ui/workflows/"+wf)
	const start = `<div class="actions" role="group" aria-label="Actions on the workflow">`
	_, rest, ok := strings.Cut(body, start)
	if !ok {
		t.Fatalf("the page of %s has no actions:\n%s", wf, body)
	}
	buttons, _, _ := strings.Cut(rest, "</div>")
	return buttons
}

// TestDashboardActions: a dashboard row's action menu is a shell whose buttons the menu fetches
// when it opens, those of the workflow's state then, as the row held them before.
func TestDashboardActions(t *testing.T) {
	e := newEmbedded(t, envOptions{})
	e.post(t, "/v1/workflows/wf1/load", "")
	e.post(t, "/v1/workflows/wf1/open", "")
	e.load(t, "nightly", "batchy:\n  schedule: \"0 2 * * *\"\na: {}\n")

	body := e.page(t, "/")
	for _, wf := range []string{"nightly", "sales", "wf1"} {
		wantContains(t, body, `<details class="menu" id="menu-`+wf+`">`,
			`<summary id="sum-`+wf+`">Actions<span class="visually-hidden"> for `+wf+`</span></summary>`,
			`<div class="menu-items" data-src="/ui/fragment/dashboard/actions/`+wf+`"></div>`)
	}
	wantNotContains(t, body, `class="act`, "data-api=", "data-confirm=")

	for _, c := range []struct{ wf, want string }{
		{"wf1", "act-wf1-run act-wf1-open act-wf1-close act-wf1-fail act-wf1-load"},
		{"nightly", "act-nightly-run act-nightly-pause act-nightly-open act-nightly-load"},
		{"sales", "act-sales-load"}, // configured, never loaded
	} {
		t.Run(c.wf, func(t *testing.T) {
			got := e.page(t, "/ui/fragment/dashboard/actions/"+c.wf)
			if ids := buttonIDs(got); ids != c.want {
				t.Errorf("buttons: got %s, want %s\n%s", ids, c.want, got)
			}
			if c.wf == "sales" {
				wantContains(t, got, `data-admin-only`, `data-api="/v1/workflows/sales/load"`, ">Load configuration<")
				return
			}
			// The same buttons as the workflow page's, which keeps them inline.
			if want := workflowButtons(t, e, c.wf); got != want {
				t.Errorf("menu:\n%s\nwant the workflow page's buttons:\n%s", got, want)
			}
		})
	}
	wantContains(t, e.page(t, "/ui/fragment/dashboard/actions/wf1"),
		`data-api="/v1/workflows/wf1/close"`, `data-body="{&#34;jobs&#34;:[&#34;job1&#34;,&#34;job2&#34;,&#34;job3&#34;]}"`)

	// The state of the moment: a job closed and the workflow paused since the page was rendered.
	e.post(t, "/v1/workflows/wf1/jobs/job1/close", "")
	e.post(t, "/v1/workflows/nightly/pause", `{"reason":"test"}`)
	wantContains(t, e.page(t, "/ui/fragment/dashboard/actions/wf1"), `data-body="{&#34;jobs&#34;:[&#34;job2&#34;,&#34;job3&#34;]}"`)
	if ids := buttonIDs(e.page(t, "/ui/fragment/dashboard/actions/nightly")); ids != "act-nightly-run act-nightly-resume act-nightly-open act-nightly-load" {
		t.Errorf("paused nightly's buttons: %s", ids)
	}

	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/ui/fragment/dashboard/actions/nope", http.StatusNotFound, "nope"},
		{"/ui/fragment/dashboard/actions/a%20b", http.StatusBadRequest, "workflow"},
		{"/ui/fragment/dashboard/actions/", http.StatusNotFound, ""},
	} {
		r := e.get(t, c.path)
		if r.status != c.status || !strings.Contains(r.body, `<p class="error-message">`) || !strings.Contains(r.body, c.msg) {
			t.Errorf("%s: %d, want %d with a message naming %q:\n%s", c.path, r.status, c.status, c.msg, r.body)
		}
	}
}

// TestDashboardActionsRights: a user who may not act gets no menu and a 403 from the menu's
// buttons, behind the same authentication as the other pages.
func TestDashboardActionsRights(t *testing.T) {
	t.Run("CanAct", func(t *testing.T) {
		e := newEmbedded(t, envOptions{ui: func(o *ui.Options) { o.CanAct = func(*http.Request) bool { return false } }})
		e.post(t, "/v1/workflows/wf1/load", "")
		wantNotContains(t, e.page(t, "/"), `class="menu"`, "data-src=")
		r := e.get(t, "/ui/fragment/dashboard/actions/wf1")
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "you may not change the state of workflows") || strings.Contains(r.body, "data-api=") {
			t.Errorf("read-only: %d %s", r.status, r.body)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		const readSecret, operateSecret = "read-secret-0123456789", "operate-secret-0123456789"
		tokens, err := auth.Parse("read viewer " + readSecret + "\noperate etl " + operateSecret)
		if err != nil {
			t.Fatal(err)
		}
		e := newEmbedded(t, envOptions{tokens: tokens})
		get := func(secret string) response {
			req, _ := http.NewRequest("GET", e.url+"/ui/fragment/dashboard/actions/sales", nil)
			if secret != "" {
				req.Header.Set("Authorization", "Bearer "+secret)
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return response{status: res.StatusCode, header: res.Header, body: readAll(t, res)}
		}
		if r := get(""); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login?next=") {
			t.Errorf("no token: %d %s %s", r.status, r.header.Get("Location"), r.body)
		}
		if r := get(readSecret); r.status != http.StatusForbidden {
			t.Errorf("read token: %d %s", r.status, r.body)
		}
		if r := get(operateSecret); r.status != http.StatusOK || buttonIDs(r.body) != "act-sales-load" {
			t.Errorf("operate token: %d %s", r.status, r.body)
		}
	})
}
