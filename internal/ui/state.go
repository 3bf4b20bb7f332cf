package ui

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

// Phases of a workflow: what it is doing now, in words, beside its jobs' status. The key is the
// CSS class suffix and data-phase value; the words say it (never colour alone).
const (
	phaseRunning         = "running"
	phaseWaitingNeeds    = "waiting-needs"
	phaseWaitingUpstream = "waiting-upstream"
	phaseQueued          = "queued"
	phaseRetrying        = "retrying"
	phaseFailed          = "failed"
	phaseLate            = "late"
	phaseLongOpen        = "long-open"
	phaseOpen            = "open"
	phaseOK              = "ok"
	phaseNew             = "new"
)

// runsRead is how many of a workflow's newest runs the dashboard reads to explain its row: the
// newest says what happens now, an older failed one why the workflow is failed.
const runsRead = 3

// explain sets the workflow's phase and cause from its newest runs (newest first, nil without a
// scheduler) and the overall statuses of its after: upstreams. It is pure: the clock is rules'.
func explain(w *wfView, runs []*scheduler.Run, upstream map[string]string, rules viewRules) {
	loc := rules.location
	if w.Settings.Timezone != "" {
		if l, err := time.LoadLocation(w.Settings.Timezone); err == nil {
			loc = l
		}
	}
	w.setPhase(phaseOK, "up to date")
	switch w.Status {
	case statusNew:
		w.setPhase(phaseNew, "never run")
	case statusOpen:
		w.setPhase(phaseOpen, "open")
	}
	var latest *scheduler.Run
	if len(runs) > 0 {
		latest = runs[0]
	}
	// The newest run says what happens now.
	if latest != nil {
		switch latest.State {
		case scheduler.StateRunning:
			w.runningPhase(latest)
		case scheduler.StateWaitingRetry:
			w.setPhase(phaseRetrying, "retrying at "+clock(latest.NotBefore, loc))
			w.PhaseTitle = fmtTime(latest.NotBefore)
			w.causeFrom(latest)
		case scheduler.StateQueued:
			var blocking []string
			if latest.WaitAfter {
				for _, t := range w.Settings.After {
					up := upstreamWorkflow(t)
					if st := upstream[up]; st != statusSuccess {
						if st == "" {
							st = "unknown"
						}
						blocking = append(blocking, fmt.Sprintf("%s (%s)", up, st))
						w.BlockedBy = append(w.BlockedBy, up)
					}
				}
			}
			if len(blocking) > 0 {
				w.setPhase(phaseWaitingUpstream, "waiting for upstream "+strings.Join(blocking, ", "))
			} else if latest.NotBefore.After(rules.now) {
				w.setPhase(phaseQueued, "queued, starts at "+clock(latest.NotBefore, loc))
				w.PhaseTitle = fmtTime(latest.NotBefore)
			} else {
				w.setPhase(phaseQueued, "queued")
			}
			w.RunID = latest.ID
		}
	}
	// A failed workflow says why, from its newest failed run, else from the job's metadata.
	if w.Failing && (latest == nil || latest.State != scheduler.StateWaitingRetry) {
		if latest == nil || latest.State != scheduler.StateRunning {
			w.setPhase(phaseFailed, "failed")
		}
		// The newest finished run explains the failure only if it failed: after a run that
		// succeeded, the failure came from elsewhere (the API), and an older run's cause is stale.
		for _, r := range runs {
			if !runFinished(r.State) {
				continue
			}
			if r.State == scheduler.StateFailed || r.State == scheduler.StateCancelled {
				if latest == nil || latest.State != scheduler.StateRunning {
					w.setPhase(phaseFailed, "failed (final)")
					if r.State == scheduler.StateCancelled {
						w.setPhase(phaseFailed, "failed (cancelled)")
					}
				}
				w.causeFrom(r)
			}
			break
		}
		if w.Cause == "" {
			for _, j := range w.Jobs {
				if j.Status == statusFailed && j.Metadata != "" {
					w.Cause = fmt.Sprintf("%s: %s", j.Name, j.Metadata)
					break
				}
			}
		}
	}
	if w.Phase != phaseFailed && w.Phase != phaseRetrying && w.Phase != phaseWaitingUpstream {
		if deadline, ok := w.Settings.DeadlineAt(rules.now, loc); ok && !rules.now.Before(deadline) && !w.readySince(batch.Midnight(rules.now, loc)) {
			w.setPhase(phaseLate, fmt.Sprintf("late: deadline %s missed", w.Settings.Deadline))
			w.Reasons = append(w.Reasons, fmt.Sprintf("late: not succeeded by its deadline %s (%s)", w.Settings.Deadline, loc))
		} else if w.Late && w.Phase != phaseRunning && w.Phase != phaseWaitingNeeds {
			w.setPhase(phaseLate, "late: was due "+clock(w.Due, loc))
			w.PhaseTitle = fmtTime(w.Due)
		}
	}
	if w.LongOpen && (w.Phase == phaseOpen || w.Phase == phaseRunning || w.Phase == phaseOK) {
		w.setPhase(phaseLongOpen, "open too long")
	}
}

// setPhase sets the phase's key and words.
func (w *wfView) setPhase(key, text string) { w.Phase, w.PhaseText = key, text }

