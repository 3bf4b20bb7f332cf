// Package scheduler runs workflows by themselves: on a cron schedule, when upstream workflows are
// ready, or when asked through the API. A run opens the batch, executes the jobs (in the order
// their needs give, in parallel otherwise) and closes or fails each job; failed jobs are retried
// over the same window after a backoff.
//
// Several batchy replicas may share one Redis: one of them holds the leader lease and decides
// what runs; every decision that must happen once (a fire time, starting a run, taking over the
// run of a replica that died) is one atomic Lua script. Nothing the replicas must share lives in
// the process.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/executor"
	"github.com/batchy/batchy/internal/rdb"
)

// Run states.
const (
	StateQueued       = "queued"        // waiting to start (or for its upstream with after:)
	StateRunning      = "running"       // an attempt is executing
	StateWaitingRetry = "waiting_retry" // an attempt failed; the next starts at not_before
	StateSucceeded    = "succeeded"
	StateFailed       = "failed"
	StateCancelled    = "cancelled"
	StateSkipped      = "skipped" // not started: another run was running (concurrency: forbid)
)

// Triggers: what created a run.
const (
	TriggerCron    = "cron"
	TriggerAfter   = "after"
	TriggerManual  = "manual"
	TriggerCatchup = "catchup"
	// TriggerBackfill: one run of a backfill (window: schedule: one per interval).
	TriggerBackfill = "backfill"
)

