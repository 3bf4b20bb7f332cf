package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// faultWorkflow is the workflow the fault tests drive: jobs with each window rule.
const faultWorkflow = `a:
  from_date: "2026-01-01"
  reprocess_hours: 1
b:
  trunc_start: true
  reprocess_hours: 0.5
c:
  initial_from_date: "2020-01-01T00:00:00Z"
d: {}
`

// The fault tests run batchy with --history 100000: every acknowledged batch must stay in history
// to be checked.

// faultCfg writes faultWorkflow as cfg/rel.yaml and returns the directory and the jobs as the
// file defines them.
func faultCfg(t *testing.T) (string, batch.Jobs) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rel.yaml"), []byte(faultWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	wf, err := config.Parse("rel", []byte(faultWorkflow), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, wf.Jobs
}

// ack is a transition batchy acknowledged (answered 200).
type ack struct {
	job    string
	id     int64
	status batch.Status // open, success or failed
	end    string       // batch_end as answered, for ends
}

// call is one request of the load, for the latency and status checks.
type call struct {
	start  time.Time
	dur    time.Duration
	status int // 0: no answer (connection refused or reset)
	code   string
}

// load runs workers that open a random job of workflow rel, then close or fail it with its
// batch_id, until ctx ends; it records every acknowledged transition and every request.
type load struct {
	mu    sync.Mutex
	url   string
	jobs  batch.Jobs
	acks  []ack
	calls []call
	bad   []string // answers that are wrong whatever the fault
	wg    sync.WaitGroup
}

func startLoad(ctx context.Context, url string, jobs batch.Jobs, workers int) *load {
	l := &load{url: url, jobs: jobs}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 20 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for ctx.Err() == nil {
				l.cycle(ctx, hc, rnd)
			}
		}()
	}
	return l
}

// wait stops recording once every worker has returned.
func (l *load) wait() { l.wg.Wait() }

func (l *load) snapshot() ([]ack, []call, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ack(nil), l.acks...), append([]call(nil), l.calls...), append([]string(nil), l.bad...)
}

// post sends a request and records it.
func (l *load) post(ctx context.Context, hc *http.Client, path, body string) (int, []byte) {
	return l.request(ctx, hc, "POST", path, body)
}

// request sends a request and records it.
func (l *load) request(ctx context.Context, hc *http.Client, method, path, body string) (int, []byte) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, method, l.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	c := call{start: start}
	var data []byte
	if err == nil {
		data, _ = io.ReadAll(res.Body)
		res.Body.Close()
		c.status = res.StatusCode
		var e struct{ Error struct{ Code string } }
		if json.Unmarshal(data, &e) == nil {
			c.code = e.Error.Code
		}
	}
	c.dur = time.Since(start)
	if ctx.Err() != nil {
		return 0, nil // cancelled by the test: neither a call nor an answer to judge
	}
	l.mu.Lock()
	l.calls = append(l.calls, c)
	if c.status != 0 && c.status != 200 && c.status != 409 && c.status != 503 {
		l.bad = append(l.bad, fmt.Sprintf("%s %s: %d %s", method, path, c.status, data))
	}
	l.mu.Unlock()
	if c.status == 0 {
		time.Sleep(10 * time.Millisecond) // the server is gone: do not spin
	}
	return c.status, data
}

func (l *load) record(a ack) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
}

