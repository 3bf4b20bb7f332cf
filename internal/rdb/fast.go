package rdb

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// The fast path of open and close/fail. The transition scripts (open.lua, end.lua) compute a
// transition inside Redis, where it is atomic; that work, in Lua, costs Redis several times the
// calls the transition needs, and Redis is shared by every replica. So batchy computes the same
// transition in Go from its copy of the workflow's state (the state hash as the last script or
// read returned it) and sends only the writes to apply.lua, which applies them provided the state
// is still at the copy's revision (rev: every change sets it to the ID of the event entry it
// wrote). A stale copy is refreshed from apply.lua's answer and the transition computed again;
// stale twice (another replica, or another request, changed the workflow meanwhile), or with
// anything unusual (an error to report, a conflict, a workflow too large for one call), the
// transition script decides instead. Both paths write exactly the same (TestFastPathMatchesScripts).

// stateCopies holds the workflows' state hashes as this process last saw them. A copy is never
// changed once stored (a change stores a new map), and it is only ever a guess that apply.lua
// checks: replicas share nothing through it.
type stateCopies struct {
	mu sync.Mutex
	m  map[string]map[string]string
}

// maxCopies bounds the copies held; past it they are dropped and read again as needed.
const maxCopies = 10_000

func newStateCopies() *stateCopies { return &stateCopies{m: map[string]map[string]string{}} }

func (c *stateCopies) get(wf string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[wf]
}

func (c *stateCopies) put(wf string, h map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCopies {
		clear(c.m)
	}
	c.m[wf] = h
}

func (c *stateCopies) forget(wf string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, wf)
}

// maxFastArgs keeps apply.lua's arguments within what one Lua unpack takes.
const maxFastArgs = 7000

// change is a transition computed in Go: what apply.lua writes.
type change struct {
	set, del, hist []string
	cond           []string // batch id, field, value
	newest         string   // the newest batch in history before the change, "" if not known
	addBatch       string
	trim           bool
	fields         []string // the event entry
}

// record writes a job's entry into batch id of history: at once when id is the newest batch (the
// copy's last_batch_id with a history: an open made it, and the newest batch is never trimmed),
// else only if the batch is still in history (apply.lua checks).
func (c *change) record(id, field, value string) {
	switch {
	case id == "-":
	case id == c.newest:
		c.hist = append(c.hist, field, value)
	default:
		c.cond = append(c.cond, id, field, value)
	}
}

// newestBatch is the newest batch in history as a copy of the state says, "" when it cannot say.
func newestBatch(h map[string]string) string {
	if n, ok := atoi(h["hist_n"]); !ok || n == 0 {
		return ""
	}
	if id, ok := atoi(h["last_batch_id"]); !ok || id == 0 {
		return ""
	}
	return h["last_batch_id"]
}

func (c *change) setField(h map[string]string, k, v string) {
	c.set = append(c.set, k, v)
	h[k] = v
}