// Run is one run of a workflow, with its attempts.
type Run struct {
	ID        string     `json:"id"`
	Workflow  string     `json:"workflow"`
	Trigger   string     `json:"trigger"`
	State     string     `json:"state"`
	FireTime  *time.Time `json:"fire_time,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// NotBefore is when the run (or its next attempt) may start.
	NotBefore time.Time `json:"not_before"`
	// Jobs limits the run to these jobs; empty means all.
	Jobs []string `json:"jobs,omitempty"`
	// From and To make the run a backfill over [From, To).
	From *time.Time `json:"from_date,omitempty"`
	To   *time.Time `json:"to_date,omitempty"`
	// Interval is the run's window under window: schedule: the interval of its fire time.
	Interval *Window `json:"interval,omitempty"`
	// WaitAfter: a scheduled run of a workflow with after: starts once its upstream is ready.
	WaitAfter bool      `json:"wait_after,omitempty"`
	Attempts  []Attempt `json:"attempts"`
	// Reason says why the run failed, was cancelled or skipped.
	Reason string `json:"reason,omitempty"`

	cancel string // the cancel request, read from Redis
	// stopped: this replica's graceful shutdown stopped the attempt (Stop), which is no failure of
	// its jobs: the attempt's events say so (run.stopped), and raise no alert.
	stopped bool
}

// Attempt is one execution of (the failed jobs of) a run.
type Attempt struct {
	Number  int                   `json:"number"`
	BatchID int64                 `json:"batch_id,omitempty"`
	Replica string                `json:"replica"`
	Start   time.Time             `json:"start"`
	End     *time.Time            `json:"end,omitempty"`
	Jobs    map[string]*JobResult `json:"jobs"`
	Error   string                `json:"error,omitempty"`
}

// JobResult is how one job of an attempt ended.
type JobResult struct {
	// Status is success, failed, open (run by an external tool: executor none) or skipped.
	Status     string     `json:"status"`
	Start      *time.Time `json:"start,omitempty"`
	End        *time.Time `json:"end,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	HTTPStatus int        `json:"http_status,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// LogFunc receives every line a job's executor produces.
type LogFunc func(wf, job, runID string, attempt int, stream, line string)

// Options configure a Scheduler.
type Options struct {
	// Store keeps the batch state. Required.
	Store batch.Store
	// Runs keeps the scheduler's own state, shared by all replicas (rdb.Store.Scheduler).
	// Required.
	Runs RunStore
	// Executors builds job executors; nil means executor.Default().
	Executors *executor.Registry
	// Location is the default time zone of schedules and "today"; nil means UTC.
	Location *time.Location
	// ID names this replica in leases and run records; "" means hostname-pid-random.
	ID string
	// Lease is how long a leader or run lease lasts without renewal; zero means 15s. A replica
	// that dies is replaced within about this time.
	Lease time.Duration
	// Tick is how often Run evaluates; zero means 1s.
	Tick time.Duration
	// RunsKept is how many runs of a workflow are kept; zero means 1000.
	RunsKept int
	// Now is the clock; nil means time.Now. Tests drive Tick with their own times instead.
	Now func() time.Time
	// Events receives run steps (scheduled, started, retried, finished, cancelled) and, unless
	// Log is set, job output as log events; nil means the Logger only.
	Events *event.Bus
	// Log receives job output; nil means Events, or the Logger without Events.
	Log LogFunc
	// Logger receives the scheduler's own log; nil means slog.Default().
	Logger *slog.Logger
}

// Scheduler evaluates triggers and executes runs.
type Scheduler struct {
	opts  Options
	state *runState
	log   *slog.Logger

	mu        sync.Mutex
	leader    bool
	executing map[string]*execution // runs this replica executes, by workflow/id
	schedules map[string]cron.Schedule
	wg        sync.WaitGroup

	// tickMu makes ticks one at a time, whoever calls Tick.
	tickMu sync.Mutex
	// The leader's view of the due index, kept by Tick (under tickMu): scanned is true once
	// a tick as leader looked at every workflow; changesSeen is the sequence number of the latest
	// change read from the index of changes; dependents maps an upstream workflow to the
	// workflows with after: on it, upstream the reverse.
	scanned     bool
	changesSeen int64
	dependents  map[string]map[string]bool
	upstream    map[string][]string
	// nextDue is the earliest time after the last tick a workflow is due (zero when this replica
	// is not the leader): Run wakes then rather than at its next tick.
	nextDue time.Time
}

// execution is a run attempt in progress in this process.
type execution struct {
	run    *Run
	cancel context.CancelCauseFunc
	// fence cancels the attempt when its lease was not renewed for fenceAfter (real time): this
	// replica is cut off from Redis or stalled, and another will take the run over once the lease
	// expires, so its processes must be gone by then.
	fence *time.Timer
}

// fenceAfter is how long an execution goes on without a renewal of its lease: three quarters of
// a lease, so that its processes get SIGTERM before the lease expires.
func (s *Scheduler) fenceAfter() time.Duration { return s.opts.Lease * 3 / 4 }

// ReplicaID returns a name for this process in leases and run records: hostname-pid-random.
func ReplicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// New returns a scheduler; call Run to start it.
func New(opts Options) *Scheduler {
	if opts.Executors == nil {
		opts.Executors = executor.Default()
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.ID == "" {
		opts.ID = ReplicaID()
	}
	if opts.Lease <= 0 {
		opts.Lease = 15 * time.Second
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.RunsKept <= 0 {
		opts.RunsKept = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Log == nil && opts.Events != nil {
		bus := opts.Events
		opts.Log = func(wf, job, runID string, attempt int, stream, line string) {
			level := "info"
			if stream == "stderr" {
				level = "warn"
			}
			bus.Emit(context.Background(), event.Event{Workflow: wf, Job: job, RunID: runID, Type: event.TypeLog, Level: level,
				Message: line, Fields: map[string]any{"stream": stream, "attempt": attempt}})
		}
	}
	if opts.Log == nil {
		l := opts.Logger
		opts.Log = func(wf, job, runID string, attempt int, stream, line string) {
			l.Info("job output", "workflow", wf, "job", job, "run", runID, "attempt", attempt, "stream", stream, "line", line)
		}
	}
	return &Scheduler{
		opts:       opts,
		state:      &runState{store: opts.Runs, keep: opts.RunsKept},
		log:        opts.Logger,
		executing:  map[string]*execution{},
		schedules:  map[string]cron.Schedule{},
		dependents: map[string]map[string]bool{},
		upstream:   map[string][]string{},
	}
}

// ID returns this replica's id.
func (s *Scheduler) ID() string { return s.opts.ID }

// Leader reports whether this replica held the leader lease at its last tick.
func (s *Scheduler) Leader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// Run ticks until ctx ends, then cancels nothing: runs in progress finish (their leases are
// renewed until then) unless Stop is called.
//
// The leader wakes at the next due time when it comes before the next tick (its tick's read of the
// due index also returns it): a fire starts within milliseconds of its time, not up to a tick late.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	next := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next = next.Add(s.opts.Tick)
		if now := time.Now(); next.Before(now) {
			next = now.Add(s.opts.Tick) // a tick that overran: skip the ticks missed, as a Ticker does
		}
		if err := s.Tick(ctx, s.opts.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduler tick", "err", err)
		}
		s.tickMu.Lock()
		due := s.nextDue
		s.tickMu.Unlock()
		wake := next
		if !due.IsZero() && due.Before(wake) {
			// Ticks at most every minTickGap, however many distinct due times a second holds.
			wake = due
			if soonest := time.Now().Add(minTickGap); wake.Before(soonest) {
				wake = soonest
			}
		}
		t.Reset(time.Until(wake))
	}
}

// minTickGap is the shortest wait between two ticks of Run.
const minTickGap = 50 * time.Millisecond

// Stop cancels this replica's runs (their jobs fail with the reason), waits for them, and gives up
// the leader lease so another replica takes over at once.
func (s *Scheduler) Stop(reason string) {
	s.mu.Lock()
	for _, e := range s.executing {
		e.cancel(stopError{reason})
	}
	s.mu.Unlock()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.state.release(ctx, s.opts.ID)
}

// stopError is the cause of an attempt stopped by Stop: a shutdown, not a failure of the jobs.
type stopError struct{ reason string }

func (e stopError) Error() string { return e.reason }

// Wait blocks until every run attempt this replica started has finished (for tests and shutdown).
func (s *Scheduler) Wait() { s.wg.Wait() }

// Tick does one round at time now: renew this replica's leases, and, as the leader, fire due
// triggers, take over runs of dead replicas and start due runs. The leader looks only at the
// workflows the due index gives (a fire time come, runs in progress, a load, a manual run) and at
// those whose after: upstream changed: an idle tick costs a few Redis calls whatever the number
// of workflows (TestIdleTickCost). The first tick after it becomes the leader looks at every
// workflow once, to learn the after: dependencies and repair the index.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) error {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	s.renewOwn(ctx, now)
	leader, err := s.state.lease(ctx, s.opts.ID, now, s.opts.Lease)
	s.mu.Lock()
	was := s.leader
	s.leader = leader && err == nil
	s.mu.Unlock()
	s.nextDue = time.Time{}
	if err != nil || !leader {
		return err
	}
	// A tick ends within half a lease, whatever Redis does: the leader must renew its lease and
	// the runs it executes in time.
	ctx, cancel := context.WithTimeout(ctx, s.opts.Lease/2)
	defer cancel()
	var due []rdb.DueEntry
	next := rdb.Never // the first due time after now (a scan looks at every workflow: see updates)
	if !was || !s.scanned {
		due, err = s.scanAll(ctx)
	} else {
		due, next, err = s.opts.Runs.Due(ctx, now, s.opts.Tick, maxDuePerTick)
	}
	if err != nil {
		return err
	}
	changed, err := s.changedDependents(ctx)
	if err != nil {
		return err
	}
	inDue := make(map[string]bool, len(due))
	for _, d := range due {
		inDue[d.Workflow] = true
	}
	var extra []string
	for _, wf := range changed {
		if !inDue[wf] {
			extra = append(extra, wf)
		}
	}
	// Workflows are independent and each costs a few Redis round trips: a few at a time keep a
	// tick over thousands of due workflows within its second (BenchmarkTick).
	updates := make([]rdb.DueUpdate, len(due))
	nexts := make([]time.Time, len(extra))
	sem := make(chan struct{}, tickParallelism)
	var wg sync.WaitGroup
	do := func(wf string, next *time.Time) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			n, err := s.tickWorkflow(ctx, wf, now)
			if err != nil {
				s.log.Warn("scheduler", "workflow", wf, "err", err)
				n = now // look again at the next tick
			}
			*next = n
		}()
	}
	for i, d := range due {
		updates[i].DueEntry = d
		do(d.Workflow, &updates[i].Next)
	}
	for i, wf := range extra {
		do(wf, &nexts[i])
	}
	wg.Wait()
	if err := s.opts.Runs.SetDue(ctx, updates); err != nil {
		return err
	}
	for i, wf := range extra {
		if nexts[i].Before(rdb.Never) {
			if err := s.opts.Runs.MarkDue(ctx, wf); err != nil {
				return err
			}
		}
	}
	s.scanned = true
	for _, u := range updates {
		if u.Next.After(now) && u.Next.Before(next) {
			next = u.Next
		}
	}
	if next.After(now) {
		s.nextDue = next
	}
	return nil
}

