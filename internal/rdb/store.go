package rdb

import (
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
)

// Options configure a Store.
type Options struct {
	// Prefix starts every key; zero means "batchy".
	Prefix string
	// Location is the time zone of trunc_start's midnight; nil means UTC.
	Location *time.Location
	// HistoryKeep is how many batches of history a workflow keeps; zero means 1000.
	HistoryKeep int
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// AfterWrite runs after every successful change, before the change is reported; the embedded
	// store saves its data file there. Nil means nothing.
	AfterWrite func(context.Context) error
	// EventsKeep caps each workflow's event stream, which every change appends its events to
	// (about this many kept); zero means 100,000.
	EventsKeep int64
}

// Store is the batch.Store on Redis (single node, Sentinel or Cluster through a universal client).
type Store struct {
	client redis.UniversalClient
	keys   Keys
	opts   Options
	tz     string
}

var _ batch.Store = (*Store)(nil)

// New returns a Store on client.
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
	return &Store{client: client, keys: Keys{Prefix: opts.Prefix}, opts: opts, tz: zoneTable(opts.Location)}
}

// Keys returns the key builder, for tests and troubleshooting tools.
func (s *Store) Keys() Keys { return s.keys }

func (s *Store) now() int64 { return s.opts.Now().UnixMicro() }

// run executes a reading script on a workflow and turns its errors into batch errors.
func (s *Store) run(ctx context.Context, op string, sc *redis.Script, wf string, args ...any) (any, error) {
	return s.eval(ctx, s.client, op, sc, wf, args...)
}

// runOnce executes a changing script, which go-redis must not send twice (see onceScripter).
func (s *Store) runOnce(ctx context.Context, op string, sc *redis.Script, wf string, args ...any) (any, error) {
	return s.eval(ctx, onceScripter{s.client}, op, sc, wf, args...)
}

func (s *Store) eval(ctx context.Context, c redis.Scripter, op string, sc *redis.Script, wf string, args ...any) (any, error) {
	if err := batch.CheckName("workflow", wf); err != nil {
		return nil, err
	}
	v, err := sc.Run(ctx, c, []string{s.keys.Meta(wf)}, args...).Result()
	if err != nil {
		return nil, storeError(op, err)
	}
	return v, nil
}

// write runs a changing script (its first argument the event stream's cap, see begin_change),
// then AfterWrite, and returns the state with the events the change recorded.
func (s *Store) write(ctx context.Context, op string, sc *redis.Script, wf string, args ...any) (*batch.State, error) {
	v, err := s.runOnce(ctx, op, sc, wf, append([]any{s.opts.EventsKeep}, args...)...)
	if err != nil {
		return nil, err
	}
	if err := s.afterWrite(ctx, op); err != nil {
		return nil, err
	}
	reply := asList(v)
	if len(reply) != 2 {
		return nil, fmt.Errorf("%s: unexpected reply %T", op, v)
	}
	st, err := parseState(wf, reply[0])
	if err != nil {
		return nil, err
	}
	events := asList(reply[1])
	for i := 0; i+1 < len(events); i += 2 {
		st.Events = append(st.Events, withID(str(events[i]), str(events[i+1])))
	}
	return st, nil
}

// withID puts a stream entry's ID into its event's JSON object, as the stream's readers do.
func withID(id, body string) json.RawMessage {
	return json.RawMessage(`{"id":` + strconv.Quote(id) + "," + strings.TrimPrefix(body, "{"))
}

func (s *Store) afterWrite(ctx context.Context, op string) error {
	if s.opts.AfterWrite == nil {
		return nil
	}
	if err := s.opts.AfterWrite(ctx); err != nil {
		return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the change was made but could not be saved to the data file", Cause: fmt.Errorf("%s: %w", op, err)}
	}
	return nil
}

// Load implements batch.Store.
func (s *Store) Load(ctx context.Context, wf *batch.Workflow, reset bool) (*batch.State, error) {
	names := make([]string, len(wf.Jobs))
	settings, err := json.Marshal(wf.Settings)
	if err != nil {
		return nil, fmt.Errorf("rdb.Load: %w", err)
	}
	args := []any{s.now(), flag(reset), flag(wf.Settings.Exclusive), "", string(settings)}
	for i, j := range wf.Jobs {
		names[i] = j.Name
		args = append(args, j.Name, len(j.Fields))
		for _, f := range j.Fields.Names() {
			args = append(args, f, string(j.Fields[f]))
		}
	}
	list, _ := json.Marshal(names)
	args[3] = string(list)
	if err := s.client.SAdd(ctx, s.keys.Workflows(), wf.Name).Err(); err != nil {
		return nil, storeError("rdb.Load", err)
	}
	return s.write(ctx, "rdb.Load", scriptLoad, wf.Name, args...)
}

