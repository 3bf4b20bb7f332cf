package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/batch"
)

// Wait limits.
const (
	// DefaultWaitTimeout is how long a wait holds when the request names no timeout.
	DefaultWaitTimeout = 30 * time.Second
	// MaxWaitTimeout bounds a single long poll; clients wait longer by asking again.
	MaxWaitTimeout = 5 * time.Minute
	// MaxWaitTargets bounds the targets of one wait.
	MaxWaitTargets = 100
	// recheckEvery re-reads the state even without a notification: a safety net that bounds the
	// delay should a notification ever be lost, at the cost of one read per waiter and period.
	recheckEvery = 10 * time.Second
)

// WaitResult is the body of GET /v1/wait.
type WaitResult struct {
	// State is ready (every target succeeded since Since), failed (one failed since Since, with
	// fail_fast) or pending (the timeout passed first).
	State batch.Readiness     `json:"state"`
	Since string              `json:"since"`
	Jobs  []batch.JobStanding `json:"jobs"`
}

// wait answers the moment the targets are ready, or one failed, or the timeout passes: a long poll
// woken by the notification hub.
//
//	GET /v1/wait?target=wf1&target=wf2:job3&since=<RFC 3339>&timeout=30s&fail_fast=true
func (s *Server) wait(c *gin.Context) {
	targets, err := s.waitTargets(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	since := batch.Midnight(time.Now(), s.opts.Location)
	if v := c.Query("since"); v != "" {
		if since, err = dateField("since", v); err != nil {
			s.fail(c, err)
			return
		}
	}
	timeout := DefaultWaitTimeout
	if v := c.Query("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWaitTimeout {
			s.fail(c, batch.Errorf(batch.EINVALID, "timeout must be a duration from 0s to %s, got %q", MaxWaitTimeout, clip(v)))
			return
		}
		timeout = d
	}
	failFast := true
	if _, ok := c.GetQuery("fail_fast"); ok {
		if failFast, err = boolQuery(c, "fail_fast"); err != nil {
			s.fail(c, err)
			return
		}
	}

	var workflows []string
	seen := map[string]bool{}
	for _, t := range targets {
		if !seen[t.Workflow] {
			seen[t.Workflow] = true
			workflows = append(workflows, t.Workflow)
		}
	}
	release, err := s.waits.acquire(waitClient(c), s.opts.MaxWaitsPerClient)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer release()

	// Watch before the first read, so that a change in between still wakes this wait.
	w := s.opts.Hub.Watch(workflows...)
	defer w.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	for {
		res, err := s.standings(c, targets, since, failFast)
		if err != nil {
			s.fail(c, err)
			return
		}
		if res.State != batch.Pending {
			c.JSON(http.StatusOK, res)
			return
		}
		select {
		case <-w.C:
		case <-recheck.C:
		case <-deadline.C:
			c.JSON(http.StatusOK, res)
			return
		case <-c.Request.Context().Done():
			return
		case <-s.closing:
			s.fail(c, batch.Errorf(batch.EUNAVAILABLE, "the server is shutting down: ask again"))
			return
		}
	}
}

func (s *Server) waitTargets(c *gin.Context) ([]batch.Target, error) {
	raw := c.QueryArray("target")
	if len(raw) == 0 {
		return nil, batch.Errorf(batch.EINVALID, "name at least one target: ?target=wf or ?target=wf:job")
	}
	if len(raw) > MaxWaitTargets {
		return nil, batch.Errorf(batch.EINVALID, "at most %d targets per wait, got %d", MaxWaitTargets, len(raw))
	}
	targets := make([]batch.Target, len(raw))
	for i, r := range raw {
		t, err := batch.ParseTarget(r)
		if err != nil {
			return nil, err
		}
		targets[i] = t
	}
	return targets, nil
}

// standings reads each target's workflow once and sums up readiness.
func (s *Server) standings(c *gin.Context, targets []batch.Target, since time.Time, failFast bool) (*WaitResult, error) {
	states := map[string]*batch.State{}
	seen := map[string]bool{} // a job named twice (wf1 and wf1:job2) is reported once
	res := &WaitResult{Since: batch.FormatTime(since), Jobs: []batch.JobStanding{}}
	for _, t := range targets {
		st, ok := states[t.Workflow]
		if !ok {
			var err error
			if st, err = s.reads.State(c.Request.Context(), t.Workflow); err != nil {
				return nil, err
			}
			states[t.Workflow] = st
		}
		js, err := batch.Standings(t, st.Jobs, since)
		if err != nil {
			return nil, err
		}
		for _, j := range js {
			if key := j.Workflow + ":" + j.Job; !seen[key] {
				seen[key] = true
				res.Jobs = append(res.Jobs, j)
			}
		}
	}
	res.State = batch.Overall(res.Jobs, failFast)
	return res, nil
}

// waitCounter counts the waits in progress, in all and per client, so that one client cannot
// hold every goroutine and connection of the server.
type waitCounter struct {
	mu       sync.Mutex
	total    int
	byClient map[string]int
}

// acquire counts a wait of client, or refuses it when the client already holds max waits.
func (w *waitCounter) acquire(client string, max int) (release func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byClient == nil {
		w.byClient = map[string]int{}
	}
	if max > 0 && w.byClient[client] >= max {
		return nil, batch.Errorf(batch.ETOOMANY, "this client already holds %d waits, the most allowed (--max-waits-per-client): wait for one to return", max)
	}
	w.byClient[client]++
	w.total++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.total--
		if w.byClient[client]--; w.byClient[client] <= 0 {
			delete(w.byClient, client)
		}
	}, nil
}

// Active returns how many waits are in progress.
func (w *waitCounter) Active() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// waitClient names the client a wait counts against: its token when auth is on, else its
// address.
func waitClient(c *gin.Context) string {
	if tok, ok := auth.FromContext(c.Request.Context()); ok {
		return "token:" + tok.Name
	}
	return "ip:" + c.ClientIP()
}

// ActiveWaits returns how many long-poll waits are in progress, for the metrics.
func (s *Server) ActiveWaits() int { return s.waits.Active() }
