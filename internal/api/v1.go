package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/format"
)

// routesV1 registers the v1 API: GET reads, POST changes, acting on a whole workflow or on named
// jobs. Ending a job that is not open is a 409 here.
func (s *Server) routesV1() {
	s.engine.GET("/healthz", s.healthz)
	s.engine.GET("/readyz", s.readyz)
	s.engine.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", OpenAPI()) })

	v1 := s.engine.Group("/v1")
	v1.GET("/wait", s.handle(s.wait))
	v1.GET("/workflows", s.handle(s.listWorkflows))
	v1.GET("/workflows/:wf", s.handle(s.getWorkflow))
	v1.POST("/workflows/:wf/load", s.handle(s.postLoad))
	v1.POST("/workflows/:wf/open", s.handle(s.postOpen))
	v1.POST("/workflows/:wf/close", s.postEnd(batch.StatusSuccess))
	v1.POST("/workflows/:wf/fail", s.postEnd(batch.StatusFailed))
	v1.GET("/workflows/:wf/next", s.handle(s.getNext))
	v1.GET("/workflows/:wf/batches", s.handle(s.listBatches))
	v1.GET("/workflows/:wf/batches/:id", s.handle(s.getBatch))
	v1.GET("/workflows/:wf/jobs/:job", s.handle(s.getJob))
	v1.POST("/workflows/:wf/jobs/:job/open", s.handle(s.postOpen))
	v1.POST("/workflows/:wf/jobs/:job/close", s.postEnd(batch.StatusSuccess))
	v1.POST("/workflows/:wf/jobs/:job/fail", s.postEnd(batch.StatusFailed))
	v1.POST("/workflows/:wf/jobs/:job/watermark", s.handle(s.postWatermark))
	s.routesRuns(v1)
	s.routesEvents(v1)
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
	Store  string `json:"store"`
	Error  string `json:"error,omitempty"`
	// StoreLatencyMS is how long the store took to take the readiness write (/readyz only).
	StoreLatencyMS *float64 `json:"store_latency_ms,omitempty"`
	// Scheduler is the scheduler's state (/readyz only); absent when it is off.
	Scheduler *SchedulerHealth `json:"scheduler,omitempty"`
	// Sinks are the secondary log sinks: a sink that is down shows here, and never in a failed
	// request.
	Sinks []SinkHealth `json:"sinks,omitempty"`
}

// SchedulerHealth says whether this replica's scheduler leads.
type SchedulerHealth struct {
	Replica string `json:"replica"`
	Leader  bool   `json:"leader"`
}

// SinkHealth is one log sink's delivery state.
type SinkHealth struct {
	Sink      string `json:"sink"`
	Pending   int    `json:"pending"`
	Dropped   uint64 `json:"dropped"`
	LastError string `json:"last_error,omitempty"`
}

func (s *Server) sinkHealth() []SinkHealth {
	var out []SinkHealth
	for _, a := range s.opts.Events.Secondaries() {
		out = append(out, SinkHealth{Sink: a.String(), Pending: a.Pending(), Dropped: a.Dropped(), LastError: a.LastError()})
	}
	return out
}

// healthz says the process is alive; it does not touch the store, so a Redis outage does not get
// the replica restarted.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, Health{Status: "ok", Store: s.opts.StoreName, Sinks: s.sinkHealth()})
}

// readyz says whether the replica can serve: 503, with the reason, while the store does not take
// a write (Store.Ping writes a health key, within a second), so a load balancer sends requests
// elsewhere. A PING alone would pass on a paused master, a replica or a Cluster missing a master.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	h := Health{Status: "ok", Store: s.opts.StoreName, Sinks: s.sinkHealth()}
	if s.opts.Scheduler != nil {
		h.Scheduler = &SchedulerHealth{Replica: s.opts.Scheduler.ID(), Leader: s.opts.Scheduler.Leader()}
	}
	start := time.Now()
	err := s.opts.Store.Ping(ctx)
	ms := float64(time.Since(start).Microseconds()) / 1000
	h.StoreLatencyMS = &ms
	if err != nil {
		h.Status, h.Error = "unavailable", batch.ErrorMessage(err)
		c.JSON(http.StatusServiceUnavailable, h)
		return
	}
	c.JSON(http.StatusOK, h)
}

// WorkflowSummary is one entry of GET /v1/workflows: a loaded workflow's summary.
type WorkflowSummary struct {
	batch.Summary
	// Loaded: the workflow has state in the store (always, for an entry of the list).
	Loaded bool `json:"loaded"`
	// Configured: the configuration directory has a file for it.
	Configured bool `json:"configured"`
}

