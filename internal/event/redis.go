package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
)

// Stream is the authoritative sink: a Redis stream per workflow (keys.Events), trimmed to about
// Keep entries, read back by the API and the UI. Each entry holds the event as JSON in field "e".
type Stream struct {
	client redis.UniversalClient
	keys   rdb.Keys
	keep   int64
}

var _ Sink = (*Stream)(nil)

// NewStream returns the stream sink; keep <= 0 means 100,000 events per workflow.
func NewStream(client redis.UniversalClient, keys rdb.Keys, keep int64) *Stream {
	if keep <= 0 {
		keep = 100_000
	}
	return &Stream{client: client, keys: keys, keep: keep}
}

// String names the sink.
func (s *Stream) String() string { return "redis stream " + s.keys.Events("<wf>") }

// Close does nothing: the client belongs to the store.
func (s *Stream) Close() error { return nil }

// Write appends the events, setting each one's ID to its stream entry's.
func (s *Stream) Write(ctx context.Context, events []Event) error {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(events))
	for i := range events {
		e := &events[i]
		e.ID = ""
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("event.Stream: %w", err)
		}
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.Events(e.Workflow), MaxLen: s.keep, Approx: true, Values: []any{"e", string(data)}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("event.Stream: %w", err)
	}
	for i, c := range cmds {
		events[i].ID = c.Val()
	}
	return nil
}

// Query filters and pages a workflow's events.
type Query struct {
	Job, RunID, Type, Level string
	BatchID                 int64
	// Since keeps events at or after it.
	Since time.Time
	// Before lists events with an ID lower than it (the next page, newest first); After lists
	// events with a higher ID, oldest first (for tails).
	Before, After string
	// Limit is the most events returned; zero means 100.
	Limit int
}

// Match reports whether an event passes the query's filters (paging aside).
func (q Query) Match(e *Event) bool {
	if q.Job != "" && e.Job != q.Job || q.RunID != "" && e.RunID != q.RunID || q.Type != "" && e.Type != q.Type {
		return false
	}
	if q.BatchID != 0 && e.BatchID != q.BatchID {
		return false
	}
	if q.Level != "" && levelRank(e.Level) < levelRank(q.Level) {
		return false
	}
	return q.Since.IsZero() || !e.Time.Before(q.Since)
}

func levelRank(l string) int {
	for i, v := range Levels {
		if v == l {
			return i
		}
	}
	return 0
}

// Read returns matching events: newest first, or oldest first with After.
func (s *Stream) Read(ctx context.Context, wf string, q Query) ([]Event, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	key := s.keys.Events(wf)
	out := []Event{}
	// Scan in chunks until the page is full or the stream ends; filters apply in Go.
	const chunk = 500
	forward := q.After != ""
	cursor := q.Before
	if forward {
		cursor = q.After
	}
	for scanned := 0; len(out) < q.Limit && scanned < 100_000; {
		var msgs []redis.XMessage
		var err error
		if forward {
			msgs, err = s.client.XRangeN(ctx, key, "("+cursor, "+", chunk).Result()
		} else {
			end := "+"
			if cursor != "" {
				end = "(" + cursor
			}
			msgs, err = s.client.XRevRangeN(ctx, key, end, "-", chunk).Result()
		}
		if err != nil {
			return nil, &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store is not available", Cause: err}
		}
		for _, m := range msgs {
			e, ok := decode(m)
			cursor = m.ID
			if ok && q.Match(&e) && len(out) < q.Limit {
				out = append(out, e)
			}
		}
		scanned += len(msgs)
		if len(msgs) < chunk {
			break
		}
	}
	return out, nil
}

// Tail blocks up to wait for events after id ("$" for new ones only) and returns them.
func (s *Stream) Tail(ctx context.Context, wf, id string, wait time.Duration) ([]Event, error) {
	res, err := s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{s.keys.Events(wf), id}, Count: 500, Block: wait}).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, st := range res {
		for _, m := range st.Messages {
			if e, ok := decode(m); ok {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func decode(m redis.XMessage) (Event, bool) {
	var e Event
	raw, _ := m.Values["e"].(string)
	if json.Unmarshal([]byte(raw), &e) != nil {
		return e, false
	}
	e.ID = m.ID
	return e, true
}

// ValidID reports whether s is a stream entry ID ("<ms>-<seq>").
func ValidID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// LastID returns the ID of a workflow's newest event, "0-0" when it has none: a tail that starts
// there misses nothing written after the call.
func (s *Stream) LastID(ctx context.Context, wf string) (string, error) {
	msgs, err := s.client.XRevRangeN(ctx, s.keys.Events(wf), "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}
