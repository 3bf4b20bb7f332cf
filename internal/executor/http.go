package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxHTTPLog is how much of a response body reaches Task.Log.
const maxHTTPLog = 64 << 10

// httpExecutor sends the batch as JSON to a URL; a 2xx answer is success, or starts a job whose
// end comes later (completion).
type httpExecutor struct {
	url     *url.URL
	rawURL  string // url as written, with its placeholders
	safeURL string // url without password or query values, for errors and logs
	method  string
	headers http.Header
	timeout time.Duration
	client  *http.Client
	// body replaces batchy's body when set: a JSON value whose strings may hold placeholders.
	body any
	// completion is "" (the answer is the result), "callback" or "poll".
	completion string
	poll       pollSpec
	// await bounds a callback or the polling.
	await time.Duration
}

// pollSpec says how to poll an asynchronous job's status.
type pollSpec struct {
	url      string // with placeholders
	path     []string
	success  []string
	failure  []string
	interval time.Duration
}

// placeholders are the names a url, a poll url and the strings of a body may hold in braces.
var placeholders = []string{"workflow", "job", "batch_id", "run_id", "attempt"}

// expand replaces the placeholders of s with the task's values (names of A-Z a-z 0-9 _ . - and
// numbers: safe in a URL as they are).
func expand(s string, t Task) string {
	if !strings.Contains(s, "{") {
		return s
	}
	return strings.NewReplacer("{workflow}", t.Workflow, "{job}", t.Job, "{batch_id}", fmt.Sprint(t.BatchID),
		"{run_id}", t.RunID, "{attempt}", fmt.Sprint(t.Attempt)).Replace(s)
}

// expandJSON expands the placeholders in every string of a decoded JSON value.
func expandJSON(v any, t Task) any {
	switch x := v.(type) {
	case string:
		return expand(x, t)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = expandJSON(val, t)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = expandJSON(val, t)
		}
		return out
	}
	return v
}

// sampleTask fills the placeholders when a URL is checked at load.
var sampleTask = Task{Workflow: "w", Job: "j", BatchID: 1, RunID: "r", Attempt: 1}

