package batch

import (
	"context"
	"fmt"
	"time"
)

// Workflow is a workflow as its configuration file defines it.
type Workflow struct {
	Name     string
	Settings Settings
	// Jobs are the jobs with the fields the file gives them, in file order, already validated and
	// normalised (dates in TimeLayout, "failure" read as failed).
	Jobs Jobs
}

// SettingsKey is the reserved top-level key of a workflow file holding workflow-level settings;
// no job may have this name.
const SettingsKey = "batchy"

// Settings are a workflow's own settings, under SettingsKey in its file. The zero value is the
// original Batchy's behaviour: no schedule, re-run on a second open.
type Settings struct {
	// Exclusive makes opening a job that is already open a conflict instead of a re-run of the
	// same window.
	Exclusive bool `yaml:"exclusive" json:"exclusive"`
	// Schedule is a cron expression (5 fields, @daily, @every 15m) in Timezone; empty: no schedule.
	Schedule string `yaml:"schedule" json:"schedule,omitempty"`
	// Timezone is the IANA zone of Schedule; empty means the server's --tz.
	Timezone string `yaml:"timezone" json:"timezone,omitempty"`
	// After lists upstream targets ("wf" or "wf:job"): the workflow runs when all are ready since
	// its own last run; with Schedule, at the scheduled time once they are ready.
	After []string `yaml:"after" json:"after,omitempty"`
	// Retries re-runs failed jobs over the same window; the zero value never retries.
	Retries Retries `yaml:"retries" json:"retries"`
	// Timeout bounds one attempt of a run; zero means none.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Concurrency says what a new run does while another runs or waits for its retry: forbid
	// (skip it, the default; a manual run is refused instead), replace (cancel the other), allow,
	// or queue (wait for it, in order, up to MaxQueued runs waiting).
	Concurrency string `yaml:"concurrency" json:"concurrency,omitempty"`
	// KeepRuns bounds the finished runs kept per outcome; zero fields keep them all (within the
	// scheduler's overall limit).
	KeepRuns *KeepRuns `yaml:"keep_runs" json:"keep_runs,omitempty"`
	// MaxQueued bounds the runs waiting under concurrency: queue; zero means 10. A run due while
	// the queue is full is skipped (a manual one refused).
	MaxQueued int `yaml:"max_queued" json:"max_queued,omitempty"`
	// Catchup says what happens to fire times missed while no batchy ran: none (skip them),
	// latest (run once for the latest, the default) or all (run each, oldest first).
	Catchup string `yaml:"catchup" json:"catchup,omitempty"`
	// CatchupLookback bounds how far back missed fire times count; zero means 24 hours.
	CatchupLookback Duration `yaml:"catchup_lookback" json:"catchup_lookback,omitempty"`
	// Deadline ("06:00", in Timezone) is when the workflow should have succeeded each day: past
	// it, a late alert goes out once that day. Empty: no deadline.
	Deadline string `yaml:"deadline" json:"deadline,omitempty"`
	// MaxOpen is how long a batch may stay open before a long-open alert; zero: no limit.
	MaxOpen Duration `yaml:"max_open" json:"max_open,omitempty"`
	// AlertOn says which failed attempts of a scheduler run raise a failed alert: final (only
	// the run's last, once its retries are exhausted; the default) or every_attempt.
	AlertOn string `yaml:"alert_on" json:"alert_on,omitempty"`
	// Window says what a scheduler run's window is: empty for the batch semantics' (from the last
	// success to now), WindowSchedule for the schedule's interval [previous fire, this fire).
	Window string `yaml:"window" json:"window,omitempty"`
}

// KeepRuns is a retention per outcome of a workflow's runs.
type KeepRuns struct {
	// Succeeded and Failed are how many succeeded and failed runs are kept; zero: no own limit.
	Succeeded int `yaml:"succeeded" json:"succeeded,omitempty"`
	Failed    int `yaml:"failed" json:"failed,omitempty"`
}

// WindowSchedule is the Window of interval windows.
const WindowSchedule = "schedule"

// AlertOn values.
const (
	AlertOnFinal        = "final"
	AlertOnEveryAttempt = "every_attempt"
)

