// Package client talks to a batchy server over HTTP. waitsy and the end-to-end tests use it, and
// so can Go programs that drive batchy.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// Client is a batchy HTTP client.
type Client struct {
	// BaseURL is the server's address, e.g. http://localhost:5000.
	BaseURL string
	// Token, when set, is sent as a bearer token.
	Token string
	// HTTP does the requests; nil means a client without an overall timeout (long polls set
	// their own deadline through the context).
	HTTP *http.Client
}

// New returns a client for the server at baseURL.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{}}
}

// Error is an error answer of the server.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is batchy's error code (invalid, not_found, conflict, ...); empty when the server did
	// not answer with batchy's JSON error (another server, a proxy).
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrNoWaitEndpoint means the server has no /v1/wait (an older batchy or the original Python
// one): poll Status instead.
var ErrNoWaitEndpoint = errors.New("the server has no wait endpoint")

// get does a GET and decodes a JSON answer into v.
func (c *Client) get(ctx context.Context, path string, q url.Values, v any) error {
	u := c.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return c.do(ctx, http.MethodGet, u, nil, v)
}

// post does a POST of body as JSON and decodes a JSON answer into v.
func (c *Client) post(ctx context.Context, path string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, c.BaseURL+path, b, v)
}

// do sends a request and decodes a JSON answer into v, or the server's error into an *Error.
func (c *Client) do(ctx context.Context, method, u string, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		e := &Error{Status: res.StatusCode}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(answer, &eb) == nil && eb.Error.Code != "" {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		} else {
			e.Message = strings.TrimSpace(string(answer))
			if len(e.Message) > 200 {
				e.Message = e.Message[:200] + "..."
			}
		}
		return e
	}
	if err := json.Unmarshal(answer, v); err != nil {
		return fmt.Errorf("the server's answer is not the JSON expected: %v", err)
	}
	return nil
}

// Status returns a workflow's jobs through the original route GET /get_status/<wf>, which every
// batchy has, the original Python one included.
func (c *Client) Status(ctx context.Context, wf string) (batch.Jobs, error) {
	var raw map[string]batch.Fields
	if err := c.get(ctx, "/get_status/"+url.PathEscape(wf), nil, &raw); err != nil {
		return nil, err
	}
	// The original answers {} for a workflow it does not know.
	if len(raw) == 0 {
		return nil, &Error{Status: http.StatusNotFound, Code: batch.ENOTFOUND, Message: "workflow " + wf + " is not loaded"}
	}
	// The original's values need no conversion: Fields.Status reads its "failure" as failed and
	// Fields.Time its naive dates. A JSON object has no order: jobs come sorted by name.
	jobs := make(batch.Jobs, 0, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		jobs = append(jobs, batch.Job{Name: name, Fields: raw[name]})
	}
	return jobs, nil
}

// WaitRequest is a long poll's parameters.
type WaitRequest struct {
	Targets []batch.Target
	// Since: only successes (and failures) at or after it count.
	Since time.Time
	// Timeout is how long the server holds the request when nothing happens.
	Timeout time.Duration
	// FailFast makes a failed target end the wait.
	FailFast bool
}

// WaitResult is the server's answer to a wait.
type WaitResult struct {
	State batch.Readiness     `json:"state"`
	Since string              `json:"since"`
	Jobs  []batch.JobStanding `json:"jobs"`
}

// Wait long-polls GET /v1/wait. It returns ErrNoWaitEndpoint when the server does not have it.
func (c *Client) Wait(ctx context.Context, req WaitRequest) (*WaitResult, error) {
	q := url.Values{}
	for _, t := range req.Targets {
		q.Add("target", t.String())
	}
	q.Set("since", batch.FormatTime(req.Since))
	q.Set("timeout", req.Timeout.String())
	q.Set("fail_fast", fmt.Sprint(req.FailFast))
	var res WaitResult
	err := c.get(ctx, "/v1/wait", q, &res)
	var e *Error
	if errors.As(err, &e) && (e.Status == http.StatusMethodNotAllowed ||
		(e.Status == http.StatusNotFound && (e.Code == "" || strings.HasPrefix(e.Message, "no route")))) {
		return nil, ErrNoWaitEndpoint
	}
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// Poll computes what Wait answers from Status, for servers without the wait endpoint.
func (c *Client) Poll(ctx context.Context, req WaitRequest) (*WaitResult, error) {
	res := &WaitResult{Since: batch.FormatTime(req.Since)}
	states := map[string]batch.Jobs{}
	seen := map[string]bool{}
	for _, t := range req.Targets {
		jobs, ok := states[t.Workflow]
		if !ok {
			var err error
			if jobs, err = c.Status(ctx, t.Workflow); err != nil {
				return nil, err
			}
			states[t.Workflow] = jobs
		}
		standings, err := batch.Standings(t, jobs, req.Since)
		if err != nil {
			return nil, &Error{Status: http.StatusNotFound, Code: batch.ErrorCode(err), Message: batch.ErrorMessage(err)}
		}
		for _, s := range standings {
			if key := s.Workflow + ":" + s.Job; !seen[key] {
				seen[key] = true
				res.Jobs = append(res.Jobs, s)
			}
		}
	}
	res.State = batch.Overall(res.Jobs, req.FailFast)
	return res, nil
}

// Pause pauses a workflow's triggers (POST /v1/workflows/{wf}/pause) and returns its state.
func (c *Client) Pause(ctx context.Context, wf, reason string) (*batch.State, error) {
	var st batch.State
	if err := c.post(ctx, "/v1/workflows/"+url.PathEscape(wf)+"/pause", map[string]string{"reason": reason}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Resume resumes a workflow's triggers (POST /v1/workflows/{wf}/resume) and returns its state.
func (c *Client) Resume(ctx context.Context, wf string) (*batch.State, error) {
	var st batch.State
	if err := c.post(ctx, "/v1/workflows/"+url.PathEscape(wf)+"/resume", struct{}{}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Run is what the client reads of a scheduler run.
type Run struct {
	ID       string     `json:"id"`
	Trigger  string     `json:"trigger"`
	State    string     `json:"state"`
	FireTime *time.Time `json:"fire_time,omitempty"`
	// Interval is the run's window under window: schedule.
	Interval *struct {
		From time.Time `json:"from_date"`
		To   time.Time `json:"to_date"`
	} `json:"interval,omitempty"`
	// From and To are a backfill's window without window: schedule.
	From *time.Time `json:"from_date,omitempty"`
	To   *time.Time `json:"to_date,omitempty"`
}

// Backfill asks for a backfill over [from, to] (POST /v1/workflows/{wf}/backfill): under
// window: schedule one run per interval, oldest first; otherwise one run. jobs limits the runs
// to these jobs (none: all).
func (c *Client) Backfill(ctx context.Context, wf string, from, to time.Time, jobs []string) ([]Run, error) {
	body := map[string]any{"from_date": batch.FormatTime(from), "to_date": batch.FormatTime(to)}
	if len(jobs) > 0 {
		body["jobs"] = jobs
	}
	var out struct {
		Runs []Run `json:"runs"`
	}
	if err := c.post(ctx, "/v1/workflows/"+url.PathEscape(wf)+"/backfill", body, &out); err != nil {
		return nil, err
	}
	return out.Runs, nil
}
