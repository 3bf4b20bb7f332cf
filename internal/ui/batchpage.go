package ui

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// batchPageView is what the batch template gets.
type batchPageView struct {
	Workflow string
	Batch    batchView
	// From and To are the widest window of the batch's jobs.
	From, To  time.Time
	HasEvents bool
	Events    []event.Event
}

// batchPage shows one batch of a workflow's history: its jobs with their windows, statuses,
// durations and metadata, and its events and log lines.
func (u *UI) batchPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	wf := r.PathValue("wf")
	if err := batch.CheckName("workflow", wf); err != nil {
		u.fail(w, r, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "batch %q is not a batch id", r.PathValue("id")))
		return
	}
	b, err := u.opts.Store.Batch(ctx, wf, id)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	v := &batchPageView{Workflow: wf, Batch: viewBatch(*b, u.opts.Now().UTC())}
	for _, j := range v.Batch.Jobs {
		v.From, v.To = minTime(v.From, j.From), maxTime(v.To, j.To)
	}
	if stream := u.opts.Events.Stream(); stream != nil {
		v.HasEvents = true
		if v.Events, err = stream.Read(ctx, wf, event.Query{BatchID: id, Limit: runLogSize}); err != nil {
			u.fail(w, r, err)
			return
		}
		slices.Reverse(v.Events)
	}
	u.render(w, r, http.StatusOK, u.newPage(r, "batch", "Batch "+strconv.FormatInt(id, 10)+" of "+wf, v))
}
