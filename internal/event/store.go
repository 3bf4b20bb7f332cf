package event

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// RecordingStore is a batch.Store whose changes are recorded as events. The store's scripts append
// a change's events to the workflow's stream in the same atomic step as the change, so a change is
// never made without its events (nor an event written for a change that was not made);
// RecordingStore hands them on to the secondary sinks and the observers (Bus.Publish). The one
// exception is Restore, which replaces a whole workflow: its event is written after it.
type RecordingStore struct {
	batch.Store
	Bus *Bus
}

var _ batch.Store = RecordingStore{}

// Load implements batch.Store.
func (s RecordingStore) Load(ctx context.Context, wf *batch.Workflow, reset bool) (*batch.State, error) {
	return s.publish(ctx)(s.Store.Load(ctx, wf, reset))
}

// Open implements batch.Store.
func (s RecordingStore) Open(ctx context.Context, wf string, req batch.OpenRequest) (*batch.State, error) {
	return s.publish(ctx)(s.Store.Open(ctx, wf, req))
}

// End implements batch.Store.
func (s RecordingStore) End(ctx context.Context, wf string, req batch.EndRequest) (*batch.State, error) {
	return s.publish(ctx)(s.Store.End(ctx, wf, req))
}

// SetWatermark implements batch.Store.
func (s RecordingStore) SetWatermark(ctx context.Context, wf, job string, from time.Time) (*batch.State, error) {
	return s.publish(ctx)(s.Store.SetWatermark(ctx, wf, job, from))
}

// Restore implements batch.Store.
func (s RecordingStore) Restore(ctx context.Context, d *batch.Dump) error {
	err := s.Store.Restore(ctx, d)
	if err == nil {
		s.Bus.Emit(ctx, Event{Workflow: d.Workflow, Type: TypeLoad, Level: "warn", Message: "state restored from an export"})
	}
	return err
}

// publish returns a function that hands the events a change recorded to the bus's other sinks and
// observers, and then returns the change's result.
func (s RecordingStore) publish(ctx context.Context) func(*batch.State, error) (*batch.State, error) {
	return func(st *batch.State, err error) (*batch.State, error) {
		if err == nil && len(st.Events) > 0 {
			s.Bus.Publish(ctx, Decode(st.Events, s.Bus.logger())...)
		}
		return st, err
	}
}

// Decode reads events as the store's scripts record them; one that does not decode is logged and
// left out.
func Decode(raw []json.RawMessage, log *slog.Logger) []Event {
	events := make([]Event, 0, len(raw))
	for _, r := range raw {
		var e Event
		if err := json.Unmarshal(r, &e); err != nil {
			log.Warn("an event recorded by the store does not decode", "event", string(r), "err", err)
			continue
		}
		events = append(events, e)
	}
	return events
}
