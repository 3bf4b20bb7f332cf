package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/executor"
	"github.com/batchy/batchy/internal/format"
)

// advance moves one active run on, as the leader: start it when due, or take it over when the
// replica executing it died. held reports a run that waits for the workflow's resume: while its
// triggers are paused, a queued run they created (cron, catch-up, after:) does not start; manual
// runs and the retries of runs that started go on.
func (s *Scheduler) advance(ctx context.Context, st *batch.State, id string, now time.Time) (held bool, err error) {
	s.mu.Lock()
	_, mine := s.executing[st.Workflow+"/"+id]
	s.mu.Unlock()
	if mine {
		return false, nil
	}
	peek, err := s.state.run(ctx, st.Workflow, id)
	if err != nil {
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			s.opts.Runs.Forget(ctx, st.Workflow, id)
			return false, nil
		}
		return false, err
	}
	if st.Paused && peek.State == StateQueued && peek.Trigger != TriggerManual && peek.Trigger != TriggerBackfill && peek.cancel == "" {
		return true, nil
	}
	return false, s.advanceRun(ctx, st, peek, id, now)
}

// advanceRun is advance for a run that is not held.
func (s *Scheduler) advanceRun(ctx context.Context, st *batch.State, peek *Run, id string, now time.Time) error {
	if (peek.State == StateQueued || peek.State == StateWaitingRetry) && peek.cancel == "" {
		if peek.NotBefore.After(now) {
			return nil
		}
		if peek.WaitAfter && peek.State == StateQueued {
			var since time.Time
			if peek.Interval != nil {
				// An interval's data is complete once the upstream succeeded after its end: each
				// catch-up interval waits for that, not for another upstream run after the
				// previous interval's.
				since = peek.Interval.To
			} else {
				since = s.afterSince(ctx, st, now)
			}
			ready, err := s.upstreamReady(ctx, st.Settings.After, since)
			if err != nil || !ready {
				return err
			}
		}
		if peek.FireTime != nil && s.olderCatchupQueued(ctx, st.Workflow, peek) {
			return nil // catch-up runs start oldest first, and scheduled runs after them
		}
		queue := st.Settings.Concurrency == "queue"
		if queue && peek.Interval == nil {
			older, err := s.queuedBefore(ctx, st, peek)
			if err != nil {
				return err
			}
			if older > 0 {
				if older >= maxQueued(st.Settings) && s.activeOther(ctx, st.Workflow, id) != nil {
					return s.finishUntaken(ctx, st.Workflow, id, now, StateSkipped, fmt.Sprintf("the queue was full: %d runs waiting (concurrency: queue, max_queued: %d)", older, maxQueued(st.Settings)))
				}
				return nil // first in, first out
			}
		}
		if running := s.activeOther(ctx, st.Workflow, id); running != nil {
			if peek.Interval != nil || queue {
				return nil // waits its turn: an interval is never skipped, a queue runs each in order
			}
			switch st.Settings.Concurrency {
			case "allow":
			case "replace":
				if running.cancel == "" {
					s.state.cancel(ctx, st.Workflow, running.ID, "replaced by run "+id)
				}
				return nil // starts once the replaced run has ended
			default: // forbid
				if peek.Trigger == TriggerCatchup || running.Trigger == TriggerCatchup {
					return nil // catch-up (catchup: all) runs each missed fire time, one after another
				}
				return s.finishUntaken(ctx, st.Workflow, id, now, StateSkipped, "run "+running.ID+" was still "+activeWord(running.State)+" (concurrency: forbid)")
			}
		}
	}
	run, before, err := s.state.take(ctx, st.Workflow, id, s.opts.ID, now, s.opts.Lease)
	if err != nil || run == nil {
		return err
	}
	if run.cancel != "" && before != StateRunning {
		return s.finish(ctx, run, now, StateCancelled, "cancelled: "+run.cancel)
	}
	if before == StateRunning {
		// The replica executing it died: its lease expired. Fail what it left open, then retry
		// per policy.
		return s.reap(ctx, st, run, now)
	}
	s.start(st, run, now)
	return nil
}

