package event

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// TestFromChangesTexts checks every type's message and fields against the plain way of writing
// them, which FromChanges does with fewer allocations.
func TestFromChangesTexts(t *testing.T) {
	at := time.Date(2026, 11, 22, 13, 49, 30, 123456000, time.UTC)
	from, to := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	changes := []batch.Change{
		{ID: "1-0", Time: at, Workflow: "wf", Job: "j", BatchID: 12345, Type: TypeOpen, From: from, To: to},
		{ID: "1-0.1", Time: at, Workflow: "wf", Job: "j", BatchID: 7, Type: TypeOpen, From: time.Time{}, To: from, Backfill: true},
		{Time: at, Workflow: "wf", Job: "j", BatchID: 123456789012, Type: TypeClose, Start: from, End: at},
		{Time: at, Workflow: "wf", Job: "j", BatchID: 3, Type: TypeFail, Start: from, End: at},
		{Time: at, Workflow: "wf", Job: "j", BatchID: 3, Type: TypeFail},
		{Time: at, Workflow: "wf", Job: "j", BatchID: 0, Type: TypeAbandon, NextBatchID: 4},
		{Time: at, Workflow: "wf", Job: "j", BatchID: 2, Type: TypeAbandon, NextBatchID: 4},
		{Time: at, Workflow: "wf", Type: TypeLoad, Jobs: 3, Reset: true},
		{Time: at, Workflow: "wf", Job: "j", Type: TypeRewind, From: from},
	}
	got := FromChanges(changes)
	for i, c := range changes {
		want := Event{ID: c.ID, Time: c.Time, Workflow: c.Workflow, Job: c.Job, BatchID: c.BatchID, Type: c.Type, Level: "info"}
		id := strconv.FormatInt(c.BatchID, 10)
		switch c.Type {
		case TypeOpen:
			f, t := batch.FormatTime(c.From), batch.FormatTime(c.To)
			want.Message = "batch " + id + " opened: window " + f + " to " + t
			want.Fields = map[string]any{"from_date": f, "to_date": t}
			if c.Backfill {
				want.Message = "backfill " + want.Message
				want.Fields["backfill"] = true
			}
		case TypeClose:
			want.Message = "batch " + id + " succeeded"
			want.Fields = map[string]any{"duration_seconds": c.End.Sub(c.Start).Seconds()}
		case TypeFail:
			want.Level, want.Message = "error", "batch "+id+" failed"
			if !c.Start.IsZero() {
				want.Fields = map[string]any{"duration_seconds": c.End.Sub(c.Start).Seconds()}
			}
		case TypeAbandon:
			if c.BatchID == 0 {
				id = "?"
			}
			want.Level, want.Message = "warn", "batch "+id+" abandoned: job opened again in batch 4 before it ended"
		case TypeLoad:
			want.Message, want.Fields = "configuration loaded: 3 jobs, runtime state reset", map[string]any{"reset": true}
		case TypeRewind:
			want.Level, want.Message = "warn", "watermark set: the next window starts at "+batch.FormatTime(c.From)
			want.Fields = map[string]any{"from_date": batch.FormatTime(c.From)}
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("change %d:\n got %+v\nwant %+v", i, got[i], want)
		}
	}
}
