package scheduler_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

// fakeJenkins answers buildWithParameters at once (201, queued), as Jenkins does, and "builds"
// in the background: after a moment it calls batchy's v1 close (or fail) with the batch id it was
// given, as the job's last step would.
func fakeJenkins(t *testing.T, batchy string, result string) *httptest.Server {
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/job/load/buildWithParameters" {
			http.NotFound(w, r)
			return
		}
		id := r.URL.Query().Get("BATCH_ID")
		wf, job := r.URL.Query().Get("WF"), r.URL.Query().Get("JOB")
		w.Header().Set("Location", "/queue/item/7/")
		w.WriteHeader(http.StatusCreated)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(600 * time.Millisecond) // the build runs
			res, err := http.Post(fmt.Sprintf("%s/v1/workflows/%s/jobs/%s/%s", batchy, wf, job, result), "application/json",
				strings.NewReader(`{"batch_id":`+id+`}`))
			if err != nil {
				t.Errorf("the fake build's callback: %v", err)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("the fake build's callback: %d %s", res.StatusCode, body)
			}
		}()
	}))
	t.Cleanup(func() { wg.Wait(); srv.Close() })
	return srv
}

// fakeAirflow implements the two calls of Airflow's REST API batchy makes: POST
// /api/v1/dags/<dag>/dagRuns with the dag_run_id and conf batchy chose, and GET
// /api/v1/dags/<dag>/dagRuns/<id>, whose state is queued, then running, then final.
func fakeAirflow(t *testing.T, final string) (*httptest.Server, func() map[string]any) {
	var mu sync.Mutex
	polls := map[string]int{}
	var conf map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/dags/load/dagRuns":
			var body struct {
				DagRunID string         `json:"dag_run_id"`
				Conf     map[string]any `json:"conf"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.DagRunID == "" {
				http.Error(w, `{"title":"bad request"}`, 400)
				return
			}
			conf = body.Conf
			polls[body.DagRunID] = 0
			json.NewEncoder(w).Encode(map[string]any{"dag_run_id": body.DagRunID, "state": "queued"})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/dags/load/dagRuns/"):
			id := strings.TrimPrefix(r.URL.Path, "/api/v1/dags/load/dagRuns/")
			n, ok := polls[id]
			if !ok {
				http.Error(w, `{"title":"DAGRun not found"}`, 404)
				return
			}
			polls[id] = n + 1
			state := []string{"queued", "running", "running"}
			s := final
			if n < len(state) {
				s = state[n]
			}
			json.NewEncoder(w).Encode(map[string]any{"dag_run_id": id, "state": s})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]any { mu.Lock(); defer mu.Unlock(); return conf }
}

// TestAsyncHTTPJobs: an http job whose end comes later: a Jenkins-style build that closes (or
// fails) its batch through the v1 API with the batch id it was given, an Airflow-style DAG run that
// batchy polls, and a callback that never comes (the completion timeout fails the job).
func TestAsyncHTTPJobs(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	apiSrv := httptest.NewServer(api.New(api.Options{Store: e.store, CfgDir: t.TempDir(), Scheduler: s, StoreName: "redis",
		Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(apiSrv.Close)
	run := func(wf string) *scheduler.Run {
		t.Helper()
		if _, err := s.Trigger(ctx, wf, scheduler.TriggerRequest{}); err != nil {
			t.Fatal(err)
		}
		tick(t, s, clk.Now())
		s.Wait()
		return e.runs(s, wf)[0]
	}

	t.Run("jenkins callback", func(t *testing.T) {
		for _, c := range []struct{ result, want string }{{"close", "success"}, {"fail", "failed"}} {
			jenkins := fakeJenkins(t, apiSrv.URL, c.result)
			wf := "jenkins_" + c.result
			e.load(wf, fmt.Sprintf(`
load:
  run:
    type: http
    url: "%s/job/load/buildWithParameters?BATCH_ID={batch_id}&WF={workflow}&JOB={job}"
    completion: callback
    completion_timeout: 30s
`, jenkins.URL))
			r := run(wf)
			j := r.Attempts[0].Jobs["load"]
			if j.Status != c.want || j.HTTPStatus != 201 {
				t.Errorf("%s: job %+v, want %s after the build's callback", wf, j, c.want)
			}
			if got := e.status(wf, "load"); string(got) != c.want {
				t.Errorf("%s: store status %s, want %s", wf, got, c.want)
			}
			// The batch ended with the build's callback, after the build ran: not at queue time.
			st, _ := e.store.State(ctx, wf)
			job, _ := st.Jobs.Get("load")
			bs, _ := job.Fields.Time(batch.FieldBatchStart)
			be, _ := job.Fields.Time(batch.FieldBatchEnd)
			if be.Sub(bs) < 500*time.Millisecond {
				t.Errorf("%s: the batch ended %s after it opened: before the build ran", wf, be.Sub(bs))
			}
		}
	})

	t.Run("airflow poll", func(t *testing.T) {
		for _, c := range []struct{ final, want string }{{"success", "success"}, {"failed", "failed"}} {
			airflow, conf := fakeAirflow(t, c.final)
			wf := "airflow_" + c.final
			e.load(wf, fmt.Sprintf(`
load:
  run:
    type: http
    url: "%[1]s/api/v1/dags/load/dagRuns"
    headers: {Authorization: "Basic YWRtaW46YWRtaW4="}
    body: {dag_run_id: "batchy-{workflow}-{batch_id}-{attempt}", conf: {batch_id: "{batch_id}", run_id: "{run_id}"}}
    completion:
      poll: "%[1]s/api/v1/dags/load/dagRuns/batchy-{workflow}-{batch_id}-{attempt}"
      result: state
      success: [success]
      failure: [failed]
      interval: 100ms
    completion_timeout: 30s
`, airflow.URL))
			r := run(wf)
			j := r.Attempts[0].Jobs["load"]
			if j.Status != c.want {
				t.Errorf("%s: job %+v, want %s", wf, j, c.want)
			}
			if c.want == "failed" && !strings.Contains(j.Error, "state=failed") {
				t.Errorf("%s: error %q does not say what the DAG run reported", wf, j.Error)
			}
			if got := conf()["batch_id"]; got != fmt.Sprint(r.Attempts[0].BatchID) {
				t.Errorf("%s: the DAG run's conf has batch_id %v, want %d", wf, got, r.Attempts[0].BatchID)
			}
			if got := e.status(wf, "load"); string(got) != c.want {
				t.Errorf("%s: store status %s, want %s", wf, got, c.want)
			}
		}
	})

	t.Run("no callback", func(t *testing.T) {
		silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }))
		t.Cleanup(silent.Close)
		e.load("silent", fmt.Sprintf("load:\n  run: {type: http, url: %q, completion: callback, completion_timeout: 1s}\n", silent.URL))
		start := time.Now()
		r := run("silent")
		j := r.Attempts[0].Jobs["load"]
		if j.Status != "failed" || !strings.Contains(j.Error, "completion timeout") || time.Since(start) > 20*time.Second {
			t.Errorf("a callback that never came: %+v after %s", j, time.Since(start))
		}
		if got := e.status("silent", "load"); got != batch.StatusFailed {
			t.Errorf("store status %s, want failed", got)
		}
	})
}
