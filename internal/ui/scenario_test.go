package ui_test

import (
	"fmt"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"strconv"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/ui"
	"strings"
	"testing"
	"time"
)

// The on-call scenario's workflows: each shows one state a person must tell apart at a glance.
const (
	// A failing exec job (exit 2), after a job it needs: failed (final), with its cause.
	scenarioFailing = failingWorkflow
	// A job that runs for a while and one waiting for it (needs:).
	scenarioNeeds = `extract:
  run: {type: exec, command: ["sh", "-c", "echo extracting; sleep 20"]}
load:
  needs: [extract]
  run: {type: exec, command: ["true"]}
`
	// A job that fails and is retried in an hour.
	scenarioRetry = `batchy:
  retries: {count: 2, backoff: 1h, max_backoff: 2h}
pull:
  run: {type: exec, command: ["sh", "-c", "echo HTTP 502 from api.partner.example >&2; exit 3"]}
`
	// An upstream that failed, and a scheduled workflow held back by it.
	scenarioUpstream = `contacts:
  table: crm.contacts
`
	scenarioBlocked = `batchy:
  schedule: "* * * * *"
  after: [crm_contacts]
ledger:
  table: erp.ledger
`
	// A deadline that passed without a success.
	scenarioLate = `batchy:
  deadline: "00:00"
report:
  table: bi.daily
`
)

