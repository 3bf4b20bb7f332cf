package scheduler

import (
	"context"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/executor"
)

// TriggerRequest asks for a manual run.
type TriggerRequest struct {
	// Jobs limits the run to these jobs; empty means all.
	Jobs []string
	// From, when set, makes the run a backfill over [From, To); To zero means now. Not under
	// window: schedule, whose backfills are one run per interval (Backfill).
	From, To time.Time
	// FireTime, under window: schedule, reruns that fire time: the run's window is its interval.
	// Zero means the latest fire time (the latest whole interval).
	FireTime time.Time
}

// checkJobs refuses a job the workflow does not have.
func checkJobs(st *batch.State, jobs []string) error {
	for _, j := range jobs {
		if _, ok := st.Jobs.Get(j); !ok {
			return batch.Errorf(batch.ENOTFOUND, "job %s is not in workflow %s", j, st.Workflow)
		}
	}
	return nil
}

// Trigger creates a manual run; the leader starts it at its next tick.
func (s *Scheduler) Trigger(ctx context.Context, wf string, req TriggerRequest) (*Run, error) {
	st, err := s.opts.Store.State(ctx, wf)
	if err != nil {
		return nil, err
	}
	if err := checkJobs(st, req.Jobs); err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if st.Settings.Window == batch.WindowSchedule {
		return s.triggerInterval(ctx, st, req, now)
	}
	if !req.FireTime.IsZero() {
		return nil, batch.Errorf(batch.EINVALID, "fire_time reruns the interval of a fire time: workflow %s has no window: schedule", wf)
	}
	if !req.From.IsZero() {
		to := req.To
		if to.IsZero() {
			to = now
		}
		if !to.After(req.From) {
			return nil, batch.Errorf(batch.EINVALID, "backfill window is empty: to_date is not after from_date")
		}
	} else if !req.To.IsZero() {
		return nil, batch.Errorf(batch.EINVALID, "to_date needs a from_date: a backfill takes both")
	}
	if st.Settings.Concurrency == "queue" {
		// Queued behind the others, unless the queue is full.
		if r := s.activeOther(ctx, wf, ""); r != nil {
			ids, _ := s.state.active(ctx, wf)
			queued := 0
			for _, id := range ids {
				q, err := s.state.run(ctx, wf, id)
				held := err == nil && st.Paused && q.Trigger != TriggerManual && q.Trigger != TriggerBackfill
				if err == nil && q.State == StateQueued && q.cancel == "" && !held {
					queued++
				}
			}
			if queued >= maxQueued(st.Settings) {
				return nil, batch.Errorf(batch.ECONFLICT, "workflow %s has %d runs queued behind run %s (concurrency: queue, max_queued: %d): cancel one or wait", wf, queued, r.ID, maxQueued(st.Settings))
			}
		}
	} else if st.Settings.Concurrency != "allow" && st.Settings.Concurrency != "replace" {
		// Under forbid the run would only be skipped: say so now, naming the run in the way.
		// (Two manual runs triggered at the same instant may both pass; the later is skipped.)
		if r := s.activeOther(ctx, wf, ""); r != nil {
			return nil, batch.Errorf(batch.ECONFLICT, "workflow %s has run %s %s (concurrency: forbid): cancel it or wait for it to end", wf, r.ID, activeWord(r.State))
		}
	}
	run := s.newRun(wf, TriggerManual, nil, now, false)
	run.Jobs = req.Jobs
	if !req.From.IsZero() {
		from := req.From
		run.From = &from
		if !req.To.IsZero() {
			to := req.To
			run.To = &to
		}
	}
	if _, err := s.state.claim(ctx, wf, "", "", "", now, run); err != nil {
		return nil, err
	}
	s.log.Info("manual run created", "workflow", wf, "run", run.ID)
	return run, nil
}

// triggerInterval creates a manual run of a window: schedule workflow: the interval of the
// requested fire time, or of the latest one. It waits for a run in the way rather than being
// refused: intervals run one after another.
func (s *Scheduler) triggerInterval(ctx context.Context, st *batch.State, req TriggerRequest, now time.Time) (*Run, error) {
	wf := st.Workflow
	if !req.From.IsZero() || !req.To.IsZero() {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s has window: schedule: a backfill is one run per interval (POST /v1/workflows/%s/backfill, batchy backfill); rerun one interval with fire_time", wf, wf)
	}
	sc, err := s.schedule(st.Settings)
	if err != nil {
		return nil, err
	}
	fire := req.FireTime
	switch {
	case fire.IsZero():
		fire = latestFire(sc, now)
	case fire.After(now):
		return nil, batch.Errorf(batch.EINVALID, "fire_time %s is in the future (now is %s): its interval has not ended", batch.FormatTime(fire), batch.FormatTime(now))
	case !isFire(sc, fire):
		return nil, batch.Errorf(batch.EINVALID, "fire_time %s is not a fire time of the schedule %q: the nearest before it is %s", batch.FormatTime(fire), st.Settings.Schedule, batch.FormatTime(prevFire(sc, fire)))
	}
	run := s.newRun(wf, TriggerManual, &fire, now, false)
	run.Jobs = req.Jobs
	run.Interval = intervalOf(sc, fire)
	if _, err := s.state.claim(ctx, wf, "", "", "", now, run); err != nil {
		return nil, err
	}
	s.log.Info("manual run created", "workflow", wf, "run", run.ID, "fire_time", fire)
	return run, nil
}

