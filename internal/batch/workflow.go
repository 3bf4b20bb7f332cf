package batch

import (
	"context"
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

// Settings are a workflow's own settings, under SettingsKey in its file.
type Settings struct {
	// Exclusive makes opening a job that is already open a conflict instead of a re-run of the
	// same window. The zero value keeps the original's re-run.
	Exclusive bool `yaml:"exclusive" json:"exclusive"`
}

// State is the stored state of a workflow: its jobs' latest batch, in configuration order.
type State struct {
	Workflow    string    `json:"workflow"`
	Jobs        Jobs      `json:"jobs"`
	LastBatchID int64     `json:"last_batch_id"`
	Exclusive   bool      `json:"exclusive"`
	LoadedAt    time.Time `json:"loaded_at"`
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
}

// EndRequest says which jobs to close or fail.
type EndRequest struct {
	// Jobs to end; empty means every job of the workflow.
	Jobs []string
	// Status is StatusSuccess (close) or StatusFailed (fail).
	Status Status
	// Strict makes ending a job that is not open a conflict (the v1 API); the zero value is the
	// original routes' permissive behaviour.
	Strict bool
	// BatchID, when non-zero, makes ending a job whose batch_id differs a conflict, so a late
	// close cannot end a newer batch.
	BatchID int64
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
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}
