package rdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// Options configure a Store.
type Options struct {
	// Prefix starts every key; zero means "batchy".
	Prefix string
	// Location is the time zone of trunc_start's midnight; nil means UTC.
	Location *time.Location
	// HistoryKeep is how many batches of history a workflow keeps at least (up to a sixteenth
	// more, trimmed in steps); zero means 1000.
	HistoryKeep int
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// EventsKeep caps each workflow's event stream, which every change appends its events to
	// (about this many entries kept); zero means 100,000.
	EventsKeep int64
	// Embedded, when the client is the embedded store's, lets the fast path write without a
	// script (Embedded.applyDirect).
	Embedded *Embedded
	// MaxJobs, when not zero, is the most jobs a workflow may have: the embedded store's limit
	// (EmbeddedMaxJobs).
	MaxJobs int
	// MinReplicas, when not zero, makes every transition wait (WAIT, on the connection that
	// wrote it) for this many replicas to confirm its write, for at most ReplicaWaitTimeout,
	// and fail with EUNAVAILABLE when fewer do: the change stands on the master, unconfirmed, and
	// the transition returns its state (with the events it recorded) beside that error.
	// Zero waits for none (Redis replicates asynchronously). Not for the embedded store.
	MinReplicas int
	// Replica names this process in the keys Ping writes (health.go); empty means
	// <hostname>-<pid>.
	Replica string
}

// Store is the batch.Store on Redis (single node, Sentinel or Cluster through a universal client).
// A transition is one script that writes the workflow's state hash, its history and its event
// stream once each: computed in Go from the store's copy of the state and checked against its
// revision (fast.go, lua/apply.lua), or computed in Lua (lua/open.lua, lua/end.lua).
type Store struct {
	client redis.UniversalClient
	// idx writes and reads the installation-wide index (index.go): the client, or the embedded
	// store's unjournaled one.
	idx   redis.UniversalClient
	ix    *indexer // coalesces the index writes of changes (indexer.go)
	keys  Keys
	opts  Options
	codec codec
	// copies are the workflows' states as this process last saw them, for the fast path (fast.go).
	copies *stateCopies
	// tzName and tzTable describe Location for the open script's midnight (see zoneTable).
	tzName, tzTable string
	// replica names this process in its health keys; health runs Ping's writes (health.go).
	replica string
	health  health
}

var _ batch.Store = (*Store)(nil)
var _ batch.StatesReader = (*Store)(nil)

// New returns a Store on client. Call Migrate before serving from a Redis that may hold data of
// an earlier layout.
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "batchy"
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.HistoryKeep <= 0 {
		opts.HistoryKeep = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.EventsKeep <= 0 {
		opts.EventsKeep = 100_000
	}
	if opts.Replica == "" {
		opts.Replica = defaultReplica()
	}
	table := zoneTable(opts.Location)
	idx := client
	if opts.Embedded != nil {
		// The index is derived data that batchy serve rebuilds at start: the embedded store keeps
		// it out of its journal (its raw client), so that a change costs no second fsync.
		idx = opts.Embedded.raw
	}
	s := &Store{client: client, idx: idx, keys: Keys{Prefix: opts.Prefix}, opts: opts, codec: newCodec(), copies: newStateCopies(),
		tzName: opts.Location.String() + "#" + strconv.FormatUint(uint64(fnv32(table)), 16), tzTable: table, replica: opts.Replica}
	s.ix = newIndexer(s.writeIndex)
	return s
}

// Keys returns the key builder, for tests and troubleshooting tools.
func (s *Store) Keys() Keys { return s.keys }

// Client returns the Redis client the store runs on.
func (s *Store) Client() redis.UniversalClient { return s.client }

func (s *Store) now() int64 { return s.opts.Now().UnixMicro() }

// read runs a reading script and turns its errors into batch errors.
func (s *Store) read(ctx context.Context, op string, sc *redis.Script, keys []string, args ...any) (any, error) {
	v, err := sc.Run(ctx, s.client, keys, args...).Result()
	if err != nil {
		return nil, storeError(op, err)
	}
	return v, nil
}