// State implements batch.Store.
func (s *Store) State(ctx context.Context, wf string) (*batch.State, error) {
	v, err := s.run(ctx, "rdb.State", scriptState, wf)
	if err != nil {
		return nil, err
	}
	return parseState(wf, v)
}

// Open implements batch.Store.
func (s *Store) Open(ctx context.Context, wf string, req batch.OpenRequest) (*batch.State, error) {
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
	args := append([]any{now, s.tz, s.opts.HistoryKeep, from, to}, jobs...)
	return s.write(ctx, "rdb.Open", scriptOpen, wf, args...)
}

// End implements batch.Store.
func (s *Store) End(ctx context.Context, wf string, req batch.EndRequest) (*batch.State, error) {
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
	status, _ := json.Marshal(string(req.Status))
	metadata := ""
	if len(req.Metadata) > 0 {
		m, err := req.Metadata.MarshalJSON()
		if err != nil {
			return nil, err
		}
		metadata = string(m)
	}
	args := append([]any{s.now(), string(status), flag(req.Strict), want, metadata}, jobs...)
	return s.write(ctx, "rdb.End", scriptEnd, wf, args...)
}

// SetWatermark implements batch.Store.
func (s *Store) SetWatermark(ctx context.Context, wf, job string, from time.Time) (*batch.State, error) {
	if err := batch.CheckName("job", job); err != nil {
		return nil, err
	}
	date, _ := json.Marshal(batch.FormatTime(from))
	return s.write(ctx, "rdb.SetWatermark", scriptWatermark, wf, string(date), s.now(), job)
}

// Batches implements batch.Store.
func (s *Store) Batches(ctx context.Context, wf string, opts batch.ListOptions) ([]batch.Batch, error) {
	if opts.Limit <= 0 {
		opts.Limit = 20
	}
	before := "+inf"
	if opts.Before > 0 {
		before = strconv.FormatInt(opts.Before, 10)
	}
	v, err := s.run(ctx, "rdb.Batches", scriptBatches, wf, opts.Limit, before)
	if err != nil {
		return nil, err
	}
	state, err := s.State(ctx, wf)
	if err != nil {
		return nil, err
	}
	return parseBatches(v, jobOrder(state.Jobs))
}

// Batch implements batch.Store.
func (s *Store) Batch(ctx context.Context, wf string, id int64) (*batch.Batch, error) {
	state, err := s.State(ctx, wf)
	if err != nil {
		return nil, err
	}
	v, err := s.client.HGetAll(ctx, s.keys.Batch(wf, id)).Result()
	if err != nil {
		return nil, storeError("rdb.Batch", err)
	}
	if len(v) == 0 {
		return nil, batch.Errorf(batch.ENOTFOUND, "workflow %s has no batch %d in its history", wf, id)
	}
	flat := make([]any, 0, 2*len(v))
	for k, val := range v {
		flat = append(flat, k, val)
	}
	b, err := parseBatch(id, flat, jobOrder(state.Jobs))
	if err != nil {
		return nil, err
	}
	return &b, nil
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
		exists[i] = pipe.Exists(ctx, s.keys.Meta(n))
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

// Dump implements batch.Store.
func (s *Store) Dump(ctx context.Context, wf string) (*batch.Dump, error) {
	v, err := s.run(ctx, "rdb.Dump", scriptDump, wf)
	if err != nil {
		return nil, err
	}
	parts, ok := v.([]any)
	if !ok || len(parts) != 4 {
		return nil, fmt.Errorf("rdb.Dump: unexpected reply %T", v)
	}
	d := &batch.Dump{Workflow: wf, Jobs: map[string]batch.Fields{}, Stash: map[string]map[string]string{}}
	d.Meta = strMap(parts[0])
	pairs := asList(parts[1])
	for i := 0; i+1 < len(pairs); i += 2 {
		d.Jobs[str(pairs[i])] = fields(pairs[i+1])
	}
	pairs = asList(parts[2])
	for i := 0; i+1 < len(pairs); i += 2 {
		d.Stash[str(pairs[i])] = strMap(pairs[i+1])
	}
	var order []string
	_ = json.Unmarshal([]byte(d.Meta["jobs"]), &order)
	pairs = asList(parts[3])
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := strconv.ParseInt(str(pairs[i]), 10, 64)
		b, err := parseBatch(id, asList(pairs[i+1]), jobOrder(orderJobs(order)))
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
	args := []any{len(d.Meta)}
	for _, k := range sortedKeys(d.Meta) {
		args = append(args, k, d.Meta[k])
	}
	args = append(args, len(d.Jobs))
	for _, job := range sortedKeys(d.Jobs) {
		f := d.Jobs[job]
		args = append(args, job, len(f))
		for _, name := range f.Names() {
			args = append(args, name, string(f[name]))
		}
	}
	args = append(args, len(d.Stash))
	for _, job := range sortedKeys(d.Stash) {
		st := d.Stash[job]
		args = append(args, job, len(st))
		for _, k := range sortedKeys(st) {
			args = append(args, k, st[k])
		}
	}
	args = append(args, len(d.Batches))
	for _, b := range d.Batches {
		args = append(args, strconv.FormatInt(b.ID, 10), len(b.Jobs))
		for _, j := range b.Jobs {
			obj, _ := j.Fields.MarshalJSON()
			args = append(args, j.Name, string(obj))
		}
	}
	if err := s.client.SAdd(ctx, s.keys.Workflows(), d.Workflow).Err(); err != nil {
		return storeError("rdb.Restore", err)
	}
	if _, err := s.runOnce(ctx, "rdb.Restore", scriptRestore, d.Workflow, args...); err != nil {
		return err
	}
	return s.afterWrite(ctx, "rdb.Restore")
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
	return nil
}

// Ping implements batch.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return storeError("rdb.Ping", err)
	}
	return nil
}

