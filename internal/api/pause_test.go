package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestPauseRoutes: POST .../pause and .../resume set and clear the paused flag that GET
// /v1/workflows/{wf} and the GET /v1/workflows item show (without a scheduler on this server);
// bad requests get a 400 or 404 and change nothing.
func TestPauseRoutes(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)
		e.writeCfg(t, "w", "a: {}\n")
		wantStatus(t, e.do(t, "POST", "/v1/workflows/w/load", "{}"), 200)
		paused := func() (bool, string, bool) {
			t.Helper()
			st := e.get(t, "/v1/workflows/w").json(t)
			r := e.get(t, "/v1/workflows")
			var l api.WorkflowList
			if err := json.Unmarshal([]byte(r.body), &l); err != nil || len(l.Workflows) != 1 {
				t.Fatalf("list: %v %s", err, r.body)
			}
			reason, _ := st["pause_reason"].(string)
			return st["paused"] == true, reason, l.Workflows[0].Paused
		}
		if p, _, inList := paused(); p || inList {
			t.Fatalf("a new workflow is paused: state %v list %v", p, inList)
		}
		for _, c := range []struct{ path, body string }{
			{"/v1/workflows/w/pause", `{"reason":"` + strings.Repeat("x", 501) + `"}`},
			{"/v1/workflows/w/pause", `{"reason":"a\u0000b"}`},
			{"/v1/workflows/w/pause", `{"reasons":"typo"}`},
			{"/v1/workflows/w/pause", `{"reason":1}`},
			{"/v1/workflows/w/resume", `{"reason":"no"}`},
		} {
			wantStatus(t, e.do(t, "POST", c.path, c.body), 400)
		}
		wantStatus(t, e.do(t, "POST", "/v1/workflows/nope/pause", "{}"), 404)
		if p, _, inList := paused(); p || inList {
			t.Fatalf("a refused pause paused the workflow: state %v list %v", p, inList)
		}
		r := e.do(t, "POST", "/v1/workflows/w/pause", `{"reason":"source down"}`)
		wantStatus(t, r, 200)
		if r.json(t)["paused"] != true {
			t.Errorf("pause answer: %s", r.body)
		}
		if p, reason, inList := paused(); !p || reason != "source down" || !inList {
			t.Errorf("after the pause: state %v %q, list %v", p, reason, inList)
		}
		// A reload keeps the pause.
		wantStatus(t, e.do(t, "POST", "/v1/workflows/w/load", "{}"), 200)
		if p, _, inList := paused(); !p || !inList {
			t.Errorf("a reload lost the pause: state %v list %v", p, inList)
		}
		wantStatus(t, e.do(t, "POST", "/v1/workflows/w/resume", ""), 200)
		if p, _, inList := paused(); p || inList {
			t.Errorf("after the resume: state %v list %v", p, inList)
		}
	})
}
