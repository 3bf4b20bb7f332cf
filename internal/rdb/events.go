package rdb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// A workflow's event stream (Keys.Events) holds two kinds of entries:
//   - a transition's, written by its script (lua/lib.lua record_change): field x "<kind> <time µs>"
//     (a load adds "<jobs> <reset 1|0>", a pause its reason), field j the jobs it changed, space-separated, then per
//     job its runtime record after the change (record.go), and for an open that abandoned a job's
//     batch, field "~<job>" with that batch's id. The script passes the records it wrote anyway,
//     so the entry costs it no formatting, and Go turns it into events (parseChanges).
//     A close or fail made by a scheduler run ends with field "@run" (runField) and the run's id.
//   - any other event (run steps, log lines, alerts): field e, the event as JSON.
// Every event has an ID: its entry's ID, or for the second and later events of a transition's
// entry the entry's ID followed by "." and the event's index (1, 2, ...), so that paging and
// Last-Event-ID resume can stop and start inside an entry.

// runField names the entry field holding the scheduler run that made a close or fail: a job name
// never has an '@', so it is never taken for a job's record.
const runField = "@run"

// parseChanges reads a transition's entry, its fields in order as written (name, value, ...): its
// abandons first, then one change per job, in the order of field j. x and j are the entry's first
// two fields and the jobs' records follow, so they are told apart by place, not by name: a job
// named x or j (or e) is not taken for them, as it was when entries were read as maps.
func parseChanges(wf, entry string, list []string) []batch.Change {
	if len(list) < 2 || list[0] != "x" {
		return nil
	}
	kind, rest, _ := strings.Cut(list[1], " ")
	if kind == "" {
		return nil
	}
	at, rest, _ := strings.Cut(rest, " ")
	base := batch.Change{Workflow: wf, Type: kind, Time: micros(at)}
	if kind == event.TypeLoad {
		n, reset, _ := strings.Cut(rest, " ")
		base.Jobs, _ = strconv.Atoi(n)
		base.Reset = reset == "1"
		base.ID = entry
		return []batch.Change{base}
	}
	if kind == event.TypePause || kind == event.TypeResume {
		base.Reason, base.ID = rest, entry
		return []batch.Change{base}
	}
	if len(list) < 4 || list[2] != "j" {
		return nil
	}
	fields := make(map[string]string, (len(list)-4)/2)
	for i := 4; i+1 < len(list); i += 2 {
		fields[list[i]] = list[i+1]
	}
	jobs := strings.Fields(list[3])
	base.RunID = fields[runField]
	out := make([]batch.Change, 0, 2*len(jobs))
	for _, job := range jobs {
		old, ok := fields["~"+job]
		if !ok {
			continue
		}
		c := base
		c.Type, c.Job = event.TypeAbandon, job
		c.BatchID, _ = strconv.ParseInt(old, 10, 64)
		c.NextBatchID, _ = strconv.ParseInt(parseRun(fields[job]).batchID, 10, 64)
		out = append(out, c)
	}
	for _, job := range jobs {
		r := parseRun(fields[job])
		c := base
		c.Job = job
		switch kind {
		case event.TypeOpen:
			c.BatchID, _ = strconv.ParseInt(r.batchID, 10, 64)
			c.From, c.To, c.Backfill = micros(r.from), micros(r.to), r.backfill == "1"
		case event.TypeClose, event.TypeFail:
			c.BatchID, _ = strconv.ParseInt(r.batchID, 10, 64)
			c.Start, c.End = micros(r.start), micros(r.end)
		case event.TypeRewind:
			c.From = micros(r.from)
		}
		out = append(out, c)
	}
	for i := range out {
		out[i].ID = subID(entry, i)
	}
	return out
}

func micros(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

func subID(entry string, i int) string {
	if i == 0 {
		return entry
	}
	return entry + "." + strconv.Itoa(i)
}

// splitID divides an event ID into its entry's ID and its index in the entry.
func splitID(id string) (string, int) {
	entry, sub, ok := strings.Cut(id, ".")
	if !ok {
		return id, 0
	}
	n, _ := strconv.Atoi(sub)
	return entry, n
}

// EventStream is the authoritative event sink and its reader: the workflows' Redis streams,
// trimmed to about keep entries each.
type EventStream struct {
	client redis.UniversalClient
	keys   Keys
	keep   int64
}

var _ event.Stream = (*EventStream)(nil)

// NewEventStream returns the stream sink; keep <= 0 means 100,000 entries per workflow.
func NewEventStream(client redis.UniversalClient, keys Keys, keep int64) *EventStream {
	if keep <= 0 {
		keep = 100_000
	}
	return &EventStream{client: client, keys: keys, keep: keep}
}

// String names the sink.
func (s *EventStream) String() string { return "redis stream " + s.keys.Events("<wf>") }

// Close does nothing: the client belongs to the store.
func (s *EventStream) Close() error { return nil }

// Write appends the events, one entry each, setting each one's ID to its entry's.
func (s *EventStream) Write(ctx context.Context, events []event.Event) error {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(events))
	for i := range events {
		e := &events[i]
		e.ID = ""
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("rdb.EventStream: %w", err)
		}
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.Events(e.Workflow), MaxLen: s.keep, Approx: true, Values: []any{"e", string(data)}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rdb.EventStream: %w", err)
	}
	for i, c := range cmds {
		events[i].ID = c.Val()
	}
	// After the entries, never beside them: a feeder that reads the mark finds them (on a Cluster
	// a pipeline's commands to two slots may run in either order).
	wfs := make([]string, 0, 1)
	for _, e := range events {
		if !slices.Contains(wfs, e.Workflow) {
			wfs = append(wfs, e.Workflow)
		}
	}
	if err := markEvents(ctx, s.client, s.keys, wfs); err != nil {
		return fmt.Errorf("rdb.EventStream: the events are written, not their mark for the log sinks: %w", err)
	}
	return nil
}