// WorkflowList is the answer of GET /v1/workflows: a page of the loaded workflows, by name.
type WorkflowList struct {
	Workflows []WorkflowSummary `json:"workflows"`
	// Next is the cursor of the next page; absent after the last.
	Next string `json:"next,omitempty"`
	// Counts are the loaded workflows of the whole installation by overall status; Total all of
	// them, whatever the filters.
	Counts map[batch.Status]int `json:"counts"`
	Total  int                  `json:"total"`
	// Unloaded are the configuration files of workflows never loaded (with the name prefix), on
	// the first page only: listing the directory costs as much as it holds files.
	Unloaded []string `json:"unloaded,omitempty"`
}

// listWorkflows answers a page of the summaries ?limit= (1 to 1000, default 50) after ?cursor=
// (the previous page's next), with ?status= and ?prefix= (of the name) as filters: a few Redis
// calls whatever the number of workflows.
func (s *Server) listWorkflows(c *gin.Context) error {
	ctx := c.Request.Context()
	sums := s.opts.Summaries
	if sums == nil {
		return batch.Errorf(batch.EUNAVAILABLE, "this store keeps no workflow summaries")
	}
	limit, err := intQuery(c, "limit", 50, 1, 1000)
	if err != nil {
		return err
	}
	q := batch.SummaryQuery{Status: batch.Status(c.Query("status")), Prefix: c.Query("prefix"), Cursor: c.Query("cursor"), Limit: int(limit), Raw: true}
	page, err := sums.Summaries(ctx, q)
	if err != nil {
		return err
	}
	out := WorkflowList{Workflows: make([]WorkflowSummary, len(page.Summaries)), Next: page.Next}
	if out.Counts, out.Total, err = sums.StatusCounts(ctx); err != nil {
		return err
	}
	configured, err := s.never.Configured(s.opts.CfgDir)
	if err != nil {
		return err
	}
	for i, sum := range page.Summaries {
		out.Workflows[i] = WorkflowSummary{Summary: sum, Loaded: true, Configured: configured(sum.Workflow)}
	}
	if q.Cursor == "" && q.Status == "" {
		if out.Unloaded, err = s.unloaded(ctx, sums, out.Total, q.Prefix); err != nil {
			return err
		}
	}
	if page.Raw == nil {
		c.JSON(http.StatusOK, out)
		return nil
	}
	body, err := out.appendJSON(make([]byte, 0, 512+400*len(page.Raw)), page.Raw)
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	return nil
}