// storeError turns a Redis error into a batch error: script replies keep their code and message,
// anything that means "Redis is not there" becomes EUNAVAILABLE, the rest EINTERNAL.
func storeError(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the request was cancelled", Cause: err}
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, code := range []string{batch.ENOTFOUND, batch.ECONFLICT, batch.EINVALID} {
			prefix := "E" + strings.ToUpper(strings.ReplaceAll(code, "_", "")) + " "
			if rest, ok := strings.CutPrefix(msg, prefix); ok {
				return batch.Errorf(code, "%s", rest)
			}
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

// parseState reads the scripts' state reply: last_batch_id, exclusive, loaded_at, settings, then
// job, pairs.
func parseState(wf string, v any) (*batch.State, error) {
	list := asList(v)
	if len(list) < 4 {
		return nil, fmt.Errorf("rdb: unexpected state reply %T", v)
	}
	st := &batch.State{Workflow: wf, Exclusive: str(list[1]) == "1"}
	st.LastBatchID, _ = strconv.ParseInt(str(list[0]), 10, 64)
	var loaded string
	if err := json.Unmarshal([]byte(str(list[2])), &loaded); err == nil {
		st.LoadedAt, _ = batch.ParseTime(loaded)
	}
	if err := json.Unmarshal([]byte(str(list[3])), &st.Settings); err != nil {
		return nil, fmt.Errorf("rdb: workflow %s: stored settings: %w", wf, err)
	}
	for i := 4; i+1 < len(list); i += 2 {
		st.Jobs = append(st.Jobs, batch.Job{Name: str(list[i]), Fields: fields(list[i+1])})
	}
	return st, nil
}

func parseBatches(v any, order map[string]int) ([]batch.Batch, error) {
	list := asList(v)
	out := make([]batch.Batch, 0, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		id, _ := strconv.ParseInt(str(list[i]), 10, 64)
		b, err := parseBatch(id, asList(list[i+1]), order)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// parseBatch reads a history record's job -> JSON object pairs, ordering jobs as the workflow does
// and jobs no longer in it after them, by name.
func parseBatch(id int64, pairs []any, order map[string]int) (batch.Batch, error) {
	b := batch.Batch{ID: id}
	for i := 0; i+1 < len(pairs); i += 2 {
		var f batch.Fields
		if err := json.Unmarshal([]byte(str(pairs[i+1])), &f); err != nil {
			return b, fmt.Errorf("rdb: batch %d job %s: %w", id, str(pairs[i]), err)
		}
		b.Jobs = append(b.Jobs, batch.Job{Name: str(pairs[i]), Fields: f})
	}
	sort.Slice(b.Jobs, func(x, y int) bool {
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

func jobOrder(jobs batch.Jobs) map[string]int {
	m := make(map[string]int, len(jobs))
	for i, j := range jobs {
		m[j.Name] = i
	}
	return m
}

func orderJobs(names []string) batch.Jobs {
	jobs := make(batch.Jobs, len(names))
	for i, n := range names {
		jobs[i].Name = n
	}
	return jobs
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func fields(v any) batch.Fields {
	list := asList(v)
	f := make(batch.Fields, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		f[str(list[i])] = json.RawMessage(str(list[i+1]))
	}
	return f
}

func strMap(v any) map[string]string {
	list := asList(v)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[str(list[i])] = str(list[i+1])
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// zoneTable writes loc's UTC offsets up to 2100 in the form the scripts' load_tz reads, from the
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
