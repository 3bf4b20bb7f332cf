package event

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// openTestPostgres opens a sink on a fresh table, dropped at the end of the test.
func openTestPostgres(t *testing.T) (*PostgresSink, *pgx.Conn, string) {
	t.Helper()
	base := testPostgresURL(t)
	table := uniqueName("bev_test")
	s, err := DefaultRegistry(RegistryOptions{}).Open(base + "&table=" + table)
	if err != nil {
		t.Fatal(err)
	}
	conn := testPostgresConn(t, base)
	t.Cleanup(func() {
		s.Close()
		if _, err := conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table); err != nil {
			t.Error(err)
		}
	})
	return s.(*PostgresSink), conn, table
}

func countRows(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPostgresSinkWritesEvents(t *testing.T) {
	s, conn, table := openTestPostgres(t)
	ctx := context.Background()
	if got, want := s.Table(), table; got != want {
		t.Fatalf("Table() = %q, want %q", got, want)
	}
	t0 := time.Date(2025, 3, 1, 6, 0, 0, 123456000, time.UTC)
	events := []Event{
		{ID: "1700000000000-0", Time: t0, Workflow: "orders", Job: "load", BatchID: 42, RunID: "r1", Type: TypeOpen, Level: "info", Message: "opened", Fields: map[string]any{"rows": 10.0}},
		{ID: "1700000000000-1", Time: t0.Add(time.Second), Workflow: "orders", Type: TypeLog, Level: "warn", Message: "slow <source> & co"},
		{ID: "1700000000001-0", Time: t0.Add(2 * time.Second), Workflow: "orders", Type: TypeClose, Level: "info", Message: "closed"},
	}
	if err := s.Write(ctx, events); err != nil {
		t.Fatal(err)
	}

	t.Run("table and indexes created", func(t *testing.T) {
		var cols []string
		rows, err := conn.Query(ctx, `SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"id bigint", "stream_id text", "time timestamp with time zone", "workflow text", "job text", "batch_id bigint", "run_id text", "type text", "level text", "message text", "fields jsonb"}
		if !reflect.DeepEqual(cols, want) {
			t.Errorf("columns:\n got %q\nwant %q", cols, want)
		}
		rows, err = conn.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname`, table)
		if err != nil {
			t.Fatal(err)
		}
		defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(defs, "\n")
		for _, want := range []string{"(workflow, \"time\")", "UNIQUE INDEX", "(workflow, stream_id) WHERE (stream_id <> ''::text)"} {
			if !strings.Contains(all, want) {
				t.Errorf("indexes lack %q:\n%s", want, all)
			}
		}
	})

	t.Run("rows hold the events", func(t *testing.T) {
		rows, err := conn.Query(ctx, `SELECT stream_id, "time", workflow, coalesce(job, ''), coalesce(batch_id, 0), coalesce(run_id, ''), "type", "level", message, fields FROM `+table+` ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var got []Event
		for rows.Next() {
			var e Event
			var fields []byte
			if err := rows.Scan(&e.ID, &e.Time, &e.Workflow, &e.Job, &e.BatchID, &e.RunID, &e.Type, &e.Level, &e.Message, &fields); err != nil {
				t.Fatal(err)
			}
			e.Time = e.Time.UTC()
			if fields != nil {
				if err := json.Unmarshal(fields, &e.Fields); err != nil {
					t.Fatal(err)
				}
			}
			got = append(got, e)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, events) {
			t.Errorf("rows:\n got %+v\nwant %+v", got, events)
		}
	})

	t.Run("rewriting a batch adds no duplicates", func(t *testing.T) {
		if err := s.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
		// A retried batch may also come with newer events.
		more := append(append([]Event(nil), events...), Event{ID: "1700000000002-0", Time: t0, Workflow: "orders", Type: TypeLog, Level: "info", Message: "new"})
		if err := s.Write(ctx, more); err != nil {
			t.Fatal(err)
		}
		if got, want := countRows(t, conn, table), 4; got != want {
			t.Errorf("rows = %d, want %d", got, want)
		}
		// The same stream ID in another workflow is another event.
		other := events[0]
		other.Workflow = "invoices"
		if err := s.Write(ctx, []Event{other}); err != nil {
			t.Fatal(err)
		}
		if got, want := countRows(t, conn, table), 5; got != want {
			t.Errorf("rows = %d, want %d", got, want)
		}
	})

	t.Run("events without ID always insert", func(t *testing.T) {
		before := countRows(t, conn, table)
		noID := []Event{{Time: t0, Workflow: "orders", Type: TypeLog, Level: "info", Message: "a"}}
		for range 2 {
			if err := s.Write(ctx, noID); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := countRows(t, conn, table), before+2; got != want {
			t.Errorf("rows = %d, want %d", got, want)
		}
	})

	t.Run("text PostgreSQL rejects is made storable", func(t *testing.T) {
		bad := []Event{{Time: t0, Workflow: "orders", Job: "j\x00", Type: TypeLog, Level: "info", Message: "nul \x00 and bad utf-8 \xff",
			Fields: map[string]any{"k\x00": "v\x00", "literal": `\u0000`}}}
		if err := s.Write(ctx, bad); err != nil {
			t.Fatal(err)
		}
		var msg, job, literal string
		if err := conn.QueryRow(ctx, `SELECT message, job, fields->>'literal' FROM `+table+` WHERE job LIKE 'j%' ORDER BY id DESC LIMIT 1`).Scan(&msg, &job, &literal); err != nil {
			t.Fatal(err)
		}
		if want := "nul \uFFFD and bad utf-8 \uFFFD"; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
		if literal != `\u0000` {
			t.Errorf("fields.literal = %q, want the six characters \\u0000", literal)
		}
	})

	t.Run("empty batch is a no-op", func(t *testing.T) {
		if err := s.Write(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPostgresSinkConcurrentInit(t *testing.T) {
	base := testPostgresURL(t)
	table := uniqueName("bev_init")
	conn := testPostgresConn(t, base)
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		u, _ := url.Parse(base + "&table=" + table)
		s, err := NewPostgresSink(u)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Write(context.Background(), []Event{{Time: time.Now(), Workflow: "wf", Type: TypeLog, Level: "info", Message: string(rune('a' + i))}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got, want := countRows(t, conn, table), 4; got != want {
		t.Errorf("rows = %d, want %d", got, want)
	}
}

func TestPostgresSinkTableParameter(t *testing.T) {
	reg := DefaultRegistry(RegistryOptions{})
	for _, tc := range []struct {
		name, table string
		want        string // "" means rejected
	}{
		{"default", "", DefaultPostgresTable},
		{"plain", "etl_events", "etl_events"},
		{"schema-qualified", "etl.events", "etl.events"},
		{"statement injection", "x;drop table y", ""},
		{"quote", `x"y`, ""},
		{"upper case", "Events", ""},
		{"leading digit", "1events", ""},
		{"three parts", "a.b.c", ""},
		{"empty", "<empty>", ""},
		{"too long", strings.Repeat("a", 41), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "postgres://u:pw@127.0.0.1:1/test?sslmode=disable"
			switch tc.table {
			case "":
			case "<empty>":
				raw += "&table="
			default:
				raw += "&table=" + url.QueryEscape(tc.table)
			}
			s, err := reg.Open(raw)
			if tc.want == "" {
				if err == nil {
					s.Close()
					t.Fatalf("Open(%q) succeeded, want an error", raw)
				}
				if !strings.Contains(err.Error(), "table") {
					t.Errorf("error %q does not mention the table", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.(*PostgresSink).Table(); got != tc.want {
				t.Errorf("Table() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPostgresSinkCustomTableIsUsed(t *testing.T) {
	s, conn, table := openTestPostgres(t)
	if err := s.Write(context.Background(), []Event{{Time: time.Now(), Workflow: "wf", Type: TypeLog, Level: "info", Message: "m"}}); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, conn, table); got != 1 {
		t.Errorf("rows in %s = %d, want 1", table, got)
	}
	// The table parameter is batchy's, not a server setting: the connection worked without it.
	if strings.Contains(s.pool.Config().ConnString(), "table=") {
		t.Errorf("connection string %q still has the table parameter", s.pool.Config().ConnString())
	}
}

func TestPostgresSinkHidesPassword(t *testing.T) {
	const secret = "s3cret-Pa55"
	reg := DefaultRegistry(RegistryOptions{})
	for _, tc := range []struct {
		name, raw, secret string
	}{
		{"connection refused", "postgres://batchy:" + secret + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", secret},
		{"percent-encoded", "postgresql://batchy:" + url.PathEscape("p@ss/"+secret) + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", "p@ss/" + secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := reg.Open(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if strings.Contains(s.String(), secret) {
				t.Errorf("String() = %q shows the password", s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = s.Write(ctx, []Event{{Time: time.Now(), Workflow: "wf", Type: TypeLog, Level: "info"}})
			if err == nil {
				t.Fatal("Write to port 1 succeeded")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), url.PathEscape(tc.secret)) {
				t.Errorf("error shows the password: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
	t.Run("unparseable parameters", func(t *testing.T) {
		_, err := reg.Open("postgres://batchy:" + secret + "@127.0.0.1:1/test?sslmode=bogus")
		if err == nil {
			t.Fatal("Open with sslmode=bogus succeeded")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	})
}

func TestPGJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"plain", map[string]any{"a": 1}, `{"a":1}`},
		{"nul", map[string]any{"a": "x\x00y"}, `{"a":"x\ufffdy"}`},
		{"escaped backslash before u0000", map[string]any{"a": `\u0000`}, `{"a":"\\u0000"}`},
		{"unencodable", map[string]any{"c": make(chan int)}, `{"batchy_encode_error":"json: unsupported type: chan int"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pgJSON(tc.fields); got != tc.want {
				t.Errorf("pgJSON = %s, want %s", got, tc.want)
			}
		})
	}
}
