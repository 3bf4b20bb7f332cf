package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
)

// RunStore keeps the scheduler's state that all replicas share: the leader lease, each workflow's
// claimed fire times and its runs (rdb.SchedulerStore). Every step that decides who does something
// (the leader lease, claiming a fire time, starting a run, taking over a dead replica's run) is
// atomic in it, so two replicas can never both win it. Times are the callers' clock: replicas'
// clocks must agree to well within a lease (NTP does that).
type RunStore interface {
	// Lease takes or renews the leader lease for holder; false when another holder's has not
	// expired.
	Lease(ctx context.Context, holder string, now time.Time, ttl time.Duration) (bool, error)
	// Release gives the leader lease up, if holder has it.
	Release(ctx context.Context, holder string) error
	// Fires returns a workflow's claimed fire times by field (absent when never claimed).
	Fires(ctx context.Context, wf string) (map[string]string, error)
	// Claim moves a fire time from the value the caller read to a new one and creates the runs,
	// once: false when another replica claimed it first. The zero Fire creates them
	// unconditionally. The index keeps the keep newest runs.
	Claim(ctx context.Context, wf string, fire rdb.Fire, now time.Time, keep int, runs ...rdb.RunRecord) (bool, error)
	// Take makes holder the holder of a due or abandoned run and returns it with its state before;
	// nil when there is nothing to take.
	Take(ctx context.Context, wf, id, holder string, now time.Time, ttl time.Duration) (*rdb.RunRecord, error)
	// Update writes a run holder holds; false when another replica took it over.
	Update(ctx context.Context, r rdb.RunRecord, holder string, leaseUntil time.Time) (bool, error)
	// Renew extends holder's lease on a run it executes and returns the run's cancel request;
	// an error with code ECONFLICT when another replica took the run over.
	Renew(ctx context.Context, wf, id, holder string, until time.Time) (string, error)
	// RenewAll renews the leases of all the runs holder executes in one round trip; for each, its
	// cancel request or its error as Renew.
	RenewAll(ctx context.Context, holder string, until time.Time, runs []rdb.RunRef) ([]string, []error)
	// Cancel asks for a run to be cancelled (ENOTFOUND, ECONFLICT when it has finished).
	Cancel(ctx context.Context, wf, id, reason string) error
	// KeepOutcome records a finished run under its final state and keeps the keep newest of
	// that state, deleting the older ones.
	KeepOutcome(ctx context.Context, wf, state, id string, created time.Time, keep int) error
	// Active returns the ids of a workflow's unfinished runs.
	Active(ctx context.Context, wf string) ([]string, error)
	// Forget removes an id whose record is gone from the unfinished runs.
	Forget(ctx context.Context, wf, id string) error
	// Run reads one run (ENOTFOUND).
	Run(ctx context.Context, wf, id string) (*rdb.RunRecord, error)
	// RunIDs returns the ids of a workflow's limit newest runs, newest first.
	RunIDs(ctx context.Context, wf string, limit int) ([]string, error)
	// NewestRuns returns the limit newest runs of each workflow, newest first, in the order of
	// wfs, in a fixed number of round trips.
	NewestRuns(ctx context.Context, wfs []string, limit int) ([][]*rdb.RunRecord, error)
	// Due returns the workflows due at now (at most limit, all of the index for limit 0 and now
	// rdb.Never), with their scores as read, and the earliest time after now and within the
	// lookahead one is due (rdb.Never for none).
	Due(ctx context.Context, now time.Time, within time.Duration, limit int) ([]rdb.DueEntry, time.Time, error)
	// SetDue writes when the leader next looks at the workflows a tick handled, except for those
	// marked due since it read them.
	SetDue(ctx context.Context, updates []rdb.DueUpdate) error
	// MarkDue makes a workflow due at the next tick.
	MarkDue(ctx context.Context, wf string) error
	// ChangedSince returns the workflows whose last end or load the index of changes scores
	// after since (a sequence number).
	ChangedSince(ctx context.Context, since int64) ([]rdb.WorkflowChange, error)
}

var _ RunStore = (*rdb.SchedulerStore)(nil)

