package rdb

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/event"
)

// The log sinks' durable feed (event.Feeder): each sink keeps, per workflow, a cursor in the
// workflow's event stream (Keys.SinkCursors), moved only after the sink took the events, so a
// sink resumes where it stopped after a restart, a crash or an outage of its own. Which workflows
// have new events is read from the events index (Keys.EventsIndex: every event write marks its
// workflow with the next IndexSeq), so an idle feeder costs one command per poll, whatever the
// number of workflows. One replica feeds a sink at a time: the sink's lease (Keys.SinkLease), the
// same script as the scheduler's leader lease.
//
// A cursor is "<entry ID> <ordinal>", the ordinal being the entry's number in the stream since it
// was created (Redis's entries-added), -1 when unknown: when trimming (--events-keep) removed
// entries the sink never got, the ordinals say how many.

var (
	//go:embed lua/sink_advance.lua
	sinkAdvanceSrc    string
	scriptSinkAdvance = redis.NewScript(sinkAdvanceSrc)

	//go:embed lua/events_mark.lua
	eventsMarkSrc    string
	scriptEventsMark = redis.NewScript(eventsMarkSrc)
)

// Sinks is the log sinks' feed state on the store's Redis.
type Sinks struct {
	client redis.UniversalClient
	idx    redis.UniversalClient // the events index (Store.idx)
	keys   Keys
	ix     *indexer // the store's index writes to come, written before the index is read; nil: none
}

var _ event.FeedStore = (*Sinks)(nil)

// Sinks returns the log sinks' feed state on the store's Redis.
func (s *Store) Sinks() *Sinks {
	return &Sinks{client: s.client, idx: s.idx, keys: s.keys, ix: s.ix}
}

// NewSinks returns the log sinks' feed state on client, under keys (tests).
func NewSinks(client Client, keys Keys) *Sinks {
	return &Sinks{client: client, idx: client, keys: keys}
}

// Lease takes or renews the lease of a sink's feeder for holder until now+ttl; false when another
// holder's lease has not expired.
func (s *Sinks) Lease(ctx context.Context, sink, holder string, ttl time.Duration) (bool, error) {
	n, err := scriptSchedLease.Run(ctx, s.idx, []string{s.keys.SinkLease(sink)}, ms(time.Now()), ttl.Milliseconds(), holder).Int()
	if err != nil {
		return false, fmt.Errorf("rdb.Sinks.Lease: %w", err)
	}
	return n == 1, nil
}

// Release gives a sink's lease up, if holder has it.
func (s *Sinks) Release(ctx context.Context, sink, holder string) error {
	if err := scriptSchedRelease.Run(ctx, s.idx, []string{s.keys.SinkLease(sink)}, holder).Err(); err != nil {
		return fmt.Errorf("rdb.Sinks.Release: %w", err)
	}
	return nil
}

// Marks returns up to limit workflows whose event streams were written after sequence number
// after, in the order of their last write: one command.
func (s *Sinks) Marks(ctx context.Context, after int64, limit int) ([]event.Mark, error) {
	if s.ix != nil {
		s.ix.flush(ctx) // this process's own changes first
	}
	zs, err := s.idx.ZRangeByScoreWithScores(ctx, s.keys.EventsIndex(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(after, 10), Max: "+inf", Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("rdb.Sinks.Marks: %w", err)
	}
	out := make([]event.Mark, len(zs))
	for i, z := range zs {
		out[i] = event.Mark{Workflow: z.Member.(string), Seq: int64(z.Score)}
	}
	return out, nil
}

// cursor is a sink's position in a workflow's stream.
type cursor struct {
	entry   string // "" before the first entry
	ordinal int64  // -1: unknown
}

func parseCursor(v string) cursor {
	entry, ord, _ := strings.Cut(v, " ")
	n, err := strconv.ParseInt(ord, 10, 64)
	if err != nil {
		n = -1
	}
	return cursor{entry: entry, ordinal: n}
}

func (c cursor) String() string { return c.entry + " " + strconv.FormatInt(c.ordinal, 10) }

// Start records now as when sink was first fed, unless a time is recorded already, and returns
// the recorded one: one round trip. The time is the first caller's clock, compared with the
// entries' IDs (Redis's clock): a skew between the two moves the start by as much, once.
func (s *Sinks) Start(ctx context.Context, sink string, now time.Time) (time.Time, error) {
	key := s.keys.SinkStart(sink)
	pipe := s.idx.TxPipeline()
	pipe.SetNX(ctx, key, now.UnixMilli(), 0)
	get := pipe.Get(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return time.Time{}, fmt.Errorf("rdb.Sinks.Start: %w", err)
	}
	n, err := get.Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("rdb.Sinks.Start: %w", err)
	}
	return time.UnixMilli(n), nil
}

