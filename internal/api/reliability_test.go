package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// concurrencyWorkflows are the workflows the concurrency test shares between its clients: every
// rule of the window computation (reprocess_hours, fractional; trunc_start; initial_from_date;
// a success without batch_start), an exclusive workflow, and a one-job workflow that every client
// fights over.
var concurrencyWorkflows = map[string]string{
	"mix": `plain:
  from_date: "2016-01-01T23:59"
  reprocess_hours: 2
trunc:
  from_date: "2016-01-01T23:59"
  reprocess_hours: 1.5
  trunc_start: true
fresh:
  initial_from_date: "2020-02-29T12:00:00Z"
zero:
  status: success
  param: "kept"
`,
	"excl": `batchy:
  exclusive: true
a:
  reprocess_hours: 0.25
b:
  trunc_start: true
`,
	"solo": `only:
  reprocess_hours: 0
  from_date: "2026-01-01"
`,
}

// seen is what one client saw the server acknowledge.
type seen struct {
	opens []openSeen // every successful open
	ends  []endSeen  // every successful close or fail, per job
	jobs  []jobSeen  // every job state in any successful answer
}

type openSeen struct {
	wf   string
	id   int64
	jobs batch.Jobs // the jobs the open opened, with the fields it answered
}

type endSeen struct {
	wf, job string
	id      int64
	status  batch.Status
	end     string // batch_end as answered
}

type jobSeen struct {
	wf     string
	job    string
	fields batch.Fields
	what   string // the request that answered it, for messages
}