// change runs a changing script, which go-redis must not send twice (see onceScripter), and
// returns the state after it with the changes it recorded.
func (s *Store) change(ctx context.Context, op, wf string, sc *redis.Script, keys []string, args ...any) (*batch.State, error) {
	run, confirmed := s.changer()
	v, err := sc.Run(ctx, run, keys, args...).Result()
	if err != nil {
		return nil, storeError(op, err)
	}
	// The reply of lua/lib.lua commit: the event entry's ID and fields, the whole state after.
	list, _ := v.([]any)
	if len(list) != 3 {
		return nil, fmt.Errorf("%s: unexpected reply %T", op, v)
	}
	h := strMap(list[2])
	s.copies.put(wf, h)
	st, err := s.stateFromHash(wf, h)
	if err != nil {
		return nil, err
	}
	st.Changes = parseChanges(wf, str(list[0]), strList(list[1]))
	// See index: the change stands whatever this does. An end wakes the after: of others (a fail
	// too: the scheduler then finds them not ready, which is cheaper than telling the two apart).
	// A pause or resume is indexed as a load: the scheduler looks at the workflow at once.
	_ = s.index(ctx, st, str(list[0]), op == "rdb.Load" || op == "rdb.SetPaused", op == "rdb.End")
	// Unconfirmed, the change still stands on the master: its state and events go back with the
	// error, so that the events reach the sinks, metrics and alerts (see Options.MinReplicas).
	return st, confirmed()
}

// changer returns the scripter a changing script runs through (never sent twice), and a
// function that says, after it ran, whether Options.MinReplicas replicas confirmed it. The
// copy and the index are updated either way: the change stands on the master.
func (s *Store) changer() (redis.Scripter, func() error) {
	if s.opts.MinReplicas <= 0 {
		return onceScripter{s.client}, func() error { return nil }
	}
	w := &waitScripter{client: s.client, n: s.opts.MinReplicas}
	return w, func() error { return w.short }
}

// stateFromHash reads a workflow's state hash (as HGETALL returns it).
func (s *Store) stateFromHash(wf string, h map[string]string) (*batch.State, error) {
	st := &batch.State{Workflow: wf, Exclusive: h["exclusive"] == "1"}
	st.LastBatchID, _ = strconv.ParseInt(h["last_batch_id"], 10, 64)
	st.LoadedAt, _ = s.codec.loadedAt.get(h["loaded_at"])
	var err error
	if st.Settings, err = s.codec.settings.get(orDefaultString(h["settings"], "{}")); err != nil {
		return nil, fmt.Errorf("rdb: workflow %s: %w", wf, err)
	}
	if p, ok := h["paused"]; ok {
		at, reason, _ := strings.Cut(p, " ")
		st.Paused, st.PauseReason = true, reason
		if us, err := strconv.ParseInt(at, 10, 64); err == nil {
			t := time.UnixMicro(us).UTC()
			st.PausedAt = &t
		}
	}
	names := strings.Fields(h["jobs"])
	st.Jobs = make(batch.Jobs, 0, len(names))
	for _, j := range names {
		f, err := s.codec.jobFields(h["run:"+j], orDefaultString(h["cfg:"+j], "{}"))
		if err != nil {
			return nil, fmt.Errorf("rdb: workflow %s job %s: %w", wf, j, err)
		}
		st.Jobs = append(st.Jobs, batch.Job{Name: j, Fields: f})
	}
	return st, nil
}

