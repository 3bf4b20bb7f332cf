package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/ui"
)

// browserTimeout bounds each browser step: starting Chromium, and each subtest.
const browserTimeout = 30 * time.Second

// findChromium returns the browser the UI tests drive: $BATCHY_CHROMIUM, else Debian's chromium.
// Without one the tests are skipped, except with CI=true, where that is a failure.
func findChromium(t *testing.T) string {
	t.Helper()
	if named := os.Getenv("BATCHY_CHROMIUM"); named != "" {
		p, err := exec.LookPath(named)
		if err != nil {
			t.Fatalf("BATCHY_CHROMIUM=%s: %v", named, err)
		}
		return p
	}
	for _, c := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true forbids skipping the browser tests (apt-get install chromium)")
	}
	t.Skip("chromium is not installed: skipping the browser tests (apt-get install chromium, or set BATCHY_CHROMIUM)")
	return ""
}

// newBrowser starts a headless Chromium for the test, with a fresh profile and nothing that
// reaches the network by itself; it is stopped when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }() // starts the browser, bound to bctx
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	case <-time.After(browserTimeout):
		t.Fatalf("%s did not start within %s", path, browserTimeout)
	}
	return bctx
}

// tab is a browser tab for one subtest: bounded in time, accepting every confirm() dialog, and
// failing the test on any JavaScript exception or console error (a CSP violation is one).
type tab struct {
	t   *testing.T
	ctx context.Context
	// dialogs are the messages of the dialogs accepted.
	mu       sync.Mutex
	dialogs  []string
	problems []string
	// tolerate: console messages containing this are expected (a test that stops Redis expects
	// the page's 503s).
	tolerate string
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	tctx, cancelTab := chromedp.NewContext(browser)
	ctx, cancel := context.WithTimeout(tctx, browserTimeout)
	tb := &tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	console := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, ev.Message)
			tb.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	go func() {
		defer wg.Done()
		for m, err := range console {
			if err != nil {
				return
			}
			// A refusal of the API is an answer the page shows, not a problem of the page.
			// So is the login page's answer to a wrong token (401).
			refusal := strings.HasPrefix(m.Text, "Failed to load resource") && (strings.Contains(m.URL, "/v1/") || strings.HasSuffix(m.URL, "/login"))
			tb.mu.Lock()
			expected := tb.tolerate != "" && strings.Contains(m.Text, tb.tolerate)
			tb.mu.Unlock()
			if (m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException) && !refusal && !expected {
				tb.mu.Lock()
				tb.problems = append(tb.problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				tb.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelTab()
		wg.Wait()
		for _, p := range tb.problems {
			t.Errorf("browser console: %s", p)
		}
	})
	return tb
}

func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// waitFor polls a JavaScript condition until it holds.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		state, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
		tb.t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, cond, err, state)
	}
}

func (tb *tab) eval(js string) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// fitsWidth fails the test when the page is wider than the window, naming the widest elements.
func (tb *tab) fitsWidth(what string, width int) {
	tb.t.Helper()
	js := fmt.Sprintf(`document.documentElement.scrollWidth <= %d ? "" :
		document.documentElement.scrollWidth + " px; widest: " + [...document.querySelectorAll("main *")]
			.filter(el => el.getBoundingClientRect().right > %d).slice(-5)
			.map(el => el.tagName + "." + el.className + " " + Math.round(el.getBoundingClientRect().right)).join(", ")`, width, width)
	if got := tb.eval(js); got != "" {
		tb.t.Errorf("%s is wider than %d px: %s", what, width, got)
	}
}

// screenshot saves the page as name.png in $BATCHY_SCREENSHOTS, when it is set.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("BATCHY_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s", filepath.Join(dir, name+".png"))
}

