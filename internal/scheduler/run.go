package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/executor"
	"github.com/batchy/batchy/internal/format"
)

// advance moves one active run on, as the leader: start it when due, or take it over when the
// replica executing it died.
func (s *Scheduler) advance(ctx context.Context, st *batch.State, id string, now time.Time) error {
	s.mu.Lock()
	_, mine := s.executing[st.Workflow+"/"+id]
	s.mu.Unlock()
	if mine {
		return nil
	}
	peek, err := s.state.run(ctx, st.Workflow, id)
	if err != nil {
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			s.opts.Runs.Forget(ctx, st.Workflow, id)
			return nil
		}
		return err
	}
	if (peek.State == StateQueued || peek.State == StateWaitingRetry) && peek.cancel == "" {
		if peek.NotBefore.After(now) {
			return nil
		}
		if peek.WaitAfter && peek.State == StateQueued {
			ready, err := s.upstreamReady(ctx, st.Settings.After, s.afterSince(ctx, st, now))
			if err != nil || !ready {
				return err
			}
		}
		if peek.FireTime != nil && s.olderCatchupQueued(ctx, st.Workflow, peek) {
			return nil // catch-up runs start oldest first, and scheduled runs after them
		}
		if running := s.activeOther(ctx, st.Workflow, id); running != nil {
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
		if err == nil && r.State == StateQueued && r.Trigger == TriggerCatchup && r.FireTime != nil && r.FireTime.Before(*run.FireTime) {
			return true
		}
	}
	return false
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
	return s.afterAttemptNotBefore(ctx, st.Settings, run, now, true, "replica died", now.Add(s.opts.Lease))
}

// afterAttempt decides what follows an attempt: done, a retry, or failure.
func (s *Scheduler) afterAttempt(ctx context.Context, set batch.Settings, run *Run, now time.Time, failed bool, why string) error {
	return s.afterAttemptNotBefore(ctx, set, run, now, failed, why, time.Time{})
}

// afterAttemptNotBefore is afterAttempt with a retry starting no sooner than earliest.
func (s *Scheduler) afterAttemptNotBefore(ctx context.Context, set batch.Settings, run *Run, now time.Time, failed bool, why string, earliest time.Time) error {
	if !failed {
		return s.finish(ctx, run, now, StateSucceeded, "")
	}
	if run.cancel != "" {
		return s.finish(ctx, run, now, StateCancelled, "cancelled: "+run.cancel)
	}
	if retries := len(run.Attempts) - 1; retries < set.Retries.Count {
		run.State = StateWaitingRetry
		run.NotBefore = now.Add(backoff(set.Retries, retries+1))
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
	if set.Retries.Count > 0 {
		reason = fmt.Sprintf("%s; retries exhausted (%d)", why, set.Retries.Count)
	}
	return s.finish(ctx, run, now, StateFailed, reason)
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
	if n := len(run.Attempts); n > 0 {
		scope = nil
		for job, r := range run.Attempts[n-1].Jobs {
			if r.Status != batch.StatusSuccess.String() && r.Status != "open" {
				scope = append(scope, job)
			}
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
	run.State = StateRunning
	if ok, err := s.state.update(bg, run, s.opts.ID, s.opts.Now().Add(s.opts.Lease)); err != nil || !ok {
		return fmt.Errorf("recording the attempt: lost the run (%v)", err)
	}
	req := batch.OpenRequest{Jobs: scope}
	if run.From != nil && a.Number == 1 {
		req.From = *run.From
		if run.To != nil {
			req.To = *run.To
		}
	}
	opened, err := s.opts.Store.Open(bg, run.Workflow, req)
	if err != nil {
		end := s.opts.Now()
		a.End, a.Error = &end, "opening the batch: "+batch.ErrorMessage(err)
		return s.afterAttempt(bg, st.Settings, run, end, true, a.Error)
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
	if d := time.Duration(st.Settings.Timeout); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, fmt.Errorf("the run timed out after %s", d))
		defer cancel()
	}
	s.executeJobs(ctx, run, &run.Attempts[len(run.Attempts)-1], jobs)

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
	return s.afterAttempt(bg, st.Settings, run, end, failed, why)
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
func (s *Scheduler) executeJobs(ctx context.Context, run *Run, a *Attempt, jobs batch.Jobs) {
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
			s.runJob(ctx, run, a, &mu, j)
		}(j)
	}
	wg.Wait()
}

// runJob executes one job and ends it in the store.
func (s *Scheduler) runJob(ctx context.Context, run *Run, a *Attempt, mu *sync.Mutex, j batch.Job) {
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
