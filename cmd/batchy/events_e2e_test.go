package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// needService fails under CI=true and skips otherwise when a service the test uses is missing.
func needService(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not reachable and CI=true forbids skipping: %v", what, err)
	}
	t.Skipf("%s is not reachable: %v", what, err)
}

// TestEventsEndToEnd: an ETL run by the scheduler, with log lines posted through the curl API,
// has all its events in Redis, a JSON-lines file, PostgreSQL and NATS, live on the SSE stream, and
// its failure sends one webhook alert.
func TestEventsEndToEnd(t *testing.T) {
	ctx := context.Background()
	pgURL := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	pg, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		pgURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
		if pg, err = pgx.Connect(ctx, pgURL); err != nil {
			needService(t, "PostgreSQL", err)
		}
	}
	defer pg.Close(ctx)
	table := fmt.Sprintf("e2e_events_%d", time.Now().UnixNano())
	defer pg.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.Timeout(5*time.Second))
	if err != nil {
		needService(t, "NATS", err)
	}
	defer nc.Close()
	var natsMu sync.Mutex
	var natsMsgs []string
	sub, err := nc.Subscribe("batchy.event.etl5.>", func(m *nats.Msg) {
		natsMu.Lock()
		natsMsgs = append(natsMsgs, m.Subject+" "+string(m.Data))
		natsMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()

	var hookMu sync.Mutex
	var alerts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		alerts = append(alerts, string(b))
		hookMu.Unlock()
	}))
	defer hook.Close()

	srv := rdbtest.StartRedis(t)
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "etl5.yaml"), []byte(`
extract:
  run: {type: exec, command: ["sh", "-c", "echo extracted 42 rows; echo source is slow >&2; exit 1"]}
`), 0o644)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr, "--cfg-dir", cfg,
		"--log-sink", "file://"+file, "--log-sink", pgURL+"&table="+table, "--log-sink", "nats://127.0.0.1:4222",
		"--alert-webhook-json", hook.URL)
	if code, body := curl(t, p.url+"/load_cfg/etl5"); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}

	// The live tail, from now on.
	res, err := http.Get(p.url + "/v1/workflows/etl5/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sseMu sync.Mutex
	var sse []string
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				sseMu.Lock()
				sse = append(sse, l)
				sseMu.Unlock()
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)

	post := func(path, body string) {
		req, _ := http.NewRequest("POST", p.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(req)
		if err != nil || r.StatusCode >= 300 {
			t.Fatalf("POST %s: %v %v", path, err, r.Status)
		}
		r.Body.Close()
	}
	post("/v1/workflows/etl5/runs", "")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, body := curl(t, p.url+"/v1/workflows/etl5/runs"); strings.Contains(body, `"state":"failed"`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	post("/v1/workflows/etl5/logs?job=extract", `{"level":"warn","message":"operator note: rerun tomorrow"}`)

	wants := []string{"extracted 42 rows", "source is slow", `"type":"open"`, `"type":"fail"`, `"type":"run.finished"`, "operator note: rerun tomorrow", `"type":"alert"`}
	var redisBody string
	for time.Now().Before(deadline) {
		_, redisBody = curl(t, p.url+"/v1/workflows/etl5/events?limit=1000")
		sseMu.Lock()
		sseAll := strings.Join(sse, "\n")
		sseMu.Unlock()
		if containsAll(redisBody, wants) && containsAll(sseAll, wants) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sseMu.Lock()
	sseAll := strings.Join(sse, "\n")
	sseMu.Unlock()
	for _, w := range wants {
		if !strings.Contains(redisBody, w) {
			t.Errorf("Redis events lack %s", w)
		}
		if !strings.Contains(sseAll, w) {
			t.Errorf("the SSE stream lacks %s", w)
		}
	}
	p.stop(t) // flushes the secondary sinks

	data, _ := os.ReadFile(file)
	var rows []string
	r, err := pg.Query(ctx, "SELECT type || ' ' || message FROM "+table+" WHERE workflow = 'etl5'")
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	for r.Next() {
		var s string
		r.Scan(&s)
		rows = append(rows, s)
	}
	r.Close()
	natsMu.Lock()
	natsAll := strings.Join(natsMsgs, "\n")
	natsMu.Unlock()
	for _, w := range []string{"extracted 42 rows", "source is slow", "operator note: rerun tomorrow"} {
		if !strings.Contains(string(data), w) {
			t.Errorf("the JSON-lines file lacks %q", w)
		}
		if !strings.Contains(strings.Join(rows, "\n"), w) {
			t.Errorf("PostgreSQL lacks %q", w)
		}
		if !strings.Contains(natsAll, w) {
			t.Errorf("NATS lacks %q", w)
		}
	}
	if !strings.Contains(natsAll, "batchy.event.etl5.extract ") {
		t.Errorf("NATS subjects: %s", natsAll)
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	if len(alerts) != 1 || !strings.Contains(alerts[0], `"condition":"failed"`) {
		t.Errorf("webhook alerts = %v, want exactly one failure alert", alerts)
	}
}

func containsAll(s string, wants []string) bool {
	for _, w := range wants {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