// Load implements batch.Store.
func (s *Store) Load(ctx context.Context, wf *batch.Workflow, reset bool) (*batch.State, error) {
	if err := batch.CheckName("workflow", wf.Name); err != nil {
		return nil, err
	}
	settings, err := json.Marshal(wf.Settings)
	if err != nil {
		return nil, fmt.Errorf("rdb.Load: %w", err)
	}
	if s.opts.MaxJobs > 0 && len(wf.Jobs) > s.opts.MaxJobs {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s has %d jobs: the embedded store takes workflows of up to %d jobs (keep the state in Redis for more)", wf.Name, len(wf.Jobs), s.opts.MaxJobs)
	}
	names := make([]string, len(wf.Jobs))
	for i, j := range wf.Jobs {
		names[i] = j.Name
	}
	now := s.opts.Now()
	args := []any{now.UnixMicro(), s.opts.EventsKeep, s.keys.Changed(), wf.Name, flag(reset), flag(wf.Settings.Exclusive),
		strings.Join(names, " "), string(settings), batch.FormatTime(now), Layout}
	for _, j := range wf.Jobs {
		run, cfg := splitJob(j.Fields)
		conf, _ := cfg.MarshalJSON()
		args = append(args, j.Name, run.String(), string(conf), windowRecord(j.Fields))
	}
	if err := s.client.SAdd(ctx, s.keys.Workflows(), wf.Name).Err(); err != nil {
		return nil, storeError("rdb.Load", err)
	}
	return s.change(ctx, "rdb.Load", wf.Name, scriptLoad, []string{s.keys.State(wf.Name), s.keys.Events(wf.Name), s.keys.History(wf.Name)}, args...)
}

// State implements batch.Store: one HGETALL of the workflow's state hash.
func (s *Store) State(ctx context.Context, wf string) (*batch.State, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	h, err := s.client.HGetAll(ctx, s.keys.State(wf)).Result()
	if err != nil {
		return nil, storeError("rdb.State", err)
	}
	if _, ok := h["jobs"]; !ok {
		return nil, notLoaded(wf)
	}
	s.copies.put(wf, h)
	return s.stateFromHash(wf, h)
}

