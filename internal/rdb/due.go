package rdb

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scheduler's due index (Keys.Due): each workflow scored by when the leader next looks at it
// (ms, the leader's clock): its next fire time, the next tick while it has runs in progress, or
// Never. A load, a manual run or a cancel marks it due at once (a score below 0), and the index of
// changes (Keys.IndexChanges) tells the leader which upstreams of after: changed. A tick then
// reads what is due and what changed, whatever the number of workflows.

var (
	//go:embed lua/sched_mark.lua
	schedMarkSrc    string
	scriptSchedMark = redis.NewScript(luaScore + schedMarkSrc)

	//go:embed lua/sched_due.lua
	schedDueSrc    string
	scriptSchedDue = redis.NewScript(luaScore + schedDueSrc)
)

// Never is the due time of a workflow the scheduler has nothing to do for until something marks
// it (year 33658: a finite score, so that every client reads and writes it the same).
var Never = time.UnixMilli(1e15)

// DueEntry is a workflow of the due index with its score as read.
type DueEntry struct {
	Workflow string
	// Score is the entry's score as read, for SetDue's condition; "" for a workflow not in the
	// index.
	Score string
}

// Due returns the workflows due at now (at most limit; all of the index when now is Never), and
// the earliest time after now and within the given lookahead a workflow is due (Never when none
// is), in the same one call: the leader sleeps until then rather than a whole tick, so a fire
// starts on time, not up to a tick late.
func (s *SchedulerStore) Due(ctx context.Context, now time.Time, within time.Duration, limit int) ([]DueEntry, time.Time, error) {
	s.flushIndex(ctx)
	count := int64(limit)
	if limit > 0 {
		count++ // room for the first after now
	}
	zs, err := s.idx.ZRangeByScoreWithScores(ctx, s.keys.Due(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(ms(now.Add(within)), 10), Count: count}).Result()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("rdb.Due: %w", err)
	}
	out := make([]DueEntry, 0, len(zs))
	next := Never
	for _, z := range zs {
		if int64(z.Score) > ms(now) {
			next = time.UnixMilli(int64(z.Score))
			break
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, DueEntry{Workflow: fmt.Sprint(z.Member), Score: strconv.FormatFloat(z.Score, 'f', -1, 64)})
	}
	return out, next, nil
}

// DueUpdate is the next due time of a workflow a tick handled.
type DueUpdate struct {
	DueEntry
	Next time.Time
}

// SetDue writes the next due times of the workflows a tick handled, in one call, except for those
// marked due since the tick read them (their score is no longer the one read).
func (s *SchedulerStore) SetDue(ctx context.Context, updates []DueUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(updates))
	for _, u := range updates {
		args = append(args, u.Workflow, u.Score, ms(u.Next))
	}
	if err := scriptSchedDue.Run(ctx, s.idx, []string{s.keys.Due()}, args...).Err(); err != nil {
		return fmt.Errorf("rdb.SetDue: %w", err)
	}
	return nil
}

// MarkDue makes a workflow due for the scheduler's next tick.
func (s *SchedulerStore) MarkDue(ctx context.Context, wf string) error {
	if err := scriptSchedMark.Run(ctx, s.idx, []string{s.keys.Due()}, wf).Err(); err != nil {
		return fmt.Errorf("rdb.MarkDue: %w", err)
	}
	return nil
}

// WorkflowChange is an entry of the index of changes.
type WorkflowChange struct {
	Workflow string
	// At is the change's sequence number, as the index scores it.
	At int64
}

// ChangedSince returns the workflows whose last end or load is scored after since (a sequence
// number; math.MinInt64 for all), oldest first.
func (s *SchedulerStore) ChangedSince(ctx context.Context, since int64) ([]WorkflowChange, error) {
	s.flushIndex(ctx)
	min := "(" + strconv.FormatInt(since, 10)
	if since == math.MinInt64 {
		min = "-inf"
	}
	zs, err := s.idx.ZRangeByScoreWithScores(ctx, s.keys.IndexChanges(), &redis.ZRangeBy{Min: min, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("rdb.ChangedSince: %w", err)
	}
	out := make([]WorkflowChange, len(zs))
	for i, z := range zs {
		out[i] = WorkflowChange{Workflow: fmt.Sprint(z.Member), At: int64(z.Score)}
	}
	return out, nil
}
