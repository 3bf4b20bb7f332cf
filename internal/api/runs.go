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
	v1.POST("/workflows/:wf/runs", s.postRun)
	v1.GET("/workflows/:wf/runs", s.listRuns)
	v1.GET("/workflows/:wf/runs/:id", s.getRun)
	v1.POST("/workflows/:wf/runs/:id/cancel", s.cancelRun)
}

// scheduler returns the scheduler, or an error when it is off.
func (s *Server) scheduler() (*scheduler.Scheduler, error) {
	if s.opts.Scheduler == nil {
		return nil, batch.Errorf(batch.EUNAVAILABLE, "the scheduler is off on this server (--scheduler=off)")
	}
	return s.opts.Scheduler, nil
}

// RunRequest is the body of POST /v1/workflows/{wf}/runs.
type RunRequest struct {
	// Jobs limits the run to these jobs; empty means all.
	Jobs []string `json:"jobs"`
	// FromDate and ToDate make the run a backfill over [from_date, to_date).
	FromDate string `json:"from_date"`
	ToDate   string `json:"to_date"`
}

func (s *Server) postRun(c *gin.Context) {
	wf, err := workflow(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sch, err := s.scheduler()
	if err != nil {
		s.fail(c, err)
		return
	}
	var body RunRequest
	if err := s.decode(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	req := scheduler.TriggerRequest{Jobs: body.Jobs}
	for _, j := range body.Jobs {
		if err := batch.CheckName("job", j); err != nil {
			s.fail(c, err)
			return
		}
	}
	for _, d := range []struct {
		name, value string
		into        *time.Time
	}{{"from_date", body.FromDate, &req.From}, {"to_date", body.ToDate, &req.To}} {
		if d.value == "" {
			continue
		}
		if *d.into, err = dateField(d.name, d.value); err != nil {
			s.fail(c, err)
			return
		}
	}
	run, err := sch.Trigger(c.Request.Context(), wf, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, run)
}

func (s *Server) listRuns(c *gin.Context) {
	wf, err := workflow(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sch, err := s.scheduler()
	if err != nil {
		s.fail(c, err)
		return
	}
	limit, err := intQuery(c, "limit", 20, 1, 1000)
	if err != nil {
		s.fail(c, err)
		return
	}
	runs, err := sch.Runs(c.Request.Context(), wf, int(limit))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"workflow": wf, "runs": runs})
}

func (s *Server) getRun(c *gin.Context) {
	wf, err := workflow(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sch, err := s.scheduler()
	if err != nil {
		s.fail(c, err)
		return
	}
	id := c.Param("id")
	if !batch.ValidName(id) {
		s.fail(c, batch.Errorf(batch.EINVALID, "run id %q is invalid", clip(id)))
		return
	}
	run, err := sch.GetRun(c.Request.Context(), wf, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, run)
}

// CancelRequest is the body of POST .../runs/{id}/cancel.
type CancelRequest struct {
	// Reason is recorded on the run and its failed jobs.
	Reason string `json:"reason"`
}

func (s *Server) cancelRun(c *gin.Context) {
	wf, err := workflow(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	sch, err := s.scheduler()
	if err != nil {
		s.fail(c, err)
		return
	}
	var body CancelRequest
	if err := s.decode(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if len(body.Reason) > 500 {
		s.fail(c, batch.Errorf(batch.EINVALID, "reason is longer than 500 characters"))
		return
	}
	id := c.Param("id")
	if !batch.ValidName(id) {
		s.fail(c, batch.Errorf(batch.EINVALID, "run id %q is invalid", clip(id)))
		return
	}
	if err := sch.Cancel(c.Request.Context(), wf, id, body.Reason); err != nil {
		s.fail(c, err)
		return
	}
	run, err := sch.GetRun(c.Request.Context(), wf, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, run)
}
