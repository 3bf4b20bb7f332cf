package rdb

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// The scheduler's Redis state (keys in Keys: Leader, Sched, Runs, Active, Trimmed, Run). Every
// step that decides who does something (the leader lease, claiming a fire time, starting a run,
// taking over a dead replica's run) is one Lua script, so two replicas can never both win it.
// Lease times are the callers' clock in milliseconds: replicas' clocks must agree to well within a
// lease (NTP does that).
//
// These scripts run through the client's retries, unlike the store's changing scripts (see
// onceScripter): each is written to be sent twice safely, since a claim or a take that failed
// with "unavailable" although it ran would leave a fire time or a run to no one until a lease
// ran out (sched_claim.lua and sched_take.lua say how they recognise their own second sending).

var (
	//go:embed lua/sched_lease.lua
	schedLeaseSrc    string
	scriptSchedLease = redis.NewScript(schedLeaseSrc)

	//go:embed lua/sched_release.lua
	schedReleaseSrc    string
	scriptSchedRelease = redis.NewScript(schedReleaseSrc)

	//go:embed lua/sched_claim.lua
	schedClaimSrc    string
	scriptSchedClaim = redis.NewScript(schedClaimSrc)

	//go:embed lua/sched_outcome.lua
	schedOutcomeSrc    string
	scriptSchedOutcome = redis.NewScript(schedOutcomeSrc)

	//go:embed lua/sched_take.lua
	schedTakeSrc    string
	scriptSchedTake = redis.NewScript(schedTakeSrc)

	//go:embed lua/sched_update.lua
	schedUpdateSrc    string
	scriptSchedUpdate = redis.NewScript(schedUpdateSrc)

	//go:embed lua/sched_renew.lua
	schedRenewSrc    string
	scriptSchedRenew = redis.NewScript(schedRenewSrc)

	//go:embed lua/sched_cancel.lua
	schedCancelSrc    string
	scriptSchedCancel = redis.NewScript(schedCancelSrc)
)

// SchedulerStore keeps the scheduler's state that all replicas share: the leader lease, each
// workflow's claimed fire times and its runs. Run records are the scheduler's own JSON, stored as
// given: the store reads only their "state" field.
type SchedulerStore struct {
	client redis.UniversalClient
	idx    redis.UniversalClient // the due index and the index of changes (Store.idx)
	keys   Keys
	ix     *indexer // the store's index writes to come, written before the index is read; nil: none
}

// NewSchedulerStore returns the scheduler's state on client, under keys.
func NewSchedulerStore(client Client, keys Keys) *SchedulerStore {
	return &SchedulerStore{client: client, idx: client, keys: keys}
}

// Scheduler returns the scheduler's state on the store's Redis.
func (s *Store) Scheduler() *SchedulerStore {
	return &SchedulerStore{client: s.client, idx: s.idx, keys: s.keys, ix: s.ix}
}

// RunRecord is one run as the scheduler's state holds it.
type RunRecord struct {
	ID       string
	Workflow string
	// State is the run's state; Take returns the state it had before the take.
	State string
	// Record is the scheduler's JSON record of the run.
	Record string
	// NotBefore is when the run (or its next attempt) may start; written, never read back.
	NotBefore time.Time
	// Cancel is the cancel request's reason, "" for none; read, never written (see Cancel).
	Cancel string
}