// scope returns the jobs a request names, or all; ok is false when one is not in the workflow.
func scope(all []string, req []any) ([]string, bool) {
	if len(req) == 0 {
		return all, true
	}
	out := make([]string, len(req))
	for i, j := range req {
		out[i] = j.(string)
		found := false
		for _, a := range all {
			if a == out[i] {
				found = true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return out, true
}

func atoi(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func us(n int64) string { return strconv.FormatInt(n, 10) }

// notBefore is lua/lib.lua's not_before.
func notBefore(now int64, r runRecord) int64 {
	if s, ok := atoi(r.start); ok && s > now {
		now = s
	}
	if e, ok := atoi(r.end); ok && e > now {
		now = e
	}
	return now
}

// openFast is Open's fast path; ok false means the caller runs open.lua instead.
func (s *Store) openFast(ctx context.Context, wf string, req []any, now int64, bfFrom, bfTo string) (*batch.State, bool, error) {
	return s.fast(ctx, wf, now, func(h map[string]string) (*change, bool) {
		now := now // each try starts from the request's clock
		all := strings.Fields(h["jobs"])
		jobs, ok := scope(all, req)
		histN, okN := atoi(h["hist_n"])
		if !ok || !okN {
			return nil, false
		}
		backfill := bfFrom != ""
		from0, _ := atoi(bfFrom)
		runs := make([]runRecord, len(jobs))
		froms := make([]int64, len(jobs))
		for i, job := range jobs {
			r := parseRun(h["run:"+job])
			runs[i] = r
			if r.status == "open" && (r.backfill == "1" || backfill || h["exclusive"] == "1") {
				return nil, false // a conflict: the script reports it
			}
			now = notBefore(now, r)
			if backfill {
				froms[i] = from0
				continue
			}
			w := strings.Fields(h["win:"+job])
			if len(w) != 3 {
				return nil, false
			}
			reprocess, _ := atoi(w[0])
			var from int64
			if start, ok := atoi(r.start); r.status == "success" && ok {
				from = start - reprocess
			} else if f, ok := atoi(r.from); ok {
				from = f
			} else if from, ok = atoi(w[2]); !ok {
				return nil, false
			}
			if w[1] == "1" {
				from = batch.Midnight(time.UnixMicro(from), s.opts.Location).UnixMicro()
			}
			froms[i] = from
		}
		for i := range jobs {
			if !backfill && froms[i] > now {
				return nil, false // an inverted window: the script reports it
			}
		}
		last, _ := atoi(h["last_batch_id"])
		id := now / 1_000_000
		if now < 0 && now%1_000_000 != 0 {
			id-- // the floor, as the script's math.floor
		}
		if id <= last {
			id = last + 1
		}
		sid, nows := us(id), us(now)
		list := strings.Join(jobs, " ")
		c := &change{addBatch: sid, hist: []string{sid, list}, fields: []string{"x", "open " + nows, "j", list}, newest: newestBatch(h)}
		c.setField(h, "last_batch_id", sid)
		to, bf := nows, "-"
		if backfill {
			to, bf = bfTo, "1"
		}
		for i, job := range jobs {
			r := runs[i]
			cfg := orDefaultString(h["cfg:"+job], "{}")
			if r.status == "open" {
				c.record(r.batchID, r.batchID+":"+job, "abandoned "+r.batchID+" "+r.from+" "+r.to+" "+r.start+" "+nows+" "+r.backfill+" "+r.metadata+"\n"+cfg)
				c.fields = append(c.fields, "~"+job, r.batchID)
			}
			if backfill {
				c.setField(h, "stash:"+job, h["run:"+job])
			}
			run := "open " + sid + " " + us(froms[i]) + " " + to + " " + nows + " n " + bf + " -"
			c.setField(h, "run:"+job, run)
			c.hist = append(c.hist, sid+":"+job, run+"\n"+cfg)
			c.fields = append(c.fields, job, run)
		}
		keep := int64(s.opts.HistoryKeep)
		histN++
		c.trim = histN > keep+keep/16
		c.setField(h, "hist_n", us(histN))
		return c, true
	})
}

// endFast is End's fast path; ok false means the caller runs end.lua instead.
func (s *Store) endFast(ctx context.Context, wf string, req []any, now int64, status string, mode string, want, metadata, runID string) (*batch.State, bool, error) {
	return s.fast(ctx, wf, now, func(h map[string]string) (*change, bool) {
		now := now // each try starts from the request's clock
		named, ok := scope(strings.Fields(h["jobs"]), req)
		if !ok {
			return nil, false
		}
		var jobs []string
		var runs []runRecord
		for _, job := range named {
			r := parseRun(h["run:"+job])
			if mode == endStrict && r.status != "open" || want != "" && r.batchID != want {
				return nil, false // a conflict: the script reports it
			}
			if mode == endOpenInCurrent && (r.status != "open" || r.batchID != h["last_batch_id"]) {
				continue
			}
			jobs, runs = append(jobs, job), append(runs, r)
			now = notBefore(now, r)
		}
		if len(jobs) == 0 {
			return nil, false // nothing changes: the script answers the state as it is
		}
		nows := us(now)
		kind := "close"
		if status == string(batch.StatusFailed) {
			kind = "fail"
		}
		list := strings.Join(jobs, " ")
		c := &change{fields: []string{"x", kind + " " + nows, "j", list}, newest: newestBatch(h)}
		for i, job := range jobs {
			r := runs[i]
			md := r.metadata
			if metadata != "" {
				md = metadata
			}
			run := status + " " + r.batchID + " " + r.from + " " + r.to + " " + r.start + " " + nows + " " + r.backfill + " " + md
			c.record(r.batchID, r.batchID+":"+job, run+"\n"+orDefaultString(h["cfg:"+job], "{}"))
			c.fields = append(c.fields, job, run)
			if stash, ok := h["stash:"+job]; ok {
				run = stash
				c.del = append(c.del, "stash:"+job)
				delete(h, "stash:"+job)
			}
			c.setField(h, "run:"+job, run)
		}
		if runID != "" {
			c.fields = append(c.fields, runField, runID)
		}
		return c, true
	})
}

// fast computes a transition from the workflow's copy (compute changes the copy it is given into
// the state after) and applies it: at most twice, the second time from the fresh state a stale
// copy's apply answered. ok is false when the caller should run the transition's script.
func (s *Store) fast(ctx context.Context, wf string, now int64, compute func(h map[string]string) (*change, bool)) (*batch.State, bool, error) {
	h := s.copies.get(wf)
	confirmed := func() error { return nil } // the embedded store has no replicas
	for try := 0; try < 2 && h != nil && h["rev"] != ""; try++ {
		after := maps.Clone(h)
		c, ok := compute(after)
		if !ok {
			return nil, false, nil
		}
		args := []any{h["rev"], s.opts.EventsKeep, s.keys.Changed(), wf, c.addBatch, 0, now}
		if c.trim {
			args[5] = s.opts.HistoryKeep
		}
		for _, sec := range []struct {
			items []string
			width int
		}{{c.set, 2}, {c.del, 1}, {c.hist, 2}, {c.cond, 3}} {
			args = append(args, len(sec.items)/sec.width)
			for _, v := range sec.items {
				args = append(args, v)
			}
		}
		for _, v := range c.fields {
			args = append(args, v)
		}
		if len(args) > maxFastArgs {
			return nil, false, nil
		}
		keys := []string{s.keys.State(wf), s.keys.Batches(wf), s.keys.History(wf), s.keys.Events(wf)}
		var reply []any
		if e := s.opts.Embedded; e != nil && !c.trim && len(c.cond) == 0 {
			entry, stale, err := e.applyDirect(ctx, keys, h["rev"], s.opts.EventsKeep, s.keys.Changed(), wf, c.addBatch, us(now), c.set, c.del, c.hist, c.fields)
			if err != nil {
				return nil, true, storeError("rdb.apply", err)
			}
			reply = []any{"OK", entry, ""}
			if stale != nil {
				reply = []any{"STALE", stale}
			}
		} else {
			var run redis.Scripter
			run, confirmed = s.changer()
			v, err := scriptApply.Run(ctx, run, keys, args...).Result()
			if err != nil {
				return nil, true, storeError("rdb.apply", err)
			}
			reply = asList(v)
		}
		if len(reply) < 2 {
			return nil, true, fmt.Errorf("rdb.apply: unexpected reply %v", reply)
		}
		if str(reply[0]) == "STALE" {
			h = staleState(reply[1])
			if len(h) == 0 {
				s.copies.forget(wf)
				return nil, false, nil
			}
			s.copies.put(wf, h)
			continue
		}
		entry := str(reply[1])
		after["rev"] = entry + " " + us(now)
		if len(reply) > 2 && str(reply[2]) != "" {
			after["hist_n"] = str(reply[2])
		}
		s.copies.put(wf, after)
		st, err := s.stateFromHash(wf, after)
		if err != nil {
			return nil, true, err
		}
		st.Changes = parseChanges(wf, entry, c.fields)
		// See index: the change stands whatever this does. c.fields starts with the entry's kind.
		_ = s.index(ctx, st, entry, false, strings.HasPrefix(c.fields[1], "close "))
		// Unconfirmed, the change still stands on the master: its state and events go back with
		// the error, so that the events reach the sinks, metrics and alerts (see Options.MinReplicas).
		return st, true, confirmed()
	}
	return nil, false, nil
}

// staleState is the state a STALE reply carries: HGETALL's pairs from the script, a map from
// applyDirect.
func staleState(v any) map[string]string {
	if m, ok := v.(map[string]string); ok {
		return m
	}
	return strMap(v)
}
