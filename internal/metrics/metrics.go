// Package metrics exposes batchy's Prometheus metrics (namespace "batchy") on its own registry:
// HTTP requests by route template, transitions, batch durations, alerts, scheduler runs, Redis
// errors, and gauges read at scrape time (active waits, sink drops, open batches, and each
// workflow's status, last success and failure, open since and next fire, from its summary).
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

const namespace = "batchy"

// Sources are read at scrape time; any of them may be nil (its metric is then absent).
type Sources struct {
	// ActiveWaits returns how many long-poll waits are in progress.
	ActiveWaits func() int
	// SinkDropped returns, per secondary sink name, how many events it dropped since start.
	SinkDropped func() map[string]uint64
	// Sinks returns each log sink's delivery counters and lag.
	Sinks func() []SinkStats
	// OpenBatches returns, per workflow, how many jobs have an open batch. It runs on every scrape:
	// it should be cheap and bound its own time; on error the series are left out.
	OpenBatches func() (map[string]int, error)
	// Summaries returns every workflow's summary, for the per-workflow series (status, last
	// success and failure, open since, next fire). It runs on every scrape, like OpenBatches.
	Summaries func() ([]batch.Summary, error)
	// NextFire returns a summary's next scheduled fire after now, false without a schedule.
	NextFire func(s batch.Summary, now time.Time) (time.Time, bool)
}

// Metrics holds batchy's collectors and the registry they are registered on. The zero value is
// not usable: call New. A nil *Metrics is safe to call (it records nothing).
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	transitions  *prometheus.CounterVec
	batchDur     *prometheus.HistogramVec
	alerts       *prometheus.CounterVec
	alertsFailed *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	schedRuns    *prometheus.CounterVec
	redisErrors  prometheus.Counter

	mu      sync.RWMutex
	sources Sources
}

// New returns metrics registered on a fresh registry, with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP request latency by route template and method.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"})
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "transitions_total",
		Help: "Batch state transitions (one per job) by workflow and type: load, open, close, fail, abandon, rewind.",
	}, []string{"workflow", "type"})
	m.batchDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "batch_duration_seconds",
		Help:    "Duration of closed or failed batches (batch_start to batch_end), per job batch.",
		Buckets: []float64{1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400},
	}, []string{"workflow"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "alerts_total",
		Help: "Alerts raised by workflow and condition.",
	}, []string{"workflow", "condition"})
	m.alertsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "alerts_failed_total",
		Help: "Alerts given up: not delivered to every notifier within the retry window, by workflow and condition.",
	}, []string{"workflow", "condition"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "alert_deliveries_total",
		Help: "Alert delivery attempts by notifier (its name, without credentials) and result: delivered or failed.",
	}, []string{"notifier", "result"})
	m.schedRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "scheduler_runs_total",
		Help: "Scheduler run events by workflow and type (run.scheduled, run.started, run.retried, run.finished, run.cancelled, run.stopped).",
	}, []string{"workflow", "type"})
	m.redisErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "redis_errors_total",
		Help: "Redis operations that failed.",
	})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.transitions, m.batchDur, m.alerts, m.alertsFailed, m.deliveries, m.schedRuns, m.redisErrors,
		sourceCollector{m},
	)
	return m
}