// Next reads the events of up to limit entries of a workflow's stream after the sink's cursor, or
// when the sink has none in it, from the first entry written at or after from (zero: the oldest
// kept). Entries trimmed before the sink got them are counted in Lost (at least 1 when the store
// cannot tell how many: the embedded store).
func (s *Sinks) Next(ctx context.Context, sink, wf string, from time.Time, limit int) (*event.Pending, error) {
	key := s.keys.Events(wf)
	raw, err := s.client.HGet(ctx, s.keys.SinkCursors(wf), sink).Result()
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("rdb.Sinks.Next: %w", err)
	}
	cur := cursor{ordinal: -1}
	if raw != "" {
		cur = parseCursor(raw)
	}
	start := "-"
	switch {
	case cur.entry != "":
		start = "(" + cur.entry
	case !from.IsZero():
		start = strconv.FormatInt(from.UnixMilli(), 10) + "-0"
	}
	// One transaction, so that the stream's first entry, its count of entries ever added and the
	// entries read agree: no trim falls between them.
	pipe := s.client.TxPipeline()
	first := pipe.Do(ctx, "XRANGE", key, "-", "+", "COUNT", 1)
	info := pipe.XInfoStream(ctx, key)
	entries := pipe.Do(ctx, "XRANGE", key, start, "+", "COUNT", limit)
	_, _ = pipe.Exec(ctx) // XINFO fails on a stream that does not exist, or lacks entries-added (embedded)
	firstList, err := streamEntries(first.Val())
	if err := first.Err(); err != nil {
		return nil, fmt.Errorf("rdb.Sinks.Next: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("rdb.Sinks.Next: %w", err)
	}
	if err := entries.Err(); err != nil {
		return nil, fmt.Errorf("rdb.Sinks.Next: %w", err)
	}
	list, err := streamEntries(entries.Val())
	if err != nil {
		return nil, fmt.Errorf("rdb.Sinks.Next: %w", err)
	}
	// before is the number of entries trimmed from the stream's head (-1: unknown).
	before := int64(-1)
	if st, err := info.Result(); err == nil && st.EntriesAdded > 0 {
		before = st.EntriesAdded - st.Length
	}
	p := &event.Pending{More: len(list) == limit}
	ord := cur.ordinal
	switch {
	case cur.entry == "" && from.IsZero():
		ord = before // a new sink starts at the oldest entry kept
	case cur.entry == "":
		ord = -1 // the number of the first entry since from is not known
	case len(firstList) > 0 && laterRev(firstList[0].ID, cur.entry):
		// The cursor's own entry was trimmed: the entries between it and the first kept were too.
		switch {
		case before >= 0 && cur.ordinal >= 0:
			p.Lost = max(before-cur.ordinal, 0)
		default:
			p.Lost = 1 // some may have been
		}
		ord = before
	}
	for _, m := range list {
		p.Events = append(p.Events, decode(wf, m)...)
	}
	if len(list) > 0 {
		p.Entries = len(list)
		p.Oldest = time.UnixMilli(entryMillis(list[0].ID))
		next := cursor{entry: list[len(list)-1].ID, ordinal: -1}
		if ord >= 0 {
			next.ordinal = ord + int64(len(list))
		}
		p.Cursor = next.String()
	}
	return p, nil
}

func entryMillis(id string) int64 {
	m, _ := splitRev(id)
	return m
}

// Advance records that the sink took p's events: its cursor moves to p's last entry, unless it
// is already past it (another replica's feeder delivered further).
func (s *Sinks) Advance(ctx context.Context, sink, wf string, p *event.Pending) error {
	if p.Cursor == "" {
		return nil
	}
	if err := scriptSinkAdvance.Run(ctx, s.client, []string{s.keys.SinkCursors(wf)}, sink, p.Cursor).Err(); err != nil {
		return fmt.Errorf("rdb.Sinks.Advance: %w", err)
	}
	return nil
}

// markEvents records, for the sinks' feeders, that these workflows' streams were written.
func markEvents(ctx context.Context, c redis.UniversalClient, keys Keys, wfs []string) error {
	if len(wfs) == 0 {
		return nil
	}
	args := make([]any, len(wfs))
	for i, wf := range wfs {
		args[i] = wf
	}
	return scriptEventsMark.Run(ctx, c, []string{keys.EventsIndex(), keys.IndexSeq()}, args...).Err()
}
