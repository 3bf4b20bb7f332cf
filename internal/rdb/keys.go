// Package rdb is the Redis store and the one package that talks to Redis: batch state in Redis
// hashes, every transition one Lua script, the event streams, the scheduler's runs and leases,
// alert marks, change notifications, migration between key layouts, and the embedded in-process
// store used when no Redis is configured.
package rdb

// Layout is the version of the key layout below, stored in every state hash and in the layout key.
// Layout 1 (batchy before it) kept a hash per job and per batch; Migrate carries it across.
const Layout = "2"

// Keys builds every Redis key batchy uses. All keys of one workflow share the hash tag {<wf>}, so
// they live in one Redis Cluster slot and a single script may touch them all. Scripts get every
// key they touch in KEYS, built here.
//
//	<prefix>:layout                     STRING the layout version of the data (Layout)
//	<prefix>:workflows                  SET   names of loaded workflows
//	<prefix>:changed                    pub/sub channel: every change publishes the workflow's name
//	<prefix>:{<wf>}:state               HASH  the workflow: jobs (names, space-separated, file order),
//	                                          last_batch_id, exclusive, settings (JSON), loaded_at,
//	                                          layout, hist_n (batches in history), tzname (whose
//	                                          table the zone key holds), paused ("<µs> <reason>"
//	                                          while the triggers are paused, see lua/pause.lua), and per job run:<job>,
//	                                          cfg:<job>, win:<job> and, while a backfill is open,
//	                                          stash:<job> (see lua/lib.lua and record.go)
//	<prefix>:{<wf>}:zone                STRING the time zone table of trunc_start's midnight
//	<prefix>:{<wf>}:batches             ZSET  batch ids, scored by id (history index)
//	<prefix>:{<wf>}:history             HASH  <batch_id> -> the batch's jobs (space-separated),
//	                                          <batch_id>:<job> -> the job's runtime record, a newline,
//	                                          its configured fields (JSON), as the batch left them
//	<prefix>:{<wf>}:events              STREAM the workflow's events: a transition's in one entry
//	                                          (fields x, j and one per job, see events.go), run steps
//	                                          and log lines one event an entry (field e, JSON)
//	<prefix>:{<wf>}:alert:<key>         STRING an alert sent (dedupe: one per condition per batch or day)
//	<prefix>:scheduler:leader           HASH  holder, expires (ms): the scheduler's leader lease
//	<prefix>:{<wf>}:sched               HASH  last_fire (ms), last_after (µs): the scheduler's claimed fires
//	<prefix>:{<wf>}:runs                ZSET  run ids scored by creation time (ms)
//	<prefix>:{<wf>}:active              SET   ids of runs not yet finished
//	<prefix>:{<wf>}:run:<id>            HASH  record (JSON), state, holder, lease, not_before, cancel
//	<prefix>:{<wf>}:trimmed             SET   ids of finished runs the run index dropped, whose records are to delete
//	<prefix>:{<wf>}:outcome:<state>     ZSET  with keep_runs: finished run ids of that final state, by creation (ms)
//	<prefix>:{~<n>}:health:<replica>    STRING a replica's last readiness write (ms), kept a minute; tag
//	                                          ~ on a single node, one ~<n> per master's slot range on a Cluster
//
// The installation-wide index (index.go) is written right after each change, by lua/index.lua. Its
// keys share the hash tag {~}, which no workflow name can have: one slot of their own.
//
//	<prefix>:{~}:summaries              HASH  <wf> -> "<status> <summary JSON>" (batch.Summary)
//	<prefix>:{~}:status                 ZSET  "<status>:<wf>", all scored 0: lists by status, counts
//	<prefix>:{~}:names                  ZSET  <wf>, all scored 0: lists by name and name prefix
//	<prefix>:{~}:changes                ZSET  <wf> scored by the seq of its last end or load
//	<prefix>:{~}:seq                    STRING the counter that scores changes
//	<prefix>:{~}:due                    ZSET  <wf> scored by when the scheduler next looks at it (ms)
//	<prefix>:{~}:events                 ZSET  <wf> scored by the seq of its last event write (sinks.go)
//	<prefix>:{~}:sink:<id>              HASH  holder, expires (ms): the lease of the log sink <id>'s feeder
//
// Each log sink's cursor in a workflow's stream (sinks.go) is kept with the workflow's keys:
//
//	<prefix>:{<wf>}:sinks               HASH  <sink id> -> "<entry ID> <ordinal>": the last entry delivered
type Keys struct {
	Prefix string
}

// Workflows is the set of loaded workflow names.
func (k Keys) Workflows() string { return k.Prefix + ":workflows" }

// Changed is the pub/sub channel every transition publishes its workflow's name on.
func (k Keys) Changed() string { return k.Prefix + ":changed" }

// base is the common start of a workflow's keys.
func (k Keys) base(wf string) string { return k.Prefix + ":{" + wf + "}:" }