// afterSince is the time upstream must be ready since for a scheduled run with after:: the start
// of the workflow's previous run, or today's midnight.
func (s *Scheduler) afterSince(ctx context.Context, st *batch.State, now time.Time) time.Time {
	runs, err := s.state.runs(ctx, st.Workflow, 5)
	if err == nil {
		for _, r := range runs {
			if r.StartedAt != nil {
				return *r.StartedAt
			}
		}
	}
	return batch.Midnight(now, s.location(st.Settings))
}

// olderCatchupQueued reports whether a catch-up run for an earlier fire time than run's is still
// queued: it starts first.
func (s *Scheduler) olderCatchupQueued(ctx context.Context, wf string, run *Run) bool {
	ids, _ := s.state.active(ctx, wf)
	for _, other := range ids {
		if other == run.ID {
			continue
		}
		r, err := s.state.run(ctx, wf, other)
		if err == nil && r.State == StateQueued && (r.Trigger == TriggerCatchup || r.Interval != nil) && r.FireTime != nil && r.FireTime.Before(*run.FireTime) {
			return true
		}
	}
	return false
}

// maxQueued is a workflow's queue limit under concurrency: queue.
func maxQueued(set batch.Settings) int {
	if set.MaxQueued > 0 {
		return set.MaxQueued
	}
	return 10
}

// queuedBefore counts the workflow's queued runs created before run (the older of two created
// at once by id): under concurrency: queue they start first, and they fill the queue. Runs a
// pause holds do not count: a manual run does not wait for the resume.
func (s *Scheduler) queuedBefore(ctx context.Context, st *batch.State, run *Run) (int, error) {
	wf := st.Workflow
	ids, err := s.state.active(ctx, wf)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, other := range ids {
		if other == run.ID {
			continue
		}
		r, err := s.state.run(ctx, wf, other)
		if err != nil || r.State != StateQueued || r.cancel != "" || (st.Paused && r.Trigger != TriggerManual && r.Trigger != TriggerBackfill) {
			continue
		}
		if createdBefore(r, run) {
			n++
		}
	}
	return n, nil
}

// createdBefore orders runs for a queue: by creation, then (runs created together: catch-up runs)
// by fire time, then by id.
func createdBefore(a, b *Run) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	if a.FireTime != nil && b.FireTime != nil && !a.FireTime.Equal(*b.FireTime) {
		return a.FireTime.Before(*b.FireTime)
	}
	return a.ID < b.ID
}

// activeOther returns another run of the workflow that is running or waiting for its retry, if
// any: for concurrency, a run between two attempts is still in progress.
func (s *Scheduler) activeOther(ctx context.Context, wf, id string) *Run {
	ids, _ := s.state.active(ctx, wf)
	for _, other := range ids {
		if other == id {
			continue
		}
		if r, err := s.state.run(ctx, wf, other); err == nil && (r.State == StateRunning || r.State == StateWaitingRetry) {
			return r
		}
	}
	return nil
}

// activeWord says what an active run is doing, for messages.
func activeWord(state string) string {
	if state == StateWaitingRetry {
		return "waiting for its retry"
	}
	return "running"
}

// finishUntaken ends a run that never started (skipped, cancelled while queued).
func (s *Scheduler) finishUntaken(ctx context.Context, wf, id string, now time.Time, state, reason string) error {
	if err := s.state.cancel(ctx, wf, id, reason); err != nil {
		return err
	}
	run, _, err := s.state.take(ctx, wf, id, s.opts.ID, now, s.opts.Lease)
	if err != nil || run == nil {
		return err
	}
	return s.finish(ctx, run, now, state, reason)
}

