package rdb

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// The installation-wide index: every workflow's summary (batch.Summary), the workflows by name and
// by status, the time of each one's last change and when the scheduler next looks at it (keys in
// Keys, under the tag {~}). The lists read it, a page at a time, instead of every workflow's state.
//
// On a Redis Cluster a script may only touch the keys of one slot, and a workflow's keys are in
// its own ({wf}): a transition's script cannot write the index. So the store writes it right after
// each change, from the state the change's script returned (lua/index.lua, one round trip; the
// changes of a workflow within 50 ms share one write: indexer.go), and the
// index is derived data, repairable at any time from the workflows' states: RebuildIndex (run when
// batchy serve starts) writes it again from them, and the next change of a workflow rewrites its
// entry. A batchy that dies between a change and its index write leaves that one entry stale
// until then; index.lua keeps the latest change when two replicas' writes cross.

//go:embed lua/index.lua
var luaIndex string

// luaScore is score(s), which reads a sorted set's score also when the embedded store wrote it with
// an exponent: prepended to the scripts that read scores.
//
//go:embed lua/score.lua
var luaScore string

var scriptIndex = redis.NewScript(luaScore + luaIndex)

func (s *Store) indexKeys() []string {
	return []string{s.keys.Summaries(), s.keys.StatusIndex(), s.keys.IndexChanges(), s.keys.Names(), s.keys.Due(), s.keys.IndexSeq(), s.keys.EventsIndex()}
}

// index writes a workflow's entry after a change; rev is the change's event entry ID (which
// orders the index writes of a workflow), load says the change was a load (or restore), wake that
// it may make a workflow with after: on this one ready (an end; a load may change the workflow's
// own after:). The change has happened whatever this does: an error here leaves the entry to the
// next change or to RebuildIndex, and is returned only to RebuildIndex.
func (s *Store) index(ctx context.Context, st *batch.State, rev string, load, wake bool) error {
	s.ix.add(st, rev, load, wake)
	return nil
}

// writeIndex runs index.lua for a workflow's entry (see index).
func (s *Store) writeIndex(ctx context.Context, p *pendingIndex) error {
	sum := batch.Summarize(p.st)
	sum.LastSuccess, sum.LastFailure = latest(sum.LastSuccess, p.lastSuccess), latest(sum.LastFailure, p.lastFailure)
	b, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	rev := p.rev
	if rev == "" {
		rev = "0-0"
	}
	return scriptIndex.Run(ctx, s.idx, s.indexKeys(), p.st.Workflow, string(sum.Status), rev, b, flag(p.wake || p.load), flag(p.load)).Err()
}

// reindex writes a workflow's entry again from its state (ENOTFOUND when it is not loaded).
func (s *Store) reindex(ctx context.Context, wf string) error {
	h, err := s.client.HGetAll(ctx, s.keys.State(wf)).Result()
	if err != nil {
		return storeError("rdb.RebuildIndex", err)
	}
	if _, ok := h["jobs"]; !ok {
		return notLoaded(wf)
	}
	st, err := s.stateFromHash(wf, h)
	if err != nil {
		return err
	}
	rev, _, _ := strings.Cut(h["rev"], " ") // "<entry ID> <writer's µs>"
	if err := s.writeIndex(ctx, &pendingIndex{st: st, rev: rev, load: true, wake: true}); err != nil {
		return storeError("rdb.RebuildIndex", err)
	}
	return nil
}

// parseSummary reads an entry of the summaries hash: "<status> <revision> <JSON>".
func parseSummary(wf, text string) (batch.Summary, error) {
	var sum batch.Summary
	_, rest, _ := strings.Cut(text, " ")
	_, js, _ := strings.Cut(rest, " ")
	if err := json.Unmarshal([]byte(js), &sum); err != nil {
		return sum, fmt.Errorf("workflow %s: %w", wf, err)
	}
	return sum, nil
}

// rawSummary returns the JSON of an entry of the summaries hash, checked but not decoded.
func rawSummary(wf, text string) (json.RawMessage, error) {
	_, rest, _ := strings.Cut(text, " ")
	_, js, _ := strings.Cut(rest, " ")
	if !json.Valid([]byte(js)) || !strings.HasPrefix(js, "{") {
		return nil, fmt.Errorf("workflow %s: its summary is not a JSON object", wf)
	}
	return json.RawMessage(js), nil
}