// streamEntry is an entry of an event stream with its fields in order (name, value, ...).
// go-redis's XMessage holds the fields in a map, which loses their order and, when a job is named
// like an entry's own field (x, j, e), one of the two values: parseChanges needs both.
type streamEntry struct {
	ID     string
	Fields []string
}

// xrange runs XRANGE or XREVRANGE (cmd) with COUNT.
func xrange(ctx context.Context, c redis.UniversalClient, cmd, key, start, end string, count int64) ([]streamEntry, error) {
	v, err := c.Do(ctx, cmd, key, start, end, "COUNT", count).Result()
	if err != nil {
		return nil, err
	}
	return streamEntries(v)
}

// streamEntries reads a list of stream entries, as XRANGE returns it.
func streamEntries(v any) ([]streamEntry, error) {
	list, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("rdb: unexpected stream reply %T", v)
	}
	out := make([]streamEntry, 0, len(list))
	for _, x := range list {
		pair := asList(x)
		if len(pair) < 2 {
			return nil, fmt.Errorf("rdb: unexpected stream entry %v", x)
		}
		out = append(out, streamEntry{ID: str(pair[0]), Fields: strList(pair[1])})
	}
	return out, nil
}

// decode reads an entry's events, in order.
func decode(wf string, m streamEntry) []event.Event {
	if len(m.Fields) == 2 && m.Fields[0] == "e" {
		var e event.Event
		if json.Unmarshal([]byte(m.Fields[1]), &e) != nil {
			return nil
		}
		e.ID = m.ID
		return []event.Event{e}
	}
	return event.FromChanges(parseChanges(wf, m.ID, m.Fields))
}

// Read implements event.Stream: matching events, newest first, or oldest first with After.
func (s *EventStream) Read(ctx context.Context, wf string, q event.Query) ([]event.Event, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	key := s.keys.Events(wf)
	out := []event.Event{}
	forward := q.After != ""
	cursor, index := q.Before, 0
	if forward {
		cursor = q.After
	}
	cursor, index = splitID(cursor)
	// The cursor's own entry is read again for the events after (or before) its index; then the
	// scan goes on in chunks until the page is full or the stream ends; filters apply in Go.
	const chunk = 500
	first := true
	for scanned := 0; len(out) < q.Limit && scanned < 100_000; {
		var msgs []streamEntry
		var err error
		switch {
		case forward && first:
			msgs, err = xrange(ctx, s.client, "XRANGE", key, cursor, "+", chunk)
		case forward:
			msgs, err = xrange(ctx, s.client, "XRANGE", key, "("+cursor, "+", chunk)
		case cursor == "":
			msgs, err = xrange(ctx, s.client, "XREVRANGE", key, "+", "-", chunk)
		case first:
			msgs, err = xrange(ctx, s.client, "XREVRANGE", key, cursor, "-", chunk)
		default:
			msgs, err = xrange(ctx, s.client, "XREVRANGE", key, "("+cursor, "-", chunk)
		}
		if err != nil {
			return nil, &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store is not available", Cause: err}
		}
		for _, m := range msgs {
			events := decode(wf, m)
			if !forward {
				for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
					events[i], events[j] = events[j], events[i]
				}
			}
			for _, e := range events {
				if first && m.ID == cursor {
					_, i := splitID(e.ID)
					if forward && i <= index || !forward && i >= index {
						continue
					}
				}
				if q.Match(&e) && len(out) < q.Limit {
					out = append(out, e)
				}
			}
			cursor = m.ID
		}
		first = false
		scanned += len(msgs)
		if len(msgs) < chunk {
			break
		}
	}
	return out, nil
}

// Tail implements event.Stream: it blocks up to wait for events after id ("$" for new ones only).
func (s *EventStream) Tail(ctx context.Context, wf, id string, wait time.Duration) ([]event.Event, error) {
	key := s.keys.Events(wf)
	entry, index := splitID(id)
	if id != "$" {
		// The rest of the entry the last event came from, if any.
		msgs, err := xrange(ctx, s.client, "XRANGE", key, entry, entry, 1)
		if err != nil {
			return nil, err
		}
		var rest []event.Event
		for _, m := range msgs {
			for _, e := range decode(wf, m) {
				if _, i := splitID(e.ID); i > index {
					rest = append(rest, e)
				}
			}
		}
		if len(rest) > 0 {
			return rest, nil
		}
	}
	// go-redis's XRead sets the connection's read timeout to the block; its messages' fields
	// are in maps, so the entries it returned are read again in order.
	res, err := s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{key, entry}, Count: 500, Block: wait}).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || len(res[0].Messages) == 0 {
		return nil, nil
	}
	got := res[0].Messages
	msgs, err := xrange(ctx, s.client, "XRANGE", key, got[0].ID, got[len(got)-1].ID, int64(len(got)))
	if err != nil {
		return nil, err
	}
	var out []event.Event
	for _, m := range msgs {
		out = append(out, decode(wf, m)...)
	}
	return out, nil
}

// LastID implements event.Stream: the ID of a workflow's newest event, "0-0" when it has none.
func (s *EventStream) LastID(ctx context.Context, wf string) (string, error) {
	msgs, err := xrange(ctx, s.client, "XREVRANGE", s.keys.Events(wf), "+", "-", 1)
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	events := decode(wf, msgs[0])
	if len(events) == 0 {
		return msgs[0].ID, nil
	}
	return events[len(events)-1].ID, nil
}