func (l *load) cycle(ctx context.Context, hc *http.Client, rnd *rand.Rand) {
	job := l.jobs[rnd.IntN(len(l.jobs))].Name
	base := "/v1/workflows/rel/jobs/" + job
	code, body := l.post(ctx, hc, base+"/open", "")
	if code != 200 {
		return
	}
	var st batch.State
	if err := json.Unmarshal(body, &st); err != nil {
		l.mu.Lock()
		l.bad = append(l.bad, fmt.Sprintf("open %s: %v: %s", job, err, body))
		l.mu.Unlock()
		return
	}
	l.record(ack{job: job, id: st.LastBatchID, status: batch.StatusOpen})
	verb, status := "close", batch.StatusSuccess
	if rnd.IntN(3) == 0 {
		verb, status = "fail", batch.StatusFailed
	}
	code, body = l.post(ctx, hc, base+"/"+verb, `{"batch_id":`+strconv.FormatInt(st.LastBatchID, 10)+`}`)
	if code != 200 {
		return
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return
	}
	// Another job may have been opened since: the ended job's batch is its own batch_id.
	j, _ := st.Jobs.Get(job)
	id, _ := j.Fields.Int(batch.FieldBatchID)
	end, _ := j.Fields.String(batch.FieldBatchEnd)
	l.record(ack{job: job, id: id, status: status, end: end})
}