// Cancel asks for a run to be cancelled: a queued run ends at the leader's next tick, a running
// one has its processes killed and its jobs failed with the reason.
func (s *Scheduler) Cancel(ctx context.Context, wf, id, reason string) error {
	if err := batch.CheckName("workflow", wf); err != nil {
		return err
	}
	if reason == "" {
		reason = "cancelled through the API"
	}
	if err := s.state.cancel(ctx, wf, id, reason); err != nil {
		return err
	}
	// Act at once if this replica executes it.
	s.mu.Lock()
	e, ok := s.executing[wf+"/"+id]
	s.mu.Unlock()
	if ok {
		e.cancel(errCancelled(reason))
	}
	return nil
}

// errCancelled is the cause a cancelled run's context carries: its reason alone, since the
// executors report "cancelled: <cause>".
type errCancelled string

func (e errCancelled) Error() string { return string(e) }

// Runs lists a workflow's runs, newest first.
func (s *Scheduler) Runs(ctx context.Context, wf string, limit int) ([]*Run, error) {
	if _, err := s.opts.Store.State(ctx, wf); err != nil {
		return nil, err
	}
	return s.state.runs(ctx, wf, limit)
}

// NewestRuns lists the limit newest runs of each of wfs (newest first, in the order of wfs) in a
// fixed number of round trips: for a page of workflows whose states the caller has read.
func (s *Scheduler) NewestRuns(ctx context.Context, wfs []string, limit int) ([][]*Run, error) {
	return s.state.newestRuns(ctx, wfs, limit)
}

// GetRun returns one run.
func (s *Scheduler) GetRun(ctx context.Context, wf, id string) (*Run, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	return s.state.run(ctx, wf, id)
}

// AfterCycle returns the cycle that wf's after: targets would close, as workflow names from wf
// back to wf, or nil. after returns another workflow's after: targets (false when it has none or
// is unknown). A cycle would make each run of one workflow start the next, forever.
func AfterCycle(wf string, targets []string, after func(wf string) ([]string, bool)) []string {
	var path []string
	seen := map[string]bool{}
	var visit func(name string, next []string) bool
	visit = func(name string, next []string) bool {
		path = append(path, name)
		for _, raw := range next {
			t, err := batch.ParseTarget(raw)
			if err != nil {
				continue
			}
			if t.Workflow == wf {
				path = append(path, wf)
				return true
			}
			if seen[t.Workflow] {
				continue
			}
			seen[t.Workflow] = true
			if up, ok := after(t.Workflow); ok && visit(t.Workflow, up) {
				return true
			}
		}
		path = path[:len(path)-1]
		return false
	}
	if visit(wf, targets) {
		return path
	}
	return nil
}

// Validate checks what the scheduler needs of a workflow beyond the file's structure: the cron
// expression and every job's run: settings against the executors.
func Validate(wf *batch.Workflow, reg *executor.Registry, loc *time.Location) error {
	if wf.Settings.Schedule != "" {
		if loc == nil {
			loc = time.UTC
		}
		if wf.Settings.Timezone != "" {
			if l, err := time.LoadLocation(wf.Settings.Timezone); err == nil {
				loc = l
			}
		}
		if _, err := ParseSchedule(wf.Settings.Schedule, loc); err != nil {
			return batch.Errorf(batch.EINVALID, "workflow %s: %s", wf.Name, batch.ErrorMessage(err))
		}
	}
	if reg == nil {
		reg = executor.Default()
	}
	for _, j := range wf.Jobs {
		raw, ok := j.Fields[batch.FieldRun]
		if !ok {
			continue
		}
		spec, err := executor.ParseSpec(raw)
		if err == nil {
			_, err = reg.New(spec)
		}
		if err != nil {
			return batch.Errorf(batch.EINVALID, "workflow %s: job %s: %s", wf.Name, j.Name, batch.ErrorMessage(err))
		}
	}
	return nil
}
