package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// tcpProxy forwards connections to a target while up; while down it closes them at once, as a
// network cut would, and cuts those it forwards.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setUp(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) setUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *tcpProxy) serve(c net.Conn) {
	p.mu.Lock()
	if !p.up {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c] = true
	p.mu.Unlock()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// pgUser finds the user the machine's PostgreSQL trusts (as TestEventsEndToEnd does).
func pgUser(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	var last error
	for _, user := range []string{"postgres", "root"} {
		conn, err := pgx.Connect(ctx, "postgres://"+user+"@127.0.0.1:5432/test?sslmode=disable")
		if err == nil {
			return user, conn
		}
		last = err
	}
	needService(t, "PostgreSQL", last)
	return "", nil
}

// TestSinkOutageAcrossRestart is the log sinks' Done-when: a PostgreSQL sink is unreachable
// (through a proxy the test controls) while transitions happen; batchy stops (SIGTERM, or kill -9)
// before it could deliver them; PostgreSQL comes back and batchy starts again: every event of the
// Redis stream is in the table, in order, none missing.
func TestSinkOutageAcrossRestart(t *testing.T) {
	for _, stop := range []string{"sigterm", "kill"} {
		t.Run(stop, func(t *testing.T) {
			ctx := context.Background()
			user, pg := pgUser(t)
			defer pg.Close(ctx)
			table := fmt.Sprintf("sink_outage_%s_%d", stop, time.Now().UnixNano())
			defer pg.Exec(ctx, "DROP TABLE IF EXISTS "+table)
			proxy := startProxy(t, "127.0.0.1:5432")

			srv := rdbtest.StartRedis(t)
			cfg, _ := filepath.Abs("../../cfg")
			args := []string{"--redis-url", "redis://" + srv.Addr, "--cfg-dir", cfg, "--scheduler", "off",
				"--scheduler-lease", "2s", "--shutdown-timeout", "2s",
				"--log-sink", "postgres://" + user + "@" + proxy.addr() + "/test?sslmode=disable&connect_timeout=2&table=" + table}

			// Delivered while PostgreSQL is up: the sink has a cursor before the outage.
			proxy.setUp(true)
			p := startServe(t, nil, args...)
			if code, body := curl(t, p.url+"/load_cfg/wf1"); code != 200 {
				t.Fatalf("load: %d %s", code, body)
			}
			waitRows(t, pg, table, 1)

			proxy.setUp(false)
			cycle(t, p.url)
			for _, path := range []string{"/open_batch/wf1", "/close_batch/wf1", "/open_batch/wf1", "/fail_batch/wf1"} {
				if code, body := curl(t, p.url+path); code != 200 {
					t.Fatalf("GET %s: %d %s", path, code, body)
				}
			}
			time.Sleep(300 * time.Millisecond) // the feeder tries, and fails
			if stop == "kill" {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			} else {
				p.stop(t)
			}
			if n := countRows(t, pg, table); n != 1 {
				t.Fatalf("%d rows while PostgreSQL was unreachable, want the load's alone", n)
			}

			proxy.setUp(true)
			p = startServe(t, nil, args...)
			want := streamIDs(t, p.url, "wf1")
			if len(want) < 10 {
				t.Fatalf("the stream holds %d events: %v", len(want), want)
			}
			got := waitRows(t, pg, table, len(want))
			t.Logf("%d events delivered after the restart", len(got))
			if !slices.Equal(got, want) {
				t.Errorf("PostgreSQL holds, in order:\n%v\nthe Redis stream:\n%v", got, want)
			}
			p.stop(t)
		})
	}
}

// streamIDs returns the IDs of a workflow's events, oldest first, from the events API.
func streamIDs(t *testing.T, url, wf string) []string {
	t.Helper()
	_, body := curl(t, url+"/v1/workflows/"+wf+"/events?limit=1000")
	var page struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("events: %v: %s", err, body)
	}
	var ids []string
	for _, e := range page.Events {
		ids = append(ids, e.ID)
	}
	slices.Reverse(ids) // the API lists newest first
	return ids
}

func countRows(t *testing.T, pg *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := pg.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	return n
}

// waitRows waits until the table holds n rows and returns their stream IDs in insertion order.
func waitRows(t *testing.T, pg *pgx.Conn, table string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if countRows(t, pg, table) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the table holds %d rows after 20s, want %d", countRows(t, pg, table), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows, err := pg.Query(context.Background(), "SELECT stream_id FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestLogSinkIDs: a sink goes by its URL's fragment, cut off before it opens, or by its
// description without credentials; two sinks that would share an ID are refused.
func TestLogSinkIDs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		urls    []string
		wantIDs []string
		wantErr string
	}{
		{"description", []string{"file://" + dir + "/a.jsonl", "stdout://"}, []string{"file://" + dir + "/a.jsonl", "stdout://"}, ""},
		{"fragment", []string{"file://" + dir + "/b.jsonl#replica-a"}, []string{"replica-a"}, ""},
		{"password hidden", []string{"postgres://u:secret@127.0.0.1:1/db?table=t"}, []string{"postgres://u:xxxxx@127.0.0.1:1/db?table=t"}, ""},
		{"same path twice", []string{"file://" + dir + "/c.jsonl", "file://" + dir + "/c.jsonl"}, nil, "two log sinks go by"},
		{"same fragment twice", []string{"file://" + dir + "/d.jsonl#x", "stdout://#x"}, nil, `"x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serveConfig{logSinks: tc.urls}
			sinks, err := c.openLogSinks(io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range sinks {
				ids = append(ids, s.id)
				s.sink.Close()
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("ids = %q, want %q", ids, tc.wantIDs)
			}
		})
	}
}