// onCall loads the scenario and drives the scheduler until each workflow is in its state. The
// run of needs_wait keeps running (20s); the caller stops the scheduler when done.
func onCall(t *testing.T, e *env) {
	t.Helper()
	e.load(t, "ledger_sync", scenarioFailing)
	e.runOnce(t, "ledger_sync")
	e.load(t, "partner_pull", scenarioRetry)
	e.runOnce(t, "partner_pull")
	e.load(t, "crm_contacts", scenarioUpstream)
	e.post(t, "/v1/workflows/crm_contacts/open", "")
	e.post(t, "/v1/workflows/crm_contacts/fail", `{"metadata":{"error":"source table locked"}}`)
	e.load(t, "erp_ledger", scenarioBlocked)
	e.load(t, "daily_report", scenarioLate)
	now := time.Now()
	if err := e.sch.Tick(ctx, now); err != nil { // the schedule starts now
		t.Fatal(err)
	}
	if err := e.sch.Tick(ctx, now.Add(90*time.Second)); err != nil { // erp_ledger's fire time: queued behind crm_contacts
		t.Fatal(err)
	}
	e.load(t, "needs_wait", scenarioNeeds)
	e.post(t, "/v1/workflows/needs_wait/runs", "")
	if err := e.sch.Tick(ctx, time.Now().Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.sch.Stop("the test ended")
		e.sch.Wait()
	})
	// The run records extract's start once its process runs.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.page(t, "/"), "running extract") {
		if time.Now().After(deadline) {
			t.Fatalf("needs_wait does not show extract running:\n%s", e.page(t, "/"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOnCallStates: each workflow of the scenario says its state in words on its dashboard row.
func TestOnCallStates(t *testing.T) {
	e := newEnv(t, rdbtest.StartRedis(t).Client(t), envOptions{})
	onCall(t, e)
	body := e.page(t, "/")
	for wf, want := range map[string][]string{
		"ledger_sync":  {`data-phase="failed"`, "failed (final)", "ledger exit 2: exit status 2"},
		"partner_pull": {`data-phase="retrying"`, "retrying at ", "pull exit 3"},
		"crm_contacts": {`data-phase="failed"`, `contacts: {&#34;error&#34;:&#34;source table locked&#34;}`},
		"erp_ledger":   {`data-phase="waiting-upstream"`, "waiting for upstream crm_contacts (failed)"},
		"needs_wait":   {`data-phase="running"`, "running extract; waiting for needs: load (needs extract)"},
		"daily_report": {`data-phase="late"`, "late: deadline 00:00 missed"},
	} {
		row := rowOf(t, body, wf)
		wantContains(t, row, want...)
	}
	// Ending a job the scheduler runs says so before asking.
	wantContains(t, e.page(t, "/ui/workflows/needs_wait"), "The scheduler is running this job (running): ending it here does not stop its process",
		"The scheduler is running extract, load (run ")
	wantContains(t, e.page(t, "/ui/workflows/daily_report"), "<dt>Deadline</dt><dd>00:00")
}

// rowOf cuts a workflow's row out of the dashboard.
func rowOf(t *testing.T, body, wf string) string {
	t.Helper()
	i := strings.Index(body, `<tr id="wf-`+wf+`"`)
	if i < 0 {
		t.Fatalf("no row for %s", wf)
	}
	row := body[i:]
	if j := strings.Index(row, "</tr>"); j >= 0 {
		row = row[:j]
	}
	return row
}

// TestBrowserOnCall drives the on-call scenario in Chromium: the cause on the dashboard row, the
// run page with its timeline and log lines, each state's word, and the stale banner when Redis
// stops mid-session, then the store-down page, which comes back by itself.
func TestBrowserOnCall(t *testing.T) {
	browser := newBrowser(t)
	srv := rdbtest.StartRedis(t)
	e := newEnv(t, srv.Client(t), envOptions{ui: func(o *ui.Options) { o.Refresh = time.Second }})
	onCall(t, e)

	tb := newTab(t, browser)
	tb.do("open the dashboard at 1440×900", chromedp.EmulateViewport(1440, 900), chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("dash")))
	for wf, want := range map[string]string{
		"ledger_sync":  "failed (final)",
		"partner_pull": "retrying at",
		"erp_ledger":   "waiting for upstream crm_contacts (failed)",
		"needs_wait":   "waiting for needs: load",
		"daily_report": "late: deadline 00:00 missed",
	} {
		if got := tb.eval(`document.querySelector('#wf-` + wf + ` .phase').textContent`); !strings.Contains(got, want) {
			t.Errorf("%s says %q, want %q", wf, got, want)
		}
	}
	if got := tb.eval(`document.querySelector('#wf-ledger_sync a.cause').textContent`); !strings.Contains(got, "ledger exit 2") {
		t.Errorf("ledger_sync's cause: %q", got)
	}
	tb.screenshot("ui-oncall-dashboard")

	// Times switch to the browser's time zone and back, remembered.
	if _, err := chromedp.Call(tb.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"}); err != nil {
		t.Fatalf("setting the browser's zone: %v", err)
	}
	tb.do("show local time", chromedp.Click(chromedp.ID("tz-switch")))
	if got := tb.eval(`document.getElementById('tz-note').textContent + ' | ' + document.querySelector('#wf-ledger_sync time').title`); !strings.HasPrefix(got, "Times in your time zone | ") || !strings.HasSuffix(got, "+05:30") {
		t.Errorf("local times: %q", got)
	}
	tb.do("show UTC", chromedp.Click(chromedp.ID("tz-switch")))
	if got := tb.eval(`document.querySelector('#wf-ledger_sync time').title`); !strings.HasSuffix(got, "Z") {
		t.Errorf("back to UTC: %q", got)
	}

	// The cause leads to the failed job of the attempt on the run page.
	tb.do("follow the cause", chromedp.Click(chromedp.CSS("#wf-ledger_sync a.cause")), chromedp.WaitVisible(chromedp.CSS("svg.gantt")))
	if got := tb.eval(`location.hash + ' ' + (document.querySelector(':target') || {}).id`); got != "#attempt-1-ledger attempt-1-ledger" {
		t.Errorf("the cause leads to %q", got)
	}
	if n := tb.eval(`String(document.querySelectorAll('svg.gantt rect.gbar').length)`); n != "2" {
		t.Errorf("%s bars in the timeline, want 2", n)
	}
	tb.waitFor("the log lines", `[...document.querySelectorAll('#run-log li .msg')].some(m => m.textContent === 'connection refused')`)
	tb.screenshot("ui-run")
	// Filter the log lines to ledger's.
	tb.do("filter by job", chromedp.SetValue(chromedp.ID("log-job"), "ledger"))
	if _, err := chromedp.RunResponse(tb.ctx, chromedp.Click(chromedp.CSS("#logs button[type=submit]"))); err != nil {
		t.Fatalf("filtering: %v", err)
	}
	if got := tb.eval(`[...document.querySelectorAll('#run-log li .job')].map(j => j.textContent).filter(j => j !== 'ledger').join(',')`); got != "" {
		t.Errorf("other jobs' lines after filtering by ledger: %s", got)
	}

	// The run of needs_wait: extract runs, load waits for it.
	tb.do("open the dashboard", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("dash")))
	tb.do("open needs_wait's run", chromedp.Click(chromedp.CSS("#wf-needs_wait a.run-link")), chromedp.WaitVisible(chromedp.CSS("svg.gantt")))
	if got := tb.eval(`document.querySelector('tr[data-job=load]').innerText`); !strings.Contains(got, "waiting for needs") {
		t.Errorf("load's row on the run page: %q", got)
	}
	// A run in progress refreshes its timeline and attempts.
	tb.eval(`window.batchyMarker = 'same page'; ''`)
	if got := tb.eval(`window.batchyRefresh().then(() => document.getElementById('live-status').textContent)`); !strings.HasPrefix(got, "Updated") {
		t.Errorf("after a refresh of the run page: %q", got)
	}
	if tb.eval(`window.batchyMarker || ''`) != "same page" {
		t.Error("the run page reloaded")
	}

	// Dates are typed 24-hour, whatever the browser's locale: a backfill from 2026-01-01 13:00.
	tb.do("open daily_report", chromedp.Navigate(e.url+"/ui/workflows/daily_report"), chromedp.WaitVisible(chromedp.ID("bf-from")))
	tb.do("type a 24-hour date", chromedp.SendKeys(chromedp.ID("bf-from"), "2026-01-01 13:00"), chromedp.SendKeys(chromedp.ID("bf-to"), "2026-01-02 13:00"),
		chromedp.Click(chromedp.CSS("#bf-to ~ button, form[data-confirm^='Backfill'] button[type=submit]")))
	tb.waitFor("the backfill queued", `document.getElementById('result').textContent.startsWith('Done: daily_report: backfill run queued')`)
	tb.mu.Lock()
	asked := strings.Join(tb.dialogs, " | ")
	tb.mu.Unlock()
	if !strings.Contains(asked, "Backfill daily_report over 2026-01-01 13:00 to 2026-01-02 13:00 UTC?") {
		t.Errorf("confirmations: %s", asked)
	}

	// Redis stops mid-session: the open dashboard dims and says since when.
	tb.do("open the dashboard", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("dash")))
	tb.mu.Lock()
	tb.tolerate = "status of 503"
	tb.mu.Unlock()
	srv.Stop()
	tb.waitFor("the stale banner", `!document.getElementById('stale').hidden && document.body.classList.contains('stale')`)
	if got := tb.eval(`document.getElementById('stale').textContent`); !strings.Contains(got, "the store is not answering") || !strings.Contains(got, "since") {
		t.Errorf("the stale banner says %q", got)
	}
	tb.waitFor("the stale data to dim", `getComputedStyle(document.getElementById('dash')).opacity < 0.5`)
	tb.screenshot("ui-stale")
	// A fresh load names the store and retries by itself.
	tb.do("reload", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS(".store-down")))
	if got := tb.eval(`document.querySelector('main h1').textContent`); got != "The store is not answering" {
		t.Errorf("a fresh load says %q", got)
	}
	tb.screenshot("ui-store-down")
	srv.Restart(t)
	// The page reloads itself: poll across the navigation.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		back, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`document.getElementById('dash') !== null`))
		if err == nil && back {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store-down page did not come back by itself (%v)", err)
		}
	}
}

