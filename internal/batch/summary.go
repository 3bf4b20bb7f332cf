package batch

import (
	"context"
	"encoding/json"
	"time"
)

// Summary is what the lists (dashboard, GET /v1/workflows, metrics) show of a workflow: a few
// hundred bytes, kept by the store beside the workflow's state after every change, so that a
// list reads one summary per row instead of every job of every workflow.
type Summary struct {
	Workflow string `json:"workflow"`
	// Status is the workflow's overall status: the worst of its jobs' (failed, open, new,
	// abandoned, success), new without jobs.
	Status Status `json:"status"`
	// Jobs is the number of jobs.
	Jobs        int   `json:"jobs"`
	LastBatchID int64 `json:"last_batch_id,omitempty"`
	// From and To are the latest batch's window (the widest its jobs have); LastStart and
	// LastEnd bound it, LastEnd zero while a job of it is open.
	From      *time.Time `json:"from_date,omitempty"`
	To        *time.Time `json:"to_date,omitempty"`
	LastStart *time.Time `json:"last_start,omitempty"`
	LastEnd   *time.Time `json:"last_end,omitempty"`
	// OpenJobs is the number of jobs open now; OpenSince the earliest batch_start among them
	// (long-open alerts).
	OpenJobs  int        `json:"open_jobs,omitempty"`
	OpenSince *time.Time `json:"open_since,omitempty"`
	// ReadySince is, when every job's status is success, the earliest of their batch_end: the
	// workflow is ready since T (SPEC.md "Readiness") when ReadySince is not before T.
	ReadySince *time.Time `json:"ready_since,omitempty"`
	// Failed names the failed jobs; Reason is the metadata of the latest failure, if it gave any.
	Failed []string `json:"failed,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// LastSuccess is when the workflow last ended all its jobs in success (the latest batch_end
	// among them), LastFailure when a job of it last failed. Summarize sets the one the state
	// shows now; the index keeps the other from the workflow's previous summary (lua/index.lua),
	// so that both survive later changes: what a pager compares with the time.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	// Schedule, Timezone, After, Deadline and MaxOpen are the workflow's settings the lists and
	// the alerts need (next fire, lateness, long open).
	Schedule string    `json:"schedule,omitempty"`
	Timezone string    `json:"timezone,omitempty"`
	After    []string  `json:"after,omitempty"`
	Deadline string    `json:"deadline,omitempty"`
	MaxOpen  Duration  `json:"max_open,omitempty"`
	LoadedAt time.Time `json:"loaded_at"`
	// Paused, PausedAt and PauseReason are the state's: the workflow's triggers are paused.
	Paused      bool       `json:"paused"`
	PausedAt    *time.Time `json:"paused_at,omitempty"`
	PauseReason string     `json:"pause_reason,omitempty"`
}

// SummaryLister lists every workflow's summary (rdb.Store), for the readers that look at all
// workflows (alerts, metrics): one read of the summaries instead of one per workflow's state.
type SummaryLister interface {
	AllSummaries(ctx context.Context) ([]Summary, error)
}

// ReadyAt reports whether the summary says the workflow is ready since t.
func (s Summary) ReadyAt(t time.Time) bool { return s.ReadySince != nil && !s.ReadySince.Before(t) }

// Statuses are the overall statuses of a workflow, worst first.
var Statuses = []Status{StatusFailed, StatusOpen, StatusNew, StatusAbandoned, StatusSuccess}

// statusRank orders statuses for a workflow's overall one.
var statusRank = map[Status]int{StatusFailed: 0, StatusOpen: 1, StatusNew: 2, StatusAbandoned: 3, StatusSuccess: 4}

// Summarize computes a workflow's summary from its state. It is pure: no clock, so that every
// replica computes the same summary from the same state.
func Summarize(st *State) Summary {
	s := Summary{Workflow: st.Workflow, Status: StatusSuccess, Jobs: len(st.Jobs), Schedule: st.Settings.Schedule,
		Timezone: st.Settings.Timezone, After: st.Settings.After, Deadline: st.Settings.Deadline, MaxOpen: st.Settings.MaxOpen,
		LoadedAt: st.LoadedAt, Paused: st.Paused, PausedAt: st.PausedAt, PauseReason: st.PauseReason}
	allSuccess := len(st.Jobs) > 0
	var readySince time.Time
	if len(st.Jobs) == 0 {
		s.Status = StatusNew
	}
	var lastEndFailed, lastEndSuccess time.Time
	for _, j := range st.Jobs {
		status := j.Fields.Status()
		if status == "" {
			status = StatusNew
		}
		if r, ok := statusRank[status]; ok && r < statusRank[s.Status] {
			s.Status = status
		}
		id, _ := j.Fields.Int(FieldBatchID)
		s.LastBatchID = max(s.LastBatchID, id)
		start, hasStart := j.Fields.Time(FieldBatchStart)
		if status == StatusOpen {
			s.OpenJobs++
			if hasStart && (s.OpenSince == nil || start.Before(*s.OpenSince)) {
				s.OpenSince = &start
			}
		}
		if end, ok := j.Fields.Time(FieldBatchEnd); status == StatusSuccess && ok {
			if readySince.IsZero() || end.Before(readySince) {
				readySince = end
			}
			if end.After(lastEndSuccess) {
				lastEndSuccess = end
			}
		} else {
			allSuccess = false
		}
		if status == StatusFailed {
			s.Failed = append(s.Failed, j.Name)
			if end, _ := j.Fields.Time(FieldBatchEnd); !end.Before(lastEndFailed) {
				lastEndFailed = end
				if raw, ok := j.Fields[FieldMetadata]; ok && string(raw) != "null" {
					s.Reason = string(raw)
				}
			}
		}
	}
	if allSuccess {
		s.ReadySince, s.LastSuccess = &readySince, &lastEndSuccess
	}
	if s.Status == StatusFailed && !lastEndFailed.IsZero() {
		s.LastFailure = &lastEndFailed
	}
	if s.LastBatchID == 0 {
		return s
	}
	running := false
	for _, j := range st.Jobs {
		if id, _ := j.Fields.Int(FieldBatchID); id != s.LastBatchID {
			continue
		}
		if t, ok := j.Fields.Time(FieldFromDate); ok && (s.From == nil || t.Before(*s.From)) {
			s.From = &t
		}
		if t, ok := j.Fields.Time(FieldToDate); ok && (s.To == nil || t.After(*s.To)) {
			s.To = &t
		}
		if t, ok := j.Fields.Time(FieldBatchStart); ok && (s.LastStart == nil || t.Before(*s.LastStart)) {
			s.LastStart = &t
		}
		if t, ok := j.Fields.Time(FieldBatchEnd); ok && (s.LastEnd == nil || t.After(*s.LastEnd)) {
			s.LastEnd = &t
		}
		running = running || j.Fields.Status() == StatusOpen
	}
	if running {
		s.LastEnd = nil
	}
	return s
}

// ValidStatus reports whether s is an overall status of a workflow.
func ValidStatus(s string) bool {
	_, ok := statusRank[Status(s)]
	return ok
}

// SummaryQuery selects a page of summaries.
type SummaryQuery struct {
	// Status keeps the workflows of this overall status; "" keeps all.
	Status Status
	// Prefix keeps the workflows whose name starts with it; "" keeps all.
	Prefix string
	// Cursor starts the page after this workflow name (the previous page's Next); "" starts at
	// the first.
	Cursor string
	// Limit is the page's size; zero or less means 50.
	Limit int
	// NamesOnly asks for the names alone: each Summary of the page holds only its Workflow, and
	// the store reads no summary (the dashboard reads the rows' states instead).
	NamesOnly bool
	// Raw asks for each summary's JSON as the store keeps it (SummaryPage.Raw), not decoded: each
	// Summary of the page then holds only its Workflow. A list that only encodes the summaries
	// again (GET /v1/workflows) copies them instead.
	Raw bool
}

// SummaryPage is a page of summaries, by name.
type SummaryPage struct {
	Summaries []Summary
	// Raw is, with SummaryQuery.Raw, each summary's JSON (the encoding of a Summary), in the
	// order of Summaries.
	Raw []json.RawMessage
	// Next is the cursor of the next page, "" after the last.
	Next string
}

// SummaryReader reads the workflows' summaries a page at a time (rdb.Store): the lists' cost is
// that of the page, whatever the number of workflows.
type SummaryReader interface {
	// Summaries returns a page of summaries, by name.
	Summaries(ctx context.Context, q SummaryQuery) (*SummaryPage, error)
	// StatusCounts returns how many workflows have each overall status, and how many there are.
	StatusCounts(ctx context.Context) (map[Status]int, int, error)
	// Loaded reports, for each name, whether it is a loaded workflow.
	Loaded(ctx context.Context, names []string) ([]bool, error)
}

// IndexedSummary reads the summary the store keeps of one workflow (rdb.Store), for the change
// stream: it keeps the last success and failure that the workflow's state may no longer show.
type IndexedSummary interface {
	// SummaryOf returns the workflow's summary as kept; nil when it keeps none.
	SummaryOf(ctx context.Context, wf string) (*Summary, error)
}

// KeepOutcomes takes kept's last success and last failure where they are later than s's: kept is
// an earlier summary of the workflow, whose outcomes its state may no longer show.
func (s *Summary) KeepOutcomes(kept *Summary) {
	if kept == nil {
		return
	}
	later := func(a, b *time.Time) *time.Time {
		if a == nil || (b != nil && b.After(*a)) {
			return b
		}
		return a
	}
	s.LastSuccess, s.LastFailure = later(s.LastSuccess, kept.LastSuccess), later(s.LastFailure, kept.LastFailure)
}

// StatesReader reads the states of many workflows at once (rdb.Store: one round trip): the
// dashboard's page of rows costs one read, not one per row.
type StatesReader interface {
	// States returns the workflows' states, in the order of wfs, nil for one not loaded.
	States(ctx context.Context, wfs []string) ([]*State, error)
}