// tickParallelism is how many workflows a tick handles at once.
const tickParallelism = 16

// maxDuePerTick bounds the workflows one tick handles; the rest stay due for the next.
const maxDuePerTick = 1000

// scanAll returns every workflow as due, those the due index lacks with an empty score: the
// first tick of a new leader looks at all of them.
func (s *Scheduler) scanAll(ctx context.Context) ([]rdb.DueEntry, error) {
	names, err := s.opts.Store.Workflows(ctx)
	if err != nil {
		return nil, err
	}
	indexed, _, err := s.opts.Runs.Due(ctx, rdb.Never, 0, 0)
	if err != nil {
		return nil, err
	}
	score := make(map[string]string, len(indexed))
	for _, d := range indexed {
		score[d.Workflow] = d.Score
	}
	out := make([]rdb.DueEntry, len(names))
	for i, wf := range names {
		out[i] = rdb.DueEntry{Workflow: wf, Score: score[wf]}
	}
	// Every change so far is covered by this scan: later ticks read the changes after it.
	changes, err := s.opts.Runs.ChangedSince(ctx, math.MinInt64)
	if err != nil {
		return nil, err
	}
	s.changesSeen = 0
	for _, c := range changes {
		s.changesSeen = max(s.changesSeen, c.At)
	}
	return out, nil
}