// RebuildIndex writes every loaded workflow's index entry again from its state, and returns how
// many it wrote. Entries already there are overwritten: it repairs an index a crash or an earlier
// batchy left stale or incomplete.
func (s *Store) RebuildIndex(ctx context.Context) (int, error) {
	names, err := s.Workflows(ctx)
	if err != nil {
		return 0, err
	}
	// The counter of the index of changes never goes back, or a scheduler's leader that read up to
	// a higher number would miss changes: a counter lost (its keys deleted to repair the index)
	// starts again from the clock in µs, above any count it held.
	if err := s.idx.SetNX(ctx, s.keys.IndexSeq(), s.now(), 0).Err(); err != nil {
		return 0, storeError("rdb.RebuildIndex", err)
	}
	n := 0
	for _, wf := range names {
		err := s.reindex(ctx, wf)
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Summaries returns a page of the workflows' summaries, sorted by name: two Redis calls whatever
// the number of workflows.
func (s *Store) Summaries(ctx context.Context, q batch.SummaryQuery) (*batch.SummaryPage, error) {
	s.ix.flush(ctx) // this process's own changes first
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Status != "" && !batch.ValidStatus(string(q.Status)) {
		return nil, batch.Errorf(batch.EINVALID, "status %q is not a workflow status: use one of failed, open, new, abandoned, success", q.Status)
	}
	if q.Prefix != "" && !batch.ValidName(q.Prefix) {
		return nil, batch.Errorf(batch.EINVALID, "name prefix %q is invalid: use 1 to 128 of A-Z a-z 0-9 _ . -", q.Prefix)
	}
	if q.Cursor != "" && !batch.ValidName(q.Cursor) {
		return nil, batch.Errorf(batch.EINVALID, "cursor %q is invalid: pass the next cursor a page gave", q.Cursor)
	}
	// Names are of A-Z a-z 0-9 _ . -: "\x7f" sorts after every one of them.
	key, tag := s.keys.Names(), ""
	if q.Status != "" {
		key, tag = s.keys.StatusIndex(), string(q.Status)+":"
	}
	min, max := "["+tag+q.Prefix, "("+tag+q.Prefix+"\x7f"
	if q.Cursor != "" && q.Cursor >= q.Prefix {
		min = "(" + tag + q.Cursor
	}
	if q.Prefix == "" && tag == "" {
		max = "+"
	}
	members, err := s.idx.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: min, Max: max, Count: int64(q.Limit) + 1}).Result()
	if err != nil {
		return nil, storeError("rdb.Summaries", err)
	}
	page := &batch.SummaryPage{Summaries: []batch.Summary{}}
	if len(members) > q.Limit {
		members = members[:q.Limit]
		page.Next = strings.TrimPrefix(members[q.Limit-1], tag)
	}
	if len(members) == 0 {
		return page, nil
	}
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = strings.TrimPrefix(m, tag)
	}
	if q.NamesOnly {
		for _, n := range names {
			page.Summaries = append(page.Summaries, batch.Summary{Workflow: n})
		}
		return page, nil
	}
	vals, err := s.idx.HMGet(ctx, s.keys.Summaries(), names...).Result()
	if err != nil {
		return nil, storeError("rdb.Summaries", err)
	}
	for i, v := range vals {
		text, ok := v.(string)
		if !ok {
			continue // listed but not summarised yet: RebuildIndex writes both
		}
		if q.Raw {
			js, err := rawSummary(names[i], text)
			if err != nil {
				return nil, fmt.Errorf("rdb.Summaries: %w", err)
			}
			page.Summaries = append(page.Summaries, batch.Summary{Workflow: names[i]})
			page.Raw = append(page.Raw, js)
			continue
		}
		sum, err := parseSummary(names[i], text)
		if err != nil {
			return nil, fmt.Errorf("rdb.Summaries: %w", err)
		}
		page.Summaries = append(page.Summaries, sum)
	}
	return page, nil
}

// Loaded reports, for each name, whether it is a loaded workflow: one call.
func (s *Store) Loaded(ctx context.Context, names []string) ([]bool, error) {
	s.ix.flush(ctx) // this process's own changes first
	if len(names) == 0 {
		return nil, nil
	}
	members := make([]any, len(names))
	for i, n := range names {
		members[i] = n
	}
	out, err := s.client.SMIsMember(ctx, s.keys.Workflows(), members...).Result()
	if err != nil {
		return nil, storeError("rdb.Loaded", err)
	}
	return out, nil
}

// AllSummaries returns every workflow's summary, in no order: one Redis call, for the few readers
// that need them all (alerts, metrics), whose cost is then that of the summaries alone.
func (s *Store) AllSummaries(ctx context.Context) ([]batch.Summary, error) {
	s.ix.flush(ctx) // this process's own changes first
	all, err := s.idx.HGetAll(ctx, s.keys.Summaries()).Result()
	if err != nil {
		return nil, storeError("rdb.AllSummaries", err)
	}
	out := make([]batch.Summary, 0, len(all))
	for wf, text := range all {
		sum, err := parseSummary(wf, text)
		if err != nil {
			return nil, fmt.Errorf("rdb.AllSummaries: %w", err)
		}
		out = append(out, sum)
	}
	return out, nil
}

// StatusCounts returns how many workflows of the installation have each overall status, and how
// many there are: one round trip of a count per status, whatever the number of workflows.
func (s *Store) StatusCounts(ctx context.Context) (map[batch.Status]int, int, error) {
	s.ix.flush(ctx) // this process's own changes first
	pipe := s.idx.Pipeline()
	counts := make([]*redis.IntCmd, len(batch.Statuses))
	for i, st := range batch.Statuses {
		// ";" follows ":": the range holds exactly the "<status>:" members.
		counts[i] = pipe.ZLexCount(ctx, s.keys.StatusIndex(), "["+string(st)+":", "("+string(st)+";")
	}
	total := pipe.ZCard(ctx, s.keys.Names())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, storeError("rdb.StatusCounts", err)
	}
	out := make(map[batch.Status]int, len(counts))
	for i, st := range batch.Statuses {
		out[st] = int(counts[i].Val())
	}
	return out, int(total.Val()), nil
}

// SummaryOf returns the workflow's summary as the index keeps it, nil when it keeps none: one
// call. The change stream summarises the state itself (a change is announced before its index
// write: indexer.go, or another replica's) and takes from here the last success and failure.
func (s *Store) SummaryOf(ctx context.Context, wf string) (*batch.Summary, error) {
	s.ix.flush(ctx) // this process's own changes first
	text, err := s.idx.HGet(ctx, s.keys.Summaries(), wf).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, storeError("rdb.SummaryOf", err)
	}
	sum, err := parseSummary(wf, text)
	if err != nil {
		return nil, fmt.Errorf("rdb.SummaryOf: %w", err)
	}
	return &sum, nil
}