// finish writes a run's final state.
func (s *Scheduler) finish(ctx context.Context, run *Run, now time.Time, state, reason string) error {
	run.State, run.Reason = state, reason
	end := now
	run.EndedAt = &end
	held, err := s.state.update(ctx, run, s.opts.ID, now)
	if !held {
		return s.lost(run, err)
	}
	s.log.Info("run finished", "workflow", run.Workflow, "run", run.ID, "state", state, "reason", reason)
	s.keepOutcome(ctx, run, state)
	typ, level, msg := event.TypeRunFinished, "info", "run "+state
	switch state {
	case StateCancelled:
		typ, level = event.TypeRunCancelled, "warn"
	case StateFailed:
		level = "error"
	case StateSkipped:
		level = "warn"
	}
	if reason != "" {
		msg += ": " + reason
	}
	s.emit(run, typ, level, msg)
	return err
}

// keepOutcome applies the workflow's keep_runs to a run that just finished as state.
func (s *Scheduler) keepOutcome(ctx context.Context, run *Run, state string) {
	if state != StateSucceeded && state != StateFailed {
		return
	}
	st, err := s.opts.Store.State(ctx, run.Workflow)
	if err != nil || st.Settings.KeepRuns == nil {
		return
	}
	keep := st.Settings.KeepRuns.Succeeded
	if state == StateFailed {
		keep = st.Settings.KeepRuns.Failed
	}
	if keep <= 0 {
		return
	}
	if err := s.opts.Runs.KeepOutcome(ctx, run.Workflow, state, run.ID, run.CreatedAt, keep); err != nil {
		s.log.Warn("keep_runs", "workflow", run.Workflow, "run", run.ID, "err", err)
	}
}

// lost notes that a run's record could not be written because another replica took the run over
// (this one stalled past its lease): what this replica saw is not the run's outcome, so it records
// and announces nothing.
func (s *Scheduler) lost(run *Run, err error) error {
	if err != nil {
		return err
	}
	s.log.Warn("run taken over by another replica while this one stalled: its result here is dropped", "workflow", run.Workflow, "run", run.ID)
	return nil
}

// reap fails the attempt of a replica that died and schedules a retry if the policy allows.
//
// A retry waits at least one more lease: a replica that is alive but cut off from Redis stops its
// jobs' processes once it has failed to renew its lease for three quarters of one (fenceAfter),
// and a dead replica's supervisors stop them within the kill grace; so no process of the attempt
// is left when the retry starts.
func (s *Scheduler) reap(ctx context.Context, st *batch.State, run *Run, now time.Time) error {
	ctx = event.WithRun(ctx, run.ID) // its jobs' failures are the run's: its outcome is reported once
	if len(run.Attempts) == 0 {
		// It died between taking the run and recording its attempt: nothing ran, so the run is
		// queued again without counting an attempt.
		run.State, run.NotBefore, run.Reason = StateQueued, now, "replica died before starting it"
		held, err := s.state.update(ctx, run, s.opts.ID, now)
		if !held {
			return s.lost(run, err)
		}
		s.log.Warn("run taken over before its start: queued again", "workflow", run.Workflow, "run", run.ID)
		return err
	}
	var failed []string
	if n := len(run.Attempts); n > 0 {
		a := &run.Attempts[n-1]
		end := now
		a.End, a.Error = &end, "replica "+a.Replica+" stopped renewing its lease (it died or lost Redis)"
		for job, r := range a.Jobs {
			if r.Status == "running" || r.Status == "pending" {
				r.Status, r.Error, r.End = batch.StatusFailed.String(), a.Error, &end
				failed = append(failed, job)
			}
		}
		if len(failed) > 0 && a.BatchID > 0 {
			// Fail the jobs it left open, guarded by the batch id so a newer batch is untouched, and
			// one at a time and strictly, so a job the dead replica did close keeps its result.
			for _, job := range failed {
				s.opts.Store.End(ctx, run.Workflow, batch.EndRequest{Jobs: []string{job}, Status: batch.StatusFailed, BatchID: a.BatchID, Strict: true})
			}
		}
	}
	s.log.Warn("run taken over: its replica died", "workflow", run.Workflow, "run", run.ID)
	return s.afterAttemptNotBefore(ctx, st, run, now, true, "replica died", now.Add(s.opts.Lease))
}