// NewHTTP is the http factory. Settings:
//
//	url: https://ci.example.com/job/etl/build   # required, http or https
//	method: POST                                # default POST
//	headers: {Authorization: Bearer ...}        # added to the request
//	timeout: 30s                                # wins over the task's timeout
//
// The body is {"workflow", "job", "batch_id", "run_id", "attempt", "batch": the job's fields}.
// Redirects are not followed (a 3xx is a failure): a POST silently turned into a GET would
// trigger nothing, and credentials must not travel to another host.
//
//	body: {conf: {batch: "{batch_id}"}}       # replaces batchy's body; placeholders in strings
//	completion: callback                        # or a poll map: the job's end comes later
//	completion_timeout: 2h                      # default 1h
//
// url, the poll url and the strings of body may hold {workflow}, {job}, {batch_id}, {run_id} and
// {attempt}. completion: callback means the job closes or fails its batch itself through the v1
// API, with the batch id it was given; completion: {poll: URL, result: a.b, success: [...],
// failure: [...], interval: 30s} means batchy GETs the URL (with the headers) every interval and
// reads the JSON value at result: a success value ends the job as success, a failure value as
// failed, anything else (or an error answer) is read again later.
func NewHTTP(m map[string]any) (Executor, error) {
	s := newSettings("http", m, "body", "completion", "completion_timeout", "headers", "method", "timeout", "url")
	e := &httpExecutor{
		method:  http.MethodPost,
		headers: http.Header{},
		client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	raw, ok, err := s.str("url")
	if err != nil {
		return nil, err
	}
	if !ok || raw == "" {
		return nil, s.errorf("url", "is required: the http or https URL to call")
	}
	u, err := checkURL(s, "url", raw)
	if err != nil {
		return nil, err
	}
	e.url, e.rawURL, e.safeURL = u, raw, redactURL(u)
	if b, ok := s.get("body"); ok {
		e.body = b
	}
	if err := e.readCompletion(s); err != nil {
		return nil, err
	}
	if method, ok, err := s.str("method"); err != nil {
		return nil, err
	} else if ok {
		method = strings.ToUpper(method)
		if method == "" || strings.Trim(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return nil, s.errorf("method", "%q is not an HTTP method", clip(method))
		}
		e.method = method
	}
	headers, err := s.stringMap("headers")
	if err != nil {
		return nil, err
	}
	for name, val := range headers {
		if !validHeaderName(name) {
			return nil, s.errorf("headers", "%q is not a valid header name", clip(name))
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			return nil, s.errorf("headers", "%s holds a line break or NUL byte", clip(name))
		}
		e.headers.Set(name, val)
	}
	if e.timeout, err = s.duration("timeout"); err != nil {
		return nil, err
	}
	if err := s.done(); err != nil {
		return nil, err
	}
	return e, nil
}

// checkURL parses an http or https URL setting, its placeholders filled with sample values.
func checkURL(s *settings, key, raw string) (*url.URL, error) {
	u, err := url.Parse(expand(raw, sampleTask))
	if err != nil {
		// url.Parse's error repeats the URL, credentials included: say less.
		return nil, s.errorf(key, "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return nil, s.errorf(key, "must start with http:// or https://")
		}
		return nil, s.errorf(key, "must start with http:// or https://, not %s://", u.Scheme)
	}
	if u.Host == "" {
		return nil, s.errorf(key, "%s has no host", redactURL(u))
	}
	return u, nil
}

// readCompletion reads completion and completion_timeout.
func (e *httpExecutor) readCompletion(s *settings) error {
	d, err := s.duration("completion_timeout")
	if err != nil {
		return err
	}
	v, ok := s.get("completion")
	if !ok {
		if d > 0 {
			return s.errorf("completion_timeout", "needs completion (callback or a poll map)")
		}
		return nil
	}
	e.await = d
	if e.await == 0 {
		e.await = time.Hour
	}
	switch c := v.(type) {
	case string:
		switch c {
		case "response":
			e.await = 0
			return nil
		case "callback":
			e.completion = "callback"
			return nil
		}
		return s.errorf("completion", "%q must be response, callback or a poll map {poll: URL, result: ..., success: [...], failure: [...]}", clip(c))
	case map[string]any:
		ps := newSettings("http completion", c, "failure", "interval", "poll", "result", "success")
		raw, ok, err := ps.str("poll")
		if err != nil {
			return err
		}
		if !ok || raw == "" {
			return ps.errorf("poll", "is required: the URL to GET the job's status from")
		}
		if _, err := checkURL(ps, "poll", raw); err != nil {
			return err
		}
		path, ok, err := ps.str("result")
		if err != nil {
			return err
		}
		if !ok || path == "" {
			return ps.errorf("result", "is required: where the answer holds the status, such as state or build.result")
		}
		p := pollSpec{url: raw, path: strings.Split(path, "."), interval: 30 * time.Second}
		for _, key := range []string{"success", "failure"} {
			list, err := ps.strings(key)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				return ps.errorf(key, "is required: the values of %s that mean %s", path, key)
			}
			if key == "success" {
				p.success = list
			} else {
				p.failure = list
			}
		}
		if iv, err := ps.duration("interval"); err != nil {
			return err
		} else if iv > 0 {
			if iv < 100*time.Millisecond {
				return ps.errorf("interval", "must be at least 100ms")
			}
			p.interval = iv
		}
		if err := ps.done(); err != nil {
			return err
		}
		e.completion, e.poll = "poll", p
		return nil
	}
	return s.errorf("completion", "must be response, callback or a poll map, not %s", kind(v))
}

// String describes the request without credentials, for logs.
func (e *httpExecutor) String() string { return "http " + e.method + " " + e.safeURL }

// httpBody is what the request carries.
type httpBody struct {
	Workflow string          `json:"workflow"`
	Job      string          `json:"job"`
	BatchID  int64           `json:"batch_id"`
	RunID    string          `json:"run_id"`
	Attempt  int             `json:"attempt"`
	Batch    json.RawMessage `json:"batch"`
}

