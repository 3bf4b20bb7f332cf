package scheduler

import (
	"context"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/batchy/batchy/internal/batch"
)

// Window is a run's interval under window: schedule: [From, To), the previous fire time and the
// fire time the run stands for.
type Window struct {
	From time.Time `json:"from_date"`
	To   time.Time `json:"to_date"`
}

// maxBackfillRuns bounds the runs one backfill creates (the run index keeps 1000).
const maxBackfillRuns = 500

// prevFire returns the fire time of sc before t: for a cron expression the previous point of its
// grid, in its time zone; for @every, t less the interval.
func prevFire(sc cron.Schedule, t time.Time) time.Time {
	if c, ok := sc.(cron.ConstantDelaySchedule); ok {
		return t.Add(-c.Delay)
	}
	// Look back twice as far each time until a fire time before t shows, then walk forward to
	// the last one before t: a few steps, whatever the schedule.
	for d := time.Minute; d < 20*366*24*time.Hour; d *= 2 {
		p := sc.Next(t.Add(-d))
		if !p.Before(t) {
			continue
		}
		for {
			n := sc.Next(p)
			if !n.Before(t) {
				return p
			}
			p = n
		}
	}
	return time.Time{}
}

// latestFire returns the latest fire time of sc at or before now.
func latestFire(sc cron.Schedule, now time.Time) time.Time {
	if _, ok := sc.(cron.ConstantDelaySchedule); ok {
		return now.Truncate(time.Second)
	}
	return prevFire(sc, sc.Next(now))
}

// intervalOf returns the interval a fire time stands for.
func intervalOf(sc cron.Schedule, fire time.Time) *Window {
	return &Window{From: prevFire(sc, fire), To: fire}
}

// isFire reports whether t is a fire time of sc (@every has no fixed grid: any second is one).
func isFire(sc cron.Schedule, t time.Time) bool {
	if _, ok := sc.(cron.ConstantDelaySchedule); ok {
		return t.Equal(t.Truncate(time.Second))
	}
	p := prevFire(sc, t)
	return !p.IsZero() && sc.Next(p).Equal(t)
}

// firstStart returns the first fire time at or after from (from itself for @every).
func firstStart(sc cron.Schedule, from time.Time) time.Time {
	if _, ok := sc.(cron.ConstantDelaySchedule); ok {
		return from
	}
	p := sc.Next(from.Add(-time.Second))
	for !p.IsZero() && p.Before(from) {
		p = sc.Next(p)
	}
	return p
}

// nextFire returns the fire time after p (p plus the interval for @every).
func nextFire(sc cron.Schedule, p time.Time) time.Time {
	if c, ok := sc.(cron.ConstantDelaySchedule); ok {
		return p.Add(c.Delay)
	}
	return sc.Next(p)
}

// intervals returns the schedule's intervals that lie within [from, to], oldest first.
func intervals(sc cron.Schedule, from, to time.Time, limit int) ([]Window, error) {
	var out []Window
	p := firstStart(sc, from)
	for !p.IsZero() {
		t := nextFire(sc, p)
		if t.After(to) || t.IsZero() {
			break
		}
		if len(out) == limit {
			return nil, batch.Errorf(batch.EINVALID, "the backfill would create more than %d runs (one per interval of the schedule): backfill a shorter range at a time", limit)
		}
		out = append(out, Window{From: p, To: t})
		p = t
	}
	return out, nil
}

// BackfillRequest asks for a backfill.
type BackfillRequest struct {
	// Jobs limits the runs to these jobs; empty means all.
	Jobs []string
	// From and To bound the backfill. Required: From before To, To not after now.
	From, To time.Time
}

// Backfill creates the runs of a backfill over [From, To]: under window: schedule one run per
// interval of the schedule within it, oldest first (they run one after another); otherwise one
// run over the window [From, To) (as POST .../runs with from_date and to_date). The leader starts
// them at its next ticks.
func (s *Scheduler) Backfill(ctx context.Context, wf string, req BackfillRequest) ([]*Run, error) {
	st, err := s.opts.Store.State(ctx, wf)
	if err != nil {
		return nil, err
	}
	if err := checkJobs(st, req.Jobs); err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if req.From.IsZero() || req.To.IsZero() {
		return nil, batch.Errorf(batch.EINVALID, "a backfill takes a from_date and a to_date")
	}
	if !req.To.After(req.From) {
		return nil, batch.Errorf(batch.EINVALID, "backfill window is empty: to_date is not after from_date")
	}
	if req.To.After(now) {
		return nil, batch.Errorf(batch.EINVALID, "to_date %s is in the future (now is %s): a backfill covers past data", batch.FormatTime(req.To), batch.FormatTime(now))
	}
	if st.Settings.Window != batch.WindowSchedule {
		run, err := s.Trigger(ctx, wf, TriggerRequest{Jobs: req.Jobs, From: req.From, To: req.To})
		if err != nil {
			return nil, err
		}
		return []*Run{run}, nil
	}
	sc, err := s.schedule(st.Settings)
	if err != nil {
		return nil, err
	}
	wins, err := intervals(sc, req.From, req.To, maxBackfillRuns)
	if err != nil {
		return nil, err
	}
	if len(wins) == 0 {
		first := intervals1(sc, req.From)
		return nil, batch.Errorf(batch.EINVALID, "no whole interval of the schedule %q lies between %s and %s: the first from then is [%s, %s)",
			st.Settings.Schedule, batch.FormatTime(req.From), batch.FormatTime(req.To), batch.FormatTime(first.From), batch.FormatTime(first.To))
	}
	runs := make([]*Run, len(wins))
	for i, w := range wins {
		fire := w.To
		r := s.newRun(wf, TriggerBackfill, &fire, now, false)
		r.Jobs = req.Jobs
		iv := w
		r.Interval = &iv
		runs[i] = r
	}
	if _, err := s.state.claim(ctx, wf, "", "", "", now, runs...); err != nil {
		return nil, err
	}
	s.log.Info("backfill created", "workflow", wf, "runs", len(runs), "from", req.From, "to", req.To)
	return runs, nil
}

// intervals1 returns the first interval of the schedule starting at or after from.
func intervals1(sc cron.Schedule, from time.Time) Window {
	p := firstStart(sc, from)
	return Window{From: p, To: nextFire(sc, p)}
}