// seed fills the store with workflows an operator would see: a history with durations, a
// failure, an open batch, a late one, a queued backfill run and log lines.
func seed(t *testing.T, e *env) {
	t.Helper()
	now := time.Now().UTC()
	day := now.Truncate(24 * time.Hour).Add(-8 * 24 * time.Hour).Add(2 * time.Hour)
	e.clock.Set(day.Add(-time.Hour))
	e.post(t, "/v1/workflows/sales/load", "")
	e.load(t, "crm_export", "batchy:\n  schedule: \"0 1 * * *\"\ncontacts:\n  table: crm.contacts\naccounts:\n  table: crm.accounts\n")
	e.load(t, "erp_ledger", "batchy:\n  schedule: \"30 3 * * *\"\n  after: [crm_export]\nledger:\n  reprocess_hours: 6\n")
	e.load(t, "web_sessions", "batchy:\n  schedule: \"@every 1h\"\nsessions:\n  source: clickstream\npageviews:\n  source: clickstream\n")
	e.load(t, "marketing_spend", "daily_spend:\n  trunc_start: true\n")
	minutes := []int{12, 14, 11, 31, 13, 15, 12}
	for i, m := range minutes {
		start := day.Add(time.Duration(i) * 24 * time.Hour)
		for _, wf := range []string{"sales", "crm_export", "erp_ledger", "marketing_spend"} {
			if wf == "crm_export" && i > 3 {
				continue // stopped running: late
			}
			e.clock.Set(start)
			e.post(t, "/v1/workflows/"+wf+"/open", "")
			e.clock.Set(start.Add(time.Duration(m)*time.Minute + time.Duration(len(wf))*17*time.Second))
			end := "close"
			if i == 3 && wf == "sales" || i == len(minutes)-1 && wf == "erp_ledger" {
				end = "fail"
			}
			e.post(t, "/v1/workflows/"+wf+"/"+end, `{"metadata":{"rows_read":`+fmt.Sprint(1000*m)+`}}`)
		}
	}
	e.clock.Set(now.Add(-9 * time.Minute))
	e.post(t, "/v1/workflows/web_sessions/open", "")
	e.post(t, "/v1/workflows/web_sessions/close", "")
	e.post(t, "/v1/workflows/sales/open", "")
	e.clock.Set(time.Time{})
	e.do(t, "POST", "/v1/workflows/sales/logs?job=extract_orders", "text/plain", "read 120000 rows from orders\nwrote 119842 rows to staging.orders\n")
	e.post(t, "/v1/workflows/sales/logs", `{"level":"warn","message":"source lagging by 4 minutes","job":"load_daily_totals"}`)
	e.post(t, "/v1/workflows/sales/runs", `{"from_date":"2026-01-01T00:00:00Z","to_date":"2026-02-01T00:00:00Z"}`)
}

