package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestRunSecretsHidden: a job's run: headers and env reach the scheduler but never a client, in
// any route or format that shows the job.
func TestRunSecretsHidden(t *testing.T) {
	e := newEnv(t, rdbtest.Backends[0])
	e.writeCfg(t, "secret", `extract:
  reprocess_hours: 2
  run:
    type: http
    url: https://ci:url-secret-789@etl.example.com/run?token=query-secret-000
    headers:
      Authorization: Bearer header-secret-123
    completion: {poll: "https://etl.example.com/status/{batch_id}?token=query-secret-000", result: state, success: [ok], failure: [ko]}
  env_note: kept
load:
  run:
    type: exec
    command: ["/bin/true"]
    env:
      DB_PASSWORD: env-secret-456
`)
	wantStatus(t, e.do(t, "POST", "/v1/workflows/secret/load", ""), 200)
	wantStatus(t, e.do(t, "POST", "/v1/workflows/secret/open", ""), 200)
	wantStatus(t, e.do(t, "POST", "/v1/workflows/secret/close", ""), 200)
	for _, path := range []string{
		"/v1/workflows/secret", "/v1/workflows/secret?format=env", "/v1/workflows/secret?format=infa",
		"/v1/workflows/secret/jobs/extract", "/v1/workflows/secret/jobs/load?format=env",
		"/v1/workflows/secret/batches", "/get_status/secret", "/get_status/secret/env",
		"/open_batch/secret/infa", "/close_batch/secret", "/load_cfg/secret",
	} {
		r := e.get(t, path)
		wantStatus(t, r, 200)
		if strings.Contains(r.body, "header-secret-123") || strings.Contains(r.body, "env-secret-456") ||
			strings.Contains(r.body, "url-secret-789") || strings.Contains(r.body, "query-secret-000") {
			t.Errorf("GET %s shows a run: secret:\n%s", path, r.body)
		}
	}
	for _, path := range []string{"/v1/workflows/secret/pause", "/v1/workflows/secret/resume"} {
		r := e.do(t, "POST", path, "")
		wantStatus(t, r, 200)
		if strings.Contains(r.body, "header-secret-123") || strings.Contains(r.body, "env-secret-456") ||
			strings.Contains(r.body, "url-secret-789") || strings.Contains(r.body, "query-secret-000") {
			t.Errorf("POST %s shows a run: secret:\n%s", path, r.body)
		}
	}
	r := e.get(t, "/v1/workflows/secret")
	if !strings.Contains(r.body, `"Authorization":"(hidden)"`) || !strings.Contains(r.body, `"url":"https://ci:xxxxx@etl.example.com/run?token=xxxxx"`) {
		t.Errorf("the run: settings are not shown with their secrets hidden:\n%s", r.body)
	}
	// The store keeps them: the scheduler needs them.
	st, err := e.store.State(context.Background(), "secret")
	if err != nil {
		t.Fatal(err)
	}
	job, _ := st.Jobs.Get("extract")
	if !strings.Contains(string(job.Fields["run"]), "header-secret-123") {
		t.Errorf("the store lost the header: %s", job.Fields["run"])
	}
}
