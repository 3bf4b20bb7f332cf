package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/batchy/batchy/internal/batch"
)

// actButton is a button that POSTs to the v1 API after a confirmation (static/ui.js).
type actButton struct {
	ID, Label string
	// For completes the label for screen readers ("Close" for wf1).
	For string
	// API is the v1 path; Body the JSON body, "" for none.
	API, Body string
	// Confirm is the question asked first; Done what is said when it worked.
	Confirm, Done string
	Class         string
	// Admin marks an action only the admin role may take (loading configuration); pages hide
	// it from other users.
	Admin bool
}

// workflowActions are the actions on a whole workflow that make sense in its state: close and
// fail only for its open jobs (the v1 API refuses to end a job that is not open).
func workflowActions(w *wfView, scheduled bool) []actButton {
	wf := w.Name
	id := func(a string) string { return "act-" + wf + "-" + a }
	if !w.Loaded {
		return []actButton{{ID: id("load"), Label: "Load configuration", For: "of " + wf, API: apiPath(wf, "load"), Admin: true,
			Confirm: fmt.Sprintf("Load the configuration file of %s?", wf), Done: wf + ": configuration loaded"}}
	}
	var open, run []string
	for _, j := range w.Jobs {
		if j.Open {
			open = append(open, j.Name)
		}
		if j.Now != "" {
			run = append(run, j.Name)
		}
	}
	warn := ""
	if len(run) > 0 {
		warn = fmt.Sprintf("The scheduler is running %s (run %s): ending them here does not stop their processes. ", strings.Join(run, ", "), w.RunID)
	}
	var out []actButton
	if scheduled {
		out = append(out, actButton{ID: id("run"), Label: "Run now", For: wf, API: apiPath(wf, "runs"),
			Confirm: fmt.Sprintf("Run %s now? The scheduler opens a batch and runs every job.", wf), Done: wf + ": run queued"})
	}
	switch {
	case w.Paused:
		out = append(out, actButton{ID: id("resume"), Label: "Resume", For: "the triggers of " + wf, API: apiPath(wf, "resume"), Class: "good",
			Confirm: fmt.Sprintf("Resume the triggers of %s? Missed fire times run as its catchup setting says.", wf), Done: wf + ": triggers resumed"})
	case scheduled && w.Settings.Scheduled():
		out = append(out, actButton{ID: id("pause"), Label: "Pause", For: "the triggers of " + wf, API: apiPath(wf, "pause"),
			Body:    jsonBody(map[string]any{"reason": "paused in the web UI"}),
			Confirm: fmt.Sprintf("Pause the triggers of %s? No scheduled or after: run starts until it is resumed; manual runs still run.", wf), Done: wf + ": triggers paused"})
	}
	out = append(out, actButton{ID: id("open"), Label: "Open", For: "a batch of every job of " + wf, API: apiPath(wf, "open"),
		Confirm: fmt.Sprintf("Open a batch for every job of %s? Jobs that are open already re-run their window.", wf), Done: wf + ": batch opened"})
	if len(open) > 0 {
		body := jsonBody(map[string]any{"jobs": open})
		jobs := strings.Join(open, ", ")
		out = append(out,
			actButton{ID: id("close"), Label: "Close", For: "the open jobs of " + wf, API: apiPath(wf, "close"), Body: body, Class: "good",
				Confirm: warn + fmt.Sprintf("Close the batch of %s (%s) as succeeded?", wf, jobs), Done: wf + ": closed " + jobs},
			actButton{ID: id("fail"), Label: "Fail", For: "the open jobs of " + wf, API: apiPath(wf, "fail"), Body: body, Class: "bad",
				Confirm: warn + fmt.Sprintf("Mark the batch of %s (%s) as failed? The next open re-runs the same window.", wf, jobs), Done: wf + ": failed " + jobs})
	}
	out = append(out, actButton{ID: id("load"), Label: "Reload configuration", For: "of " + wf, API: apiPath(wf, "load"), Admin: true,
		Confirm: fmt.Sprintf("Reload the configuration file of %s? Runtime state (windows, statuses) is kept.", wf), Done: wf + ": configuration reloaded"})
	return out
}

// jobActions are the actions on one job.
func jobActions(wf string, j jobView) []actButton {
	id := func(a string) string { return "act-" + wf + "-" + j.Name + "-" + a }
	who := "job " + j.Name
	out := []actButton{{ID: id("open"), Label: "Open", For: who, API: apiPath(wf, "jobs", j.Name, "open"),
		Confirm: fmt.Sprintf("Open a batch for job %s of %s?", j.Name, wf), Done: fmt.Sprintf("%s/%s: opened", wf, j.Name)}}
	if j.Open {
		warn := ""
		if j.Now != "" {
			warn = fmt.Sprintf("The scheduler is running this job (%s): ending it here does not stop its process, whose own end is then refused. ", j.Now)
		}
		out = append(out,
			actButton{ID: id("close"), Label: "Close", For: who, API: apiPath(wf, "jobs", j.Name, "close"), Class: "good",
				Confirm: warn + fmt.Sprintf("Close job %s of %s as succeeded?", j.Name, wf), Done: fmt.Sprintf("%s/%s: closed", wf, j.Name)},
			actButton{ID: id("fail"), Label: "Fail", For: who, API: apiPath(wf, "jobs", j.Name, "fail"), Class: "bad",
				Confirm: warn + fmt.Sprintf("Mark job %s of %s as failed?", j.Name, wf), Done: fmt.Sprintf("%s/%s: failed", wf, j.Name)})
	}
	return out
}

// cancelAction cancels a run.
func cancelAction(wf, run string) actButton {
	return actButton{ID: "act-" + wf + "-cancel-" + run, Label: "Cancel", For: "run " + run, API: apiPath(wf, "runs", run, "cancel"),
		Body: jsonBody(map[string]any{"reason": "cancelled in the web UI"}), Class: "bad",
		Confirm: fmt.Sprintf("Cancel run %s of %s? Its processes are killed and its jobs fail.", run, wf), Done: "run " + run + " cancelled"}
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// dashboardActions answers the buttons of a dashboard row's action menu (GET
// /ui/fragment/dashboard/actions/{wf}), which the row holds only once opened: they were half a
// row's HTML, sent, compressed and printed on every view for the few menus anyone opens. They are
// those of the workflow's state when the menu opens, read as readRows reads a row.
func (u *UI) dashboardActions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	wf := r.PathValue("wf")
	if err := batch.CheckName("workflow", wf); err != nil {
		u.fail(w, r, err)
		return
	}
	p := u.newPage(r, "dashboard", wf, nil)
	if !p.CanAct {
		u.fail(w, r, batch.Errorf(batch.EFORBIDDEN, "you may not change the state of workflows: your login may only read them"))
		return
	}
	v, err := u.readRow(ctx, wf)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	p.Data = workflowActions(v, u.opts.Scheduler != nil)
	u.renderPart(w, r, http.StatusOK, p, "actions")
}

// readRow reads one workflow's row view as the dashboard does (readRows): from its state and newest
// runs when loaded, the view of a configured workflow never loaded, else ENOTFOUND.
func (u *UI) readRow(ctx context.Context, wf string) (*wfView, error) {
	rows, err := u.readRows(ctx, []string{wf}, func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	if len(rows) == 1 {
		return rows[0], nil
	}
	if u.configured(wf) { // readRows leaves out a workflow with no state
		return unloaded(wf), nil
	}
	return nil, batch.Errorf(batch.ENOTFOUND, "workflow %q is not loaded and has no configuration file", wf)
}