// Fire is a claim of a workflow's fire time: Field of the sched hash goes from Expected (what the
// caller read; "" for none) to Value. The zero Fire claims nothing and creates the runs
// unconditionally (manual runs).
type Fire struct {
	Field, Expected, Value string
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// Lease takes or renews the leader lease for holder until now+ttl; false when another holder's
// lease has not expired.
func (s *SchedulerStore) Lease(ctx context.Context, holder string, now time.Time, ttl time.Duration) (bool, error) {
	n, err := scriptSchedLease.Run(ctx, s.client, []string{s.keys.Leader()}, ms(now), ttl.Milliseconds(), holder).Int()
	if err != nil {
		return false, fmt.Errorf("rdb.Lease: %w", err)
	}
	return n == 1, nil
}

// Release gives the leader lease up, if holder has it.
func (s *SchedulerStore) Release(ctx context.Context, holder string) error {
	if err := scriptSchedRelease.Run(ctx, s.client, []string{s.keys.Leader()}, holder).Err(); err != nil {
		return fmt.Errorf("rdb.Release: %w", err)
	}
	return nil
}

// Fires returns a workflow's claimed fire times by field (empty when never claimed).
func (s *SchedulerStore) Fires(ctx context.Context, wf string) (map[string]string, error) {
	m, err := s.client.HGetAll(ctx, s.keys.Sched(wf)).Result()
	if err != nil {
		return nil, fmt.Errorf("rdb.Fires: %w", err)
	}
	return m, nil
}

// Claim claims a fire time and creates its runs (queued), once: false when another replica
// claimed it first. The workflow's run index keeps the keep newest runs; the records of the
// finished runs it drops are deleted.
func (s *SchedulerStore) Claim(ctx context.Context, wf string, fire Fire, now time.Time, keep int, runs ...RunRecord) (bool, error) {
	keys := make([]string, 0, 4+len(runs))
	keys = append(keys, s.keys.Sched(wf), s.keys.Runs(wf), s.keys.Active(wf), s.keys.Trimmed(wf))
	args := make([]any, 0, 5+3*len(runs))
	args = append(args, fire.Field, fire.Expected, fire.Value, ms(now), keep)
	for _, r := range runs {
		keys = append(keys, s.keys.Run(wf, r.ID))
		args = append(args, r.ID, r.Record, ms(r.NotBefore))
	}
	v, err := scriptSchedClaim.Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return false, fmt.Errorf("rdb.Claim: %w", err)
	}
	if len(v) == 0 || v[0] != int64(1) {
		return false, nil
	}
	trimmed := make([]string, 0, len(v)-1)
	for _, id := range v[1:] {
		trimmed = append(trimmed, fmt.Sprint(id))
	}
	// The claim happened whether or not this cleanup does: what it leaves in the trimmed set, the
	// next claim deletes.
	_ = s.deleteTrimmed(ctx, wf, trimmed)
	if fire.Field == "" && len(runs) > 0 {
		// A manual run: the leader looks at the workflow at its next tick, not at its next fire.
		if err := s.MarkDue(ctx, wf); err != nil {
			return true, err
		}
	}
	return true, nil
}

// deleteTrimmed deletes the records of runs the run index dropped, then forgets their ids.
func (s *SchedulerStore) deleteTrimmed(ctx context.Context, wf string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, len(ids))
	members := make([]any, len(ids))
	for i, id := range ids {
		keys[i], members[i] = s.keys.Run(wf, id), id
	}
	// All of a workflow's keys share its slot: one transaction, on a Cluster too.
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keys...)
		p.SRem(ctx, s.keys.Trimmed(wf), members...)
		return nil
	})
	return err
}

// KeepOutcome records a finished run under its outcome (its final state) and keeps the keep
// newest runs of that outcome: the older ones are deleted.
func (s *SchedulerStore) KeepOutcome(ctx context.Context, wf, state, id string, created time.Time, keep int) error {
	v, err := scriptSchedOutcome.Run(ctx, s.client, []string{s.keys.Outcome(wf, state), s.keys.Runs(wf), s.keys.Trimmed(wf)}, id, ms(created), keep).StringSlice()
	if err != nil {
		return fmt.Errorf("rdb.KeepOutcome: %w", err)
	}
	return s.deleteTrimmed(ctx, wf, v)
}

