package event

import (
	"context"
	"fmt"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// RecordingStore is a batch.Store that records every change it makes as events. The change and
// its event are two steps: should batchy die between them, the event is lost but the state and
// its history (the authority) are not.
type RecordingStore struct {
	batch.Store
	Bus *Bus
}

var _ batch.Store = RecordingStore{}

// Load implements batch.Store.
func (s RecordingStore) Load(ctx context.Context, wf *batch.Workflow, reset bool) (*batch.State, error) {
	st, err := s.Store.Load(ctx, wf, reset)
	if err == nil {
		msg := fmt.Sprintf("configuration loaded: %d jobs", len(st.Jobs))
		if reset {
			msg += ", runtime state reset"
		}
		s.Bus.Emit(ctx, Event{Workflow: wf.Name, Type: TypeLoad, Message: msg, Fields: map[string]any{"reset": reset}})
	}
	return st, err
}

// Open implements batch.Store.
func (s RecordingStore) Open(ctx context.Context, wf string, req batch.OpenRequest) (*batch.State, error) {
	st, err := s.Store.Open(ctx, wf, req)
	if err == nil {
		var events []Event
		for _, j := range scope(st.Jobs, req.Jobs) {
			// The open reports the batches it abandoned from the same atomic step.
			if old, ok := st.Abandoned[j.Name]; ok {
				events = append(events, Event{Workflow: wf, Job: j.Name, BatchID: old, Type: TypeAbandon, Level: "warn",
					Message: fmt.Sprintf("batch %d abandoned: job opened again in batch %d before it ended", old, st.LastBatchID)})
			}
		}
		for _, j := range scope(st.Jobs, req.Jobs) {
			from, _ := j.Fields.String(batch.FieldFromDate)
			to, _ := j.Fields.String(batch.FieldToDate)
			fields := map[string]any{"from_date": from, "to_date": to}
			msg := fmt.Sprintf("batch %d opened: window %s to %s", st.LastBatchID, from, to)
			if !req.From.IsZero() {
				fields["backfill"] = true
				msg = "backfill " + msg
			}
			events = append(events, Event{Workflow: wf, Job: j.Name, BatchID: st.LastBatchID, Type: TypeOpen, Message: msg, Fields: fields})
		}
		s.Bus.Emit(ctx, events...)
	}
	return st, err
}

// End implements batch.Store.
func (s RecordingStore) End(ctx context.Context, wf string, req batch.EndRequest) (*batch.State, error) {
	st, err := s.Store.End(ctx, wf, req)
	if err == nil {
		typ, level, verb := TypeClose, "info", "succeeded"
		if req.Status == batch.StatusFailed {
			typ, level, verb = TypeFail, "error", "failed"
		}
		var events []Event
		for _, j := range scope(st.Jobs, req.Jobs) {
			id, _ := j.Fields.Int(batch.FieldBatchID)
			fields := map[string]any{}
			if start, ok := j.Fields.Time(batch.FieldBatchStart); ok {
				if end, ok := j.Fields.Time(batch.FieldBatchEnd); ok {
					fields["duration_seconds"] = end.Sub(start).Seconds()
				}
			}
			events = append(events, Event{Workflow: wf, Job: j.Name, BatchID: id, Type: typ, Level: level,
				Message: fmt.Sprintf("batch %d %s", id, verb), Fields: fields})
		}
		s.Bus.Emit(ctx, events...)
	}
	return st, err
}

// SetWatermark implements batch.Store.
func (s RecordingStore) SetWatermark(ctx context.Context, wf, job string, from time.Time) (*batch.State, error) {
	st, err := s.Store.SetWatermark(ctx, wf, job, from)
	if err == nil {
		s.Bus.Emit(ctx, Event{Workflow: wf, Job: job, Type: TypeRewind, Level: "warn",
			Message: "watermark set: the next window starts at " + batch.FormatTime(from),
			Fields:  map[string]any{"from_date": batch.FormatTime(from)}})
	}
	return st, err
}

// Restore implements batch.Store.
func (s RecordingStore) Restore(ctx context.Context, d *batch.Dump) error {
	err := s.Store.Restore(ctx, d)
	if err == nil {
		s.Bus.Emit(ctx, Event{Workflow: d.Workflow, Type: TypeLoad, Level: "warn", Message: "state restored from an export"})
	}
	return err
}

// scope returns the named jobs, or all.
func scope(jobs batch.Jobs, names []string) batch.Jobs {
	if len(names) == 0 {
		return jobs
	}
	var out batch.Jobs
	for _, n := range names {
		if j, ok := jobs.Get(n); ok {
			out = append(out, j)
		}
	}
	return out
}
