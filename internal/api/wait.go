package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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
	// delay should a notification ever be lost. Every wait rechecks at the same moment (one
	// ticker for the server, not one per wait), so that the waits of a workflow share one read
	// and one answer: a thousand parked waits cost one read per workflow and period, not a
	// thousand.
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
func (s *Server) wait(c *gin.Context) error {
	targets, err := s.waitTargets(c)
	if err != nil {
		return err
	}
	since := batch.Midnight(time.Now(), s.opts.Location)
	if v := c.Query("since"); v != "" {
		if since, err = dateField("since", v); err != nil {
			return err
		}
	}
	timeout := DefaultWaitTimeout
	if v := c.Query("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWaitTimeout {
			return batch.Errorf(batch.EINVALID, "timeout must be a duration from 0s to %s, got %q", MaxWaitTimeout, clip(v))
		}
		timeout = d
	}
	failFast := true
	if _, ok := c.GetQuery("fail_fast"); ok {
		if failFast, err = boolQuery(c, "fail_fast"); err != nil {
			return err
		}
	}

	q := newWaitQuery(targets, since, failFast)
	release, err := s.waits.acquire(waitClient(c), s.opts.MaxWaitsPerClient)
	if err != nil {
		return err
	}
	parked := false
	defer func() {
		if !parked {
			release()
		}
	}()

	s.recheck.start(s.closing)
	// Watch before the first read, so that a change in between still wakes this wait.
	w := s.opts.Hub.Watch(q.workflows...)
	defer w.Stop()
	end := time.Now().Add(timeout)
	var deadline *time.Timer
	for {
		recheck := s.recheck.next()
		a, err := s.answer(c.Request.Context(), q)
		if err != nil {
			if c.Request.Context().Err() != nil {
				return nil // the client went away
			}
			return err
		}
		if a.err != nil {
			return a.err
		}
		if a.res.State != batch.Pending || timeout == 0 {
			a.write(c)
			return nil
		}
		if deadline == nil {
			// A wait that can be parked is, at its first pending answer (see park.go); the rest
			// are held here.
			if parked = s.park(c, q, w, a, end, release); parked {
				return nil
			}
			deadline = time.NewTimer(time.Until(end))
			defer deadline.Stop()
		}
		select {
		case <-w.C:
		case <-recheck:
		case <-deadline.C:
			a.write(c)
			return nil
		case <-c.Request.Context().Done():
			return nil
		case <-s.closing:
			return batch.Errorf(batch.EUNAVAILABLE, "the server is shutting down: ask again")
		}
	}
}

// recheck wakes every wait of the server at once, every recheckEvery: a channel closed and
// replaced at each period. Its ticker starts with the first wait and stops with the server.
type recheck struct {
	every time.Duration // zero means recheckEvery
	once  sync.Once
	mu    sync.Mutex
	c     chan struct{}
}

// next returns the channel the next recheck closes.
func (r *recheck) next() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

// start runs the ticker until stop is closed (once, whatever the number of calls).
func (r *recheck) start(stop <-chan struct{}) {
	r.once.Do(func() {
		r.mu.Lock()
		r.c = make(chan struct{})
		r.mu.Unlock()
		go func() {
			every := r.every
			if every <= 0 {
				every = recheckEvery
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					r.mu.Lock()
					close(r.c)
					r.c = make(chan struct{})
					r.mu.Unlock()
				}
			}
		}()
	})
}

// waitQuery is what a wait asks: its targets' readiness since a time.
type waitQuery struct {
	targets   []batch.Target
	workflows []string // the targets' workflows, each once, in order
	since     time.Time
	failFast  bool
	key       string // the question as text: waits with the same key ask the same question
}

func newWaitQuery(targets []batch.Target, since time.Time, failFast bool) *waitQuery {
	q := &waitQuery{targets: targets, since: since, failFast: failFast}
	var key strings.Builder
	seen := map[string]bool{}
	for _, t := range targets {
		if !seen[t.Workflow] {
			seen[t.Workflow] = true
			q.workflows = append(q.workflows, t.Workflow)
		}
		key.WriteString(t.String())
		key.WriteByte(' ')
	}
	key.WriteString(strconv.FormatInt(since.UnixNano(), 10))
	if failFast {
		key.WriteString(" fail_fast")
	}
	q.key = key.String()
	return q
}

// waitAnswer is the answer to one question from one set of state reads, shared by every wait
// that asks it: when a change wakes a thousand waits of a workflow, the standings are computed and
// the JSON encoded once, not a thousand times (measured: about a third of the server's CPU per
// woken wait).
type waitAnswer struct {
	once sync.Once
	res  *WaitResult
	err  error

	encode sync.Once
	body   []byte
}

// answer reads the query's workflows (sharing the reads with other waits) and returns the answer
// derived from those reads. The error is the context's; the answer's err is the question's (a
// failed read, an unknown job).
func (s *Server) answer(ctx context.Context, q *waitQuery) (*waitAnswer, error) {
	reads := make([]*stateRead, len(q.workflows))
	for i, wf := range q.workflows {
		rd, err := s.reads.Read(ctx, wf)
		if err != nil {
			return nil, err
		}
		reads[i] = rd
	}
	// The answer lives with the first workflow's read; the other reads are part of its key.
	key := q.key
	if len(reads) > 1 {
		var b strings.Builder
		b.WriteString(key)
		for _, rd := range reads[1:] {
			b.WriteString(" #")
			b.WriteString(strconv.FormatUint(rd.seq, 10))
		}
		key = b.String()
	}
	v, _ := reads[0].answers.LoadOrStore(key, &waitAnswer{})
	a := v.(*waitAnswer)
	a.once.Do(func() { a.res, a.err = standings(q, reads) })
	return a, nil
}

// bytes returns the answer as JSON, encoded once for every wait that sends it.
func (a *waitAnswer) bytes() []byte {
	a.encode.Do(func() {
		var err error
		if a.body, err = json.Marshal(a.res); err != nil {
			panic(err) // a WaitResult always encodes
		}
	})
	return a.body
}

// write sends the answer.
func (a *waitAnswer) write(c *gin.Context) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", a.bytes())
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

// standings sums up the readiness of q's targets in the workflows' reads (in q.workflows' order).
func standings(q *waitQuery, reads []*stateRead) (*WaitResult, error) {
	byWF := make(map[string]*stateRead, len(reads))
	for i, wf := range q.workflows {
		byWF[wf] = reads[i]
	}
	seen := map[string]bool{} // a job named twice (wf1 and wf1:job2) is reported once
	res := &WaitResult{Since: batch.FormatTime(q.since), Jobs: []batch.JobStanding{}}
	for _, t := range q.targets {
		rd := byWF[t.Workflow]
		if rd.err != nil {
			return nil, rd.err
		}
		js, err := batch.Standings(t, rd.st.Jobs, q.since)
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
	res.State = batch.Overall(res.Jobs, q.failFast)
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
