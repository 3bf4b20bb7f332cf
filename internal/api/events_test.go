package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// newEventEnv is newEnv with events recorded to the Redis stream.
func newEventEnv(t *testing.T, b rdbtest.Backend) *env {
	t.Helper()
	client, emb := b.New(t)
	e := &env{cfg: t.TempDir(), now: time.Now()}
	opts := rdb.Options{}
	if emb != nil {
		opts.Embedded = emb
	}
	e.store = rdb.New(client, opts)
	wf1, _ := os.ReadFile("../../cfg/wf1.yaml")
	os.WriteFile(filepath.Join(e.cfg, "wf1.yaml"), wf1, 0o644)
	bus := event.NewBus(rdb.NewEventStream(client, e.store.Keys(), 0), nil)
	srv := httptest.NewServer(api.New(api.Options{Store: event.RecordingStore{Store: e.store, Bus: bus}, Events: bus, CfgDir: e.cfg}).Handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type eventList struct {
	Events     []event.Event `json:"events"`
	NextBefore string        `json:"next_before"`
}

func (e *env) events(t *testing.T, query string) eventList {
	t.Helper()
	r := e.get(t, "/v1/workflows/wf1/events"+query)
	wantStatus(t, r, 200)
	var l eventList
	if err := json.Unmarshal([]byte(r.body), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func types(l eventList) string {
	var out []string
	for _, e := range l.Events {
		out = append(out, e.Type+":"+e.Job)
	}
	return strings.Join(out, " ")
}

func TestTransitionsAreEvents(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEventEnv(t, b)
		e.get(t, "/load_cfg/wf1")
		e.get(t, "/open_batch/wf1")
		e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", "")
		e.get(t, "/fail_batch/wf1")
		e.do(t, "POST", "/v1/workflows/wf1/jobs/job1/watermark", `{"from_date":"2026-01-01"}`)

		all := e.events(t, "")
		// fail_batch fails the jobs still open: job2, closed, keeps its result.
		want := "rewind:job1 fail:job3 fail:job1 close:job2 open:job3 open:job2 open:job1 load:"
		if got := types(all); got != want {
			t.Errorf("events, newest first:\n got %s\nwant %s", got, want)
		}
		open := all.Events[len(all.Events)-2]
		if open.BatchID == 0 || !strings.Contains(open.Message, "window") || open.Fields["from_date"] == nil {
			t.Errorf("open event = %+v", open)
		}
		if got := types(e.events(t, "?job=job2")); got != "close:job2 open:job2" {
			t.Errorf("?job=job2: %s", got)
		}
		// Opening an open job again abandons its batch.
		e.do(t, "POST", "/v1/workflows/wf1/jobs/job3/open", "")
		e.do(t, "POST", "/v1/workflows/wf1/jobs/job3/open", "")
		if got := types(e.events(t, "?job=job3&limit=3")); got != "open:job3 abandon:job3 open:job3" {
			t.Errorf("reopen: %s", got)
		}
		if got := types(e.events(t, "?level=error")); got != "fail:job3 fail:job1" {
			t.Errorf("?level=error: %s", got)
		}
		if got := types(e.events(t, "?type=open&batch="+itoa(open.BatchID))); got != "open:job3 open:job2 open:job1" {
			t.Errorf("?type=open&batch=: %s", got)
		}
		page := e.events(t, "?limit=4&before="+all.Events[0].ID) // from before the rewind
		if len(page.Events) != 4 || page.NextBefore == "" {
			t.Fatalf("page: %+v", page)
		}
		next := e.events(t, "?limit=4&before="+page.NextBefore)
		if got := types(next); got != "open:job2 open:job1 load:" {
			t.Errorf("second page: %s", got)
		}
	})
}

func TestLogIngestion(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEventEnv(t, b)
		e.get(t, "/load_cfg/wf1")
		e.get(t, "/open_batch/wf1")

		req, _ := http.NewRequest("POST", e.url+"/v1/workflows/wf1/logs?job=job2", strings.NewReader("read 10 rows\n\nwrote 10 rows\n"))
		req.Header.Set("Content-Type", "text/plain")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 202 {
			t.Fatalf("text logs: %v %v", err, res.Status)
		}
		r := e.do(t, "POST", "/v1/workflows/wf1/logs", `[{"level":"warn","message":"slow source","job":"job3","fields":{"rows":5}},{"message":"done"}]`)
		wantStatus(t, r, 202)

		logs := e.events(t, "?type=log")
		if got := types(logs); got != "log: log:job3 log:job2 log:job2" {
			t.Fatalf("log events: %s", got)
		}
		if l := logs.Events[2]; l.Message != "wrote 10 rows" || l.BatchID == 0 || l.Level != "info" {
			t.Errorf("text line = %+v", l)
		}
		if l := logs.Events[1]; l.Level != "warn" || l.Fields["rows"] != float64(5) {
			t.Errorf("JSON line = %+v", l)
		}
		before := len(e.events(t, "?limit=1000").Events)
		for _, c := range []struct{ body, mention string }{
			{`{"level":"loud","message":"x"}`, "level"},
			{`{"message":""}`, "message"},
			{`{"message":"x","job":"zz"}`, "zz"},
			{`{"msg":"x"}`, "msg"},
			{`[`, "JSON"},
		} {
			r := e.do(t, "POST", "/v1/workflows/wf1/logs", c.body)
			if r.status < 400 || r.status >= 500 || !strings.Contains(r.body, c.mention) {
				t.Errorf("%s: %d %s", c.body, r.status, r.body)
			}
		}
		wantStatus(t, e.do(t, "POST", "/v1/workflows/nope/logs", `{"message":"x"}`), 404)
		if after := len(e.events(t, "?limit=1000").Events); after != before {
			t.Errorf("refused log posts recorded events: %d -> %d", before, after)
		}
		// A text line of exactly 64 KiB is accepted (a longer one is a 400: TestBadInputEveryRoute).
		req, _ = http.NewRequest("POST", e.url+"/v1/workflows/wf1/logs", strings.NewReader(strings.Repeat("a", 64<<10)+"\r\n"))
		req.Header.Set("Content-Type", "text/plain")
		if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 202 {
			t.Fatalf("a 64 KiB text line: %v %v", err, res.Status)
		}
	})
}