// DeadlineAt returns the day's deadline for the day holding t, in loc; ok is false without one.
func (s Settings) DeadlineAt(t time.Time, loc *time.Location) (time.Time, bool) {
	h, m, ok := ParseClock(s.Deadline)
	if !ok {
		return time.Time{}, false
	}
	y, mo, d := t.In(loc).Date()
	return time.Date(y, mo, d, h, m, 0, 0, loc), true
}

// ParseClock reads "HH:MM" (24-hour).
func ParseClock(s string) (h, m int, ok bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 || h < 0 || m < 0 {
		return 0, 0, false
	}
	return h, m, true
}

// Scheduled reports whether the scheduler has anything to do for the workflow.
func (s Settings) Scheduled() bool { return s.Schedule != "" || len(s.After) > 0 }

// Retries is a retry policy.
type Retries struct {
	// Count is how many times failed jobs are re-run after the first attempt.
	Count int `yaml:"count" json:"count"`
	// Backoff is the wait before the first retry, doubling for each further one; zero means 30s.
	Backoff Duration `yaml:"backoff" json:"backoff,omitempty"`
	// MaxBackoff caps the wait; zero means 10 minutes.
	MaxBackoff Duration `yaml:"max_backoff" json:"max_backoff,omitempty"`
	// Jitter randomises each wait by up to this fraction (0 to 1) of it, so that many workflows
	// failing together do not retry together.
	Jitter float64 `yaml:"jitter" json:"jitter,omitempty"`
}

// Check validates a retry policy: count from 0 to 100, jitter from 0 to 1.
func (r Retries) Check() error {
	if r.Count < 0 || r.Count > 100 {
		return fmt.Errorf("retries.count %d must be from 0 to 100", r.Count)
	}
	if r.Jitter < 0 || r.Jitter > 1 {
		return fmt.Errorf("retries.jitter %v must be from 0 to 1", r.Jitter)
	}
	return nil
}

// Duration is a time.Duration written as Go writes durations ("15m", "1h30m") in YAML and JSON.
type Duration time.Duration

// UnmarshalText reads "15m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration such as 30s, 15m or 2h", clip(string(b)))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes "15m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// State is the stored state of a workflow: its jobs' latest batch, in configuration order.
type State struct {
	Workflow    string    `json:"workflow"`
	Jobs        Jobs      `json:"jobs"`
	LastBatchID int64     `json:"last_batch_id"`
	Exclusive   bool      `json:"exclusive"`
	Settings    Settings  `json:"settings"`
	LoadedAt    time.Time `json:"loaded_at"`
	// Paused is true while the workflow's triggers are paused (Store.SetPaused): the scheduler
	// creates no cron, catch-up or after: run for it, and starts none it created before; manual
	// runs still run. It is runtime state: a reload keeps it.
	Paused bool `json:"paused"`
	// PausedAt and PauseReason say when and why it was paused; absent while it is not.
	PausedAt    *time.Time `json:"paused_at,omitempty"`
	PauseReason string     `json:"pause_reason,omitempty"`
	// Changes are, after a change, what the change recorded in the workflow's event stream in the
	// same atomic step, one per job it changed, for the other sinks. Not part of the state shown.
	Changes []Change `json:"-"`
}

// Change is one job's part in a transition, as the store recorded it in the workflow's event
// stream (the event package turns it into an event).
type Change struct {
	// ID is the event's ID in the stream.
	ID       string
	Time     time.Time
	Workflow string
	// Type is load, open, close, fail, abandon, rewind, pause or resume.
	Type string
	// Job is empty for a load, a pause and a resume.
	Job string
	// BatchID is the batch opened, closed, failed or abandoned; zero when there is none.
	BatchID int64
	// From and To are an open's window; From is a rewind's new watermark.
	From, To time.Time
	// Start and End are a closed or failed batch's batch_start and batch_end.
	Start, End time.Time
	// NextBatchID is the batch that abandoned BatchID.
	NextBatchID int64
	// Backfill marks an open of a backfill window, Reset a load that reset the runtime state.
	Backfill, Reset bool
	// Jobs is the number of jobs a load loaded.
	Jobs int
	// Reason is a pause's reason.
	Reason string
	// RunID is the scheduler run that made a close or fail, "" when none did (the API).
	RunID string
}

// Batch is one batch as recorded in history: each job's fields as the batch left them (status
// open, success, failed, or abandoned when the job was opened again before it ended).
type Batch struct {
	ID   int64 `json:"batch_id"`
	Jobs Jobs  `json:"jobs"`
}

