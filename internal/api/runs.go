package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

// routesRuns registers the scheduler's routes: manual runs, backfills, cancellation, run records.
func (s *Server) routesRuns(v1 *gin.RouterGroup) {
	v1.POST("/workflows/:wf/runs", s.handle(s.postRun))
	v1.GET("/workflows/:wf/runs", s.handle(s.listRuns))
	v1.GET("/workflows/:wf/runs/:id", s.handle(s.getRun))
	v1.POST("/workflows/:wf/runs/:id/cancel", s.handle(s.cancelRun))
	v1.POST("/workflows/:wf/backfill", s.handle(s.postBackfill))
	v1.POST("/workflows/:wf/pause", s.handle(s.postPause(true)))
	v1.POST("/workflows/:wf/resume", s.handle(s.postPause(false)))
}

// PauseRequest is the body of POST /v1/workflows/{wf}/pause (optional).
type PauseRequest struct {
	// Reason is shown with the paused workflow (at most 500 characters).
	Reason string `json:"reason"`
}

// postPause pauses or resumes a workflow's triggers. It needs no scheduler on this replica: the
// flag is in the store, where every replica's scheduler reads it.
func (s *Server) postPause(pause bool) func(c *gin.Context) error {
	return func(c *gin.Context) error {
		wf, err := workflow(c)
		if err != nil {
			return err
		}
		var body PauseRequest
		if err := s.decode(c, &body); err != nil {
			return err
		}
		if !pause && body.Reason != "" {
			return batch.Errorf(batch.EINVALID, "a resume takes no reason")
		}
		st, err := s.opts.Store.SetPaused(c.Request.Context(), wf, pause, body.Reason)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, st)
		return nil
	}
}

// scheduler returns the scheduler, or an error when it is off.
func (s *Server) scheduler() (*scheduler.Scheduler, error) {
	if s.opts.Scheduler == nil {
		return nil, batch.Errorf(batch.EUNAVAILABLE, "the scheduler is off on this server (--scheduler=off)")
	}
	return s.opts.Scheduler, nil
}

// workflowScheduler returns the :wf path parameter, validated, and the scheduler.
func (s *Server) workflowScheduler(c *gin.Context) (string, *scheduler.Scheduler, error) {
	wf, err := workflow(c)
	if err != nil {
		return "", nil, err
	}
	sch, err := s.scheduler()
	return wf, sch, err
}

// runID returns the :id path parameter, validated.
func runID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !batch.ValidName(id) {
		return "", batch.Errorf(batch.EINVALID, "run id %q is invalid", clip(id))
	}
	return id, nil
}

// RunRequest is the body of POST /v1/workflows/{wf}/runs.
type RunRequest struct {
	// Jobs limits the run to these jobs; empty means all.
	Jobs []string `json:"jobs"`
	// FromDate and ToDate make the run a backfill over [from_date, to_date).
	FromDate string `json:"from_date"`
	ToDate   string `json:"to_date"`
	// FireTime, under window: schedule, reruns the interval of that fire time.
	FireTime string `json:"fire_time"`
}

func (s *Server) postRun(c *gin.Context) error {
	wf, sch, err := s.workflowScheduler(c)
	if err != nil {
		return err
	}
	var body RunRequest
	if err := s.decode(c, &body); err != nil {
		return err
	}
	req := scheduler.TriggerRequest{Jobs: body.Jobs}
	for _, j := range body.Jobs {
		if err := batch.CheckName("job", j); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name, value string
		into        *time.Time
	}{{"from_date", body.FromDate, &req.From}, {"to_date", body.ToDate, &req.To}, {"fire_time", body.FireTime, &req.FireTime}} {
		if d.value == "" {
			continue
		}
		if *d.into, err = dateField(d.name, d.value); err != nil {
			return err
		}
	}
	run, err := sch.Trigger(c.Request.Context(), wf, req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, run)
	return nil
}

// BackfillRequest is the body of POST /v1/workflows/{wf}/backfill.
type BackfillRequest struct {
	// Jobs limits the runs to these jobs; empty means all.
	Jobs []string `json:"jobs"`
	// FromDate and ToDate (both required) bound the backfill.
	FromDate string `json:"from_date"`
	ToDate   string `json:"to_date"`
}

// BackfillResponse is the answer of POST /v1/workflows/{wf}/backfill: the runs created, oldest
// interval first.
type BackfillResponse struct {
	Workflow string           `json:"workflow"`
	Runs     []*scheduler.Run `json:"runs"`
}

func (s *Server) postBackfill(c *gin.Context) error {
	wf, sch, err := s.workflowScheduler(c)
	if err != nil {
		return err
	}
	var body BackfillRequest
	if err := s.decode(c, &body); err != nil {
		return err
	}
	for _, j := range body.Jobs {
		if err := batch.CheckName("job", j); err != nil {
			return err
		}
	}
	req := scheduler.BackfillRequest{Jobs: body.Jobs}
	for _, d := range []struct {
		name, value string
		into        *time.Time
	}{{"from_date", body.FromDate, &req.From}, {"to_date", body.ToDate, &req.To}} {
		if d.value == "" {
			return batch.Errorf(batch.EINVALID, "%s is required", d.name)
		}
		if *d.into, err = dateField(d.name, d.value); err != nil {
			return err
		}
	}
	runs, err := sch.Backfill(c.Request.Context(), wf, req)
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, BackfillResponse{Workflow: wf, Runs: runs})
	return nil
}

func (s *Server) listRuns(c *gin.Context) error {
	wf, sch, err := s.workflowScheduler(c)
	if err != nil {
		return err
	}
	limit, err := intQuery(c, "limit", 20, 1, 1000)
	if err != nil {
		return err
	}
	runs, err := sch.Runs(c.Request.Context(), wf, int(limit))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"workflow": wf, "runs": runs})
	return nil
}

func (s *Server) getRun(c *gin.Context) error {
	wf, sch, err := s.workflowScheduler(c)
	if err != nil {
		return err
	}
	id, err := runID(c)
	if err != nil {
		return err
	}
	run, err := sch.GetRun(c.Request.Context(), wf, id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, run)
	return nil
}

// CancelRequest is the body of POST .../runs/{id}/cancel.
type CancelRequest struct {
	// Reason is recorded on the run and its failed jobs.
	Reason string `json:"reason"`
}

func (s *Server) cancelRun(c *gin.Context) error {
	wf, sch, err := s.workflowScheduler(c)
	if err != nil {
		return err
	}
	var body CancelRequest
	if err := s.decode(c, &body); err != nil {
		return err
	}
	if len(body.Reason) > 500 {
		return batch.Errorf(batch.EINVALID, "reason is longer than 500 characters")
	}
	id, err := runID(c)
	if err != nil {
		return err
	}
	if err := sch.Cancel(c.Request.Context(), wf, id, body.Reason); err != nil {
		return err
	}
	run, err := sch.GetRun(c.Request.Context(), wf, id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, run)
	return nil
}
