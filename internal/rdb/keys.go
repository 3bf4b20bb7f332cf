// Package rdb is the Redis store: batch state in Redis hashes, every transition one Lua script, and
// the embedded in-process store used when no Redis is configured.
package rdb

import (
	"strconv"
)

// Keys builds every Redis key batchy uses. All keys of one workflow share the hash tag {<wf>}, so
// they live in one Redis Cluster slot and a single script may touch them all. The Lua scripts
// derive the per-workflow keys from the meta key by the same rules (see scripts.go).
//
//	<prefix>:workflows                  SET   names of loaded workflows
//	<prefix>:changed                    pub/sub channel: every change publishes the workflow's name
//	<prefix>:{<wf>}:meta                HASH  jobs (JSON array, file order), last_batch_id, exclusive, loaded_at
//	<prefix>:{<wf>}:job:<job>           HASH  the job's fields, each value as JSON text
//	<prefix>:{<wf>}:stash:<job>         HASH  the job's regular state while a backfill batch is open
//	<prefix>:{<wf>}:batches             ZSET  batch ids, scored by id (history index)
//	<prefix>:{<wf>}:batch:<batch_id>    HASH  job -> the job's fields in that batch, as a JSON object
//	<prefix>:{<wf>}:events              STREAM the workflow's events (transitions, run steps, log lines)
//	<prefix>:{<wf>}:alert:<key>         STRING an alert sent (dedupe: one per condition per batch or day)
//	<prefix>:scheduler:leader           HASH  holder, expires (ms): the scheduler's leader lease
//	<prefix>:{<wf>}:sched               HASH  last_fire (ms), last_after (µs): the scheduler's claimed fires
//	<prefix>:{<wf>}:runs                ZSET  run ids scored by creation time (ms)
//	<prefix>:{<wf>}:active              SET   ids of runs not yet finished
//	<prefix>:{<wf>}:run:<id>            HASH  record (JSON), state, holder, lease, not_before, cancel
//	<prefix>:{<wf>}:trimmed             SET   ids of finished runs the run index dropped, whose records are to delete
type Keys struct {
	Prefix string
}

// Workflows is the set of loaded workflow names.
func (k Keys) Workflows() string { return k.Prefix + ":workflows" }

// Changed is the pub/sub channel every transition publishes its workflow's name on.
func (k Keys) Changed() string { return k.Prefix + ":changed" }

// base is the common start of a workflow's keys.
func (k Keys) base(wf string) string { return k.Prefix + ":{" + wf + "}:" }

// Meta is a workflow's settings and job list.
func (k Keys) Meta(wf string) string { return k.base(wf) + "meta" }

// Job holds one job's current fields.
func (k Keys) Job(wf, job string) string { return k.base(wf) + "job:" + job }

// Batches is a workflow's history index.
func (k Keys) Batches(wf string) string { return k.base(wf) + "batches" }

// Batch is one batch of a workflow's history.
func (k Keys) Batch(wf string, id int64) string {
	return k.base(wf) + "batch:" + strconv.FormatInt(id, 10)
}

// Leader is the scheduler's leader lease.
func (k Keys) Leader() string { return k.Prefix + ":scheduler:leader" }

// Sched holds a workflow's claimed fire times.
func (k Keys) Sched(wf string) string { return k.base(wf) + "sched" }

// Runs is a workflow's run index.
func (k Keys) Runs(wf string) string { return k.base(wf) + "runs" }

// Active is the set of a workflow's unfinished runs.
func (k Keys) Active(wf string) string { return k.base(wf) + "active" }

// Run is one run's record.
func (k Keys) Run(wf, id string) string { return k.base(wf) + "run:" + id }

// Events is a workflow's event stream.
func (k Keys) Events(wf string) string { return k.base(wf) + "events" }

// Alert marks an alert as sent, so that it goes out once.
func (k Keys) Alert(wf, key string) string { return k.base(wf) + "alert:" + key }

// Trimmed holds the ids of finished runs that left a workflow's run index, until their records
// are deleted.
func (k Keys) Trimmed(wf string) string { return k.base(wf) + "trimmed" }