// OpenRequest says which jobs to open and, for a backfill, the window.
type OpenRequest struct {
	// Jobs to open; empty means every job of the workflow.
	Jobs []string
	// From, when set, opens a backfill over [From, To): the window is taken as given and, when
	// the batch ends, each job's regular state comes back, so the next regular window continues
	// from the watermark as if the backfill had not happened.
	From time.Time
	// To is the end of a backfill window; zero means now. Only used with From.
	To time.Time
	// Interval makes [From, To) (both required) the window of a regular batch rather than a
	// backfill: the jobs' state moves on as with any open (window: schedule, whose windows are
	// the schedule's intervals).
	Interval bool
}

// EndRequest says which jobs to close or fail.
type EndRequest struct {
	// Jobs to end; empty means every job of the workflow.
	Jobs []string
	// Status is StatusSuccess (close) or StatusFailed (fail).
	Status Status
	// Strict makes ending a job that is not open a conflict (the v1 API). Without Strict or
	// Force (the original routes), only the jobs open in the workflow's current batch end, and
	// the others are left as they are: a job never opened is not made success, and one already
	// closed or failed keeps its result.
	Strict bool
	// Force ends the jobs whatever their status, Strict or not: an operator's explicit
	// correction (a failed job marked success in its batch). BatchID still applies.
	Force bool
	// BatchID, when non-zero, makes ending a job whose batch_id differs a conflict, so a late
	// close cannot end a newer batch.
	BatchID int64
	// Metadata are facts about the run (rows read, rows written, ...), stored on each ended job
	// under FieldMetadata and so in the batch's history; the next open clears it.
	Metadata Fields
}

// ListOptions pages through history.
type ListOptions struct {
	// Limit is the most batches to return; zero means 20.
	Limit int
	// Before, when non-zero, lists only batches with an id lower than it (the next page).
	Before int64
}

// Dump is one workflow's complete stored state, for export, import and the embedded store's
// data file. Values are the stored strings, so a dump round-trips exactly.
type Dump struct {
	Workflow string                       `json:"workflow"`
	Meta     map[string]string            `json:"meta"`
	Jobs     map[string]Fields            `json:"jobs"`
	Stash    map[string]map[string]string `json:"stash,omitempty"`
	Batches  []Batch                      `json:"batches"`
}

// Store keeps workflows' batch state. Every method that changes state does so in one atomic step:
// it happens entirely or not at all, whatever runs concurrently and wherever the process dies.
type Store interface {
	// Load stores a workflow's configuration, keeping each job's runtime state unless reset.
	Load(ctx context.Context, wf *Workflow, reset bool) (*State, error)
	// State returns a workflow's state, ENOTFOUND if it was never loaded.
	State(ctx context.Context, workflow string) (*State, error)
	// Open opens a batch for the requested jobs and returns the state after it.
	Open(ctx context.Context, workflow string, req OpenRequest) (*State, error)
	// End closes or fails the requested jobs' batch and returns the state after it.
	End(ctx context.Context, workflow string, req EndRequest) (*State, error)
	// SetWatermark sets a job's from_date so that its next window starts there.
	SetWatermark(ctx context.Context, workflow, job string, from time.Time) (*State, error)
	// SetPaused pauses (with a reason, which may be empty) or resumes a workflow's triggers and
	// returns the state after it. Pausing a paused workflow or resuming one that is not paused
	// changes nothing (a pause keeps its first time and reason).
	SetPaused(ctx context.Context, workflow string, paused bool, reason string) (*State, error)
	// Batches lists a workflow's history, newest first.
	Batches(ctx context.Context, workflow string, opts ListOptions) ([]Batch, error)
	// Batch returns one batch of a workflow's history.
	Batch(ctx context.Context, workflow string, id int64) (*Batch, error)
	// Workflows lists the loaded workflows' names, sorted.
	Workflows(ctx context.Context) ([]string, error)
	// Dump returns a workflow's whole stored state.
	Dump(ctx context.Context, workflow string) (*Dump, error)
	// Restore replaces a workflow's stored state with a dump.
	Restore(ctx context.Context, d *Dump) error
	// Ping checks that the store takes a write now, and says why not.
	Ping(ctx context.Context) error
}
