package event

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batchy/batchy/internal/batch"
)

// DefaultPostgresTable is the table a postgres:// sink writes to when the URL has no table
// parameter.
const DefaultPostgresTable = "batchy_events"

// postgresTableName accepts a lower-case identifier, optionally schema-qualified. Lower case only,
// so that the name means the same table quoted or not; at most 40 characters per part, so that the
// index names derived from it stay within PostgreSQL's 63.
var postgresTableName = regexp.MustCompile(`^([a-z_][a-z0-9_]{0,39}\.)?[a-z_][a-z0-9_]{0,39}$`)

// PostgresSink inserts events into a PostgreSQL table, created if missing:
//
//	id bigserial primary key, stream_id text, time timestamptz, workflow text, job text,
//	batch_id bigint, run_id text, type text, level text, message text, fields jsonb
//
// with an index on (workflow, time). Rewriting events that carry a stream ID inserts nothing
// new (a partial unique index on (workflow, stream_id) for non-empty IDs), so retries are safe.
// Empty job, run_id, fields and a zero batch_id are stored as NULL.
type PostgresSink struct {
	u     *url.URL // as given, for String and for removing the password from errors
	table string   // as validated, unquoted
	ident pgx.Identifier
	pool  *pgxpool.Pool

	insertSQL string

	mu    sync.Mutex // serialises Init
	ready bool
}

var _ Sink = (*PostgresSink)(nil)

// NewPostgresSink prepares a sink for a postgres:// or postgresql:// URL in pgx's format. The
// table parameter (default DefaultPostgresTable) names the table and is not passed to the server.
// It does not connect: the table is created on the first Write (or Init), so that batchy starts
// while PostgreSQL is down and the events buffered meanwhile are written once it is back.
func NewPostgresSink(u *url.URL) (*PostgresSink, error) {
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("event.NewPostgresSink: scheme %q is not postgres or postgresql", u.Scheme)
	}
	q := u.Query()
	table := DefaultPostgresTable
	if q.Has("table") {
		table = q.Get("table")
		if !postgresTableName.MatchString(table) {
			return nil, fmt.Errorf("event.NewPostgresSink: table %q is not a lower-case identifier such as batchy_events or etl.batchy_events", table)
		}
	}
	q.Del("table")
	conn := *u
	conn.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(conn.String())
	if err != nil {
		return nil, redactErr("event.NewPostgresSink", err, u)
	}
	if !q.Has("pool_max_conns") {
		// One Feeder goroutine writes at a time; a second connection covers Init and reconnects.
		cfg.MaxConns = 2
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "batchy"
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, redactErr("event.NewPostgresSink", err, u)
	}
	orig := *u
	s := &PostgresSink{u: &orig, table: table, ident: pgx.Identifier(strings.Split(table, ".")), pool: pool}
	s.insertSQL = `INSERT INTO ` + s.ident.Sanitize() + ` (stream_id, "time", workflow, job, batch_id, run_id, "type", "level", message, fields)
SELECT s, t, w, j, b, r, ty, l, m, f::jsonb
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
	WITH ORDINALITY AS u(s, t, w, j, b, r, ty, l, m, f, n)
ORDER BY n
ON CONFLICT (workflow, stream_id) WHERE stream_id <> '' DO NOTHING`
	return s, nil
}

// openPostgresSink is the factory for postgres:// and postgresql://.
func openPostgresSink(u *url.URL) (Sink, error) { return NewPostgresSink(u) }

// String names the sink by its URL, password hidden.
func (s *PostgresSink) String() string { return batch.HideURLSecrets(s.u.String()) }

// Table returns the table's name, possibly schema-qualified.
func (s *PostgresSink) Table() string { return s.table }

// Init creates the table and its indexes if missing. Write calls it until it has succeeded once.
func (s *PostgresSink) Init(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	name := s.ident[len(s.ident)-1]
	t := s.ident.Sanitize()
	ddl := `CREATE TABLE IF NOT EXISTS ` + t + ` (
	id bigserial PRIMARY KEY,
	stream_id text NOT NULL DEFAULT '',
	"time" timestamptz NOT NULL,
	workflow text NOT NULL,
	job text,
	batch_id bigint,
	run_id text,
	"type" text NOT NULL,
	"level" text NOT NULL,
	message text NOT NULL DEFAULT '',
	fields jsonb
);
CREATE INDEX IF NOT EXISTS ` + pgx.Identifier{name + "_workflow_time_idx"}.Sanitize() + ` ON ` + t + ` (workflow, "time");
CREATE UNIQUE INDEX IF NOT EXISTS ` + pgx.Identifier{name + "_stream_id_key"}.Sanitize() + ` ON ` + t + ` (workflow, stream_id) WHERE stream_id <> ''`
	// Several batchy processes may start at once; CREATE ... IF NOT EXISTS is not safe against a
	// concurrent CREATE of the same name, so they take turns.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "batchy.event:"+s.table); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return redactErr("event.PostgresSink: creating table "+s.table, err, s.u)
	}
	s.ready = true
	return nil
}

// Write inserts the events with one statement (one round trip once the statement is cached),
// creating the table first if need be. Text is made valid for PostgreSQL (NUL bytes and invalid
// UTF-8 become U+FFFD) so that no event can make a batch fail forever.
func (s *PostgresSink) Write(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := s.Init(ctx); err != nil {
		return err
	}
	n := len(events)
	var (
		ids, wfs, types, levels, msgs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		jobs, runs, fields            = make([]*string, n), make([]*string, n), make([]*string, n)
		batches                       = make([]*int64, n)
		times                         = make([]time.Time, n)
	)
	for i := range events {
		e := &events[i]
		ids[i] = pgText(e.ID)
		times[i] = e.Time
		wfs[i] = pgText(e.Workflow)
		jobs[i] = pgNullText(e.Job)
		if e.BatchID != 0 {
			b := e.BatchID
			batches[i] = &b
		}
		runs[i] = pgNullText(e.RunID)
		types[i] = pgText(e.Type)
		levels[i] = pgText(e.Level)
		msgs[i] = pgText(e.Message)
		if len(e.Fields) > 0 {
			f := pgJSON(e.Fields)
			fields[i] = &f
		}
	}
	if _, err := s.pool.Exec(ctx, s.insertSQL, ids, times, wfs, jobs, batches, runs, types, levels, msgs, fields); err != nil {
		return redactErr("event.PostgresSink: inserting into "+s.table, err, s.u)
	}
	return nil
}

// Close closes the connection pool.
func (s *PostgresSink) Close() error {
	s.pool.Close()
	return nil
}

// pgText makes s storable in a text column: PostgreSQL rejects NUL bytes and invalid UTF-8.
func pgText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

// pgNullText is pgText with "" as NULL.
func pgNullText(s string) *string {
	if s == "" {
		return nil
	}
	s = pgText(s)
	return &s
}

// pgJSON encodes fields for a jsonb column, which rejects the escape \u0000 that encoding/json
// writes for a NUL: it becomes \ufffd. Fields that cannot be encoded are replaced by the error.
func pgJSON(fields map[string]any) string {
	b, err := json.Marshal(fields)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"batchy_encode_error": err.Error()})
	}
	if !strings.Contains(string(b), `\u0000`) {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		// An escape: copy it whole, so that an escaped backslash followed by "u0000" is left alone.
		if b[i+1] == 'u' && i+6 <= len(b) && string(b[i+2:i+6]) == "0000" {
			out = append(out, `\ufffd`...)
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return string(out)
}