// afterAttempt decides what follows an attempt: done, a retry, or failure.
func (s *Scheduler) afterAttempt(ctx context.Context, st *batch.State, run *Run, now time.Time, failed bool, why string) error {
	return s.afterAttemptNotBefore(ctx, st, run, now, failed, why, time.Time{})
}

// afterAttemptNotBefore is afterAttempt with a retry starting no sooner than earliest.
func (s *Scheduler) afterAttemptNotBefore(ctx context.Context, st *batch.State, run *Run, now time.Time, failed bool, why string, earliest time.Time) error {
	set := st.Settings
	if !failed {
		return s.finish(ctx, run, now, StateSucceeded, "")
	}
	if run.cancel != "" {
		return s.finish(ctx, run, now, StateCancelled, "cancelled: "+run.cancel)
	}
	wait, retry, exhausted := retryPlan(jobPolicies(st), run)
	if retry {
		run.State = StateWaitingRetry
		run.NotBefore = now.Add(wait)
		if run.NotBefore.Before(earliest) {
			run.NotBefore = earliest
		}
		run.Reason = why
		held, err := s.state.update(ctx, run, s.opts.ID, now)
		if !held {
			return s.lost(run, err)
		}
		s.log.Info("run will be retried", "workflow", run.Workflow, "run", run.ID, "attempt", len(run.Attempts)+1, "at", run.NotBefore)
		s.emit(run, event.TypeRunRetried, "warn", fmt.Sprintf("attempt %d failed (%s): retry at %s", len(run.Attempts), why, run.NotBefore.UTC().Format(time.RFC3339)))
		return err
	}
	reason := why
	if exhausted != "" {
		reason = fmt.Sprintf("%s; retries exhausted (%s)", why, exhausted)
	} else if set.Retries.Count > 0 {
		reason = fmt.Sprintf("%s; retries exhausted (%d)", why, set.Retries.Count)
	}
	return s.finish(ctx, run, now, StateFailed, reason)
}

// policies are a workflow's retry policies: the workflow's, and the jobs' own (run: retries:).
type policies struct {
	workflow batch.Retries
	jobs     map[string]batch.Retries
}

// of returns a job's policy.
func (p policies) of(job string) batch.Retries {
	if r, ok := p.jobs[job]; ok {
		return r
	}
	return p.workflow
}

// jobPolicies reads the retry policies of a workflow's jobs.
func jobPolicies(st *batch.State) policies {
	p := policies{workflow: st.Settings.Retries}
	for _, j := range st.Jobs {
		raw, ok := j.Fields[batch.FieldRun]
		if !ok {
			continue
		}
		if spec, err := executor.ParseSpec(raw); err == nil && spec.Retries != nil {
			if p.jobs == nil {
				p.jobs = map[string]batch.Retries{}
			}
			p.jobs[j.Name] = *spec.Retries
		}
	}
	return p
}

// failures counts the attempts of a run in which a job ran and failed.
func failures(run *Run, job string) int {
	n := 0
	for _, a := range run.Attempts {
		if r, ok := a.Jobs[job]; ok && r.Status == batch.StatusFailed.String() {
			n++
		}
	}
	return n
}

// retryPlan says whether a run whose last attempt failed is retried, and after how long. Without
// a job's own policy, the workflow's counts attempts (retries.count re-runs of the failed jobs).
// With one, each job that failed is retried while its own failures do not exceed its policy's
// count (the workflow's for a job without one); the retry comes after the longest backoff of the
// jobs it retries. exhausted names the jobs out of retries ("job: count, ..."), with job policies.
func retryPlan(p policies, run *Run) (wait time.Duration, retry bool, exhausted string) {
	if len(p.jobs) == 0 {
		retries := len(run.Attempts) - 1
		if retries < p.workflow.Count {
			return backoff(p.workflow, retries+1), true, ""
		}
		return 0, false, ""
	}
	last := run.Attempts[len(run.Attempts)-1]
	var failed []string
	for job, r := range last.Jobs {
		if r.Status == batch.StatusFailed.String() {
			failed = append(failed, job)
		}
	}
	if len(failed) == 0 {
		// The attempt failed as a whole (its batch did not open) or only through jobs given up
		// before: the workflow's policy counts attempts.
		if len(last.Jobs) == 0 && len(run.Attempts)-1 < p.workflow.Count {
			return backoff(p.workflow, len(run.Attempts)), true, ""
		}
		return 0, false, ""
	}
	slices.Sort(failed)
	var out []string
	for _, job := range failed {
		pol, n := p.of(job), failures(run, job)
		if n <= pol.Count {
			retry = true
			wait = max(wait, backoff(pol, n))
		} else if pol.Count > 0 {
			out = append(out, fmt.Sprintf("%s: %d", job, pol.Count))
		}
	}
	return wait, retry, strings.Join(out, ", ")
}