// Registry returns the registry, for tests or extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// GinMiddleware records request count and latency. The route label is the route template
// (c.FullPath(), e.g. /v1/workflows/:wf), or "unmatched" for requests no route matched: never
// the raw path, whose values are unbounded.
func (m *Metrics) GinMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if m == nil {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := methodLabel(c.Request.Method)
		m.httpRequests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// methodLabel bounds the method label: a client may send any method name, and each would
// otherwise make new series (memory without bound).
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// Observe counts events; its signature matches (*event.Bus).Observe, so wire it with
// bus.Observe(m.Observe). It does not block.
func (m *Metrics) Observe(_ context.Context, events []event.Event) {
	if m == nil {
		return
	}
	for _, e := range events {
		switch {
		case e.Type == event.TypeOpen || e.Type == event.TypeClose || e.Type == event.TypeFail ||
			e.Type == event.TypeAbandon || e.Type == event.TypeRewind || e.Type == event.TypeLoad:
			m.transitions.WithLabelValues(e.Workflow, e.Type).Inc()
			if e.Type == event.TypeClose || e.Type == event.TypeFail {
				if d, ok := number(e.Fields["duration_seconds"]); ok && d >= 0 {
					m.batchDur.WithLabelValues(e.Workflow).Observe(d)
				}
			}
		case e.Type == event.TypeAlert:
			cond, _ := e.Fields["condition"].(string)
			if cond == "" {
				cond = "unknown"
			}
			m.alerts.WithLabelValues(e.Workflow, cond).Inc()
		case strings.HasPrefix(e.Type, "run."):
			m.schedRuns.WithLabelValues(e.Workflow, e.Type).Inc()
		}
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// AlertDelivery counts one delivery attempt of an alert to a notifier (alert.Counter).
func (m *Metrics) AlertDelivery(notifier string, ok bool) {
	if m == nil {
		return
	}
	result := "failed"
	if ok {
		result = "delivered"
	}
	m.deliveries.WithLabelValues(notifier, result).Inc()
}

// AlertGivenUp counts an alert given up after its retry window (alert.Counter).
func (m *Metrics) AlertGivenUp(workflow, condition string) {
	if m != nil {
		m.alertsFailed.WithLabelValues(workflow, condition).Inc()
	}
}

// RedisError counts one failed Redis operation.
func (m *Metrics) RedisError() {
	if m != nil {
		m.redisErrors.Inc()
	}
}

// SetSources sets the functions read at scrape time; it may be called once the server's parts
// exist, after New.
func (m *Metrics) SetSources(s Sources) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.sources = s
	m.mu.Unlock()
}

// SinkStats is a log sink's delivery on this replica.
type SinkStats struct {
	Sink string
	// Delivered counts the events the sink took; Failed its failed writes.
	Delivered, Failed uint64
	// Lag is the age of the oldest event read and not delivered yet (0 when caught up).
	Lag time.Duration
}

var (
	descSinkDelivered = prometheus.NewDesc(namespace+"_sink_delivered_events_total",
		"Events a log sink took, from this replica.", []string{"sink"}, nil)
	descSinkFailed = prometheus.NewDesc(namespace+"_sink_failed_writes_total",
		"Writes to a log sink that failed (retried from the sink's cursor).", []string{"sink"}, nil)
	descSinkLag = prometheus.NewDesc(namespace+"_sink_lag_seconds",
		"Age of the oldest event this replica read for a log sink and has not delivered yet; 0 when caught up or when another replica feeds the sink.", []string{"sink"}, nil)
	descActiveWaits = prometheus.NewDesc(namespace+"_active_waits",
		"Long-poll waits in progress.", nil, nil)
	descSinkDropped = prometheus.NewDesc(namespace+"_sink_dropped_events_total",
		"Events a log sink never got: stream entries trimmed (--events-keep) before it was fed them.", []string{"sink"}, nil)
	descOpenBatches = prometheus.NewDesc(namespace+"_open_batches",
		"Jobs with an open batch, by workflow.", []string{"workflow"}, nil)

	// Per-workflow series from the summaries, named as Prometheus conventions name them, so that
	// existing alerting can page on them without batchy's own alerts (docs/operations.md).
	descWorkflowStatus = prometheus.NewDesc(namespace+"_workflow_status",
		"1 for the workflow's overall status (the worst of its jobs'), 0 for the others.", []string{"workflow", "status"}, nil)
	descLastSuccess = prometheus.NewDesc(namespace+"_workflow_last_success_timestamp_seconds",
		"When the workflow last ended every job in success (absent before its first success).", []string{"workflow"}, nil)
	descLastFailure = prometheus.NewDesc(namespace+"_workflow_last_failure_timestamp_seconds",
		"When a job of the workflow last failed (absent if none has).", []string{"workflow"}, nil)
	descOpenSince = prometheus.NewDesc(namespace+"_workflow_open_since_timestamp_seconds",
		"The earliest batch_start of the workflow's open jobs (absent while none is open).", []string{"workflow"}, nil)
	descNextFire = prometheus.NewDesc(namespace+"_workflow_next_fire_timestamp_seconds",
		"The workflow's next scheduled fire (absent without a schedule).", []string{"workflow"}, nil)
)

// sourceCollector reads the Sources at scrape time. Its three descs are always described; their
// series appear only when the source is set.
type sourceCollector struct{ m *Metrics }

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descActiveWaits
	ch <- descSinkDropped
	ch <- descSinkDelivered
	ch <- descSinkFailed
	ch <- descSinkLag
	ch <- descOpenBatches
	for _, d := range []*prometheus.Desc{descWorkflowStatus, descLastSuccess, descLastFailure, descOpenSince, descNextFire} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.RLock()
	s := c.m.sources
	c.m.mu.RUnlock()
	if s.ActiveWaits != nil {
		ch <- prometheus.MustNewConstMetric(descActiveWaits, prometheus.GaugeValue, float64(s.ActiveWaits()))
	}
	if s.SinkDropped != nil {
		for name, n := range s.SinkDropped() {
			ch <- prometheus.MustNewConstMetric(descSinkDropped, prometheus.CounterValue, float64(n), name)
		}
	}
	if s.Sinks != nil {
		for _, st := range s.Sinks() {
			ch <- prometheus.MustNewConstMetric(descSinkDelivered, prometheus.CounterValue, float64(st.Delivered), st.Sink)
			ch <- prometheus.MustNewConstMetric(descSinkFailed, prometheus.CounterValue, float64(st.Failed), st.Sink)
			ch <- prometheus.MustNewConstMetric(descSinkLag, prometheus.GaugeValue, st.Lag.Seconds(), st.Sink)
		}
	}
	if s.OpenBatches != nil {
		open, err := s.OpenBatches()
		// On error the series are left out rather than failing the whole scrape.
		if err == nil {
			for wf, n := range open {
				ch <- prometheus.MustNewConstMetric(descOpenBatches, prometheus.GaugeValue, float64(n), wf)
			}
		}
	}
	if s.Summaries != nil {
		if sums, err := s.Summaries(); err == nil {
			collectSummaries(ch, sums, s.NextFire, time.Now())
		}
	}
}

// collectSummaries writes the per-workflow series of sums.
func collectSummaries(ch chan<- prometheus.Metric, sums []batch.Summary, nextFire func(batch.Summary, time.Time) (time.Time, bool), now time.Time) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	stamp := func(d *prometheus.Desc, t *time.Time, wf string) {
		if t != nil && !t.IsZero() {
			gauge(d, float64(t.UnixMicro())/1e6, wf)
		}
	}
	for _, sum := range sums {
		wf := sum.Workflow
		for _, st := range batch.Statuses {
			v := 0.0
			if sum.Status == st {
				v = 1
			}
			gauge(descWorkflowStatus, v, wf, string(st))
		}
		stamp(descLastSuccess, sum.LastSuccess, wf)
		stamp(descLastFailure, sum.LastFailure, wf)
		stamp(descOpenSince, sum.OpenSince, wf)
		if nextFire != nil {
			if t, ok := nextFire(sum, now); ok {
				stamp(descNextFire, &t, wf)
			}
		}
	}
}

