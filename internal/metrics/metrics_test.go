package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/event"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	gin.SetMode(gin.TestMode)
	m := New()

	r := gin.New()
	r.Use(m.GinMiddleware())
	r.GET("/v1/workflows/:wf", func(c *gin.Context) { c.String(http.StatusOK, c.Param("wf")) })
	r.GET("/open_batch/:wf", func(c *gin.Context) { c.String(http.StatusConflict, "busy") })
	for _, path := range []string{"/v1/workflows/wf1", "/v1/workflows/wf2", "/open_batch/wf1", "/no/such/route"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	}
	// Made-up methods share one label value: a client cannot make series without bound.
	for _, method := range []string{"M1", "M2", "BREW"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/x", nil))
	}

	m.Observe(context.Background(), []event.Event{
		{Workflow: "wf1", Type: event.TypeLoad},
		{Workflow: "wf1", Type: event.TypeOpen},
		{Workflow: "wf1", Type: event.TypeOpen},
		{Workflow: "wf1", Type: event.TypeClose, Fields: map[string]any{"duration_seconds": 42.0}},
		{Workflow: "wf1", Type: event.TypeFail, Fields: map[string]any{"duration_seconds": 5.0}},
		{Workflow: "wf2", Type: event.TypeRewind},
		{Workflow: "wf1", Type: event.TypeLog},
		{Workflow: "wf1", Type: event.TypeAlert, Fields: map[string]any{"condition": "late"}},
		{Workflow: "wf1", Type: event.TypeRunStarted},
		{Workflow: "wf1", Type: event.TypeRunFinished},
	})
	m.RedisError()
	m.RedisError()
	m.SetSources(Sources{
		ActiveWaits: func() int { return 3 },
		SinkDropped: func() map[string]uint64 { return map[string]uint64{"nats://host/subj": 7} },
		OpenBatches: func() (map[string]int, error) { return map[string]int{"wf1": 2, "wf2": 0}, nil },
	})

	out := scrape(t, m)
	for _, want := range []string{
		`batchy_http_requests_total{method="GET",route="/v1/workflows/:wf",status="200"} 2`,
		`batchy_http_requests_total{method="GET",route="/open_batch/:wf",status="409"} 1`,
		`batchy_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`batchy_http_requests_total{method="other",route="unmatched",status="404"} 3`,
		`batchy_http_request_duration_seconds_count{method="GET",route="/v1/workflows/:wf"} 2`,
		`batchy_transitions_total{type="open",workflow="wf1"} 2`,
		`batchy_transitions_total{type="load",workflow="wf1"} 1`,
		`batchy_transitions_total{type="close",workflow="wf1"} 1`,
		`batchy_transitions_total{type="fail",workflow="wf1"} 1`,
		`batchy_transitions_total{type="rewind",workflow="wf2"} 1`,
		`batchy_batch_duration_seconds_count{workflow="wf1"} 2`,
		`batchy_batch_duration_seconds_sum{workflow="wf1"} 47`,
		`batchy_alerts_total{condition="late",workflow="wf1"} 1`,
		`batchy_scheduler_runs_total{type="run.started",workflow="wf1"} 1`,
		`batchy_scheduler_runs_total{type="run.finished",workflow="wf1"} 1`,
		`batchy_redis_errors_total 2`,
		`batchy_active_waits 3`,
		`# TYPE batchy_sink_dropped_events_total counter`,
		`batchy_sink_dropped_events_total{sink="nats://host/subj"} 7`,
		`batchy_open_batches{workflow="wf1"} 2`,
		`batchy_open_batches{workflow="wf2"} 0`,
		`go_goroutines `,
		`process_`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	for _, bad := range []string{`/v1/workflows/wf1`, `/no/such/route`, `type="log"`} {
		if strings.Contains(out, bad) {
			t.Errorf("scrape has %q", bad)
		}
	}
}

func TestSourceErrorKeepsScrape(t *testing.T) {
	m := New()
	m.SetSources(Sources{OpenBatches: func() (map[string]int, error) { return nil, errors.New("redis down") }})
	out := scrape(t, m)
	if strings.Contains(out, "batchy_open_batches{") {
		t.Errorf("open batches reported despite the error")
	}
	if !strings.Contains(out, "batchy_redis_errors_total 0") {
		t.Errorf("scrape lacks the other metrics")
	}
}

func TestNilSafe(t *testing.T) {
	var m *Metrics
	m.Observe(context.Background(), []event.Event{{Workflow: "wf", Type: event.TypeOpen}})
	m.RedisError()
	m.SetSources(Sources{})
	r := gin.New()
	r.Use(m.GinMiddleware())
	r.GET("/x", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
}