// givenUp reports whether a job of a run is out of retries under its own policy: not retried.
func givenUp(p policies, run *Run, job string) bool {
	return len(p.jobs) > 0 && failures(run, job) > p.of(job).Count
}

// start executes the next attempt of a run this replica now holds, in the background.
func (s *Scheduler) start(st *batch.State, run *Run, now time.Time) {
	ctx, cancel := context.WithCancelCause(context.Background())
	e := &execution{run: run, cancel: cancel}
	e.fence = time.AfterFunc(s.fenceAfter(), func() {
		cancel(fmt.Errorf("this replica could not renew its lease on the run for %s (Redis unreachable or the replica stalled): it stopped the run before another replica takes it over", s.fenceAfter()))
	})
	s.mu.Lock()
	s.executing[run.Workflow+"/"+run.ID] = e
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel(nil)
		defer e.fence.Stop()
		defer func() {
			s.mu.Lock()
			delete(s.executing, run.Workflow+"/"+run.ID)
			s.mu.Unlock()
		}()
		// The jobs' transitions are the run's steps: the alerts page for the run's outcome, not
		// for each job the attempt fails.
		if err := s.attempt(event.WithRun(ctx, run.ID), st, run, now); err != nil {
			s.log.Error("run attempt", "workflow", run.Workflow, "run", run.ID, "err", err)
		}
	}()
}

