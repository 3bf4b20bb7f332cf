package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// binary is the batchy built once for the tests that run it as a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "batchy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "batchy")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building batchy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a batchy serve started for a test.
type process struct {
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *lockedBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs `batchy serve` with args and waits until /healthz answers.
func startServe(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	p := &process{url: "http://" + addr, logs: &lockedBuffer{}}
	p.cmd = exec.Command(binary, append([]string{"serve", "--addr", addr}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := rdbtest.StartCmd(p.cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(p.url + "/healthz")
		if err == nil {
			res.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("batchy did not answer within 15s; logs:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("batchy exited with %v after SIGTERM; logs:\n%s", err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("batchy did not stop within 15s of SIGTERM")
	}
}

// curl does what `curl -s URL` does: a GET, returning status and body.
func curl(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func statusOf(t *testing.T, body, job string) string {
	t.Helper()
	var jobs map[string]map[string]any
	if err := json.Unmarshal([]byte(body), &jobs); err != nil {
		t.Fatalf("not {job: {field: value}}: %v\n%s", err, body)
	}
	s, _ := jobs[job]["status"].(string)
	return s
}

// cycle drives the original's curl calls through load, open, close, open, fail.
func cycle(t *testing.T, url string) {
	t.Helper()
	steps := []struct {
		path, want string
	}{
		{"/load_cfg/wf1", "new"},
		{"/open_batch/wf1", "open"},
		{"/close_batch/wf1", "success"},
		{"/open_batch/wf1/json", "open"},
		{"/fail_batch/wf1", "failure"}, // the original's word on its routes
		{"/get_status/wf1", "failure"},
	}
	for _, s := range steps {
		code, body := curl(t, url+s.path)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", s.path, code, body)
		}
		if got := statusOf(t, body, "job2"); got != s.want {
			t.Fatalf("GET %s: job2 status %q, want %q", s.path, got, s.want)
		}
	}
	code, body := curl(t, url+"/open_batch/wf1/infa")
	if code != 200 || !strings.Contains(body, "\n[job3]\n$$batch_end=None\n") { // the original's file
		t.Fatalf("GET /open_batch/wf1/infa: %d\n%s", code, body)
	}
	code, body = curl(t, url+"/close_batch/wf1")
	if code != 200 {
		t.Fatalf("close: %d %s", code, body)
	}
}

// TestServeEmbedded: on a fresh machine, with no Redis, the README's run command serves the full
// cycle, shuts down cleanly on SIGTERM, and keeps the state across a restart.
func TestServeEmbedded(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "batchy.json")
	cfg, _ := filepath.Abs("../../cfg")
	p := startServe(t, nil, "--cfg-dir", cfg, "--data-file", data)
	if !strings.Contains(p.logs.String(), "store=embedded") {
		t.Errorf("the log does not say the embedded store is in use:\n%s", p.logs)
	}
	if _, body := curl(t, p.url+"/healthz"); !strings.Contains(body, `"store":"embedded"`) {
		t.Errorf("/healthz does not say which store: %s", body)
	}
	cycle(t, p.url)
	_, before := curl(t, p.url+"/get_status/wf1")
	p.stop(t)

	p = startServe(t, nil, "--cfg-dir", cfg, "--data-file", data)
	_, after := curl(t, p.url+"/get_status/wf1")
	if after != before {
		t.Errorf("state after restart differs:\nbefore %s\nafter  %s", before, after)
	}
	p.stop(t)
}

// TestServeRedis: the same cycle against a real redis-server, configured through the environment.
func TestServeRedis(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg, _ := filepath.Abs("../../cfg")
	p := startServe(t, []string{"BATCHY_REDIS_URL=redis://" + srv.Addr + "/0", "BATCHY_CFG_DIR=" + cfg})
	if _, body := curl(t, p.url+"/healthz"); !strings.Contains(body, `"store":"redis"`) {
		t.Errorf("/healthz: %s", body)
	}
	cycle(t, p.url)
	// The keys are readable with redis-cli, as the original README shows.
	keys, err := srv.Client(t).Keys(context.Background(), "batchy:{wf1}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no batchy:{wf1}:* keys in Redis: %v %v", keys, err)
	}
	p.stop(t)
}

// TestEventsKeep: --events-keep caps each workflow's stream, which the transitions' scripts write.
func TestEventsKeep(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg, _ := filepath.Abs("../../cfg")
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr+"/0", "--cfg-dir", cfg, "--events-keep", "5", "--scheduler", "off")
	curl(t, p.url+"/load_cfg/wf1")
	for range 100 {
		if code, body := curl(t, p.url+"/open_batch/wf1"); code != 200 {
			t.Fatalf("open: %d %s", code, body)
		}
	}
	// 100 opens of 3 jobs: 3 open and 3 abandon events each. Redis trims approximately, a stream
	// node (100 entries) at a time.
	n, err := srv.Client(t).XLen(context.Background(), "batchy:{wf1}:events").Result()
	if err != nil || n < 5 || n > 200 {
		t.Errorf("events kept with --events-keep 5 after about 600: %d (%v)", n, err)
	}
	p.stop(t)
}

// TestExportImport moves the state from the embedded store to Redis.
func TestExportImport(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "batchy.json")
	cfg, _ := filepath.Abs("../../cfg")
	p := startServe(t, nil, "--cfg-dir", cfg, "--data-file", data)
	cycle(t, p.url)
	_, want := curl(t, p.url+"/get_status/wf1")
	p.stop(t)

	export := filepath.Join(dir, "export.json")
	if out, err := exec.Command(binary, "export", "--data-file", data, export).CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	srv := rdbtest.StartRedis(t)
	redisURL := "redis://" + srv.Addr
	if out, err := exec.Command(binary, "import", "--redis-url", redisURL, export).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	p = startServe(t, nil, "--cfg-dir", cfg, "--redis-url", redisURL)
	if _, got := curl(t, p.url+"/get_status/wf1"); got != want {
		t.Errorf("after export and import:\n got %s\nwant %s", got, want)
	}
	p.stop(t)
}

func TestValidate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"validate", "../../cfg"}, &out, &errb); code != exitOK {
		t.Fatalf("validate cfg/ = %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "ok      wf1.yaml") {
		t.Errorf("output: %s", out.String())
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("job:\n  reprocess_hours: abc\n"), 0o644)
	out.Reset()
	if code := run(context.Background(), []string{"validate", dir}, &out, &errb); code != exitError {
		t.Errorf("validate of a bad file = %d, want %d", code, exitError)
	}
	if !strings.Contains(out.String(), "reprocess_hours") || !strings.Contains(out.String(), "job") {
		t.Errorf("the error does not name the job and field: %s", out.String())
	}
	// Names that collide in env output.
	col := t.TempDir()
	os.WriteFile(filepath.Join(col, "wf.yaml"), []byte("job-1: {a: 1}\njob_1: {b: 2}\n"), 0o644)
	out.Reset()
	if code := run(context.Background(), []string{"validate", col}, &out, &errb); code != exitError ||
		!strings.Contains(out.String(), "jobs job-1 and job_1 both export BATCHY_JOB_1_") {
		t.Errorf("validate of colliding names = %d: %s", code, out.String())
	}
	// after: cycles across files.
	cyc := t.TempDir()
	os.WriteFile(filepath.Join(cyc, "a.yaml"), []byte("batchy:\n  after: [b]\nj: {}\n"), 0o644)
	os.WriteFile(filepath.Join(cyc, "b.yaml"), []byte("batchy:\n  after: [\"a:j\"]\nj: {}\n"), 0o644)
	os.WriteFile(filepath.Join(cyc, "c.yaml"), []byte("batchy:\n  after: [a]\nj: {}\n"), 0o644)
	out.Reset()
	if code := run(context.Background(), []string{"validate", cyc}, &out, &errb); code != exitError ||
		!strings.Contains(out.String(), "invalid a.yaml: workflow a: after: waits for itself (a after b after a)") ||
		!strings.Contains(out.String(), "ok      c.yaml") {
		t.Errorf("validate of an after: cycle = %d:\n%s", code, out.String())
	}
	// A from_date in the future: valid, with a warning naming the job.
	future := t.TempDir()
	os.WriteFile(filepath.Join(future, "f.yaml"), []byte("early:\n  from_date: \"2999-01-01T00:00:00Z\"\nlate:\n  from_date: \"2020-01-01T00:00:00Z\"\n"), 0o644)
	out.Reset()
	if code := run(context.Background(), []string{"validate", future}, &out, &errb); code != exitOK ||
		!strings.Contains(out.String(), "warning f.yaml: job early: from_date 2999-01-01T00:00:00.000000Z is in the future") ||
		strings.Contains(out.String(), "job late") {
		t.Errorf("validate of a future from_date = %d:\n%s", code, out.String())
	}
	// The same size limit as serve's.
	out.Reset()
	if code := run(context.Background(), []string{"validate", "--max-config-bytes", "100", "../../cfg"}, &out, &errb); code != exitError ||
		!strings.Contains(out.String(), "larger than 100 bytes") {
		t.Errorf("validate with --max-config-bytes 100 = %d: %s", code, out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"nope"},
		{"serve", "--tz", "Mars/Olympus"},
		{"serve", "--no-such-flag"},
		{"serve", "--log-level", "loud"},
		{"serve", "--infa-date-format", "ZZZ"},
		{"serve", "--original-infa-date-format", "ZZZ"},
		{"serve", "--redis-min-replicas", "1"}, // the embedded store has no replicas
		{"serve", "--redis-url", "redis://127.0.0.1:1", "--redis-min-replicas", "-1"},
		{"import"},
		{"pause"},
		{"pause", "a/b"},
		{"resume", "w", "extra"},
		{"resume", "w", "--url", "ftp://x"},
		{"pause", "w", "--no-such-flag"},
	}
	// A cancelled context: should a case wrongly start the server, it stops at once instead of
	// hanging the test.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(ctx, args, &out, &errb); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, exitUsage, errb.String())
			}
			if errb.Len() == 0 {
				t.Errorf("no message on stderr")
			}
		})
	}
}