// Take makes holder the run's holder, with a lease until now+ttl, when the run is due (or has a
// cancel request) or its holder's lease expired. It returns the run with the state it had before,
// or nil when there is nothing to take.
func (s *SchedulerStore) Take(ctx context.Context, wf, id, holder string, now time.Time, ttl time.Duration) (*RunRecord, error) {
	v, err := scriptSchedTake.Run(ctx, s.client, []string{s.keys.Run(wf, id)}, holder, ms(now), ms(now.Add(ttl))).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rdb.Take: %w", err)
	}
	if len(v) != 3 {
		return nil, fmt.Errorf("rdb.Take: unexpected reply of %d values", len(v))
	}
	return &RunRecord{ID: id, Workflow: wf, State: v[0], Record: v[1], Cancel: v[2]}, nil
}

// Update writes a run holder holds (its State, Record and NotBefore) with a lease until
// leaseUntil; a run that ends leaves the active set, and one not running has no holder after.
// False when another replica took the run over.
func (s *SchedulerStore) Update(ctx context.Context, r RunRecord, holder string, leaseUntil time.Time) (bool, error) {
	n, err := scriptSchedUpdate.Run(ctx, s.client, []string{s.keys.Run(r.Workflow, r.ID), s.keys.Active(r.Workflow)},
		holder, r.State, r.Record, ms(leaseUntil), ms(r.NotBefore), r.ID).Int()
	if err != nil {
		return false, fmt.Errorf("rdb.Update: %w", err)
	}
	return n == 1, nil
}

// Renew extends the lease of a run holder executes and returns its cancel request's reason ("" for
// none). The error has code ECONFLICT when the run is no longer holder's (another replica took it
// over).
func (s *SchedulerStore) Renew(ctx context.Context, wf, id, holder string, until time.Time) (string, error) {
	reason, err := scriptSchedRenew.Run(ctx, s.client, []string{s.keys.Run(wf, id)}, holder, ms(until)).Text()
	return renewResult(id, reason, err)
}

// RunRef names one run.
type RunRef struct{ Workflow, ID string }

// RenewAll extends the leases of the runs holder executes until until, in one round trip whatever
// their number, and returns for each its cancel request's reason or its error, as Renew does.
func (s *SchedulerStore) RenewAll(ctx context.Context, holder string, until time.Time, runs []RunRef) ([]string, []error) {
	reasons, errs := make([]string, len(runs)), make([]error, len(runs))
	if len(runs) == 0 {
		return reasons, errs
	}
	// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and the script is short.
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(runs))
	for i, r := range runs {
		cmds[i] = pipe.Eval(ctx, schedRenewSrc, []string{s.keys.Run(r.Workflow, r.ID)}, holder, ms(until))
	}
	_, _ = pipe.Exec(ctx) // each command's error is its own
	for i, c := range cmds {
		reason, err := c.Text()
		reasons[i], errs[i] = renewResult(runs[i].ID, reason, err)
	}
	return reasons, errs
}

// renewResult reads sched_renew.lua's answer.
func renewResult(id, reason string, err error) (string, error) {
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "LOST ") {
		return "", &batch.Error{Code: batch.ECONFLICT, Message: fmt.Sprintf("run %s was taken over by another replica", id), Cause: err}
	}
	if err != nil {
		return "", fmt.Errorf("rdb.Renew: %w", err)
	}
	return reason, nil
}

// Cancel asks for a run to be cancelled: ENOTFOUND when it does not exist, ECONFLICT when it has
// finished.
func (s *SchedulerStore) Cancel(ctx context.Context, wf, id, reason string) error {
	err := scriptSchedCancel.Run(ctx, s.client, []string{s.keys.Run(wf, id)}, reason).Err()
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if strings.HasPrefix(msg, "ENOTFOUND ") {
			return batch.Errorf(batch.ENOTFOUND, "workflow %s has no run %s", wf, id)
		}
		if rest, ok := strings.CutPrefix(msg, "ECONFLICT "); ok {
			return batch.Errorf(batch.ECONFLICT, "run %s: %s", id, rest)
		}
	}
	if err != nil {
		return fmt.Errorf("rdb.Cancel: %w", err)
	}
	// A queued run ends at the leader's next tick.
	return s.MarkDue(ctx, wf)
}