// attempt opens the batch for the run's jobs (the failed ones on a retry), executes them and
// ends each.
func (s *Scheduler) attempt(ctx context.Context, st *batch.State, run *Run, now time.Time) error {
	bg := context.WithoutCancel(ctx) // Redis writes about the outcome must happen even when cancelled
	scope := run.Jobs
	var gaveUp []string // jobs out of their own retries: not run again, failed in this attempt too
	if n := len(run.Attempts); n > 0 {
		pol := jobPolicies(st)
		scope = nil
		for job, r := range run.Attempts[n-1].Jobs {
			if r.Status != batch.StatusSuccess.String() && r.Status != "open" {
				if givenUp(pol, run, job) {
					gaveUp = append(gaveUp, job)
					continue
				}
				scope = append(scope, job)
			}
		}
		if len(scope) == 0 {
			// Nothing left to retry (an empty scope would open every job).
			return s.finish(bg, run, s.opts.Now(), StateFailed, "no job left to retry")
		}
	}
	if run.StartedAt == nil {
		started := now
		run.StartedAt = &started
	}
	// The attempt is recorded before anything happens for it (the batch's open, a process), and
	// again with its batch before any job starts: a replica that dies at any point leaves a record
	// that counts the attempt, so a retry happens only if the policy allows one.
	run.Attempts = append(run.Attempts, Attempt{Number: len(run.Attempts) + 1, Replica: s.opts.ID, Start: s.opts.Now(), Jobs: map[string]*JobResult{}})
	a := &run.Attempts[len(run.Attempts)-1]
	for _, job := range gaveUp {
		// Recorded as skipped: the run fails for it, and the jobs that need it are skipped.
		a.Jobs[job] = &JobResult{Status: "skipped", Error: "not retried: its retries are exhausted"}
	}
	run.State = StateRunning
	if ok, err := s.state.update(bg, run, s.opts.ID, s.opts.Now().Add(s.opts.Lease)); err != nil || !ok {
		return fmt.Errorf("recording the attempt: lost the run (%v)", err)
	}
	req := batch.OpenRequest{Jobs: scope}
	if run.Interval != nil {
		// Every attempt opens the same interval: a retry re-runs exactly the fire's window.
		req.From, req.To, req.Interval = run.Interval.From, run.Interval.To, true
	} else if run.From != nil && a.Number == 1 {
		req.From = *run.From
		if run.To != nil {
			req.To = *run.To
		}
	}
	opened, err := s.opts.Store.Open(bg, run.Workflow, req)
	if err != nil {
		end := s.opts.Now()
		a.End, a.Error = &end, "opening the batch: "+batch.ErrorMessage(err)
		return s.afterAttempt(bg, st, run, end, true, a.Error)
	}
	jobs := pickJobs(opened.Jobs, scope)
	a.BatchID = jobs.BatchID()
	for _, j := range jobs {
		a.Jobs[j.Name] = &JobResult{Status: "pending"}
	}
	if ok, err := s.state.update(bg, run, s.opts.ID, s.opts.Now().Add(s.opts.Lease)); err != nil || !ok {
		return fmt.Errorf("recording the attempt: lost the run (%v)", err)
	}
	s.emit(run, event.TypeRunStarted, "info", fmt.Sprintf("attempt %d started on %s: %d jobs", a.Number, s.opts.ID, len(jobs)))
	// The workflow's timeout bounds the attempt's jobs that have no timeout of their own (run:
	// timeout), which replaces it for its job.
	wctx := ctx
	if d := time.Duration(st.Settings.Timeout); d > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(ctx, d, fmt.Errorf("the run timed out after %s", d))
		defer cancel()
	}
	s.executeJobs(ctx, wctx, run, &run.Attempts[len(run.Attempts)-1], jobs)
	ctx = wctx

	end := s.opts.Now()
	att := &run.Attempts[len(run.Attempts)-1]
	att.End = &end
	failed := false
	for _, r := range att.Jobs {
		if r.Status == batch.StatusFailed.String() || r.Status == "skipped" {
			failed = true
		}
	}
	why := "a job failed"
	if cause := context.Cause(ctx); cause != nil {
		att.Error = cause.Error()
		why = cause.Error()
		var stop stopError
		run.stopped = errors.As(cause, &stop)
		if c, ok := s.cancelReason(bg, run); ok {
			run.cancel = c
		}
	}
	// Read the latest settings: a reload while the run ran may have changed the retry policy.
	if cur, err := s.opts.Store.State(bg, run.Workflow); err == nil {
		st = cur
	}
	return s.afterAttempt(bg, st, run, end, failed, why)
}

// cancelReason reads a cancel request for the run.
func (s *Scheduler) cancelReason(ctx context.Context, run *Run) (string, bool) {
	r, err := s.state.run(ctx, run.Workflow, run.ID)
	if err != nil || r.cancel == "" {
		return "", false
	}
	return r.cancel, true
}

// executeJobs runs the jobs: each starts when the jobs it needs (within this attempt) succeeded;
// the others run in parallel. A job whose need failed is failed without running.
func (s *Scheduler) executeJobs(ctx, wctx context.Context, run *Run, a *Attempt, jobs batch.Jobs) {
	var mu sync.Mutex // guards a.Jobs entries
	done := map[string]chan struct{}{}
	for _, j := range jobs {
		done[j.Name] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func(j batch.Job) {
			defer wg.Done()
			defer close(done[j.Name])
			var needs []string
			if raw, ok := j.Fields[batch.FieldNeeds]; ok {
				json.Unmarshal(raw, &needs)
			}
			for _, n := range needs {
				ch, inAttempt := done[n]
				if !inAttempt {
					mu.Lock()
					r, given := a.Jobs[n]
					mu.Unlock()
					if given && r.Status == "skipped" { // out of its retries
						s.endJob(ctx, run, a, &mu, j.Name, &JobResult{Status: "skipped", Error: "needs " + n + ", which did not succeed"})
						return
					}
					continue // succeeded in an earlier attempt
				}
				<-ch
				mu.Lock()
				st := a.Jobs[n].Status
				mu.Unlock()
				if st != batch.StatusSuccess.String() && st != "open" {
					s.endJob(ctx, run, a, &mu, j.Name, &JobResult{Status: "skipped", Error: "needs " + n + ", which did not succeed"})
					return
				}
			}
			s.runJob(ctx, wctx, run, a, &mu, j)
		}(j)
	}
	wg.Wait()
}