// checkEvents checks that the workflow's event stream holds exactly the events of the history in
// d: an open per job and batch, and a close, fail or abandon for each one that ended, none twice
// and none for a change that did not happen, however batchy died.
func checkEvents(t *testing.T, client rdb.Client, d *batch.Dump) {
	t.Helper()
	want := map[string]int{}
	for _, b := range d.Batches {
		for _, j := range b.Jobs {
			want[fmt.Sprintf("open %s %d", j.Name, b.ID)]++
			switch j.Fields.Status() {
			case batch.StatusSuccess:
				want[fmt.Sprintf("close %s %d", j.Name, b.ID)]++
			case batch.StatusFailed:
				want[fmt.Sprintf("fail %s %d", j.Name, b.ID)]++
			case "abandoned":
				want[fmt.Sprintf("abandon %s %d", j.Name, b.ID)]++
			}
		}
	}
	events, err := rdb.NewEventStream(client, rdb.Keys{Prefix: "batchy"}, 0).Read(context.Background(), d.Workflow, event.Query{After: "0-0", Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range events {
		switch e.Type {
		case event.TypeOpen, event.TypeClose, event.TypeFail, event.TypeAbandon:
			got[fmt.Sprintf("%s %s %d", e.Type, e.Job, e.BatchID)]++
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("event %q recorded %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("event %q recorded %d times for a change history does not hold", k, n)
		}
	}
	t.Logf("%d events match %d batches of history", len(events), len(d.Batches))
}

// checkState checks a workflow's dump: history and current state agree, each window follows
// SPEC.md from the job's previous batch, batch ids are unique, and every acknowledged open,
// close and fail is in history as answered.
func checkState(t *testing.T, d *batch.Dump, initial batch.Jobs, acks []ack) {
	t.Helper()
	records := map[int64]map[string]batch.Fields{}
	var last int64
	for _, b := range d.Batches {
		if b.ID <= last {
			t.Errorf("history: batch %d after %d (ids must be unique and increasing)", b.ID, last)
		}
		last = b.ID
		records[b.ID] = map[string]batch.Fields{}
		for _, j := range b.Jobs {
			records[b.ID][j.Name] = j.Fields
		}
	}
	if got, _ := strconv.ParseInt(d.Meta["last_batch_id"], 10, 64); got != last {
		t.Errorf("last_batch_id %d, newest batch in history %d", got, last)
	}
	opened := map[int64]string{}
	for _, a := range acks {
		r, ok := records[a.id][a.job]
		if !ok {
			t.Errorf("acknowledged %s of job %s in batch %d is not in history", a.status, a.job, a.id)
			continue
		}
		if a.status == batch.StatusOpen {
			if other, dup := opened[a.id]; dup {
				t.Errorf("batch id %d was answered to two opens (jobs %s and %s)", a.id, other, a.job)
			}
			opened[a.id] = a.job
			continue
		}
		if end, _ := r.String(batch.FieldBatchEnd); r.Status() != a.status || end != a.end {
			t.Errorf("job %s batch %d: acknowledged %s at %s, history says %s at %s", a.job, a.id, a.status, a.end, r.Status(), end)
		}
	}
	for _, ij := range initial {
		prev, prevID := ij.Fields, int64(0)
		for _, b := range d.Batches {
			f, ok := records[b.ID][ij.Name]
			if !ok {
				continue
			}
			if prevID != 0 && prev.Status() == batch.StatusOpen {
				t.Errorf("job %s: batch %d is still open in history though batch %d followed", ij.Name, prevID, b.ID)
			}
			if id, _ := f.Int(batch.FieldBatchID); id != b.ID {
				t.Errorf("job %s: batch %d recorded with batch_id %d", ij.Name, b.ID, id)
			}
			from, _ := f.Time(batch.FieldFromDate)
			if want := batch.NextFrom(prev, time.UTC); !from.Equal(want) {
				t.Errorf("job %s batch %d: from_date %s, want %s from batch %d (%s)", ij.Name, b.ID, batch.FormatTime(from), batch.FormatTime(want), prevID, prev.Status())
			}
			if to, _ := f.Time(batch.FieldToDate); to.Before(from) {
				t.Errorf("job %s batch %d: to_date %s before from_date %s", ij.Name, b.ID, batch.FormatTime(to), batch.FormatTime(from))
			}
			prev, prevID = f, b.ID
		}
		if prevID == 0 {
			continue
		}
		cur, _ := d.Jobs[ij.Name].MarshalJSON()
		rec, _ := prev.MarshalJSON()
		if string(cur) != string(rec) {
			t.Errorf("job %s: state differs from its last batch %d in history:\n state   %s\n history %s", ij.Name, prevID, cur, rec)
		}
	}
}

// aofRedis is a redis-server that fsyncs its append-only file before every answer, so that a
// kill loses nothing it acknowledged and a restart brings the data back.
type aofRedis struct {
	addr, dir string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func startAOFRedis(t *testing.T) *aofRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed, and CI=true forbids skipping the real-Redis tests")
		}
		t.Skip("redis-server is not installed: skipping")
	}
	r := &aofRedis{addr: freeAddr(t), dir: t.TempDir()}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *aofRedis) start(t *testing.T) {
	t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--dir", r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := rdbtest.StartCmd(r.cmd); err != nil {
		t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(r.cmd, r.exited)
	if err := rdbtest.WaitUp(r.addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// stop kills the server, as a crash would.
func (r *aofRedis) stop() {
	if r.cmd != nil {
		r.cmd.Process.Kill()
		<-r.exited
		r.cmd = nil
	}
}

// TestRedisDownDuringLoad: Redis is killed under load. Requests answer 503 within seconds while
// it is gone, the process stays up, and once Redis is back (with its append-only file) requests
// succeed again within about a second, with no transition half-applied or lost.
func TestRedisDownDuringLoad(t *testing.T) {
	r := startAOFRedis(t)
	cfg, jobs := faultCfg(t)
	p := startServe(t, nil, "--redis-url", "redis://"+r.addr, "--cfg-dir", cfg, "--scheduler", "off", "--history", "100000")
	if code, body := curl(t, p.url+"/load_cfg/rel"); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := startLoad(ctx, p.url, jobs, 8)
	time.Sleep(700 * time.Millisecond)

	r.stop()
	down := time.Now()
	time.Sleep(2500 * time.Millisecond)
	if code, _ := curl(t, p.url+"/healthz"); code != 200 {
		t.Errorf("/healthz while Redis is down: %d, want 200 (the process is alive)", code)
	}
	if code, body := curl(t, p.url+"/readyz"); code != 503 {
		t.Errorf("/readyz while Redis is down: %d %s, want 503", code, body)
	}
	if code, body := curl(t, p.url+"/get_status/rel"); code != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Errorf("GET /get_status while Redis is down: %d %s, want a 503 unavailable error", code, body)
	}

	r.start(t)
	up := time.Now()
	var back time.Duration
	for {
		code, _ := curl(t, p.url+"/get_status/rel")
		if code == 200 {
			back = time.Since(up)
			break
		}
		if time.Since(up) > 10*time.Second {
			t.Fatalf("requests still fail %s after Redis came back; logs:\n%s", time.Since(up), p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("requests succeed again %s after Redis answered", back.Round(time.Millisecond))
	// After PoolSize failed dials go-redis stops dialing and probes Redis once a second, so about
	// a second is the bound; the rest is margin for a loaded machine (2s once failed under a full
	// -race suite beside other work).
	if back > 4*time.Second {
		t.Errorf("requests succeeded again only %s after Redis came back, want about a second at most", back)
	}
	_, before, _ := l.snapshot()
	time.Sleep(500 * time.Millisecond)
	cancel()
	l.wait()
	acks, calls, bad := l.snapshot()
	for _, b := range bad {
		t.Errorf("unexpected answer: %s", b)
	}

	// While Redis was down: every request answered, 503, within seconds.
	var during, slow, refused, after int
	var worst time.Duration
	for _, c := range calls {
		switch {
		case c.start.After(down.Add(100*time.Millisecond)) && c.start.Before(up):
			during++
			worst = max(worst, c.dur)
			if c.status == 0 {
				refused++
			} else if c.status != 503 || c.code != "unavailable" {
				t.Errorf("a request while Redis was down answered %d %q, want 503 unavailable", c.status, c.code)
			}
			if c.dur > 5*time.Second {
				slow++
			}
		case c.start.After(up.Add(back)) && c.status == 200:
			after++
		}
	}
	t.Logf("%d requests while Redis was down, the slowest took %s; %d succeeded after it came back", during, worst.Round(time.Millisecond), after)
	if during == 0 {
		t.Errorf("no request was made while Redis was down")
	}
	if refused > 0 {
		t.Errorf("%d requests got no answer while Redis was down: batchy must stay up and answer 503", refused)
	}
	if slow > 0 {
		t.Errorf("%d requests took over 5s while Redis was down (slowest %s): they must fail fast", slow, worst)
	}
	if len(calls) == len(before) || after == 0 {
		t.Errorf("no transition succeeded after Redis came back")
	}
	if p.cmd.ProcessState != nil {
		t.Fatalf("batchy exited: %v", p.cmd.ProcessState)
	}

	client := rdbtest.Dial(t, r.addr)
	d, err := rdb.New(client, rdb.Options{}).Dump(context.Background(), "rel")
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, d, jobs, acks)
	checkEvents(t, client, d)
	p.stop(t)
}

// TestKilledDuringLoad: batchy is killed (SIGKILL) under load on a real Redis, then started again:
// the state is consistent and every acknowledged transition is there.
func TestKilledDuringLoad(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg, jobs := faultCfg(t)
	args := []string{"--redis-url", "redis://" + srv.Addr, "--cfg-dir", cfg, "--scheduler", "off", "--history", "100000"}
	var acks []ack
	for round := range 3 {
		p := startServe(t, nil, args...)
		if round == 0 {
			if code, body := curl(t, p.url+"/load_cfg/rel"); code != 200 {
				t.Fatalf("load: %d %s", code, body)
			}
		}
		a := killDuringLoad(t, p, jobs, 8, 300*time.Millisecond, 400)
		acks = append(acks, a...)
		t.Logf("round %d: killed after %d acknowledged transitions", round, len(a))
	}
	p := startServe(t, nil, args...)
	// The restarted server serves the workflow as it was, and goes on with it.
	if code, body := curl(t, p.url+"/get_status/rel"); code != 200 {
		t.Fatalf("get_status after restart: %d %s", code, body)
	}
	d, err := rdb.New(srv.Client(t), rdb.Options{}).Dump(context.Background(), "rel")
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, d, jobs, acks)
	checkEvents(t, srv.Client(t), d)
	for _, path := range []string{"/open_batch/rel", "/close_batch/rel"} {
		if code, body := curl(t, p.url+path); code != 200 {
			t.Errorf("%s after restart: %d %s", path, code, body)
		}
	}
	p.stop(t)
}

// TestEmbeddedKilledDuringWrites: batchy on the embedded store is killed (SIGKILL) 20 times under
// load at 16 clients. Each time it starts again on its files, and every transition it acknowledged
// is there, with its events, none twice: it journals and syncs before it answers.
func TestEmbeddedKilledDuringWrites(t *testing.T) {
	cfg, jobs := faultCfg(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "batchy.json")
	args := []string{"--data-file", data, "--cfg-dir", cfg, "--scheduler", "off", "--history", "100000"}
	var acks []ack
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		p := startServe(t, nil, args...)
		if round == 0 {
			if code, body := curl(t, p.url+"/load_cfg/rel"); code != 200 {
				t.Fatalf("load: %d %s", code, body)
			}
		} else {
			checkAcked(t, p.url, acks)
		}
		a := killDuringLoad(t, p, jobs, 16, 100*time.Millisecond, 300)
		acks = append(acks, a...)
		wals, _ := filepath.Glob(data + ".*.wal")
		t.Logf("round %d: killed after %d acknowledged transitions; journals %v", round, len(a), wals)
	}
	// The files as a store: the whole state is consistent, and so are the events.
	e, err := rdb.StartEmbedded(data)
	if err != nil {
		t.Fatalf("the data files do not load: %v", err)
	}
	d, err := rdb.New(e.Client(), rdb.Options{}).Dump(context.Background(), "rel")
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, d, jobs, acks)
	checkEvents(t, e.Client(), d)
	e.Close()

	p := startServe(t, nil, args...)
	checkAcked(t, p.url, acks)
	p.stop(t)
}

// checkAcked checks through the API that every acknowledged transition is in history.
// killDuringLoad runs workers clients against p and SIGKILLs it after at least min plus up to
// spreadMS random milliseconds; it returns the transitions acknowledged before the kill.
func killDuringLoad(t *testing.T, p *process, jobs batch.Jobs, workers int, min time.Duration, spreadMS int) []ack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := startLoad(ctx, p.url, jobs, workers)
	time.Sleep(min + time.Duration(rand.IntN(spreadMS))*time.Millisecond)
	p.cmd.Process.Kill()
	p.cmd.Wait()
	cancel()
	l.wait()
	a, _, bad := l.snapshot()
	for _, b := range bad {
		t.Errorf("unexpected answer: %s", b)
	}
	return a
}

