package event

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Stream is the authoritative sink: a stream of events per workflow that the API and the UI read
// back (the store's rdb.EventStream). Transitions write their own events into it, in the same
// atomic step as the change.
type Stream interface {
	Sink
	// Read returns a workflow's matching events: newest first, or oldest first with After.
	Read(ctx context.Context, wf string, q Query) ([]Event, error)
	// Tail blocks up to wait for events after id ("$" for new ones only) and returns them.
	Tail(ctx context.Context, wf, id string, wait time.Duration) ([]Event, error)
	// LastID returns the ID of a workflow's newest event, "0-0" when it has none: a tail that
	// starts there misses nothing written after the call.
	LastID(ctx context.Context, wf string) (string, error)
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

// ValidID reports whether s is an event ID: a stream entry ID ("<ms>-<seq>"), followed for the
// second and later events of one entry by "." and the event's index in it.
func ValidID(s string) bool {
	s, sub, dotted := strings.Cut(s, ".")
	if dotted {
		if n, err := strconv.ParseUint(sub, 10, 32); err != nil || n == 0 {
			return false
		}
	}
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}