// runJob executes one job and ends it in the store.
func (s *Scheduler) runJob(ctx, wctx context.Context, run *Run, a *Attempt, mu *sync.Mutex, j batch.Job) {
	start := s.opts.Now()
	res := &JobResult{Status: "running", Start: &start}
	mu.Lock()
	a.Jobs[j.Name] = res
	s.recordProgress(ctx, run)
	mu.Unlock()
	spec := executor.Spec{Type: "none"}
	if raw, ok := j.Fields[batch.FieldRun]; ok {
		var err error
		if spec, err = executor.ParseSpec(raw); err != nil {
			s.endJob(ctx, run, a, mu, j.Name, &JobResult{Status: batch.StatusFailed.String(), Start: &start, Error: batch.ErrorMessage(err)})
			return
		}
	}
	ex, err := s.opts.Executors.New(spec)
	if err != nil {
		s.endJob(ctx, run, a, mu, j.Name, &JobResult{Status: batch.StatusFailed.String(), Start: &start, Error: batch.ErrorMessage(err)})
		return
	}
	if _, own := spec.Settings["timeout"]; !own {
		ctx = wctx // the workflow's timeout
	}
	// The job's own run: and needs: are the scheduler's business, and run: may hold secrets
	// (headers, env): neither goes to the job.
	params := batch.Fields{}
	for k, v := range j.Fields {
		if k != batch.FieldRun && k != batch.FieldNeeds {
			params[k] = v
		}
	}
	body, _ := params.MarshalJSON()
	task := executor.Task{
		Workflow: run.Workflow, Job: j.Name, BatchID: a.BatchID, RunID: run.ID, Attempt: a.Number,
		Env:   format.EnvVars(run.Workflow, a.BatchID, batch.Jobs{{Name: j.Name, Fields: params}}),
		Batch: body,
		Log: func(stream, line string) {
			s.opts.Log(run.Workflow, j.Name, run.ID, a.Number, stream, line)
		},
	}
	out := ex.Run(ctx, task)
	if out.Await > 0 && out.Err == nil && !out.Detached {
		r, reported := s.awaitCallback(ctx, run, a, j.Name, out.Await)
		if reported {
			r.Start, r.HTTPStatus = &start, out.HTTPStatus
			mu.Lock()
			a.Jobs[j.Name] = r
			mu.Unlock()
			return // the job ended its batch itself
		}
		out.Err = errors.New(r.Error)
	}
	end := s.opts.Now()
	final := &JobResult{Start: &start, End: &end, HTTPStatus: out.HTTPStatus}
	if spec.Type == "exec" {
		code := out.ExitCode
		final.ExitCode = &code
	}
	switch {
	case out.Detached:
		final.Status = "open"
	case out.Err != nil:
		final.Status, final.Error = batch.StatusFailed.String(), out.Err.Error()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(out.Err, executor.ErrCancelled) {
			final.Error += " (" + cause.Error() + ")"
		}
	default:
		final.Status = batch.StatusSuccess.String()
	}
	s.endJob(ctx, run, a, mu, j.Name, final)
}

// callbackPoll is how often a job that reports its own end (http completion: callback) is looked
// at: one read of the workflow's state.
const callbackPoll = 250 * time.Millisecond