// TestEventStream reads the live tail with SSE and resumes it with Last-Event-ID.
func TestEventStream(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEventEnv(t, b)
		e.get(t, "/load_cfg/wf1")
		res, err := http.Get(e.url + "/v1/workflows/wf1/events/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		e.do(t, "POST", "/v1/workflows/wf1/logs", `{"message":"live line"}`)
		var id string
		deadline := time.After(10 * time.Second)
		for id == "" {
			select {
			case l := <-lines:
				if strings.HasPrefix(l, "id: ") {
					id = strings.TrimPrefix(l, "id: ")
				}
				if strings.HasPrefix(l, "data: ") && !strings.Contains(l, "live line") {
					t.Errorf("unexpected event: %s", l)
				}
			case <-deadline:
				t.Fatal("the posted line did not arrive on the stream")
			}
		}
		// Resume after that id: only what came later arrives.
		e.do(t, "POST", "/v1/workflows/wf1/logs", `{"message":"after the reconnect"}`)
		req, _ := http.NewRequest("GET", e.url+"/v1/workflows/wf1/events/stream", nil)
		req.Header.Set("Last-Event-ID", id)
		res2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res2.Body.Close()
		sc := bufio.NewScanner(res2.Body)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "data: ") {
				if !strings.Contains(l, "after the reconnect") {
					t.Errorf("resumed stream sent %s", l)
				}
				break
			}
		}
		wantStatus(t, e.get(t, "/v1/workflows/wf1/events/stream?last_event_id=bogus"), 400)
		wantStatus(t, e.get(t, "/v1/workflows/nope/events"), 404)
	})
}
