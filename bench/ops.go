package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// workflowYAML is the benchmark's workflow: three jobs, with the special fields an ETL uses.
const workflowYAML = `# batchy benchmark workflow: three jobs
extract:
    reprocess_hours: 2
    from_date: "2026-01-01T00:00"
    table: "orders"
transform:
    reprocess_hours: 1
    trunc_start: true
    from_date: "2026-01-01T00:00"
load:
    target: "warehouse.orders"
    param1: "hello"
`

// wfName is the workflow of load-generator worker w: one each, so that open+close pairs of two
// workers never meet (opening an open batch would abandon it).
func wfName(w int) string { return fmt.Sprintf("wf-%d", w+1) }

// newHTTPClient returns a client that keeps a connection per worker.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     0,
		DisableCompression:  true,
	}}
}

// do sends one request and reads its answer whole; anything but 200 is an error.
func do(ctx context.Context, hc *http.Client, method, url string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, url, res.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// route is one request of an API: method and path for workflow wf.
type route struct {
	method string
	path   func(wf string) string
}

// apiRoutes are the routes of one API (the original GET routes, or v1).
type apiRoutes struct {
	name                     string
	open, close, fail, state route
}

var (
	originalRoutes = apiRoutes{
		name:  "original",
		open:  route{http.MethodGet, func(wf string) string { return "/open_batch/" + wf }},
		close: route{http.MethodGet, func(wf string) string { return "/close_batch/" + wf }},
		fail:  route{http.MethodGet, func(wf string) string { return "/fail_batch/" + wf }},
		state: route{http.MethodGet, func(wf string) string { return "/get_status/" + wf }},
	}
	v1Routes = apiRoutes{
		name:  "v1",
		open:  route{http.MethodPost, func(wf string) string { return "/v1/workflows/" + wf + "/open" }},
		close: route{http.MethodPost, func(wf string) string { return "/v1/workflows/" + wf + "/close" }},
		fail:  route{http.MethodPost, func(wf string) string { return "/v1/workflows/" + wf + "/fail" }},
		state: route{http.MethodGet, func(wf string) string { return "/v1/workflows/" + wf }},
	}
)

// Operation names.
const (
	opOpen  = "open"       // the open route again and again: each re-opens the open batch
	opPair  = "open+close" // an open, then a close
	opFail  = "open+fail"  // an open, then a fail
	opState = "get_status" // the state read
	opBare  = "bare EVAL"  // the reference: the bare script, from the bench to Redis
	opNoop  = "no-op EVAL" // the floor of a round trip: a script that does nothing (`return 1`)
)

// httpOps returns api's operations against the server at base: the open alone, the open+close and
// open+fail pairs, and the state read; only those named in only, if any.
func httpOps(hc *http.Client, base string, api apiRoutes, workers int, only ...string) []op {
	urls := func(r route) []string {
		out := make([]string, workers)
		for w := range out {
			out[w] = base + r.path(wfName(w))
		}
		return out
	}
	opens, closes, fails, states := urls(api.open), urls(api.close), urls(api.fail), urls(api.state)
	pair := func(name string, end route, ends []string) op {
		return op{name: name, parts: []string{"open", strings.TrimPrefix(name, "open+")}, run: func(ctx context.Context, w int, rec func(int, time.Duration)) error {
			t := time.Now()
			if err := do(ctx, hc, api.open.method, opens[w]); err != nil {
				return err
			}
			t1 := time.Now()
			rec(0, t1.Sub(t))
			if err := do(ctx, hc, end.method, ends[w]); err != nil {
				return err
			}
			rec(1, time.Since(t1))
			return nil
		}}
	}
	all := []op{
		{name: opOpen, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error {
			return do(ctx, hc, api.open.method, opens[w])
		}},
		pair(opPair, api.close, closes),
		pair(opFail, api.fail, fails),
		{name: opState, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error {
			return do(ctx, hc, api.state.method, states[w])
		}},
	}
	if len(only) == 0 {
		return all
	}
	var out []op
	for _, o := range all {
		if slices.Contains(only, o.name) {
			out = append(out, o)
		}
	}
	return out
}

// floorOp is the floor server's open, for each worker's workflow.
func floorOp(hc *http.Client, base string, workers int) op {
	urls := make([]string, workers)
	for w := range urls {
		urls[w] = base + "/open_batch/" + wfName(w)
	}
	return op{name: opOpen, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error {
		return do(ctx, hc, http.MethodGet, urls[w])
	}}
}