// Summaries returns a Sources.Summaries reading every workflow's summary in one call, its answer
// (an error included) kept for cacheFor and its time bounded by timeout, as OpenBatches.
func Summaries(store batch.SummaryLister, timeout, cacheFor time.Duration) func() ([]batch.Summary, error) {
	var (
		mu      sync.Mutex
		last    []batch.Summary
		lastErr error
		readAt  time.Time
	)
	return func() ([]batch.Summary, error) {
		mu.Lock()
		defer mu.Unlock()
		if !readAt.IsZero() && time.Since(readAt) < cacheFor {
			return last, lastErr
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		last, lastErr = store.AllSummaries(ctx)
		readAt = time.Now()
		return last, lastErr
	}
}

// OpenBatches returns a Sources.OpenBatches that counts the open jobs of every loaded workflow.
// It reads every workflow's state, so its answer, an error included, is kept for cacheFor, and
// one scan is bounded by timeout: scrapes stay cheap with thousands of workflows or a slow store.
func OpenBatches(store batch.Store, timeout, cacheFor time.Duration) func() (map[string]int, error) {
	var (
		mu      sync.Mutex
		last    map[string]int
		lastErr error
		readAt  time.Time
	)
	return func() (map[string]int, error) {
		mu.Lock()
		defer mu.Unlock()
		if !readAt.IsZero() && time.Since(readAt) < cacheFor {
			return last, lastErr
		}
		last, lastErr = scanOpen(store, timeout)
		readAt = time.Now()
		return last, lastErr
	}
}

func scanOpen(store batch.Store, timeout time.Duration) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if lister, ok := store.(batch.SummaryLister); ok {
		// One read of the summaries, whatever the number of workflows.
		sums, err := lister.AllSummaries(ctx)
		if err != nil {
			return nil, err
		}
		open := make(map[string]int, len(sums))
		for _, s := range sums {
			open[s.Workflow] = s.OpenJobs
		}
		return open, nil
	}
	names, err := store.Workflows(ctx)
	if err != nil {
		return nil, err
	}
	open := make(map[string]int, len(names))
	for _, wf := range names {
		st, err := store.State(ctx, wf)
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		n := 0
		for _, j := range st.Jobs {
			if j.Fields.Status() == batch.StatusOpen {
				n++
			}
		}
		open[wf] = n
	}
	return open, nil
}