// TestSchedulerEndToEnd: a workflow with a schedule, after:, retries and an exec job runs itself
// against real Redis, and its output reaches the log.
func TestSchedulerEndToEnd(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg := t.TempDir()
	marker := filepath.Join(t.TempDir(), "first-attempt")
	os.WriteFile(filepath.Join(cfg, "up.yaml"), []byte("x: {}\n"), 0o644)
	os.WriteFile(filepath.Join(cfg, "etl.yaml"), []byte(fmt.Sprintf(`
batchy:
  schedule: "@every 1s"
  after: [up]
  retries: {count: 1, backoff: 1s}
load:
  run:
    type: exec
    command: ["sh", "-c", "echo loading from $BATCHY_LOAD_FROM_DATE; if [ ! -f %[1]s ]; then touch %[1]s; exit 4; fi"]
`, marker)), 0o644)
	sinkFile := filepath.Join(t.TempDir(), "events.jsonl")
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr, "--cfg-dir", cfg, "--scheduler-lease", "2s", "--log-sink", "file://"+sinkFile)
	for _, path := range []string{"/load_cfg/up", "/load_cfg/etl", "/open_batch/up"} {
		if code, body := curl(t, p.url+path); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	time.Sleep(2 * time.Second)
	if _, body := curl(t, p.url+"/v1/workflows/etl/runs"); strings.Contains(body, `"attempts":[{`) {
		t.Fatalf("etl ran before its upstream was ready: %s", body)
	}
	curl(t, p.url+"/close_batch/up")

	deadline := time.Now().Add(30 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		_, body = curl(t, p.url+"/v1/workflows/etl/runs")
		if strings.Contains(body, `"state":"succeeded"`) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var list struct {
		Runs []struct {
			State    string
			Trigger  string
			Attempts []struct {
				Jobs map[string]struct {
					Status   string
					ExitCode *int `json:"exit_code"`
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Runs) == 0 {
		t.Fatalf("runs: %v %s\nlogs:\n%s", err, body, p.logs)
	}
	last := list.Runs[len(list.Runs)-1] // the first run
	if last.State != "succeeded" || len(last.Attempts) != 2 || last.Trigger != "cron" {
		t.Fatalf("first run: %+v\nlogs:\n%s", last, p.logs)
	}
	if c := last.Attempts[0].Jobs["load"].ExitCode; c == nil || *c != 4 {
		t.Errorf("attempt 1 exit code = %v, want 4", c)
	}
	if code, status := curl(t, p.url+"/get_status/etl"); code != 200 || statusOf(t, status, "load") != "success" {
		t.Errorf("etl status after the run: %s", status)
	}
	if _, events := curl(t, p.url+"/v1/workflows/etl/events?type=log"); !strings.Contains(events, "loading from 1776-07-04T23:59:00.000000Z") {
		t.Errorf("the job's output is not in the workflow's events:\n%s", events)
	}
	p.stop(t) // flushes the secondary sinks
	data, _ := os.ReadFile(sinkFile)
	for _, want := range []string{"loading from 1776-07-04T23:59:00.000000Z", `"type":"run.retried"`, `"type":"run.finished"`, `"type":"close"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the file sink lacks %s:\n%s", want, data)
		}
	}
}