// changedDependents returns the workflows with after: on a workflow that ended a batch or was
// loaded since the last tick.
func (s *Scheduler) changedDependents(ctx context.Context) ([]string, error) {
	if !s.scanned {
		return nil, nil // this tick looks at every workflow
	}
	changes, err := s.opts.Runs.ChangedSince(ctx, s.changesSeen)
	if err != nil {
		return nil, err
	}
	var out []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		s.changesSeen = max(s.changesSeen, c.At)
		for d := range s.dependents[c.Workflow] {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// noteAfter records the upstream workflows of wf's after:, so that their changes wake it.
func (s *Scheduler) noteAfter(wf string, after []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, up := range s.upstream[wf] {
		delete(s.dependents[up], wf)
	}
	ups := make([]string, 0, len(after))
	for _, a := range after {
		t, err := batch.ParseTarget(a)
		if err != nil {
			continue
		}
		ups = append(ups, t.Workflow)
		if s.dependents[t.Workflow] == nil {
			s.dependents[t.Workflow] = map[string]bool{}
		}
		s.dependents[t.Workflow][wf] = true
	}
	s.upstream[wf] = ups
}

// renewOwn extends the leases of the runs this replica executes and acts on cancel requests.
func (s *Scheduler) renewOwn(ctx context.Context, now time.Time) {
	s.mu.Lock()
	own := make([]*execution, 0, len(s.executing))
	for _, e := range s.executing {
		own = append(own, e)
	}
	s.mu.Unlock()
	refs := make([]rdb.RunRef, len(own))
	for i, e := range own {
		refs[i] = rdb.RunRef{Workflow: e.run.Workflow, ID: e.run.ID}
	}
	// One round trip for all of them, whatever their number.
	sent := time.Now()
	reasons, errs := s.opts.Runs.RenewAll(ctx, s.opts.ID, now.Add(s.opts.Lease), refs)
	for i, e := range own {
		reason, err := reasons[i], errs[i]
		if err == nil {
			e.fence.Reset(s.fenceAfter() - time.Since(sent))
		}
		switch {
		case err != nil && isLost(err):
			e.cancel(fmt.Errorf("another replica took the run over"))
		case err == nil && reason != "":
			e.cancel(fmt.Errorf("cancelled: %s", reason))
		}
	}
}

// isLost reports whether renewing a run's lease failed because another replica took it over.
func isLost(err error) bool {
	return batch.ErrorCode(err) == batch.ECONFLICT
}

// tickWorkflow fires the workflow's due triggers and advances its runs; it returns when the
// leader should look at it next: its next fire time, the next tick while it has runs in progress,
// or rdb.Never.
func (s *Scheduler) tickWorkflow(ctx context.Context, wf string, now time.Time) (time.Time, error) {
	st, err := s.opts.Store.State(ctx, wf)
	if batch.ErrorCode(err) == batch.ENOTFOUND {
		return rdb.Never, nil // its load marks it due
	}
	if err != nil {
		return time.Time{}, err
	}
	s.noteAfter(wf, st.Settings.After)
	next := rdb.Never
	// A paused workflow claims no fire time: those that pass meanwhile are missed, and its
	// catchup setting says what runs for them once it is resumed (which marks it due).
	if st.Settings.Scheduled() && !st.Paused {
		if next, err = s.fire(ctx, st, now); err != nil {
			return time.Time{}, err
		}
	}
	ids, err := s.state.active(ctx, wf)
	if err != nil {
		return time.Time{}, err
	}
	held := 0
	for _, id := range ids {
		h, err := s.advance(ctx, st, id, now)
		if err != nil {
			s.log.Warn("scheduler: run", "workflow", wf, "run", id, "err", err)
		}
		if h {
			held++
		}
	}
	if len(ids) > held && next.After(now.Add(s.opts.Tick)) {
		// Runs in progress: queued, waiting for a retry or an upstream, running (the replica
		// executing it may die). Look again at the next tick, or at the next fire when it comes
		// before. Runs a pause holds wait for the resume, which marks the workflow due: a paused
		// workflow costs the ticks nothing.
		next = now
	}
	return next, nil
}

// location returns a workflow's schedule time zone.
func (s *Scheduler) location(set batch.Settings) *time.Location {
	if set.Timezone != "" {
		if loc, err := time.LoadLocation(set.Timezone); err == nil {
			return loc
		}
	}
	return s.opts.Location
}

// schedule parses (and caches) a workflow's cron expression.
func (s *Scheduler) schedule(set batch.Settings) (cron.Schedule, error) {
	loc := s.location(set)
	key := loc.String() + " " + set.Schedule
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc, ok := s.schedules[key]; ok {
		return sc, nil
	}
	sc, err := ParseSchedule(set.Schedule, loc)
	if err != nil {
		return nil, err
	}
	s.schedules[key] = sc
	return sc, nil
}

// NextFire is a workflow's next scheduled fire after now, in its time zone (timezone, or def when
// empty or unknown); false without a schedule or with one that does not parse.
func NextFire(schedule, timezone string, def *time.Location, now time.Time) (time.Time, bool) {
	if schedule == "" {
		return time.Time{}, false
	}
	loc := def
	if timezone != "" {
		if l, err := time.LoadLocation(timezone); err == nil {
			loc = l
		}
	}
	sc, err := ParseSchedule(schedule, loc)
	if err != nil {
		return time.Time{}, false
	}
	next := sc.Next(now)
	return next, !next.IsZero()
}

// ParseSchedule reads a cron expression: 5 fields, or a descriptor such as @daily or @every 15m.
func ParseSchedule(expr string, loc *time.Location) (cron.Schedule, error) {
	// robfig/cron reads "@every -5s" and "@every 0s" as every second: refuse them instead.
	if every, ok := strings.CutPrefix(strings.TrimSpace(expr), "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return nil, batch.Errorf(batch.EINVALID, "schedule %q: @every needs a duration of 1s or more", expr)
		}
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sc, err := p.Parse("CRON_TZ=" + loc.String() + " " + expr)
	if err != nil {
		return nil, batch.Errorf(batch.EINVALID, "schedule %q: %v", expr, err)
	}
	return sc, nil
}

// recentFire: a fire time at most this old runs as "cron"; older ones are missed (catch-up).
const recentFire = time.Minute

// fire claims the workflow's due fire times and creates their runs; it returns the next fire
// time (rdb.Never without a schedule: an upstream's change wakes after:).
func (s *Scheduler) fire(ctx context.Context, st *batch.State, now time.Time) (time.Time, error) {
	set := st.Settings
	sched, err := s.state.sched(ctx, st.Workflow)
	if err != nil {
		return time.Time{}, err
	}
	if set.Schedule == "" {
		return rdb.Never, s.fireAfter(ctx, st, sched, now)
	}
	sc, err := s.schedule(set)
	if err != nil {
		return rdb.Never, err
	}
	last := sched["last_fire"]
	if last == "" {
		// A new schedule starts from now: it does not catch up on fire times before it existed.
		_, err := s.state.claim(ctx, st.Workflow, "last_fire", "", msString(now), now)
		return sc.Next(now), err
	}
	lastMs, _ := parseMs(last)
	lookback := time.Duration(set.CatchupLookback)
	if lookback <= 0 {
		lookback = 24 * time.Hour
	}
	var due []time.Time
	for t := sc.Next(time.UnixMilli(lastMs)); !t.After(now) && len(due) < 10000; t = sc.Next(t) {
		if now.Sub(t) <= lookback {
			due = append(due, t)
		}
	}
	if len(due) == 0 {
		if next := sc.Next(time.UnixMilli(lastMs)); !next.After(now) {
			// Every missed fire is beyond the lookback: just move on.
			_, err := s.state.claim(ctx, st.Workflow, "last_fire", last, msString(now), now)
			return sc.Next(now), err
		}
		return sc.Next(time.UnixMilli(lastMs)), nil
	}
	latest := due[len(due)-1]
	var runs []*Run
	mk := func(t time.Time) *Run {
		trigger := TriggerCron
		if now.Sub(t) > recentFire || !t.Equal(latest) {
			trigger = TriggerCatchup // missed: late, or followed by another fire time already
		}
		ft := t
		r := s.newRun(st.Workflow, trigger, &ft, now, len(set.After) > 0)
		if set.Window == batch.WindowSchedule {
			r.Interval = intervalOf(sc, t)
		}
		return r
	}
	switch set.Catchup {
	case "none":
		if now.Sub(latest) <= recentFire {
			runs = append(runs, mk(latest))
		}
	case "all":
		for _, t := range due {
			runs = append(runs, mk(t))
		}
	default: // latest
		runs = append(runs, mk(latest))
	}
	if len(set.After) > 0 && set.Window != batch.WindowSchedule && s.waitingForUpstream(ctx, st.Workflow) {
		// A run is still waiting for the upstream: this fire time merges into it rather than
		// queue another run behind the same condition. (An interval is never merged away: each
		// fire time's run waits in turn.)
		runs = nil
	}
	ok, err := s.state.claim(ctx, st.Workflow, "last_fire", last, msString(latest), now, runs...)
	if ok && len(runs) > 0 {
		s.log.Info("scheduled", "workflow", st.Workflow, "runs", len(runs), "fire_time", latest)
		for _, r := range runs {
			s.emit(r, event.TypeRunScheduled, "info", "run scheduled for "+r.FireTime.UTC().Format(time.RFC3339)+" ("+r.Trigger+")")
		}
	}
	return sc.Next(latest), err
}

// fireAfter starts a workflow that has after: and no schedule once all its upstream targets are
// ready since its own last such run (or since today's midnight, before its first).
func (s *Scheduler) fireAfter(ctx context.Context, st *batch.State, sched map[string]string, now time.Time) error {
	last := sched["last_after"]
	since := batch.Midnight(now, s.location(st.Settings))
	if us, ok := parseMs(last); ok {
		// Strictly after the last trigger (µs, the stored precision of batch_end): the upstream
		// success that triggered it must not trigger it again.
		since = time.UnixMicro(us + 1)
	}
	ready, err := s.upstreamReady(ctx, st.Settings.After, since)
	if err != nil || !ready {
		return err
	}
	run := s.newRun(st.Workflow, TriggerAfter, nil, now, false)
	ok, err := s.state.claim(ctx, st.Workflow, "last_after", last, strconv.FormatInt(now.UnixMicro(), 10), now, run)
	if ok {
		s.log.Info("upstream ready: run created", "workflow", st.Workflow, "run", run.ID)
		s.emit(run, event.TypeRunScheduled, "info", "upstream ready: run scheduled")
	}
	return err
}

// waitingForUpstream reports whether a queued run of the workflow waits for its after: targets.
func (s *Scheduler) waitingForUpstream(ctx context.Context, wf string) bool {
	ids, _ := s.state.active(ctx, wf)
	for _, id := range ids {
		if r, err := s.state.run(ctx, wf, id); err == nil && r.State == StateQueued && r.WaitAfter {
			return true
		}
	}
	return false
}

// upstreamReady reports whether every target is ready since since (SPEC.md "Readiness").
func (s *Scheduler) upstreamReady(ctx context.Context, after []string, since time.Time) (bool, error) {
	for _, a := range after {
		t, err := batch.ParseTarget(a)
		if err != nil {
			return false, err
		}
		st, err := s.opts.Store.State(ctx, t.Workflow)
		if err != nil {
			if batch.ErrorCode(err) == batch.ENOTFOUND {
				return false, nil // not loaded yet: not ready
			}
			return false, err
		}
		js, err := batch.Standings(t, st.Jobs, since)
		if err != nil {
			return false, nil
		}
		if batch.Overall(js, false) != batch.Ready {
			return false, nil
		}
	}
	return true, nil
}

// newRun returns a queued run.
func (s *Scheduler) newRun(wf, trigger string, fire *time.Time, now time.Time, waitAfter bool) *Run {
	b := make([]byte, 3)
	rand.Read(b)
	return &Run{
		ID:        now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b),
		Workflow:  wf,
		Trigger:   trigger,
		State:     StateQueued,
		FireTime:  fire,
		CreatedAt: now,
		NotBefore: now,
		WaitAfter: waitAfter,
		Attempts:  []Attempt{},
	}
}

// backoff is the wait before retry number n (1 for the first retry).
func backoff(r batch.Retries, n int) time.Duration {
	base, max := time.Duration(r.Backoff), time.Duration(r.MaxBackoff)
	if base <= 0 {
		base = 30 * time.Second
	}
	if max <= 0 {
		max = 10 * time.Minute
	}
	d := time.Duration(float64(base) * math.Pow(2, float64(n-1)))
	if d > max || d <= 0 {
		d = max
	}
	if r.Jitter > 0 {
		d += time.Duration(mrand.Float64() * r.Jitter * float64(d))
	}
	return d
}

func parseMs(s string) (int64, bool) {
	var v int64
	_, err := fmt.Sscan(s, &v)
	return v, err == nil && s != ""
}

// emit records a run step.
func (s *Scheduler) emit(run *Run, typ, level, msg string) {
	if s.opts.Events == nil {
		return
	}
	if run.stopped && (typ == event.TypeRunRetried || typ == event.TypeRunFinished) {
		typ, level = event.TypeRunStopped, "warn"
	}
	e := event.Event{Workflow: run.Workflow, RunID: run.ID, Type: typ, Level: level, Message: msg,
		Fields: map[string]any{"trigger": run.Trigger, "state": run.State, "attempts": len(run.Attempts)}}
	if n := len(run.Attempts); n > 0 {
		a := run.Attempts[n-1]
		e.BatchID = a.BatchID
		if typ == event.TypeRunRetried || typ == event.TypeRunFinished {
			// The jobs the attempt failed, for the alerts: a retried or failed run's page names them.
			var failed []string
			for job, r := range a.Jobs {
				if r.Status == batch.StatusFailed.String() || r.Status == "skipped" {
					failed = append(failed, job)
				}
			}
			if len(failed) > 0 {
				slices.Sort(failed)
				e.Fields["failed_jobs"] = failed
			}
		}
	}
	s.opts.Events.Emit(context.Background(), e)
}