// runningPhase reads a running run's newest attempt: which jobs run, which wait for their needs.
func (w *wfView) runningPhase(run *scheduler.Run) {
	w.RunID = run.ID
	w.setPhase(phaseRunning, "running")
	if len(run.Attempts) == 0 {
		return
	}
	a := run.Attempts[len(run.Attempts)-1]
	needs := map[string][]string{}
	for _, j := range w.Jobs {
		needs[j.Name] = j.Needs
	}
	var running, waiting []string
	now := map[string]string{}
	for _, name := range sortedJobs(a.Jobs) {
		switch a.Jobs[name].Status {
		case "running":
			running = append(running, name)
			now[name] = "running"
		case "pending":
			now[name] = "waiting for needs"
			if len(needs[name]) > 0 {
				waiting = append(waiting, fmt.Sprintf("%s (needs %s)", name, strings.Join(needs[name], ", ")))
			} else {
				waiting = append(waiting, name)
			}
		}
	}
	var parts []string
	if len(running) > 0 {
		parts = append(parts, "running "+strings.Join(running, ", "))
	}
	if len(waiting) > 0 {
		parts = append(parts, "waiting for needs: "+strings.Join(waiting, ", "))
	}
	for i := range w.Jobs {
		if w.Jobs[i].Open {
			w.Jobs[i].Now = now[w.Jobs[i].Name]
		}
	}
	if len(running) == 0 && len(waiting) > 0 {
		w.Phase = phaseWaitingNeeds
	}
	if a.Number > 1 {
		parts = append(parts, fmt.Sprintf("attempt %d", a.Number))
	}
	if len(parts) > 0 {
		w.PhaseText = strings.Join(parts, "; ")
	}
}

// causeFrom says why a run's newest attempt failed: each failed job's exit code, HTTP status and
// error, else the attempt's error, else the run's reason; it links to the attempt.
func (w *wfView) causeFrom(run *scheduler.Run) {
	w.CauseRun = run.ID
	if len(run.Attempts) == 0 {
		w.Cause = run.Reason
		w.CauseURL = runURL(w.Name, run.ID, "")
		return
	}
	a := run.Attempts[len(run.Attempts)-1]
	w.CauseURL = runURL(w.Name, run.ID, fmt.Sprintf("attempt-%d", a.Number))
	var causes []string
	for _, name := range sortedJobs(a.Jobs) {
		r := a.Jobs[name]
		if r.Status != statusFailed {
			continue
		}
		c := name
		if r.ExitCode != nil {
			c += fmt.Sprintf(" exit %d", *r.ExitCode)
		}
		if r.HTTPStatus != 0 {
			c += fmt.Sprintf(" HTTP %d", r.HTTPStatus)
		}
		if r.Error != "" {
			c += ": " + r.Error
		}
		causes = append(causes, c)
		if w.CauseJob == "" {
			w.CauseJob = name
			w.CauseURL = runURL(w.Name, run.ID, fmt.Sprintf("attempt-%d-%s", a.Number, name))
		}
	}
	switch {
	case len(causes) > 0:
		w.Cause = strings.Join(causes, "; ")
	case a.Error != "":
		w.Cause = a.Error
	default:
		w.Cause = run.Reason
	}
	if len(causes) > 0 && a.Error != "" && !strings.Contains(w.Cause, a.Error) {
		w.Cause += " (" + a.Error + ")"
	}
	if run.State == scheduler.StateFailed && run.Reason != "" && !strings.Contains(w.Cause, run.Reason) {
		w.Cause += "; " + run.Reason
	}
}

// readySince reports whether every job succeeded with a batch ending at or after t.
func (w *wfView) readySince(t time.Time) bool {
	if len(w.Jobs) == 0 {
		return false
	}
	for _, j := range w.Jobs {
		if j.Status != statusSuccess || j.End.Before(t) {
			return false
		}
	}
	return true
}

// runURL is a run's page, with an anchor ("" for none).
func runURL(wf, id, anchor string) string {
	u := "/ui/workflows/" + url.PathEscape(wf) + "/runs/" + url.PathEscape(id)
	if anchor != "" {
		u += "#" + anchor
	}
	return u
}

// clock shows a time of day, 24-hour, in loc (the absolute time goes in a title).
func clock(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("15:04")
}

func sortedJobs(m map[string]*scheduler.JobResult) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// upstreamNames are the workflows of after: targets, once each.
func upstreamNames(after []string) []string {
	var out []string
	for _, t := range after {
		if wf := upstreamWorkflow(t); !slices.Contains(out, wf) {
			out = append(out, wf)
		}
	}
	return out
}

// explainRuns reads what explain needs beyond the workflow's state and its newest runs (newest
// first, nil without a scheduler): when the newest waits for them, its upstreams' statuses. Then
// it explains the view.
func (u *UI) explainRuns(ctx context.Context, w *wfView, runs []*scheduler.Run, rules viewRules) error {
	upstream := map[string]string{}
	if len(runs) > 0 && runs[0].State == scheduler.StateQueued && runs[0].WaitAfter {
		for _, up := range upstreamNames(w.Settings.After) {
			st, err := u.opts.Store.State(ctx, up)
			if batch.ErrorCode(err) == batch.ENOTFOUND {
				upstream[up] = "not loaded"
				continue
			}
			if err != nil {
				return err
			}
			upstream[up] = string(batch.Summarize(st).Status)
		}
	}
	explain(w, runs, upstream, rules)
	return nil
}
