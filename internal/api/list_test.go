package api_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestListWorkflows: GET /v1/workflows answers a page of summaries by name, ?limit= and ?cursor=
// page through them, ?status= and ?prefix= filter them, counts cover the whole installation, the
// first page names the configuration files never loaded, and bad parameters get a 400 naming them.
func TestListWorkflows(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)
		for i := range 5 {
			e.writeCfg(t, fmt.Sprintf("w%d", i), "a: {}\n")
			wantStatus(t, e.do(t, "POST", fmt.Sprintf("/v1/workflows/w%d/load", i), "{}"), 200)
		}
		e.writeCfg(t, "wnever", "a: {}\n") // configured, not loaded
		wantStatus(t, e.do(t, "POST", "/v1/workflows/w1/open", "{}"), 200)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/w2/open", "{}"), 200)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/w2/fail", `{"metadata":{"error":"disk full"}}`), 200)

		list := func(query string) api.WorkflowList {
			t.Helper()
			r := e.get(t, "/v1/workflows"+query)
			wantStatus(t, r, 200)
			var l api.WorkflowList
			if err := json.Unmarshal([]byte(r.body), &l); err != nil {
				t.Fatal(err)
			}
			return l
		}
		names := func(l api.WorkflowList) string {
			var out []string
			for _, w := range l.Workflows {
				out = append(out, w.Workflow+":"+string(w.Status))
			}
			return strings.Join(out, " ")
		}
		first := list("?limit=2&prefix=w")
		if got := names(first); got != "w0:new w1:open" || first.Next != "w1" || !reflect.DeepEqual(first.Unloaded, []string{"wf1", "wnever"}) {
			t.Errorf("first page: %s next %q unloaded %v", got, first.Next, first.Unloaded)
		}
		if first.Total != 5 || first.Counts["failed"] != 1 || first.Counts["open"] != 1 || first.Counts["new"] != 3 {
			t.Errorf("counts %v of %d, want 1 failed, 1 open, 3 new of 5", first.Counts, first.Total)
		}
		second := list("?limit=2&prefix=w&cursor=" + first.Next)
		if got := names(second); got != "w2:failed w3:new" || second.Next != "w3" || second.Unloaded != nil {
			t.Errorf("second page: %s next %q unloaded %v", got, second.Next, second.Unloaded)
		}
		if l := list("?status=failed"); names(l) != "w2:failed" || l.Workflows[0].Reason != `{"error":"disk full"}` || !l.Workflows[0].Configured {
			t.Errorf("failed: %+v", l.Workflows)
		}
		if got := names(list("?prefix=w4")); got != "w4:new" {
			t.Errorf("prefix w4: %s", got)
		}
		for _, q := range []string{"?limit=0", "?limit=x", "?limit=1001", "?cursor=a%20b", "?status=bogus", "?prefix=%7B"} {
			r := e.get(t, "/v1/workflows"+q)
			wantStatus(t, r, 400)
			param := strings.Split(strings.TrimPrefix(q, "?"), "=")[0]
			if !strings.Contains(r.body, param) {
				t.Errorf("%s: %s does not name %s", q, r.body, param)
			}
		}
	})
}
