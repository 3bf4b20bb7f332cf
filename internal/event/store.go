package event

import (
	"context"
	"strconv"
	"strings"
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

// SetPaused implements batch.Store.
func (s RecordingStore) SetPaused(ctx context.Context, wf string, paused bool, reason string) (*batch.State, error) {
	return s.publish(ctx)(s.Store.SetPaused(ctx, wf, paused, reason))
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
// observers, and then returns the change's result. A change that stands but failed a later check
// (fewer replicas than --redis-min-replicas confirmed it) returns its state beside the error: its
// events happened, and are published too.
func (s RecordingStore) publish(ctx context.Context) func(*batch.State, error) (*batch.State, error) {
	return func(st *batch.State, err error) (*batch.State, error) {
		if st != nil && len(st.Changes) > 0 && s.Bus.listened() {
			s.Bus.Publish(ctx, FromChanges(st.Changes)...)
		}
		return st, err
	}
}

// FromChanges turns the changes a transition recorded into its events, one per job changed. It
// runs for every transition that anyone listens to: the texts are built with as few allocations
// as they can be.
func FromChanges(changes []batch.Change) []Event {
	out := make([]Event, 0, len(changes))
	for _, c := range changes {
		e := Event{ID: c.ID, Time: c.Time, Workflow: c.Workflow, Job: c.Job, BatchID: c.BatchID, RunID: c.RunID, Type: c.Type, Level: "info"}
		var digits [20]byte
		batchID := strconv.AppendInt(digits[:0], c.BatchID, 10) // string(batchID) in a concatenation copies nothing
		switch c.Type {
		case TypeLoad:
			e.Message = "configuration loaded: " + strconv.Itoa(c.Jobs) + " jobs"
			if c.Reset {
				e.Message += ", runtime state reset"
			}
			e.Fields = map[string]any{"reset": c.Reset}
		case TypeOpen:
			var from, to string
			e.Message, from, to = openMessage(c.BatchID, c.From, c.To, c.Backfill)
			e.Fields = map[string]any{"from_date": from, "to_date": to}
			if c.Backfill {
				e.Fields["backfill"] = true
			}
		case TypeAbandon:
			old := "?"
			if c.BatchID != 0 {
				old = string(batchID)
			}
			e.Level = "warn"
			e.Message = "batch " + old + " abandoned: job opened again in batch " + strconv.FormatInt(c.NextBatchID, 10) + " before it ended"
		case TypeClose, TypeFail:
			e.Message = "batch " + string(batchID) + " succeeded"
			if c.Type == TypeFail {
				e.Level, e.Message = "error", "batch "+string(batchID)+" failed"
			}
			if !c.Start.IsZero() && !c.End.IsZero() {
				e.Fields = map[string]any{"duration_seconds": float64(c.End.Sub(c.Start).Microseconds()) / 1e6}
			}
		case TypePause:
			e.Level, e.Message = "warn", "triggers paused: no scheduled or after: run starts until resumed"
			if c.Reason != "" {
				e.Message += " (" + c.Reason + ")"
				e.Fields = map[string]any{"reason": c.Reason}
			}
		case TypeResume:
			e.Message = "triggers resumed"
		case TypeRewind:
			from := batch.FormatTime(c.From)
			e.Level = "warn"
			e.Message = "watermark set: the next window starts at " + from
			e.Fields = map[string]any{"from_date": from}
		}
		out = append(out, e)
	}
	return out
}

// openMessage says which window a batch opened: "[backfill ]batch <id> opened: window <from> to
// <to>", in one allocation which the dates returned share.
func openMessage(id int64, from, to time.Time, backfill bool) (msg, fromText, toText string) {
	var b strings.Builder
	b.Grow(len("backfill batch  opened: window  to ") + 20 + 2*len(batch.TimeLayout))
	if backfill {
		b.WriteString("backfill ")
	}
	var buf [32]byte
	b.WriteString("batch ")
	b.Write(strconv.AppendInt(buf[:0], id, 10))
	b.WriteString(" opened: window ")
	fromAt := b.Len()
	b.Write(batch.AppendTime(buf[:0], from))
	fromEnd := b.Len()
	b.WriteString(" to ")
	toAt := b.Len()
	b.Write(batch.AppendTime(buf[:0], to))
	msg = b.String()
	return msg, msg[fromAt:fromEnd], msg[toAt:]
}