// runState is the scheduler's access to its RunStore, in terms of Run.
type runState struct {
	store RunStore
	keep  int
}

func (r *runState) lease(ctx context.Context, id string, now time.Time, ttl time.Duration) (bool, error) {
	return r.store.Lease(ctx, id, now, ttl)
}

func (r *runState) release(ctx context.Context, id string) error {
	return r.store.Release(ctx, id)
}

// sched returns a workflow's claimed fire times ("" when never claimed).
func (r *runState) sched(ctx context.Context, wf string) (map[string]string, error) {
	return r.store.Fires(ctx, wf)
}

// claim creates runs for a fire time, once; field "" creates them unconditionally (manual runs).
func (r *runState) claim(ctx context.Context, wf, field, expected, value string, now time.Time, runs ...*Run) (bool, error) {
	recs := make([]rdb.RunRecord, 0, len(runs))
	for _, run := range runs {
		rec, err := json.Marshal(run)
		if err != nil {
			return false, err
		}
		recs = append(recs, rdb.RunRecord{ID: run.ID, Workflow: wf, State: run.State, Record: string(rec), NotBefore: run.NotBefore})
	}
	return r.store.Claim(ctx, wf, rdb.Fire{Field: field, Expected: expected, Value: value}, now, r.keep, recs...)
}

// take makes holder the run's holder when it is due or abandoned; nil when there is nothing to
// take.
func (r *runState) take(ctx context.Context, wf, id, holder string, now time.Time, ttl time.Duration) (*Run, string, error) {
	rec, err := r.store.Take(ctx, wf, id, holder, now, ttl)
	if err != nil || rec == nil {
		return nil, "", err
	}
	run, err := decodeRun(rec)
	if err != nil {
		return nil, "", err
	}
	return run, run.State, nil
}

// update writes a run the caller holds; false when another replica took it over.
func (r *runState) update(ctx context.Context, run *Run, holder string, leaseUntil time.Time) (bool, error) {
	rec, err := json.Marshal(run)
	if err != nil {
		return false, err
	}
	return r.store.Update(ctx, rdb.RunRecord{ID: run.ID, Workflow: run.Workflow, State: run.State, Record: string(rec), NotBefore: run.NotBefore},
		holder, leaseUntil)
}

func (r *runState) cancel(ctx context.Context, wf, id, reason string) error {
	return r.store.Cancel(ctx, wf, id, reason)
}

func (r *runState) active(ctx context.Context, wf string) ([]string, error) {
	return r.store.Active(ctx, wf)
}

// run reads one run.
func (r *runState) run(ctx context.Context, wf, id string) (*Run, error) {
	rec, err := r.store.Run(ctx, wf, id)
	if err != nil {
		return nil, err
	}
	return decodeRun(rec)
}

// runs lists a workflow's runs, newest first.
func (r *runState) runs(ctx context.Context, wf string, limit int) ([]*Run, error) {
	ids, err := r.store.RunIDs(ctx, wf, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*Run, 0, len(ids))
	for _, id := range ids {
		run, err := r.run(ctx, wf, id)
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			continue // trimmed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	return out, nil
}

// newestRuns lists the newest runs of many workflows, newest first, in the order of wfs.
func (r *runState) newestRuns(ctx context.Context, wfs []string, limit int) ([][]*Run, error) {
	recs, err := r.store.NewestRuns(ctx, wfs, limit)
	if err != nil {
		return nil, err
	}
	out := make([][]*Run, len(recs))
	for i, list := range recs {
		for _, rec := range list {
			run, err := decodeRun(rec)
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], run)
		}
	}
	return out, nil
}

// decodeRun reads a run's record; the state and the cancel request are the store's.
func decodeRun(rec *rdb.RunRecord) (*Run, error) {
	var run Run
	if err := json.Unmarshal([]byte(rec.Record), &run); err != nil {
		return nil, fmt.Errorf("scheduler: run %s: %w", rec.ID, err)
	}
	run.State = rec.State
	run.cancel = rec.Cancel
	return &run, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func msString(t time.Time) string { return strconv.FormatInt(ms(t), 10) }