// TestBrowser drives the UI in a real headless Chromium against a real server on real Redis.
func TestBrowser(t *testing.T) {
	browser := newBrowser(t)
	redisSrv := rdbtest.StartRedis(t)
	// The operator's pages refresh after actions and on events only, so that what a subtest
	// sees changes only when it acts; the read-only server's dashboard refreshes every second.
	e := newEnv(t, redisSrv.Client(t), envOptions{ui: func(o *ui.Options) { o.Refresh = time.Hour }})
	seed(t, e)
	// A second server on the same Redis, for a user who may only read.
	ro := newEnv(t, redisSrv.Client(t), envOptions{ui: func(o *ui.Options) {
		o.CanAct = func(*http.Request) bool { return false }
		o.Refresh = time.Second
	}})

	t.Run("dashboard lists workflows", func(t *testing.T) {
		tb := newTab(t, browser)
		tb.do("open the dashboard", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("dash")))
		got := tb.eval(`[...document.querySelectorAll('tr.wf')].map(r => r.dataset.workflow + '=' + r.dataset.status).join(' ')`)
		want := "crm_export=success erp_ledger=failed marketing_spend=success sales=open web_sessions=success wf1=not loaded"
		if got != want {
			t.Errorf("rows:\n got %s\nwant %s", got, want)
		}
		text := tb.eval(`document.querySelector('#wf-erp_ledger').innerText`)
		for _, s := range []string{"failed", "failed: ledger", "after crm_export"} {
			if !strings.Contains(text, s) {
				t.Errorf("erp_ledger row %q lacks %q", text, s)
			}
		}
		if text := tb.eval(`document.querySelector('#wf-crm_export').innerText`); !strings.Contains(text, "late: was due") {
			t.Errorf("crm_export is not shown late: %q", text)
		}
		tb.fitsWidth("the dashboard", 1366)
		tb.screenshot("ui-dashboard")
		// Filtering happens on the server: the form loads the filtered page.
		tb.do("type a search", chromedp.SendKeys(chromedp.ID("q"), "sal"))
		if _, err := chromedp.RunResponse(tb.ctx, chromedp.Click(chromedp.CSS("form.filters button[type=submit]"))); err != nil {
			t.Fatalf("submitting the filter: %v", err)
		}
		if got := tb.eval(`location.search + ' ' + [...document.querySelectorAll('tr.wf')].map(r => r.dataset.workflow).join(' ')`); got != "?q=sal&status= sales" {
			t.Errorf("filtered: %q", got)
		}
	})

	t.Run("close from the dashboard", func(t *testing.T) {
		e.post(t, "/v1/workflows/wf1/load", "")
		e.post(t, "/v1/workflows/wf1/open", "")
		// A server without the change stream, whose dashboard polls (hourly): the change made
		// behind the page's back stays unseen until the page acts.
		e := newEnv(t, redisSrv.Client(t), envOptions{noChanges: true, ui: func(o *ui.Options) { o.Refresh = time.Hour }})
		tb := newTab(t, browser)
		tb.do("open the dashboard", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("wf-wf1")))
		tb.waitFor("the change stream to be refused", `document.body.dataset.changes === 'closed'`)
		if got := tb.eval(`document.querySelector('#wf-wf1 td.status').innerText`); !strings.Contains(got, "open") {
			t.Fatalf("wf1 status before: %q", got)
		}
		// The row holds its menu's shell; opening it fetches the buttons.
		if n := tb.eval(`String(document.querySelectorAll('#dash button.act').length)`); n != "0" {
			t.Errorf("the dashboard holds %s action buttons before a menu opens", n)
		}
		tb.do("open wf1's actions", chromedp.Click(chromedp.ID("sum-wf1")), chromedp.WaitVisible(chromedp.ID("act-wf1-close")))
		// Behind the open menu's back, job1 closes: its Close still names it, and the API
		// refuses; the page says why and refreshes.
		e.post(t, "/v1/workflows/wf1/jobs/job1/close", "")
		tb.do("click close", chromedp.Click(chromedp.ID("act-wf1-close")))
		tb.waitFor("the refusal", `document.getElementById('result').textContent.startsWith('Error: ') && document.getElementById('result-box').classList.contains('error')`)
		if msg := tb.eval(`document.getElementById('result').textContent`); !strings.Contains(msg, "job1 is not open") {
			t.Errorf("error shown: %q", msg)
		}
		// The refresh replaced the row and reopened its menu, which fetched the new state's buttons.
		tb.waitFor("the refreshed menu", `document.getElementById('menu-wf1').open && !!document.getElementById('act-wf1-close') && !document.getElementById('act-wf1-close').dataset.body.includes('job1')`)

		tb.do("click close again", chromedp.Click(chromedp.ID("act-wf1-close")))
		tb.waitFor("wf1 to show success", `document.querySelector('#wf-wf1 td.status').innerText.includes('success')`)
		tb.waitFor("the result message", `document.getElementById('result').textContent === 'Done: wf1: closed job2, job3'`)
		tb.mu.Lock()
		dialogs := strings.Join(tb.dialogs, " | ")
		tb.mu.Unlock()
		want := "Close the batch of wf1 (job1, job2, job3) as succeeded? | Close the batch of wf1 (job2, job3) as succeeded?"
		if dialogs != want {
			t.Errorf("confirmations asked:\n got %s\nwant %s", dialogs, want)
		}
	})

	t.Run("dashboard menus fetch their buttons", func(t *testing.T) {
		tb := newTab(t, browser)
		tb.do("open the dashboard", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("wf-crm_export")))
		items := `document.querySelector('#menu-crm_export .menu-items')`
		// A fetch that fails says so in the menu; the next opening tries again.
		tb.mu.Lock()
		tb.tolerate = "status of 404"
		tb.mu.Unlock()
		tb.eval(items + `.dataset.src = '/ui/fragment/dashboard/actions/nope'; ''`)
		tb.do("open crm_export's actions", chromedp.Click(chromedp.ID("sum-crm_export")))
		tb.waitFor("the error line", items+`.querySelector('.menu-note[role=alert]') !== null`)
		if msg := tb.eval(items + `.innerText`); !strings.Contains(msg, "could not be loaded") || !strings.Contains(msg, "HTTP 404") {
			t.Errorf("error line: %q", msg)
		}
		tb.eval(items + `.dataset.src = '/ui/fragment/dashboard/actions/crm_export'; ''`)
		tb.do("close the menu", chromedp.Click(chromedp.ID("sum-crm_export")))
		tb.do("open it again", chromedp.Click(chromedp.ID("sum-crm_export")), chromedp.WaitVisible(chromedp.ID("act-crm_export-open")))
		if n := tb.eval(`String(` + items + `.querySelectorAll('.menu-note').length)`); n != "0" {
			t.Errorf("%s notes left beside the buttons", n)
		}
		// The buttons are in the tab order after the summary.
		tb.do("tab into the menu", chromedp.Focus(chromedp.ID("sum-crm_export")), chromedp.KeyEvent(kb.Tab))
		if id := tb.eval(`document.activeElement.id`); id != "act-crm_export-run" {
			t.Errorf("Tab from the summary focused %q, want act-crm_export-run", id)
		}
		// A closed menu holds no buttons: the next opening shows the state of then.
		tb.do("close the menu", chromedp.Click(chromedp.ID("sum-crm_export")))
		tb.waitFor("the buttons to go", items+`.childElementCount === 0`)
	})

	t.Run("dashboard refreshes by itself", func(t *testing.T) {
		tb := newTab(t, browser)
		tb.do("open the dashboard", chromedp.Navigate(ro.url+"/"), chromedp.WaitVisible(chromedp.ID("wf-marketing_spend")))
		tb.eval(`window.batchyMarker = 'same page'; ''`)
		e.post(t, "/v1/workflows/marketing_spend/open", "")
		tb.waitFor("marketing_spend to show open", `document.querySelector('#wf-marketing_spend').dataset.status === 'open'`)
		e.post(t, "/v1/workflows/marketing_spend/close", "")
		tb.waitFor("marketing_spend to show success", `document.querySelector('#wf-marketing_spend').dataset.status === 'success'`)
		if tb.eval(`window.batchyMarker || ''`) != "same page" {
			t.Error("the page reloaded")
		}
	})

	t.Run("dashboard follows the change stream", func(t *testing.T) {
		// A server that would poll every 5s: a row that updates within 2s, without the whole
		// fragment fetched again, came from the change stream.
		var mu sync.Mutex
		fetched := map[string]int{}
		lv := newEnv(t, redisSrv.Client(t), envOptions{ui: func(o *ui.Options) { o.Refresh = 5 * time.Second },
			wrap: func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					fetched[r.URL.Path]++
					mu.Unlock()
					h.ServeHTTP(w, r)
				})
			}})
		count := func(path string) int {
			mu.Lock()
			defer mu.Unlock()
			return fetched[path]
		}
		tb := newTab(t, browser)
		tb.do("open the dashboard", chromedp.Navigate(lv.url+"/"), chromedp.WaitVisible(chromedp.ID("wf-web_sessions")))
		tb.waitFor("the change stream to open", `document.body.dataset.changes === 'open'`)
		// The server's first subscription to the changes sends a reset: the page reads its
		// fragment once.
		deadline := time.Now().Add(5 * time.Second)
		for count("/ui/fragment/dashboard") == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		whole, rowsBefore := count("/ui/fragment/dashboard"), count("/ui/fragment/dashboard/rows")
		if got := tb.eval(`document.querySelector('#wf-web_sessions').dataset.status`); got != "success" {
			t.Fatalf("web_sessions before: %s, want success", got)
		}
		tb.eval(`window.batchyMarker = 'same page'; ''`)
		// An open menu shows the buttons of the state it was opened in: no Close.
		tb.do("open web_sessions' actions", chromedp.Click(chromedp.ID("sum-web_sessions")), chromedp.WaitVisible(chromedp.ID("act-web_sessions-open")))
		if tb.eval(`String(!!document.getElementById('act-web_sessions-close'))`) != "false" {
			t.Error("web_sessions offers Close with no batch open")
		}
		tb.do("focus Open", chromedp.Focus(chromedp.ID("act-web_sessions-open")))
		start := time.Now()
		lv.post(t, "/v1/workflows/web_sessions/open", "")
		tb.waitFor("web_sessions to show open", `document.querySelector('#wf-web_sessions').dataset.status === 'open'`)
		// The row was swapped in with its menu reopened, which fetched the new state's buttons.
		tb.waitFor("the reopened menu's Close", `document.getElementById('menu-web_sessions').open && !!document.getElementById('act-web_sessions-close')`)
		if n := count("/ui/fragment/dashboard/actions/web_sessions"); n < 2 {
			t.Errorf("the menu fetched its buttons %d times, want 2 or more (opened, then reopened with its new row)", n)
		}
		// The keyboard focus is back on the button it was on, in the new menu.
		tb.waitFor("the focus on Open again", `document.activeElement.id === 'act-web_sessions-open'`)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the row took %s to update, want under 2s", took)
		} else {
			t.Logf("the row updated %s after the change", took)
		}
		if got := tb.eval(`document.querySelector('nav.counts a.f-open strong').textContent`); got == "0" {
			t.Errorf("the open count was not updated: %s", got)
		}
		if tb.eval(`window.batchyMarker || ''`) != "same page" {
			t.Error("the page reloaded")
		}
		if n := count("/ui/fragment/dashboard") - whole; n != 0 {
			t.Errorf("the page fetched its whole fragment %d times after the change, want 0", n)
		}
		if n := count("/ui/fragment/dashboard/rows") - rowsBefore; n < 1 {
			t.Errorf("the page fetched the changed row %d times, want at least 1", n)
		}
		lv.post(t, "/v1/workflows/web_sessions/close", "")
		tb.waitFor("web_sessions to show success", `document.querySelector('#wf-web_sessions').dataset.status === 'success'`)
	})

	t.Run("live tail", func(t *testing.T) {
		tb := newTab(t, browser)
		tb.do("open the workflow page", chromedp.Navigate(e.url+"/ui/workflows/sales"), chromedp.WaitVisible(chromedp.ID("tail")))
		tb.waitFor("the stream to connect", `document.getElementById('tail-state').textContent.startsWith('Live')`)
		before := tb.eval(`String(document.querySelectorAll('#tail li').length)`)
		line := fmt.Sprintf("hello from the test <b>%d</b>", time.Now().UnixNano())
		req, _ := http.NewRequest("POST", e.url+"/v1/workflows/sales/logs?job=extract_orders", strings.NewReader(line+"\n"))
		req.Header.Set("Content-Type", "text/plain")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusAccepted {
			t.Fatalf("posting a log line: %v %v", err, res)
		}
		res.Body.Close()
		tb.waitFor("the log line in the tail", fmt.Sprintf(`[...document.querySelectorAll('#tail li .msg')].some(m => m.textContent === %q)`, line))
		if tb.eval(`String(document.querySelectorAll('#tail b').length)`) != "0" {
			t.Error("the log line's markup was rendered")
		}
		if after := tb.eval(`String(document.querySelectorAll('#tail li').length)`); after == before {
			t.Errorf("tail did not grow: %s lines", after)
		}
		// A transition arrives on the stream and refreshes the jobs without a reload.
		tb.eval(`window.batchyMarker = 'same page'; ''`)
		e.post(t, "/v1/workflows/sales/jobs/extract_orders/close", "")
		tb.waitFor("extract_orders to show success", `document.querySelector('#job-extract_orders').dataset.status === 'success'`)
		if tb.eval(`window.batchyMarker || ''`) != "same page" {
			t.Error("the page reloaded")
		}
		tb.fitsWidth("the workflow page", 1366)
		tb.screenshot("ui-workflow")
		e.post(t, "/v1/workflows/sales/jobs/load_daily_totals/close", "")
	})

	t.Run("keyboard focus stays after an action", func(t *testing.T) {
		e.post(t, "/v1/workflows/sales/open", "")
		tb := newTab(t, browser)
		tb.do("open the workflow page", chromedp.Navigate(e.url+"/ui/workflows/sales"), chromedp.WaitVisible(chromedp.ID("act-sales-close")))
		tb.do("close with the keyboard", chromedp.Focus(chromedp.ID("act-sales-close")), chromedp.KeyEvent(kb.Enter))
		tb.waitFor("the batch to close", `document.querySelector('#job-extract_orders').dataset.status === 'success' && !document.getElementById('act-sales-close')`)
		// The Close button is gone with the open batch: the focus is on its part of the page, not
		// back at the top.
		tb.waitFor("the focus to stay in the page", `document.activeElement !== document.body && document.activeElement.closest('[data-live]') !== null`)
	})

	t.Run("read-only shows no actions", func(t *testing.T) {
		tb := newTab(t, browser)
		for _, path := range []string{"/", "/ui/workflows/sales"} {
			tb.do("open "+path, chromedp.Navigate(ro.url+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
			n := tb.eval(`String(document.querySelectorAll('button[data-api], form[data-api], details.menu, .actions').length)`)
			if n != "0" {
				t.Errorf("%s: %s action controls for a read-only user", path, n)
			}
		}
		// The same page for a user who may act has them.
		tb.do("open as an operator", chromedp.Navigate(e.url+"/ui/workflows/sales"), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if n := tb.eval(`String(document.querySelectorAll('button[data-api], form[data-api]').length)`); n == "0" {
			t.Error("no action controls for an operator")
		}
	})

	t.Run("login with tokens", func(t *testing.T) {
		const readSecret, operateSecret = "read-secret-0123456789", "operate-secret-0123456789"
		tokens, err := auth.Parse("read viewer " + readSecret + "\noperate etl " + operateSecret)
		if err != nil {
			t.Fatal(err)
		}
		a := newEnv(t, redisSrv.Client(t), envOptions{tokens: tokens, ui: func(o *ui.Options) { o.Refresh = time.Hour }})
		e.post(t, "/v1/workflows/marketing_spend/open", "")
		tb := newTab(t, browser)
		login := func(secret string) {
			tb.do("open the dashboard", chromedp.Navigate(a.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
			if got := tb.eval(`location.pathname`); got != "/login" {
				t.Fatalf("without a token the dashboard went to %q, want /login", got)
			}
			tb.do("log in", chromedp.SendKeys(chromedp.ID("token"), secret), chromedp.Submit(chromedp.ID("token")),
				chromedp.WaitVisible(chromedp.ID("dash")))
		}

		tb.do("open the dashboard", chromedp.Navigate(a.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
		tb.do("log in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-a-token-0123456789"), chromedp.Submit(chromedp.ID("token")),
			chromedp.WaitVisible(chromedp.CSS("p[role=alert]")))
		if msg := tb.eval(`document.querySelector('p[role=alert]').textContent`); msg != "That token is not valid." {
			t.Errorf("wrong token: %q", msg)
		}

		login(readSecret)
		if n := tb.eval(`String(document.querySelectorAll('tr.wf').length)`); n == "0" {
			t.Fatal("the read-only user sees no workflows")
		}
		if n := tb.eval(`String(document.querySelectorAll('button[data-api], form[data-api], details.menu, .actions').length)`); n != "0" {
			t.Errorf("a read token sees %s action controls", n)
		}
		// The login cookie is HttpOnly: the page's scripts cannot read it.
		if c := tb.eval(`document.cookie`); strings.Contains(c, readSecret) {
			t.Errorf("the token cookie is readable by scripts: %q", c)
		}
		tb.do("log out", chromedp.Click(chromedp.CSS("a.logout")), chromedp.WaitVisible(chromedp.ID("token")))

		login(operateSecret)
		tb.do("open marketing_spend's actions", chromedp.Click(chromedp.ID("sum-marketing_spend")), chromedp.WaitVisible(chromedp.ID("act-marketing_spend-close")))
		// An operate token may open and close, not load configuration: that action is not shown.
		if n := tb.eval(`String([...document.querySelectorAll('[data-admin-only]')].filter(el => el.offsetParent !== null).length)`); n != "0" {
			t.Errorf("an operate token sees %s admin-only actions", n)
		}
		if n := tb.eval(`String(document.querySelectorAll('#menu-marketing_spend [data-admin-only]').length)`); n == "0" {
			t.Error("the reload action is not marked admin-only")
		}
		// A change without the page's X-CSRF-Token header, as another site's form would send it
		// with the cookie, is refused.
		forged := tb.eval(`fetch('/v1/workflows/marketing_spend/close', {method: 'POST'}).then(r => String(r.status))`)
		if forged != "403" {
			t.Errorf("a change with the cookie but no CSRF header answered %s, want 403", forged)
		}
		if st := a.get(t, "/get_status/marketing_spend?token="+readSecret).body; !strings.Contains(st, `"status": "open"`) {
			t.Fatalf("the forged request changed the state: %s", st)
		}
		tb.do("click close", chromedp.Click(chromedp.ID("act-marketing_spend-close")))
		tb.waitFor("marketing_spend to show success", `document.querySelector('#wf-marketing_spend').dataset.status === 'success'`)

		// The session ends behind the page's back: its next refresh says so instead of showing
		// the old state as up to date.
		tb.eval(`fetch('/logout', {redirect: 'manual'}).then(() => window.batchyRefresh()).then(() => 'ok')`)
		if msg := tb.eval(`document.getElementById('live-status').textContent`); !strings.Contains(msg, "session has expired") {
			t.Errorf("after the session ended the page says %q, want that the session has expired", msg)
		}

		// A bookmarked workflow page asks for a login, then shows that page.
		tb.do("open a workflow page", chromedp.Navigate(a.url+"/ui/workflows/marketing_spend"), chromedp.WaitVisible(chromedp.ID("token")))
		tb.do("log in", chromedp.SendKeys(chromedp.ID("token"), readSecret), chromedp.Submit(chromedp.ID("token")),
			chromedp.WaitVisible(chromedp.CSS("main h1")))
		if got := tb.eval(`location.pathname`); got != "/ui/workflows/marketing_spend" {
			t.Errorf("after logging in from a workflow page the browser is at %q", got)
		}
	})

	t.Run("phone width", func(t *testing.T) {
		tb := newTab(t, browser)
		for _, path := range []string{"/", "/ui/workflows/sales"} {
			tb.do("open "+path+" on a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(e.url+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
			tb.fitsWidth(path, 390)
		}
	})
}