// appendJSON appends l encoded as JSON, each workflow's summary taken from raw (its JSON as the
// store keeps it, the encoding of a batch.Summary) instead of encoded again: a summary's decoding
// and encoding were most of a page's time. The output is WorkflowList's encoding: a summary's
// fields, then loaded and configured, for each workflow; then the other fields, in their order.
func (l *WorkflowList) appendJSON(b []byte, raw []json.RawMessage) ([]byte, error) {
	b = append(b, `{"workflows":[`...)
	for i, js := range raw {
		if i > 0 {
			b = append(b, ',')
		}
		obj := bytes.TrimSpace(js) // an object (rdb checks it): its fields, then ours
		b = append(b, obj[:len(obj)-1]...)
		if len(bytes.TrimSpace(obj[1:len(obj)-1])) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"loaded":true,"configured":`...)
		b = strconv.AppendBool(b, l.Workflows[i].Configured)
		b = append(b, '}')
	}
	rest, err := json.Marshal(struct {
		Next     string               `json:"next,omitempty"`
		Counts   map[batch.Status]int `json:"counts"`
		Total    int                  `json:"total"`
		Unloaded []string             `json:"unloaded,omitempty"`
	}{l.Next, l.Counts, l.Total, l.Unloaded})
	if err != nil {
		return nil, err
	}
	return append(append(b, "],"...), rest[1:]...), nil
}

// unloaded returns the workflows of the configuration directory with the prefix that are not
// loaded.
func (s *Server) unloaded(ctx context.Context, sums batch.SummaryReader, total int, prefix string) ([]string, error) {
	never, err := s.never.Get(ctx, s.opts.CfgDir, total, sums.Loaded)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range never {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (s *Server) getWorkflow(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	f, err := format.Parse(c.Query("format"))
	if err != nil {
		return err
	}
	opts, err := s.formatOptions(c, false)
	if err != nil {
		return err
	}
	st, err := s.opts.Store.State(c.Request.Context(), wf)
	if err != nil {
		return err
	}
	s.respond(c, f, opts, st, st.Jobs)
	return nil
}

// respond writes a workflow's state: as JSON the whole batch.State, in the other formats the given
// jobs.
func (s *Server) respond(c *gin.Context, f format.Format, opts format.Options, st *batch.State, jobs batch.Jobs) {
	if f == format.JSON {
		c.JSON(http.StatusOK, st)
		return
	}
	s.render(c, f, opts, st.Workflow, jobs.BatchID(), jobs)
}

// LoadRequest is the body of POST /v1/workflows/{wf}/load.
type LoadRequest struct {
	// Reset discards the jobs' runtime state (status, ids, dates) and starts them from the file.
	Reset bool `json:"reset"`
}

func (s *Server) postLoad(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	var req LoadRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	st, err := s.load(c.Request.Context(), wf, req.Reset)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, st)
	return nil
}

// OpenRequest is the body of POST /v1/workflows/{wf}/open and .../jobs/{job}/open.
type OpenRequest struct {
	// Jobs to open; empty means all (ignored on the per-job route).
	Jobs []string `json:"jobs"`
	// FromDate and ToDate, when set, open a backfill over [from_date, to_date); to_date defaults to
	// now.
	FromDate string `json:"from_date"`
	ToDate   string `json:"to_date"`
}

func (s *Server) postOpen(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	f, err := format.Parse(c.Query("format"))
	if err != nil {
		return err
	}
	opts, err := s.formatOptions(c, false)
	if err != nil {
		return err
	}
	var body OpenRequest
	if err := s.decode(c, &body); err != nil {
		return err
	}
	req := batch.OpenRequest{Jobs: jobsOf(c, body.Jobs)}
	if body.FromDate != "" {
		if req.From, err = dateField("from_date", body.FromDate); err != nil {
			return err
		}
	}
	if body.ToDate != "" {
		if req.To, err = dateField("to_date", body.ToDate); err != nil {
			return err
		}
	}
	st, err := s.opts.Store.Open(c.Request.Context(), wf, req)
	if err != nil {
		return err
	}
	s.respond(c, f, opts, st, pick(st.Jobs, req.Jobs))
	return nil
}

// EndRequest is the body of POST .../close and .../fail.
type EndRequest struct {
	// Jobs to end; empty means all (ignored on the per-job route).
	Jobs []string `json:"jobs"`
	// BatchID, when set, makes the request a 409 if a job is in another batch, so that a late
	// close cannot end a newer batch.
	BatchID int64 `json:"batch_id"`
	// Metadata are facts about the run (rows read, rows written, bytes, ...), stored on the
	// ended jobs and in the batch's history.
	Metadata batch.Fields `json:"metadata"`
	// Force ends the jobs even when they are not open, instead of a 409: an operator's explicit
	// correction (a failed job marked success in its batch, which the original routes never do).
	// With batch_id, only if the job is still in that batch.
	Force bool `json:"force"`
}

func (s *Server) postEnd(status batch.Status) gin.HandlerFunc {
	return s.handle(func(c *gin.Context) error {
		wf, err := workflow(c)
		if err != nil {
			return err
		}
		var body EndRequest
		if err := s.decode(c, &body); err != nil {
			return err
		}
		if body.BatchID < 0 {
			return batch.Errorf(batch.EINVALID, "batch_id must be positive, got %d", body.BatchID)
		}
		for name, v := range body.Metadata {
			if err := batch.CheckName("metadata field", name); err != nil {
				return err
			}
			if !finiteNumbers(v) {
				return batch.Errorf(batch.EINVALID, "metadata field %s: a number is too large (beyond a 64-bit float), as workflow files refuse too", name)
			}
		}
		req := batch.EndRequest{Jobs: jobsOf(c, body.Jobs), Status: status, Strict: true, Force: body.Force, BatchID: body.BatchID, Metadata: body.Metadata}
		st, err := s.opts.Store.End(c.Request.Context(), wf, req)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, st)
		return nil
	})
}

// finiteNumbers reports whether every number in a JSON value fits a 64-bit float: 1e999 is valid
// JSON, but most readers of the metadata (Go, JavaScript) cannot hold it.
func finiteNumbers(raw json.RawMessage) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return errors.Is(err, io.EOF)
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := n.Float64(); err != nil {
				return false
			}
		}
	}
}

// WatermarkRequest is the body of POST .../jobs/{job}/watermark.
type WatermarkRequest struct {
	// FromDate is where the job's next window starts.
	FromDate string `json:"from_date"`
}

func (s *Server) postWatermark(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	if err := batch.CheckName("job", c.Param("job")); err != nil {
		return err
	}
	var body WatermarkRequest
	if err := s.decode(c, &body); err != nil {
		return err
	}
	if body.FromDate == "" {
		return batch.Errorf(batch.EINVALID, "from_date is required: the date the job's next window starts at")
	}
	from, err := dateField("from_date", body.FromDate)
	if err != nil {
		return err
	}
	st, err := s.opts.Store.SetWatermark(c.Request.Context(), wf, c.Param("job"), from)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, st)
	return nil
}

func (s *Server) getJob(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	job := c.Param("job")
	if err := batch.CheckName("job", job); err != nil {
		return err
	}
	f, err := format.Parse(c.Query("format"))
	if err != nil {
		return err
	}
	opts, err := s.formatOptions(c, false)
	if err != nil {
		return err
	}
	st, err := s.opts.Store.State(c.Request.Context(), wf)
	if err != nil {
		return err
	}
	j, ok := st.Jobs.Get(job)
	if !ok {
		return batch.Errorf(batch.ENOTFOUND, "job %s is not in workflow %s", job, wf)
	}
	if f == format.JSON {
		c.JSON(http.StatusOK, gin.H{"workflow": wf, "job": job, "fields": j.Fields})
		return nil
	}
	s.render(c, f, opts, wf, batch.Jobs{j}.BatchID(), batch.Jobs{j})
	return nil
}

// NextWindow is a job's window if a batch were opened now.
type NextWindow struct {
	FromDate string `json:"from_date"`
	ToDate   string `json:"to_date"`
}

// getNext previews the window each job would get if a batch were opened now, without opening one.
func (s *Server) getNext(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	st, err := s.opts.Store.State(c.Request.Context(), wf)
	if err != nil {
		return err
	}
	now := batch.FormatTime(time.Now())
	out := map[string]NextWindow{}
	for _, j := range st.Jobs {
		out[j.Name] = NextWindow{FromDate: batch.FormatTime(batch.NextFrom(j.Fields, s.opts.Location)), ToDate: now}
	}
	c.JSON(http.StatusOK, gin.H{"workflow": wf, "jobs": out})
	return nil
}

func (s *Server) listBatches(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	limit, err := intQuery(c, "limit", 20, 1, 1000)
	if err != nil {
		return err
	}
	before, err := intQuery(c, "before", 0, 1, 1<<62)
	if err != nil {
		return err
	}
	list, err := s.opts.Store.Batches(c.Request.Context(), wf, batch.ListOptions{Limit: int(limit), Before: before})
	if err != nil {
		return err
	}
	body := gin.H{"workflow": wf, "batches": list}
	if int64(len(list)) == limit {
		body["next_before"] = list[len(list)-1].ID
	}
	c.JSON(http.StatusOK, body)
	return nil
}

func (s *Server) getBatch(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return batch.Errorf(batch.EINVALID, "batch id must be a positive whole number, got %q", clip(c.Param("id")))
	}
	b, err := s.opts.Store.Batch(c.Request.Context(), wf, id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, b)
	return nil
}

// jobsOf returns the jobs a request acts on: the :job path parameter on per-job routes, else the
// body's list.
func jobsOf(c *gin.Context, fromBody []string) []string {
	if job := c.Param("job"); job != "" {
		return []string{job}
	}
	return fromBody
}

// pick returns the named jobs of jobs, or all of them when names is empty.
func pick(jobs batch.Jobs, names []string) batch.Jobs {
	if len(names) == 0 {
		return jobs
	}
	var out batch.Jobs
	for _, j := range jobs {
		for _, n := range names {
			if j.Name == n {
				out = append(out, j)
				break
			}
		}
	}
	return out
}

func dateField(name, value string) (time.Time, error) {
	t, err := batch.ParseTime(value)
	if err != nil {
		return time.Time{}, batch.Errorf(batch.EINVALID, "%s: %s", name, batch.ErrorMessage(err))
	}
	return t, nil
}

// intQuery reads an optional whole-number query parameter within [min, max].
func intQuery(c *gin.Context, name string, def, min, max int64) (int64, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, batch.Errorf(batch.EINVALID, "query parameter %s must be a whole number from %d to %d, got %q", name, min, max, clip(v))
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