// awaitCallback waits until a job closes or fails its batch itself (through the API, with the
// batch id it was given), for at most d. reported is true when it did: r is then its result; false
// when the wait ended otherwise (timeout, cancel, a newer batch), r.Error saying why.
func (s *Scheduler) awaitCallback(ctx context.Context, run *Run, a *Attempt, job string, d time.Duration) (r *JobResult, reported bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	t := time.NewTicker(callbackPoll)
	defer t.Stop()
	for {
		if st, err := s.opts.Store.State(ctx, run.Workflow); err == nil {
			j, ok := st.Jobs.Get(job)
			if !ok {
				return &JobResult{Error: "the job left the workflow while batchy waited for it to report"}, false
			}
			id, _ := j.Fields.Int(batch.FieldBatchID)
			end, _ := j.Fields.Time(batch.FieldBatchEnd)
			switch {
			case id != a.BatchID:
				return &JobResult{Error: fmt.Sprintf("batch %d was replaced by batch %d before the job reported its end", a.BatchID, id)}, false
			case j.Fields.Status() == batch.StatusSuccess:
				return &JobResult{Status: batch.StatusSuccess.String(), End: &end}, true
			case j.Fields.Status() == batch.StatusFailed:
				return &JobResult{Status: batch.StatusFailed.String(), End: &end, Error: "the job reported its failure"}, true
			}
		}
		select {
		case <-ctx.Done():
			return &JobResult{Error: "cancelled while waiting for the job to report: " + context.Cause(ctx).Error()}, false
		case <-deadline.C:
			return &JobResult{Error: fmt.Sprintf("the job did not close or fail batch %d within its completion timeout (%s)", a.BatchID, d)}, false
		case <-t.C:
		}
	}
}

// endJob records a job's result and closes or fails it in the store, guarded by the batch id.
func (s *Scheduler) endJob(ctx context.Context, run *Run, a *Attempt, mu *sync.Mutex, job string, r *JobResult) {
	if r.End == nil {
		end := s.opts.Now()
		r.End = &end
	}
	mu.Lock()
	a.Jobs[job] = r
	s.recordProgress(ctx, run)
	mu.Unlock()
	var status batch.Status
	switch r.Status {
	case batch.StatusSuccess.String():
		status = batch.StatusSuccess
	case "open":
		return // the external tool closes or fails it
	default:
		status = batch.StatusFailed
	}
	// Strict and guarded by the batch id: a replica that stalled past its lease finds its job
	// already failed by the replica that took the run over (or in a newer batch) and changes
	// nothing.
	_, err := s.opts.Store.End(context.WithoutCancel(ctx), run.Workflow, batch.EndRequest{Jobs: []string{job}, Status: status, BatchID: a.BatchID, Strict: true})
	if err != nil {
		s.log.Warn("ending a job", "workflow", run.Workflow, "job", job, "run", run.ID, "err", err)
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			// A reload removed the job (or the workflow) while it ran: its result has nowhere to
			// go, so the run does not count it as a success.
			mu.Lock()
			r.Status, r.Error = batch.StatusFailed.String(), batch.ErrorMessage(err)
			mu.Unlock()
		}
	}
}

// recordProgress writes the run as it stands while its jobs execute, so that its record says
// which job runs (with its own start) and which still waits for its needs, not "pending" for all
// until the attempt ends. The caller holds the attempt's lock: every change to a.Jobs is made
// under it, so the record is consistent. A failed write is only logged: the attempt's end writes
// the run again, and a lost lease is found by the lease renewal.
func (s *Scheduler) recordProgress(ctx context.Context, run *Run) {
	if _, err := s.state.update(context.WithoutCancel(ctx), run, s.opts.ID, s.opts.Now().Add(s.opts.Lease)); err != nil {
		s.log.Warn("recording a job's progress", "workflow", run.Workflow, "run", run.ID, "err", err)
	}
}

func pickJobs(jobs batch.Jobs, names []string) batch.Jobs {
	if len(names) == 0 {
		return jobs
	}
	var out batch.Jobs
	for _, j := range jobs {
		for _, n := range names {
			if j.Name == n {
				out = append(out, j)
			}
		}
	}
	return out
}
