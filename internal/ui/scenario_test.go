package ui_test

import (
	"github.com/batchy/batchy/internal/rdb/rdbtest"
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
