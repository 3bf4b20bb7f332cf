package rdb

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// A workflow's event stream (Keys.Events) holds two kinds of entries:
//   - a transition's, written by its script: field x, one line per job it changed,
//     "<type> <time µs> <job> <batch_id> <a> <b> <c>" ('-' where a value is absent):
//     open: a, b the window (µs), c '1' for a backfill; abandon: a the batch that replaced it;
//     close, fail: a, b the batch's start and end (µs); rewind: a the new from_date (µs);
//     load (job and batch '-'): a the number of jobs, b '1' when the runtime state was reset.
//   - any other event (run steps, log lines, alerts): field e, the event as JSON.
// Every event has an ID: its entry's ID, or for the second and later lines of a transition's
// entry the entry's ID followed by "." and the line's index (1, 2, ...), so that paging and
// Last-Event-ID resume can stop and start inside an entry.

// parseChanges reads a transition's entry.
func parseChanges(wf, entry, record string) []batch.Change {
	if record == "" {
		return nil
	}
	out := make([]batch.Change, 0, strings.Count(record, "\n")+1)
	for i, rest := 0, record; rest != ""; i++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		p, ok := changeFields(line)
		if !ok {
			continue
		}
		c := batch.Change{ID: subID(entry, i), Workflow: wf, Type: p[0], Time: micros(p[1])}
		if p[2] != "-" {
			c.Job = p[2]
		}
		c.BatchID, _ = strconv.ParseInt(p[3], 10, 64)
		switch c.Type {
		case event.TypeOpen:
			c.From, c.To, c.Backfill = micros(p[4]), micros(p[5]), p[6] == "1"
		case event.TypeAbandon:
			c.NextBatchID, _ = strconv.ParseInt(p[4], 10, 64)
		case event.TypeClose, event.TypeFail:
			c.Start, c.End = micros(p[4]), micros(p[5])
		case event.TypeRewind:
			c.From = micros(p[4])
		case event.TypeLoad:
			c.Jobs, _ = strconv.Atoi(p[4])
			c.Reset = p[5] == "1"
		}
		out = append(out, c)
	}
	return out
}

// changeFields splits a change's line into its seven fields, as strings.Fields would: the
// scripts write them with single spaces, which a cut at each space reads without allocating; any
// other line takes strings.Fields.
func changeFields(line string) (p [7]string, ok bool) {
	rest := line
	for i := range p {
		if i == len(p)-1 {
			p[i], rest = rest, ""
		} else {
			p[i], rest, _ = strings.Cut(rest, " ")
		}
		if !plainField(p[i]) {
			f := strings.Fields(line)
			if len(f) != len(p) {
				return p, false
			}
			return [7]string(f), true
		}
	}
	return p, true
}

// plainField reports whether s is a non-empty run of printable ASCII characters but space.
func plainField(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
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
	return nil
}

// decode reads an entry's events, in order.
func decode(wf string, m redis.XMessage) []event.Event {
	if raw, ok := m.Values["e"].(string); ok {
		var e event.Event
		if json.Unmarshal([]byte(raw), &e) != nil {
			return nil
		}
		e.ID = m.ID
		return []event.Event{e}
	}
	record, _ := m.Values["x"].(string)
	return event.FromChanges(parseChanges(wf, m.ID, record))
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
		var msgs []redis.XMessage
		var err error
		switch {
		case forward && first:
			msgs, err = s.client.XRangeN(ctx, key, cursor, "+", chunk).Result()
		case forward:
			msgs, err = s.client.XRangeN(ctx, key, "("+cursor, "+", chunk).Result()
		case cursor == "":
			msgs, err = s.client.XRevRangeN(ctx, key, "+", "-", chunk).Result()
		case first:
			msgs, err = s.client.XRevRangeN(ctx, key, cursor, "-", chunk).Result()
		default:
			msgs, err = s.client.XRevRangeN(ctx, key, "("+cursor, "-", chunk).Result()
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
		msgs, err := s.client.XRangeN(ctx, key, entry, entry, 1).Result()
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
	res, err := s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{key, entry}, Count: 500, Block: wait}).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []event.Event
	for _, st := range res {
		for _, m := range st.Messages {
			out = append(out, decode(wf, m)...)
		}
	}
	return out, nil
}

// LastID implements event.Stream: the ID of a workflow's newest event, "0-0" when it has none.
func (s *EventStream) LastID(ctx context.Context, wf string) (string, error) {
	msgs, err := s.client.XRevRangeN(ctx, s.keys.Events(wf), "+", "-", 1).Result()
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