// Run sends the request and reads up to 64 KiB of the answer into Task.Log.
func (e *httpExecutor) Run(ctx context.Context, t Task) Result {
	if ctx.Err() != nil {
		return Result{Err: cancelled(ctx)}
	}
	log := &logger{f: t.Log}
	timeout := t.Timeout
	if e.timeout > 0 {
		timeout = e.timeout
	}
	var reqCtx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		reqCtx, cancel = context.WithTimeoutCause(ctx, timeout, &timeoutError{after: timeout})
	} else {
		reqCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	var payload any = httpBody{Workflow: t.Workflow, Job: t.Job, BatchID: t.BatchID, RunID: t.RunID, Attempt: t.Attempt, Batch: t.Batch}
	if len(t.Batch) == 0 {
		b := payload.(httpBody)
		b.Batch = nil // null rather than a marshalling error
		payload = b
	}
	if e.body != nil {
		payload = expandJSON(e.body, t)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return Result{Err: fmt.Errorf("http: the batch is not valid JSON: %w", err)}
	}
	target := e.url.String()
	if e.rawURL != "" {
		target = expand(e.rawURL, t)
	}
	req, err := http.NewRequestWithContext(reqCtx, e.method, target, bytes.NewReader(body))
	if err != nil {
		return Result{Err: e.scrub(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "batchy")
	for k, v := range e.headers {
		req.Header[k] = v
	}
	if h := e.headers.Get("Host"); h != "" {
		req.Host = h // net/http ignores a Host header field
	}

	resp, err := e.client.Do(req)
	if err != nil {
		return Result{Err: e.failure(ctx, reqCtx, err)}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxHTTPLog))
	scanLines(bytes.NewReader(data), "http", log)
	if len(data) == maxHTTPLog {
		if n, _ := resp.Body.Read(make([]byte, 1)); n > 0 {
			log.line("http", fmt.Sprintf("[response body cut after %d KiB]", maxHTTPLog>>10))
		}
	}
	res := Result{HTTPStatus: resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
		return res
	}
	switch e.completion {
	case "callback":
		log.line("http", fmt.Sprintf("[started: waiting up to %s for the job to close or fail batch %d]", e.await, t.BatchID))
		res.Await = e.await
	case "poll":
		res.Err = e.pollStatus(ctx, t, log)
	}
	return res
}

// pollStatus GETs the poll URL every interval until its answer's result is a success or failure
// value, ctx ends or the completion timeout passes.
func (e *httpExecutor) pollStatus(ctx context.Context, t Task, log *logger) error {
	ctx, cancel := context.WithTimeoutCause(ctx, e.await, &timeoutError{after: e.await})
	defer cancel()
	target := expand(e.poll.url, t)
	last := ""
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
				return fmt.Errorf("no final status within the completion timeout (%s; last %s)", cause, orNone(last))
			}
			return cancelled(ctx)
		case <-time.After(e.poll.interval):
		}
		value, err := e.pollOnce(ctx, target)
		if err != nil {
			if ctx.Err() == nil {
				log.line("http", "[status: "+err.Error()+"]")
			}
			continue
		}
		if value != last {
			log.line("http", fmt.Sprintf("[status %s=%s]", strings.Join(e.poll.path, "."), value))
			last = value
		}
		switch {
		case contains(e.poll.success, value):
			return nil
		case contains(e.poll.failure, value):
			return fmt.Errorf("the job reported %s=%s", strings.Join(e.poll.path, "."), value)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "no status read"
	}
	return "status " + s
}

// pollOnce reads the status value once.
func (e *httpExecutor) pollOnce(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", e.scrub(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "batchy")
	for k, v := range e.headers {
		req.Header[k] = v
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return "", e.scrub(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("the answer is not JSON")
	}
	for _, k := range e.poll.path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("the answer has no %s", strings.Join(e.poll.path, "."))
		}
		v = m[k]
	}
	s, ok := scalarString(v)
	if !ok {
		if v == nil {
			return "", fmt.Errorf("the answer has no %s", strings.Join(e.poll.path, "."))
		}
		return "", fmt.Errorf("%s is %s, not a string", strings.Join(e.poll.path, "."), kind(v))
	}
	return s, nil
}

// failure explains a request that got no response.
func (e *httpExecutor) failure(ctx, reqCtx context.Context, err error) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	if cause := context.Cause(reqCtx); errors.Is(cause, ErrTimeout) {
		return cause
	}
	return e.scrub(err)
}

// scrub rewrites a request error with the redacted URL: url.Error hides only the password, and
// some errors quote the query, which may hold a token.
func (e *httpExecutor) scrub(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	msg := err.Error()
	if p, ok := e.url.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	if e.url.RawQuery != "" {
		msg = strings.ReplaceAll(msg, e.url.RawQuery, "xxxxx")
	}
	return fmt.Errorf("%s %s: %s", e.method, e.safeURL, msg)
}

// redactURL shows a URL with its password and query values replaced by xxxxx.
func redactURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		c.RawQuery = q.Encode()
	}
	c.Fragment, c.RawFragment = "", ""
	return c.Redacted()
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