// Layout holds the layout version of the data under the prefix.
func (k Keys) Layout() string { return k.Prefix + ":layout" }

// State is a workflow's settings, jobs and their current fields.
func (k Keys) State(wf string) string { return k.base(wf) + "state" }

// Batches is a workflow's history index.
func (k Keys) Batches(wf string) string { return k.base(wf) + "batches" }

// Zone holds the time zone table of a workflow's trunc_start midnights (lua/open.lua).
func (k Keys) Zone(wf string) string { return k.base(wf) + "zone" }

// History holds the batches of a workflow's history.
func (k Keys) History(wf string) string { return k.base(wf) + "history" }

// legacyKeys are the keys of layout 1 that Migrate reads and deletes.
type legacyKeys struct{ Keys }

func (k legacyKeys) meta(wf string) string       { return k.base(wf) + "meta" }
func (k legacyKeys) job(wf, job string) string   { return k.base(wf) + "job:" + job }
func (k legacyKeys) stash(wf, job string) string { return k.base(wf) + "stash:" + job }
func (k legacyKeys) batch(wf, id string) string  { return k.base(wf) + "batch:" + id }

// Leader is the scheduler's leader lease.
func (k Keys) Leader() string { return k.Prefix + ":scheduler:leader" }

// Sched holds a workflow's claimed fire times.
func (k Keys) Sched(wf string) string { return k.base(wf) + "sched" }

// Runs is a workflow's run index.
func (k Keys) Runs(wf string) string { return k.base(wf) + "runs" }

// Outcome indexes a workflow's finished runs of one final state (keep_runs), by creation time.
func (k Keys) Outcome(wf, state string) string { return k.base(wf) + "outcome:" + state }

// Active is the set of a workflow's unfinished runs.
func (k Keys) Active(wf string) string { return k.base(wf) + "active" }

// Run is one run's record.
func (k Keys) Run(wf, id string) string { return k.base(wf) + "run:" + id }

// Events is a workflow's event stream.
func (k Keys) Events(wf string) string { return k.base(wf) + "events" }

// Alert marks an alert as claimed by a replica (for a lease) or settled (sent or given up), so
// that it goes out once.
func (k Keys) Alert(wf, key string) string { return k.base(wf) + "alert:" + key }

// AlertsPending holds a workflow's alerts not yet settled (key -> body), for another replica to
// deliver when their claim expires.
func (k Keys) AlertsPending(wf string) string { return k.base(wf) + "alerts:pending" }

// Trimmed holds the ids of finished runs that left a workflow's run index, until their records
// are deleted.
func (k Keys) Trimmed(wf string) string { return k.base(wf) + "trimmed" }

// index is the common start of the installation-wide index's keys: the tag {~} is not a
// workflow name, so the index has a Cluster slot of its own.
func (k Keys) index() string { return k.Prefix + ":{~}:" }

// Summaries holds every workflow's summary.
func (k Keys) Summaries() string { return k.index() + "summaries" }

// StatusIndex lists the workflows by overall status ("<status>:<wf>", lexicographic).
func (k Keys) StatusIndex() string { return k.index() + "status" }

// Names lists the workflows by name (lexicographic).
func (k Keys) Names() string { return k.index() + "names" }

// IndexChanges scores each workflow by the sequence number of its last end or load.
func (k Keys) IndexChanges() string { return k.index() + "changes" }

// IndexSeq is the counter of IndexChanges' scores.
func (k Keys) IndexSeq() string { return k.index() + "seq" }

// AlertsDue indexes the workflows with pending alerts, scored by when (Unix ms) their claims
// end: a retry scan reads only the workflows due, whatever their number.
func (k Keys) AlertsDue() string { return k.index() + "alerts" }

// Due scores each workflow by when the scheduler next looks at it.
func (k Keys) Due() string { return k.index() + "due" }

// EventsIndex scores each workflow by the sequence number (IndexSeq) of its last event write:
// the log sinks' feeders read the workflows with new events from it.
func (k Keys) EventsIndex() string { return k.index() + "events" }

// SinkLease is the lease of a log sink's feeder: one replica delivers to the sink at a time.
func (k Keys) SinkLease(sink string) string { return k.index() + "sink:" + sink }

// SinkStart holds when (Unix ms) a log sink fed only recent events (the alerts' backstop) was
// first fed: in a workflow it has no cursor in, it starts at the entries written since.
func (k Keys) SinkStart(sink string) string { return k.index() + "sinkstart:" + sink }

// SinkCursors holds, per log sink, the last entry of a workflow's stream delivered to it.
func (k Keys) SinkCursors(wf string) string { return k.base(wf) + "sinks" }

// Health is the key a replica's readiness check writes (health.go), in the slot of tag ("~", or
// "~<n>" to reach a given Cluster master).
func (k Keys) Health(tag, replica string) string {
	return k.Prefix + ":{" + tag + "}:health:" + replica
}