func checkAcked(t *testing.T, url string, acks []ack) {
	t.Helper()
	records := map[int64]map[string]batch.Fields{}
	before := ""
	for {
		code, body := curl(t, url+"/v1/workflows/rel/batches?limit=1000"+before)
		if code != 200 {
			t.Fatalf("history: %d %s", code, body)
		}
		var page struct {
			Batches    []batch.Batch `json:"batches"`
			NextBefore int64         `json:"next_before"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Batches {
			records[b.ID] = map[string]batch.Fields{}
			for _, j := range b.Jobs {
				records[b.ID][j.Name] = j.Fields
			}
		}
		if page.NextBefore == 0 {
			break
		}
		before = "&before=" + strconv.FormatInt(page.NextBefore, 10)
	}
	for _, a := range acks {
		r, ok := records[a.id][a.job]
		if !ok {
			t.Errorf("acknowledged %s of job %s in batch %d was lost", a.status, a.job, a.id)
			continue
		}
		if a.status == batch.StatusOpen {
			continue
		}
		if end, _ := r.String(batch.FieldBatchEnd); r.Status() != a.status || end != a.end {
			t.Errorf("job %s batch %d: acknowledged %s at %s, after the restart %s at %s", a.job, a.id, a.status, a.end, r.Status(), end)
		}
	}
}