// TestConcurrentInvariants has 64 clients open, close, fail and read a few shared workflows at
// random through the HTTP API on a real Redis, then checks the history against everything they
// were told: batch ids unique, every acknowledged open and end recorded, each window computed by
// SPEC.md from the job's previous batch, and no job state mixing two batches.
func TestConcurrentInvariants(t *testing.T) {
	const clients = 64
	ops := 150
	if testing.Short() {
		ops = 40
	}
	srv := rdbtest.StartRedis(t)
	// History must keep every batch of the run, so that every acknowledged batch can be checked.
	store := rdb.New(srv.Client(t), rdb.Options{HistoryKeep: 1 << 20})
	cfg := t.TempDir()
	for wf, y := range concurrencyWorkflows {
		if err := os.WriteFile(filepath.Join(cfg, wf+".yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(api.New(api.Options{Store: store, CfgDir: cfg, StoreName: "redis"}).Handler())
	defer hs.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	// The configured state of every job: the "previous state" of its first batch.
	initial := map[string]batch.Jobs{}
	var wfs []string
	for wf := range concurrencyWorkflows {
		wfs = append(wfs, wf)
		code, body := send(hc, "POST", hs.URL+"/v1/workflows/"+wf+"/load", "")
		if code != 200 {
			t.Fatalf("load %s: %d %s", wf, code, body)
		}
		var st batch.State
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		initial[wf] = st.Jobs
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	results := make([]seen, clients)
	errs := make(chan string, clients*ops)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &worker{hc: hc, url: hs.URL, rnd: rand.New(rand.NewPCG(seed, uint64(c))), initial: initial, wfs: wfs, seen: &results[c], errs: errs}
			for range ops {
				cl.step()
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		if n++; n <= 20 {
			t.Error(e)
		}
	}
	t.Logf("%d clients × %d operations in %s", clients, ops, time.Since(start).Round(time.Millisecond))

	var all seen
	for _, r := range results {
		all.opens = append(all.opens, r.opens...)
		all.ends = append(all.ends, r.ends...)
		all.jobs = append(all.jobs, r.jobs...)
	}
	if len(all.opens) < clients || len(all.ends) < clients {
		t.Errorf("too few transitions to mean anything: %d opens, %d ends", len(all.opens), len(all.ends))
	}
	for _, wf := range wfs {
		d, err := store.Dump(ctx, wf)
		if err != nil {
			t.Fatal(err)
		}
		checkHistory(t, wf, d, initial[wf], all)
	}
}

// worker is one of the concurrent clients.
type worker struct {
	hc      *http.Client
	url     string
	rnd     *rand.Rand
	initial map[string]batch.Jobs
	wfs     []string
	seen    *seen
	errs    chan<- string
	last    map[string]int64 // wf/job -> the batch this client last opened it in
}

func (c *worker) fail(format string, args ...any) { c.errs <- fmt.Sprintf(format, args...) }

// step does one random operation and records what the server acknowledged.
func (c *worker) step() {
	if c.last == nil {
		c.last = map[string]int64{}
	}
	wf := c.wfs[c.rnd.IntN(len(c.wfs))]
	jobs := c.initial[wf]
	job := jobs[c.rnd.IntN(len(jobs))].Name
	base := "/v1/workflows/" + wf
	switch r := c.rnd.IntN(100); {
	case r < 8: // the original's open of every job
		c.openAll("GET", "/open_batch/"+wf, wf, false)
	case r < 14:
		c.openAll("POST", base+"/open", wf, true)
	case r < 30:
		c.openJob(wf, job)
	case r < 50: // close or fail the batch this client opened the job in
		status, verb := batch.StatusSuccess, "close"
		if c.rnd.IntN(3) == 0 {
			status, verb = batch.StatusFailed, "fail"
		}
		body := ""
		if id, ok := c.last[wf+"/"+job]; ok && c.rnd.IntN(4) != 0 {
			body = `{"batch_id":` + strconv.FormatInt(id, 10) + `}`
		}
		c.end(base+"/jobs/"+job+"/"+verb, body, wf, []string{job}, status)
	case r < 58: // a whole workflow, whoever opened it
		status, verb := batch.StatusSuccess, "close"
		if c.rnd.IntN(2) == 0 {
			status, verb = batch.StatusFailed, "fail"
		}
		var names []string
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		c.end(base+"/"+verb, "", wf, names, status)
	case r < 72:
		c.read("GET", base, wf, true)
	case r < 86:
		c.read("GET", "/get_status/"+wf, wf, false)
	case r < 93:
		code, body := send(c.hc, "GET", c.url+base+"/jobs/"+job, "")
		if code != 200 {
			c.fail("GET %s/jobs/%s: %d %s", base, job, code, body)
			return
		}
		var v struct{ Fields batch.Fields }
		if err := json.Unmarshal(body, &v); err != nil {
			c.fail("GET job: %v", err)
			return
		}
		c.seen.jobs = append(c.seen.jobs, jobSeen{wf, job, v.Fields, "GET job"})
	default: // other formats must render whatever the state
		format := []string{"env", "infa"}[c.rnd.IntN(2)]
		if code, body := send(c.hc, "GET", c.url+"/get_status/"+wf+"/"+format, ""); code != 200 {
			c.fail("GET /get_status/%s/%s: %d %s", wf, format, code, body)
		}
	}
}

// jobsOf reads the jobs of an answer: a batch.State on v1, {job: {field: value}} on the original
// routes.
func (c *worker) jobsOf(what string, body []byte, v1 bool) (batch.Jobs, int64, bool) {
	if v1 {
		var st batch.State
		if err := json.Unmarshal(body, &st); err != nil {
			c.fail("%s: %v: %s", what, err, body)
			return nil, 0, false
		}
		return st.Jobs, st.LastBatchID, true
	}
	var jobs batch.Jobs
	if err := json.Unmarshal(body, &jobs); err != nil {
		c.fail("%s: %v: %s", what, err, body)
		return nil, 0, false
	}
	return jobs, 0, true
}

func (c *worker) observe(wf, what string, jobs batch.Jobs) {
	for _, j := range jobs {
		c.seen.jobs = append(c.seen.jobs, jobSeen{wf, j.Name, j.Fields, what})
	}
}

func (c *worker) openAll(method, path, wf string, v1 bool) {
	code, body := send(c.hc, method, c.url+path, "")
	if code == 409 && wf == "excl" {
		return // a job is open in an exclusive workflow
	}
	if code != 200 {
		c.fail("%s %s: %d %s", method, path, code, body)
		return
	}
	jobs, last, ok := c.jobsOf(path, body, v1)
	if !ok {
		return
	}
	id := jobs.BatchID()
	if v1 && last != id {
		c.fail("%s: last_batch_id %d, but the jobs are in batch %d: %s", path, last, id, body)
	}
	for _, j := range jobs {
		if got, _ := j.Fields.Int(batch.FieldBatchID); got != id || j.Fields.Status() != batch.StatusOpen {
			c.fail("%s: job %s is %s in batch %d, want open in %d (all jobs were opened together)", path, j.Name, j.Fields.Status(), got, id)
		}
		c.last[wf+"/"+j.Name] = id
	}
	c.seen.opens = append(c.seen.opens, openSeen{wf, id, jobs})
	c.observe(wf, path, jobs)
}

func (c *worker) openJob(wf, job string) {
	path := "/v1/workflows/" + wf + "/jobs/" + job + "/open"
	code, body := send(c.hc, "POST", c.url+path, "")
	if code == 409 && wf == "excl" {
		return
	}
	if code != 200 {
		c.fail("POST %s: %d %s", path, code, body)
		return
	}
	jobs, last, ok := c.jobsOf(path, body, true)
	if !ok {
		return
	}
	j, _ := jobs.Get(job)
	if got, _ := j.Fields.Int(batch.FieldBatchID); got != last || j.Fields.Status() != batch.StatusOpen {
		c.fail("%s: job is %s in batch %d, want open in last_batch_id %d", path, j.Fields.Status(), got, last)
	}
	c.last[wf+"/"+job] = last
	c.seen.opens = append(c.seen.opens, openSeen{wf, last, batch.Jobs{j}})
	c.observe(wf, path, jobs)
}

// end closes or fails; a 409 (not open, or another batch) is an expected answer under contention.
func (c *worker) end(path, body, wf string, names []string, status batch.Status) {
	code, resp := send(c.hc, "POST", c.url+path, body)
	if code == 409 {
		return
	}
	if code != 200 {
		c.fail("POST %s %s: %d %s", path, body, code, resp)
		return
	}
	jobs, _, ok := c.jobsOf(path, resp, true)
	if !ok {
		return
	}
	for _, name := range names {
		j, _ := jobs.Get(name)
		id, _ := j.Fields.Int(batch.FieldBatchID)
		end, _ := j.Fields.String(batch.FieldBatchEnd)
		if j.Fields.Status() != status || end == "" {
			c.fail("%s: job %s is %s (batch_end %q) after it, want %s", path, name, j.Fields.Status(), end, status)
		}
		c.seen.ends = append(c.seen.ends, endSeen{wf, name, id, status, end})
	}
	c.observe(wf, path, jobs)
}

func (c *worker) read(method, path, wf string, v1 bool) {
	code, body := send(c.hc, method, c.url+path, "")
	if code != 200 {
		c.fail("%s %s: %d %s", method, path, code, body)
		return
	}
	if jobs, _, ok := c.jobsOf(path, body, v1); ok {
		c.observe(wf, path, jobs)
	}
}

// send does one request; a transport error is reported as status 0.
func send(hc *http.Client, method, url, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, []byte(err.Error())
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// windowFields are the fields fixed when a batch opens: an answer showing a job in batch N must
// show exactly the values history recorded for N.
var windowFields = []string{batch.FieldBatchID, batch.FieldFromDate, batch.FieldToDate, batch.FieldBatchStart}

// checkHistory checks a workflow's stored history and state against SPEC.md and against what the
// clients were told.
func checkHistory(t *testing.T, wf string, d *batch.Dump, initial batch.Jobs, all seen) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("workflow %s: "+format, append([]any{wf}, args...)...)
	}
	// records[batch][job] are the job's fields as history recorded them.
	records := map[int64]map[string]batch.Fields{}
	var lastID int64
	for _, b := range d.Batches {
		if _, dup := records[b.ID]; dup {
			errorf("batch %d is twice in history", b.ID)
		}
		if b.ID <= lastID {
			errorf("history is not in increasing batch id order: %d after %d", b.ID, lastID)
		}
		lastID = b.ID
		records[b.ID] = map[string]batch.Fields{}
		for _, j := range b.Jobs {
			records[b.ID][j.Name] = j.Fields
		}
	}
	if got, _ := strconv.ParseInt(d.Meta["last_batch_id"], 10, 64); got != lastID {
		errorf("last_batch_id %d, but the newest batch in history is %d", got, lastID)
	}

	// Batch ids are unique: no two acknowledged opens got the same one.
	opened := map[int64]bool{}
	for _, o := range all.opens {
		if o.wf != wf {
			continue
		}
		if opened[o.id] {
			errorf("two opens were answered with batch id %d", o.id)
		}
		opened[o.id] = true
		rec, ok := records[o.id]
		if !ok {
			errorf("batch %d was opened (answered to a client) but is not in history", o.id)
			continue
		}
		for _, j := range o.jobs {
			r, ok := rec[j.Name]
			if !ok {
				errorf("batch %d: job %s was opened in it but history does not list it", o.id, j.Name)
				continue
			}
			sameFields(errorf, fmt.Sprintf("open of batch %d, job %s", o.id, j.Name), j.Fields, r, windowFields)
		}
	}

	// Each job's batches, in order: each window follows from the one before (SPEC.md "open").
	for _, ij := range initial {
		prev, prevID := ij.Fields, int64(0)
		for _, b := range d.Batches {
			f, ok := records[b.ID][ij.Name]
			if !ok {
				continue
			}
			what := fmt.Sprintf("job %s, batch %d", ij.Name, b.ID)
			if id, _ := f.Int(batch.FieldBatchID); id != b.ID {
				errorf("%s: recorded with batch_id %d", what, id)
			}
			if prevID != 0 && prev.Status() == batch.StatusOpen {
				errorf("%s: the job's previous batch %d is still open in history (neither ended nor abandoned)", what, prevID)
			}
			from, _ := f.Time(batch.FieldFromDate)
			to, _ := f.Time(batch.FieldToDate)
			start, _ := f.Time(batch.FieldBatchStart)
			if want := batch.NextFrom(prev, time.UTC); !from.Equal(want) {
				errorf("%s: from_date %s, want %s from its previous state (batch %d, status %s)", what, batch.FormatTime(from), batch.FormatTime(want), prevID, prev.Status())
			}
			if !to.Equal(start) {
				errorf("%s: to_date %s is not batch_start %s", what, batch.FormatTime(to), batch.FormatTime(start))
			}
			if from.After(to) {
				errorf("%s: the window is backwards: from_date %s after to_date %s", what, batch.FormatTime(from), batch.FormatTime(to))
			}
			if prevStart, ok := prev.Time(batch.FieldBatchStart); ok && prevID != 0 && start.Before(prevStart) {
				errorf("%s: batch_start %s is before the previous batch's %s", what, batch.FormatTime(start), batch.FormatTime(prevStart))
			}
			switch st := f.Status(); st {
			case batch.StatusOpen:
				if string(f[batch.FieldBatchEnd]) != "null" {
					errorf("%s: open with batch_end %s", what, f[batch.FieldBatchEnd])
				}
			case batch.StatusSuccess, batch.StatusFailed, batch.StatusAbandoned:
				end, ok := f.Time(batch.FieldBatchEnd)
				if !ok {
					errorf("%s: %s without batch_end", what, st)
				} else if end.Before(start) {
					errorf("%s: batch_end %s is before batch_start %s", what, batch.FormatTime(end), batch.FormatTime(start))
				}
			default:
				errorf("%s: status %q in history", what, st)
			}
			prev, prevID = f, b.ID
		}
		// The current state is the job's last batch as history recorded it, field for field.
		cur := d.Jobs[ij.Name]
		if prevID == 0 {
			if cur.Status() != ij.Fields.Status() {
				errorf("job %s never opened but its status is %s", ij.Name, cur.Status())
			}
			continue
		}
		if a, b := mustMarshal(cur), mustMarshal(prev); a != b {
			errorf("job %s: current state differs from its last batch %d in history:\n state   %s\n history %s", ij.Name, prevID, a, b)
		}
	}

	// Every acknowledged close and fail is in history as answered: nothing ends a batch twice.
	for _, e := range all.ends {
		if e.wf != wf {
			continue
		}
		r, ok := records[e.id][e.job]
		if !ok {
			errorf("job %s was ended in batch %d, which history lacks", e.job, e.id)
			continue
		}
		end, _ := r.String(batch.FieldBatchEnd)
		if r.Status() != e.status || end != e.end {
			errorf("job %s, batch %d: answered %s at %s, history says %s at %s", e.job, e.id, e.status, e.end, r.Status(), end)
		}
	}

	// Every job state any answer showed belongs to one batch: its window is that batch's, and an
	// ended status is final.
	for _, s := range all.jobs {
		if s.wf != wf {
			continue
		}
		id, ok := s.fields.Int(batch.FieldBatchID)
		if !ok {
			if s.fields.Status() != initialStatus(initial, s.job) {
				errorf("%s showed job %s without a batch_id but with status %s", s.what, s.job, s.fields.Status())
			}
			continue
		}
		r, ok := records[id][s.job]
		if !ok {
			errorf("%s showed job %s in batch %d, which history lacks for it", s.what, s.job, id)
			continue
		}
		what := fmt.Sprintf("%s, job %s, batch %d", s.what, s.job, id)
		sameFields(errorf, what, s.fields, r, windowFields)
		switch s.fields.Status() {
		case batch.StatusSuccess, batch.StatusFailed:
			// The original routes write failed as the original's "failure": the same status.
			if s.fields.Status() != r.Status() {
				errorf("%s: status is %s in the answer but %s in history", what, s.fields[batch.FieldStatus], r[batch.FieldStatus])
			}
			sameFields(errorf, what, s.fields, r, []string{batch.FieldBatchEnd})
		case batch.StatusOpen:
			if string(s.fields[batch.FieldBatchEnd]) != "null" {
				errorf("%s: open with batch_end %s", what, s.fields[batch.FieldBatchEnd])
			}
		default:
			errorf("%s: status %s", what, s.fields.Status())
		}
	}
}

func initialStatus(initial batch.Jobs, job string) batch.Status {
	j, _ := initial.Get(job)
	return j.Fields.Status()
}

func sameFields(errorf func(string, ...any), what string, got, want batch.Fields, names []string) {
	for _, n := range names {
		if string(got[n]) != string(want[n]) {
			errorf("%s: %s is %s in the answer but %s in history", what, n, got[n], want[n])
		}
	}
}

func mustMarshal(f batch.Fields) string {
	b, _ := f.MarshalJSON()
	return string(b)
}