// States implements batch.StatesReader: the states of many workflows in one round trip (a
// pipeline of HGETALLs), nil for those not loaded.
func (s *Store) States(ctx context.Context, wfs []string) ([]*batch.State, error) {
	out := make([]*batch.State, len(wfs))
	if len(wfs) == 0 {
		return out, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(wfs))
	for i, wf := range wfs {
		if err := batch.CheckName("workflow", wf); err != nil {
			return nil, err
		}
		cmds[i] = pipe.HGetAll(ctx, s.keys.State(wf))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, storeError("rdb.States", err)
	}
	for i, c := range cmds {
		h := c.Val()
		if _, ok := h["jobs"]; !ok {
			continue
		}
		st, err := s.stateFromHash(wfs[i], h)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

func notLoaded(wf string) error {
	return batch.Errorf(batch.ENOTFOUND, "workflow %s is not loaded: load its configuration first (GET /load_cfg/%s)", wf, wf)
}

func orDefaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Open implements batch.Store.
func (s *Store) Open(ctx context.Context, wf string, req batch.OpenRequest) (*batch.State, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	jobs, err := jobArgs(req.Jobs)
	if err != nil {
		return nil, err
	}
	now := s.now()
	from, to := "", ""
	if !req.From.IsZero() {
		end := now
		if !req.To.IsZero() {
			end = req.To.UnixMicro()
		}
		if end <= req.From.UnixMicro() {
			return nil, batch.Errorf(batch.EINVALID, "backfill window is empty: to_date %s is not after from_date %s", batch.FormatTime(time.UnixMicro(end)), batch.FormatTime(req.From))
		}
		from, to = strconv.FormatInt(req.From.UnixMicro(), 10), strconv.FormatInt(end, 10)
	} else if !req.To.IsZero() {
		return nil, batch.Errorf(batch.EINVALID, "to_date needs a from_date: a backfill takes both")
	}
	interval := "0"
	if req.Interval {
		if req.From.IsZero() || req.To.IsZero() {
			return nil, batch.Errorf(batch.EINVALID, "an interval window takes a from_date and a to_date")
		}
		interval = "1" // the script alone computes these
	} else if st, ok, err := s.openFast(ctx, wf, jobs, now, from, to); ok {
		return st, err
	}
	keys := []string{s.keys.State(wf), s.keys.Batches(wf), s.keys.History(wf), s.keys.Events(wf), s.keys.Zone(wf)}
	table := ""
	if len(s.tzTable) <= 64 {
		table = s.tzTable // a zone without daylight saving time: cheaper to send than to ask for
	}
	for {
		args := append([]any{now, s.opts.EventsKeep, s.opts.HistoryKeep, s.keys.Changed(), wf, s.tzName, table, from, to, interval}, jobs...)
		st, err := s.change(ctx, "rdb.Open", wf, scriptOpen, keys, args...)
		if table == "" && errors.Is(err, errZoneNeeded) {
			table = s.tzTable // the workflow's stored zone table is not this server's: send it once
			continue
		}
		return st, err
	}
}

// End implements batch.Store.
func (s *Store) End(ctx context.Context, wf string, req batch.EndRequest) (*batch.State, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	if req.Status != batch.StatusSuccess && req.Status != batch.StatusFailed {
		return nil, batch.Errorf(batch.EINVALID, "a batch ends as success or failed, not %q", req.Status)
	}
	jobs, err := jobArgs(req.Jobs)
	if err != nil {
		return nil, err
	}
	want := ""
	if req.BatchID != 0 {
		want = strconv.FormatInt(req.BatchID, 10)
	}
	metadata := ""
	if len(req.Metadata) > 0 {
		// Compact, as given (json.Marshal would escape <, > and &): the runtime record holds it on
		// one line.
		m, _ := req.Metadata.MarshalJSON()
		var b bytes.Buffer
		if err := json.Compact(&b, m); err != nil {
			return nil, batch.Errorf(batch.EINVALID, "metadata is not valid JSON: %v", err)
		}
		metadata = b.String()
	}
	now := s.now()
	mode := endOpenInCurrent
	switch {
	case req.Force:
		mode = endForce
	case req.Strict:
		mode = endStrict
	}
	run, _ := event.RunOf(ctx) // in the entry, for the alerts' backstop (runAlerts in internal/alert)
	if st, ok, err := s.endFast(ctx, wf, jobs, now, string(req.Status), mode, want, metadata, run); ok {
		return st, err
	}
	keys := []string{s.keys.State(wf), s.keys.History(wf), s.keys.Events(wf)}
	args := append([]any{now, s.opts.EventsKeep, s.keys.Changed(), wf, string(req.Status), mode, want, metadata, run}, jobs...)
	return s.change(ctx, "rdb.End", wf, scriptEnd, keys, args...)
}

// How End treats jobs that are not open (end.lua's ARGV[6]; batch.EndRequest's Strict and Force).
const (
	endStrict        = "1" // a conflict
	endOpenInCurrent = "0" // skipped, as are jobs open in an older batch than the current one
	endForce         = "f" // ended all the same
)

// SetWatermark implements batch.Store.
func (s *Store) SetWatermark(ctx context.Context, wf, job string, from time.Time) (*batch.State, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	if err := batch.CheckName("job", job); err != nil {
		return nil, err
	}
	if now := s.now(); from.UnixMicro() > now {
		return nil, batch.Errorf(batch.EINVALID, "from_date %s is in the future (now is %s): the job's next window would start after it ends", batch.FormatTime(from), batch.FormatTime(time.UnixMicro(now)))
	}
	keys := []string{s.keys.State(wf), s.keys.Events(wf)}
	return s.change(ctx, "rdb.SetWatermark", wf, scriptWatermark, keys, s.now(), s.opts.EventsKeep, s.keys.Changed(), wf, from.UnixMicro(), job)
}

// SetPaused implements batch.Store. The index entry is written before it returns (the lists show
// the flag at once), and a pause or resume makes the workflow due for the scheduler, which then
// takes it out of the due index (paused) or puts it back at its next fire time (resumed).
func (s *Store) SetPaused(ctx context.Context, wf string, paused bool, reason string) (*batch.State, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	if err := CheckPauseReason(reason); err != nil {
		return nil, err
	}
	if !paused && reason != "" {
		return nil, batch.Errorf(batch.EINVALID, "a resume takes no reason")
	}
	keys := []string{s.keys.State(wf), s.keys.Events(wf)}
	st, err := s.change(ctx, "rdb.SetPaused", wf, scriptPause, keys, s.now(), s.opts.EventsKeep, s.keys.Changed(), wf, flag(paused), reason)
	if err != nil {
		return nil, err
	}
	s.ix.flush(ctx)
	return st, nil
}

// CheckPauseReason refuses a pause's reason that is too long or holds control characters.
func CheckPauseReason(reason string) error {
	if len(reason) > 500 {
		return batch.Errorf(batch.EINVALID, "reason is longer than 500 characters")
	}
	for _, r := range reason {
		if r < 0x20 || r == 0x7f {
			return batch.Errorf(batch.EINVALID, "reason holds a control character")
		}
	}
	return nil
}

// Batches implements batch.Store.
func (s *Store) Batches(ctx context.Context, wf string, opts batch.ListOptions) ([]batch.Batch, error) {
	if opts.Limit <= 0 {
		opts.Limit = 20
	}
	before := "+inf"
	if opts.Before > 0 {
		before = "(" + strconv.FormatInt(opts.Before, 10)
	}
	return s.batches(ctx, wf, opts.Limit, before, "-inf")
}

// Batch implements batch.Store.
func (s *Store) Batch(ctx context.Context, wf string, id int64) (*batch.Batch, error) {
	sid := strconv.FormatInt(id, 10)
	list, err := s.batches(ctx, wf, 1, sid, sid)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, batch.Errorf(batch.ENOTFOUND, "workflow %s has no batch %d in its history", wf, id)
	}
	return &list[0], nil
}

func (s *Store) batches(ctx context.Context, wf string, limit int, max, min string) ([]batch.Batch, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	v, err := s.read(ctx, "rdb.Batches", scriptBatches, []string{s.keys.State(wf), s.keys.Batches(wf), s.keys.History(wf)}, limit, max, min, wf)
	if err != nil {
		return nil, err
	}
	reply := asList(v)
	if len(reply) != 2 {
		return nil, fmt.Errorf("rdb.Batches: unexpected reply %T", v)
	}
	order := jobOrder(strings.Fields(str(reply[0])))
	var out []batch.Batch
	for _, item := range asList(reply[1]) {
		pair := asList(item)
		if len(pair) != 2 {
			return nil, fmt.Errorf("rdb.Batches: unexpected batch %T", item)
		}
		id, _ := strconv.ParseInt(str(pair[0]), 10, 64)
		b, err := s.parseBatch(id, asList(pair[1]), order)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// parseBatch reads a history batch's job and entry pairs, ordering jobs as the workflow does and
// jobs no longer in it after them, by name.
func (s *Store) parseBatch(id int64, pairs []any, order map[string]int) (batch.Batch, error) {
	b := batch.Batch{ID: id}
	for i := 0; i+1 < len(pairs); i += 2 {
		f, err := s.codec.historyFields(str(pairs[i+1]))
		if err != nil {
			return b, fmt.Errorf("rdb: batch %d job %s: %w", id, str(pairs[i]), err)
		}
		b.Jobs = append(b.Jobs, batch.Job{Name: str(pairs[i]), Fields: f})
	}
	sort.SliceStable(b.Jobs, func(x, y int) bool {
		ox, okx := order[b.Jobs[x].Name]
		oy, oky := order[b.Jobs[y].Name]
		if okx != oky {
			return okx
		}
		if okx && ox != oy {
			return ox < oy
		}
		return b.Jobs[x].Name < b.Jobs[y].Name
	})
	return b, nil
}

// Workflows implements batch.Store.
func (s *Store) Workflows(ctx context.Context) ([]string, error) {
	names, err := s.client.SMembers(ctx, s.keys.Workflows()).Result()
	if err != nil {
		return nil, storeError("rdb.Workflows", err)
	}
	// The set is written before a workflow's first load, which may have failed: list only
	// workflows whose state exists. One EXISTS each, pipelined (they are in different slots).
	pipe := s.client.Pipeline()
	exists := make([]*redis.IntCmd, len(names))
	for i, n := range names {
		exists[i] = pipe.Exists(ctx, s.keys.State(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, storeError("rdb.Workflows", err)
	}
	out := names[:0]
	for i, n := range names {
		if exists[i].Val() == 1 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Dump implements batch.Store. The dump's form is the layout's own business: it is the same for
// every layout (export and import carry data across them).
func (s *Store) Dump(ctx context.Context, wf string) (*batch.Dump, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	v, err := s.read(ctx, "rdb.Dump", scriptDump, []string{s.keys.State(wf), s.keys.Batches(wf), s.keys.History(wf)}, wf)
	if err != nil {
		return nil, err
	}
	parts := asList(v)
	if len(parts) != 3 {
		return nil, fmt.Errorf("rdb.Dump: unexpected reply %T", v)
	}
	state, history := strMap(parts[0]), strMap(parts[2])
	names := strings.Fields(state["jobs"])
	list, _ := json.Marshal(names)
	d := &batch.Dump{Workflow: wf, Jobs: map[string]batch.Fields{}, Stash: map[string]map[string]string{},
		Meta: map[string]string{"jobs": string(list), "last_batch_id": orDefaultString(state["last_batch_id"], "0"),
			"exclusive": orDefaultString(state["exclusive"], "0"), "settings": orDefaultString(state["settings"], "{}")}}
	if t, err := batch.ParseTime(state["loaded_at"]); err == nil {
		d.Meta["loaded_at"] = strconv.Quote(batch.FormatTime(t))
	}
	if p, ok := state["paused"]; ok {
		d.Meta["paused"] = strconv.Quote(p) // "<µs> <reason>", as the state holds it
	}
	for _, j := range names {
		f, err := s.codec.jobFields(state["run:"+j], orDefaultString(state["cfg:"+j], "{}"))
		if err != nil {
			return nil, fmt.Errorf("rdb.Dump: job %s: %w", j, err)
		}
		d.Jobs[j] = f
		if stash, ok := state["stash:"+j]; ok {
			m := map[string]string{"_stashed": "1"}
			runtime := batch.Fields{}
			if err := parseRun(stash).appendTo(runtime); err != nil {
				return nil, fmt.Errorf("rdb.Dump: job %s: %w", j, err)
			}
			for k, v := range runtime {
				m[k] = string(v)
			}
			d.Stash[j] = m
		}
	}
	order := jobOrder(names)
	for _, id := range asList(parts[1]) {
		sid := str(id)
		var pairs []any
		for _, j := range strings.Fields(history[sid]) {
			if e, ok := history[sid+":"+j]; ok {
				pairs = append(pairs, j, e)
			}
		}
		n, _ := strconv.ParseInt(sid, 10, 64)
		b, err := s.parseBatch(n, pairs, order)
		if err != nil {
			return nil, err
		}
		d.Batches = append(d.Batches, b)
	}
	return d, nil
}

// Restore implements batch.Store.
func (s *Store) Restore(ctx context.Context, d *batch.Dump) error {
	if err := checkDump(d); err != nil {
		return err
	}
	if err := s.client.SAdd(ctx, s.keys.Workflows(), d.Workflow).Err(); err != nil {
		return storeError("rdb.Restore", err)
	}
	if err := s.restore(ctx, d, nil); err != nil {
		return err
	}
	_ = s.reindex(ctx, d.Workflow) // see index: the restore stands whatever this does
	return nil
}

// restore writes a dump in this layout in one script, deleting the given keys of an earlier layout
// in the same step.
func (s *Store) restore(ctx context.Context, d *batch.Dump, old []string) error {
	wf := d.Workflow
	var order []string
	_ = json.Unmarshal([]byte(d.Meta["jobs"]), &order) // checked by checkDump
	state := []any{"jobs", strings.Join(order, " "), "layout", Layout,
		"last_batch_id", orDefaultString(d.Meta["last_batch_id"], "0"),
		"exclusive", orDefaultString(d.Meta["exclusive"], "0"),
		"settings", orDefaultString(d.Meta["settings"], "{}"),
		"hist_n", len(d.Batches), "rev", "restored " + strconv.FormatInt(time.Now().UnixNano(), 10)}
	var loaded string
	if json.Unmarshal([]byte(d.Meta["loaded_at"]), &loaded) == nil {
		state = append(state, "loaded_at", loaded)
	}
	var paused string
	if json.Unmarshal([]byte(d.Meta["paused"]), &paused) == nil && paused != "" {
		state = append(state, "paused", paused)
	}
	for _, j := range order {
		f := d.Jobs[j]
		run, cfg := splitJob(f)
		conf, _ := cfg.MarshalJSON()
		state = append(state, "run:"+j, run.String(), "cfg:"+j, string(conf), "win:"+j, windowRecord(f))
		if st, ok := d.Stash[j]; ok {
			fields := batch.Fields{}
			for k, v := range st {
				if k != "_stashed" {
					fields[k] = json.RawMessage(v)
				}
			}
			stash, _ := splitJob(fields)
			state = append(state, "stash:"+j, stash.String())
		}
	}
	var history, ids []any
	for _, b := range d.Batches {
		sid := strconv.FormatInt(b.ID, 10)
		names := make([]string, len(b.Jobs))
		for i, j := range b.Jobs {
			names[i] = j.Name
			run, cfg := splitJob(j.Fields)
			conf, _ := cfg.MarshalJSON()
			history = append(history, sid+":"+j.Name, run.String()+"\n"+string(conf))
		}
		history = append(history, sid, strings.Join(names, " "))
		ids = append(ids, sid)
	}
	args := []any{s.keys.Changed(), wf, len(state) / 2}
	args = append(args, state...)
	args = append(args, len(history)/2)
	args = append(args, history...)
	args = append(args, ids...)
	keys := append([]string{s.keys.State(wf), s.keys.Batches(wf), s.keys.History(wf)}, old...)
	s.copies.forget(wf)
	if err := scriptRestore.Run(ctx, onceScripter{s.client}, keys, args...).Err(); err != nil {
		return storeError("rdb.Restore", err)
	}
	return nil
}

// checkDump validates a dump before it replaces anything.
func checkDump(d *batch.Dump) error {
	if err := batch.CheckName("workflow", d.Workflow); err != nil {
		return err
	}
	var order []string
	if err := json.Unmarshal([]byte(d.Meta["jobs"]), &order); err != nil {
		return batch.Errorf(batch.EINVALID, "workflow %s: meta.jobs must be a JSON array of job names", d.Workflow)
	}
	for _, j := range order {
		if err := batch.CheckName("job", j); err != nil {
			return batch.Errorf(batch.EINVALID, "workflow %s: %s", d.Workflow, batch.ErrorMessage(err))
		}
		if _, ok := d.Jobs[j]; !ok {
			return batch.Errorf(batch.EINVALID, "workflow %s: job %s is listed but has no state", d.Workflow, j)
		}
	}
	for job, f := range d.Jobs {
		if err := batch.CheckName("job", job); err != nil {
			return batch.Errorf(batch.EINVALID, "workflow %s: %s", d.Workflow, batch.ErrorMessage(err))
		}
		for name, v := range f {
			if !json.Valid(v) {
				return batch.Errorf(batch.EINVALID, "workflow %s: job %s: field %s is not valid JSON", d.Workflow, job, name)
			}
		}
	}
	for _, b := range d.Batches {
		for _, j := range b.Jobs {
			if err := batch.CheckName("job", j.Name); err != nil {
				return batch.Errorf(batch.EINVALID, "workflow %s: batch %d: %s", d.Workflow, b.ID, batch.ErrorMessage(err))
			}
		}
	}
	return nil
}

// errZoneNeeded is the open script's request for the server's time zone table (lua/open.lua).
var errZoneNeeded = errors.New("rdb: the time zone table is needed")

// storeError turns a Redis error into a batch error: script replies keep their code and message,
// anything that means "Redis is not there" becomes EUNAVAILABLE, the rest EINTERNAL.
func storeError(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the request was cancelled", Cause: err}
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if strings.HasPrefix(msg, "ETZ ") {
			return errZoneNeeded
		}
		if rest, ok := strings.CutPrefix(msg, "EWINDOW "); ok {
			return windowError(rest)
		}
		for _, code := range []string{batch.ENOTFOUND, batch.ECONFLICT, batch.EINVALID} {
			prefix := "E" + strings.ToUpper(strings.ReplaceAll(code, "_", "")) + " "
			if rest, ok := strings.CutPrefix(msg, prefix); ok {
				return batch.Errorf(code, "%s", rest)
			}
		}
		if rest, ok := strings.CutPrefix(msg, "LOADING the embedded store"); ok {
			// The embedded store's journal cannot be written: say so (Embedded).
			return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the embedded store" + rest, Cause: fmt.Errorf("%s: %w", op, err)}
		}
		for _, busy := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "TRYAGAIN", "BUSY"} {
			if strings.HasPrefix(msg, busy) {
				return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store is not available", Cause: fmt.Errorf("%s: %w", op, err)}
			}
		}
		return &batch.Error{Code: batch.EINTERNAL, Message: "internal error", Cause: fmt.Errorf("%s: %w", op, err)}
	}
	return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store is not available", Cause: fmt.Errorf("%s: %w", op, err)}
}

// windowError words open.lua's EWINDOW "<job> <from µs> <to µs>": an open that would give a job
// a window starting after it ends (SPEC.md "No inverted window").
func windowError(rest string) error {
	f := strings.Fields(rest)
	if len(f) != 3 {
		return batch.Errorf(batch.ECONFLICT, "an open would give a job a window that starts after it ends")
	}
	at := func(s string) string { n, _ := atoi(s); return batch.FormatTime(time.UnixMicro(n)) }
	return batch.Errorf(batch.ECONFLICT, "job %s: its window would start at %s (from_date), after it ends at %s (to_date, now): its from_date lies in the future; set its watermark to a past time", f[0], at(f[1]), at(f[2]))
}

// jobArgs validates requested job names and removes repeats.
func jobArgs(jobs []string) ([]any, error) {
	seen := map[string]bool{}
	out := make([]any, 0, len(jobs))
	for _, j := range jobs {
		if err := batch.CheckName("job", j); err != nil {
			return nil, err
		}
		if !seen[j] {
			seen[j] = true
			out = append(out, j)
		}
	}
	return out, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func jobOrder(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// strList reads a list reply of strings, in order.
func strList(v any) []string {
	list := asList(v)
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = str(x)
	}
	return out
}

func strMap(v any) map[string]string {
	list := asList(v)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[str(list[i])] = str(list[i+1])
	}
	return m
}

// fnv32 is the FNV-1a hash, naming a zone table's content.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// zoneTable writes loc's UTC offsets up to 2100 in the form the open script reads, from the
// zone's first entry (local mean time, so that trunc_start of the 1776 sentinel matches Go).
// Dates after 2100 use the last offset.
func zoneTable(loc *time.Location) string {
	t := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).In(loc)
	limit := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	_, off := t.Zone()
	var b strings.Builder
	b.WriteString(strconv.Itoa(off))
	for {
		_, end := t.ZoneBounds()
		if end.IsZero() || end.After(limit) {
			break
		}
		// Go's ZoneBounds for rule-based (far future) zones may report a bound that does not
		// move forward at a year's end; step past it rather than loop.
		if !end.After(t) {
			end = t.Add(24 * time.Hour)
		}
		if _, o := end.Zone(); o != off {
			fmt.Fprintf(&b, ";%d:%d", end.Unix(), o)
			off = o
		}
		t = end
	}
	return b.String()
}