// Active returns the ids of a workflow's unfinished runs.
func (s *SchedulerStore) Active(ctx context.Context, wf string) ([]string, error) {
	ids, err := s.client.SMembers(ctx, s.keys.Active(wf)).Result()
	if err != nil {
		return nil, fmt.Errorf("rdb.Active: %w", err)
	}
	return ids, nil
}

// Forget removes a run from the active set: for an id whose record is gone.
func (s *SchedulerStore) Forget(ctx context.Context, wf, id string) error {
	if err := s.client.SRem(ctx, s.keys.Active(wf), id).Err(); err != nil {
		return fmt.Errorf("rdb.Forget: %w", err)
	}
	return nil
}

// Run reads one run (ENOTFOUND when it does not exist).
func (s *SchedulerStore) Run(ctx context.Context, wf, id string) (*RunRecord, error) {
	h, err := s.client.HMGet(ctx, s.keys.Run(wf, id), "record", "state", "cancel").Result()
	if err != nil {
		return nil, fmt.Errorf("rdb.Run: %w", err)
	}
	if h[0] == nil {
		return nil, batch.Errorf(batch.ENOTFOUND, "workflow %s has no run %s", wf, id)
	}
	r := &RunRecord{ID: id, Workflow: wf, Record: fmt.Sprint(h[0]), State: fmt.Sprint(h[1])}
	if h[2] != nil {
		r.Cancel = fmt.Sprint(h[2])
	}
	return r, nil
}

// RunIDs returns the ids of a workflow's limit newest runs, newest first.
func (s *SchedulerStore) RunIDs(ctx context.Context, wf string, limit int) ([]string, error) {
	ids, err := s.client.ZRevRange(ctx, s.keys.Runs(wf), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("rdb.RunIDs: %w", err)
	}
	return ids, nil
}

// NewestRuns returns the limit newest runs of each workflow, newest first, in the order of wfs:
// two round trips (the ids of all, then the records of all), whatever the number of workflows.
// A run trimmed between the two is left out.
func (s *SchedulerStore) NewestRuns(ctx context.Context, wfs []string, limit int) ([][]*RunRecord, error) {
	out := make([][]*RunRecord, len(wfs))
	if len(wfs) == 0 || limit <= 0 {
		return out, nil
	}
	pipe := s.client.Pipeline()
	idCmds := make([]*redis.StringSliceCmd, len(wfs))
	for i, wf := range wfs {
		idCmds[i] = pipe.ZRevRange(ctx, s.keys.Runs(wf), 0, int64(limit-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("rdb.NewestRuns: %w", err)
	}
	type ref struct {
		wf  int
		id  string
		cmd *redis.SliceCmd
	}
	var refs []ref
	pipe = s.client.Pipeline()
	for i, c := range idCmds {
		for _, id := range c.Val() {
			refs = append(refs, ref{i, id, pipe.HMGet(ctx, s.keys.Run(wfs[i], id), "record", "state", "cancel")})
		}
	}
	if len(refs) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("rdb.NewestRuns: %w", err)
	}
	for _, r := range refs {
		h := r.cmd.Val()
		if h[0] == nil {
			continue // trimmed meanwhile
		}
		rec := &RunRecord{ID: r.id, Workflow: wfs[r.wf], Record: fmt.Sprint(h[0]), State: fmt.Sprint(h[1])}
		if h[2] != nil {
			rec.Cancel = fmt.Sprint(h[2])
		}
		out[r.wf] = append(out[r.wf], rec)
	}
	return out, nil
}

// flushIndex writes the store's index writes to come, so that a read of the index sees this
// process's changes.
func (s *SchedulerStore) flushIndex(ctx context.Context) {
	if s.ix != nil {
		s.ix.flush(ctx)
	}
}
