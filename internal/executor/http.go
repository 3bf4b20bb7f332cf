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

// httpExecutor sends the batch as JSON to a URL; a 2xx answer is success.
type httpExecutor struct {
	url     *url.URL
	safeURL string // url without password or query values, for errors and logs
	method  string
	headers http.Header
	timeout time.Duration
	client  *http.Client
}

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
func NewHTTP(m map[string]any) (Executor, error) {
	s := newSettings("http", m, "headers", "method", "timeout", "url")
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
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the URL, credentials included: say less.
		return nil, s.errorf("url", "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return nil, s.errorf("url", "must start with http:// or https://")
		}
		return nil, s.errorf("url", "must start with http:// or https://, not %s://", u.Scheme)
	}
	if u.Host == "" {
		return nil, s.errorf("url", "%s has no host", redactURL(u))
	}
	e.url, e.safeURL = u, redactURL(u)
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

	b := httpBody{Workflow: t.Workflow, Job: t.Job, BatchID: t.BatchID, RunID: t.RunID, Attempt: t.Attempt, Batch: t.Batch}
	if len(b.Batch) == 0 {
		b.Batch = nil // null rather than a marshalling error
	}
	body, err := json.Marshal(b)
	if err != nil {
		return Result{Err: fmt.Errorf("http: the batch is not valid JSON: %w", err)}
	}
	req, err := http.NewRequestWithContext(reqCtx, e.method, e.url.String(), bytes.NewReader(body))
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
	}
	return res
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