// TestBrowserDense: at 1440×900 each workflow takes one line and 20 and more fit above the fold.
func TestBrowserDense(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, rdbtest.StartRedis(t).Client(t), envOptions{noCfg: true, ui: func(o *ui.Options) { o.Refresh = time.Hour }})
	e.load(t, "ledger_sync", scenarioFailing)
	e.runOnce(t, "ledger_sync")
	for i := range 30 {
		wf := fmt.Sprintf("wf_%02d", i)
		e.load(t, wf, "batchy:\n  schedule: \"0 3 * * *\"\n  after: [ledger_sync]\nextract_orders:\n  table: a\nload_daily_totals:\n  table: b\n")
		e.post(t, "/v1/workflows/"+wf+"/open", "")
		if i%3 == 0 {
			e.post(t, "/v1/workflows/"+wf+"/fail", `{"metadata":{"error":"upstream export was empty"}}`)
		}
	}
	tb := newTab(t, browser)
	tb.do("open the dashboard at 1440×900", chromedp.EmulateViewport(1440, 900), chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("dash")))
	fit := tb.eval(`String([...document.querySelectorAll('tr.wf')].filter(r => r.getBoundingClientRect().bottom <= innerHeight).length)`)
	if n, _ := strconv.Atoi(fit); n < 20 {
		t.Errorf("%s workflows above the fold at 1440×900, want 20 and more", fit)
	}
	if tall := tb.eval(`[...document.querySelectorAll('tr.wf')].filter(r => r.getBoundingClientRect().height > 34).map(r => r.dataset.workflow + ' ' + Math.round(r.getBoundingClientRect().height) + 'px').join(', ')`); tall != "" {
		t.Errorf("rows taller than one line: %s", tall)
	}
	tb.fitsWidth("the dense dashboard", 1440)
	tb.screenshot("ui-dashboard-dense")

	// Dark mode follows the system's.
	if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatalf("emulating dark mode: %v", err)
	}
	if bg := tb.eval(`getComputedStyle(document.body).backgroundColor`); bg != "rgb(13, 17, 23)" {
		t.Errorf("dark mode background: %s", bg)
	}
	tb.screenshot("ui-dashboard-dark")
}
