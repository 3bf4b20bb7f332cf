package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// server is a batchy API on a real listener over a real store, restartable on the same address.
type server struct {
	t     *testing.T
	addr  string
	store *rdb.Store
	hub   *notify.Hub
	http  *http.Server
	// handler wraps the API, e.g. to hide the wait endpoint.
	wrap func(http.Handler) http.Handler
}

func newServer(t *testing.T, b rdbtest.Backend, wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	client, emb := b.New(t)
	opts := rdb.Options{}
	if emb != nil {
		opts.Embedded = emb
	}
	s := &server{t: t, store: rdb.New(client, opts), wrap: wrap}
	s.hub = notify.NewHub(s.store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.hub.Run(ctx)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(func() { s.http.Close() })
	s.load("wf1", "job1: {}\njob2: {}\n")
	s.load("wf2", "a: {}\n")
	return s
}

func (s *server) serve(l net.Listener) {
	var h http.Handler = api.New(api.Options{Store: s.store, Hub: s.hub, CfgDir: s.t.TempDir()}).Handler()
	if s.wrap != nil {
		h = s.wrap(h)
	}
	s.http = &http.Server{Handler: h}
	go s.http.Serve(l)
}

// restart stops the HTTP server, waits, and serves again on the same address.
func (s *server) restart(down time.Duration) {
	s.http.Close()
	time.Sleep(down)
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(l)
}

func (s *server) load(wf, yaml string) {
	s.t.Helper()
	w, err := config.Parse(wf, []byte(yaml), config.Limits{})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.store.Load(context.Background(), w, true); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) open(wf string, jobs ...string) {
	s.t.Helper()
	if _, err := s.store.Open(context.Background(), wf, batch.OpenRequest{Jobs: jobs}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) end(wf string, status batch.Status, jobs ...string) {
	s.t.Helper()
	if _, err := s.store.End(context.Background(), wf, batch.EndRequest{Jobs: jobs, Status: status}); err != nil {
		s.t.Fatal(err)
	}
}

// waitsy runs waitsy in the background.
type waitsyRun struct {
	done   chan struct{}
	code   int
	stdout bytes.Buffer
	stderr syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func start(ctx context.Context, args ...string) *waitsyRun {
	r := &waitsyRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = run(ctx, args, &r.stdout, &r.stderr)
	}()
	return r
}

// exited reports whether waitsy has returned within d.
func (r *waitsyRun) exited(d time.Duration) bool {
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (r *waitsyRun) wantExit(t *testing.T, code int) {
	t.Helper()
	if !r.exited(20 * time.Second) {
		t.Fatalf("waitsy did not exit; output:\n%s", r.stderr.String())
	}
	if r.code != code {
		t.Fatalf("exit code %d, want %d; output:\n%s", r.code, code, r.stderr.String())
	}
}

func url(s *server) string { return "--url=http://" + s.addr }

func TestBlocksUntilLastJobCloses(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		s := newServer(t, b, nil)
		s.open("wf1")
		r := start(context.Background(), "-wf", "wf1", url(s), "--json")
		if r.exited(300 * time.Millisecond) {
			t.Fatalf("waitsy returned before any job closed: %d\n%s", r.code, r.stderr.String())
		}
		s.end("wf1", batch.StatusSuccess, "job1")
		if r.exited(300 * time.Millisecond) {
			t.Fatalf("waitsy returned with job2 still open: %d\n%s", r.code, r.stderr.String())
		}
		s.end("wf1", batch.StatusSuccess, "job2")
		r.wantExit(t, exitReady)
		var report struct {
			State string
			Jobs  []batch.JobStanding
		}
		if err := json.Unmarshal(r.stdout.Bytes(), &report); err != nil {
			t.Fatalf("--json report: %v\n%s", err, r.stdout.String())
		}
		if report.State != "ready" || len(report.Jobs) != 2 || report.Jobs[0].BatchEnd == "" || report.Jobs[0].BatchID == 0 {
			t.Errorf("report = %+v", report)
		}
	})
}

func TestJobTargetAndFailure(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		s := newServer(t, b, nil)
		s.open("wf1")
		s.open("wf2")
		s.end("wf1", batch.StatusSuccess, "job2")
		// wf1:job2 is ready; wf2 fails: exit 1 at once with --fail-fast.
		r := start(context.Background(), "wf1:job2", "wf2", url(s), "--fail-fast")
		if r.exited(200 * time.Millisecond) {
			t.Fatalf("returned early: %d\n%s", r.code, r.stderr.String())
		}
		s.end("wf2", batch.StatusFailed)
		r.wantExit(t, exitFailed)
		if !strings.Contains(r.stderr.String(), "wf2:a") {
			t.Errorf("the output does not name the failed job:\n%s", r.stderr.String())
		}

		// By default, as the original, a failure is waited through until a rerun succeeds, and
		// the status line and the report say so.
		r = start(context.Background(), "--workflow", "wf2", url(s), "--json")
		if r.exited(300 * time.Millisecond) {
			t.Fatalf("returned on a failure without --fail-fast: %d\n%s", r.code, r.stderr.String())
		}
		if out := r.stderr.String(); !strings.Contains(out, "failed, waiting for a rerun: wf2:a") {
			t.Errorf("the status line does not show the failure:\n%s", out)
		}
		s.open("wf2")
		s.end("wf2", batch.StatusSuccess)
		r.wantExit(t, exitReady)
		if !strings.Contains(r.stdout.String(), `"state": "ready"`) {
			t.Errorf("report: %s", r.stdout.String())
		}

		// The report of a wait that ends (here by --timeout) while a job is failed shows it.
		s.open("wf2")
		s.end("wf2", batch.StatusFailed)
		r = start(context.Background(), "-wf", "wf2", url(s), "--json", "--timeout", "300ms")
		r.wantExit(t, exitTimeout)
		if out := r.stdout.String(); !strings.Contains(out, `"readiness": "failed"`) {
			t.Errorf("the report does not show the failure:\n%s", out)
		}
	})
}

func TestTimeoutAndSince(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		s := newServer(t, b, nil)
		s.open("wf2")
		s.end("wf2", batch.StatusSuccess)
		// Ready today...
		start(context.Background(), "wf2", url(s)).wantExit(t, exitReady)
		// ...but a success before --since does not count.
		since := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
		r := start(context.Background(), "wf2", url(s), "--since", since, "--timeout", "400ms")
		r.wantExit(t, exitTimeout)
		r = start(context.Background(), "wf2", url(s), "--since", "1ms", "--timeout", "300ms")
		r.wantExit(t, exitTimeout)
	})
}

func TestUsageAndUnknown(t *testing.T) {
	s := newServer(t, rdbtest.Backends[0], nil)
	cases := [][]string{
		{"-wf", "wf1x", url(s)},         // misspelt workflow
		{"wf1:nojob", url(s)},           // unknown job
		{url(s)},                        // no target
		{"wf*", url(s)},                 // bad name
		{"wf1", "--since", "yesterday"}, // bad since
		{"wf1", "--timeout", "-1s"},
		{"wf1", "--url", "localhost:5000"},
		{"wf1", "--no-such-flag"},
		{"wf1", "--fail-fast", "false"}, // would wait for a workflow named "false"
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := start(context.Background(), args...)
			r.wantExit(t, exitUsage)
			if !strings.Contains(r.stderr.String(), "waitsy: ") {
				t.Errorf("no error message: %q", r.stderr.String())
			}
		})
	}
	// After "--" an argument is a target as typed, even -wf.
	r0 := start(context.Background(), url(s), "--", "-wf")
	r0.wantExit(t, exitUsage)
	if out := r0.stderr.String(); strings.Contains(out, "--wf") || !strings.Contains(out, "-wf") {
		t.Errorf("waitsy -- -wf: %q", out)
	}
	// With --json, a usage error also prints the report a script reads.
	r := start(context.Background(), "wf1", "--since", "yesterday", "--json")
	r.wantExit(t, exitUsage)
	var report struct {
		State    string `json:"state"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &report); err != nil || report.State != "error" || report.ExitCode != exitUsage {
		t.Errorf("--json report of a usage error: %q (%v)", r.stdout.String(), err)
	}
}

func TestUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	r := start(context.Background(), "wf1", "--url=http://"+addr, "--timeout", "700ms")
	r.wantExit(t, exitUnreachable)
}

// TestTimeoutWithHungServer: a server that accepts and never answers cannot hold waitsy much past
// --timeout (the request's own margin was 15 s).
func TestTimeoutWithHungServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	r := start(context.Background(), "wf1", "--url=http://"+l.Addr().String(), "--timeout", "500ms")
	if !r.exited(8 * time.Second) {
		t.Fatalf("waitsy --timeout 500ms still waits on a server that never answers; output:\n%s", r.stderr.String())
	}
	if r.code != exitUnreachable {
		t.Errorf("exit code %d, want %d (unreachable); output:\n%s", r.code, exitUnreachable, r.stderr.String())
	}
}

// TestBusyServerRetries: a 429 (this client holds its most waits) is temporary: waitsy retries
// and finishes, instead of exiting as for an unknown workflow.
func TestBusyServerRetries(t *testing.T) {
	var mu sync.Mutex
	refused := 0
	s := newServer(t, rdbtest.Backends[0], func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			busy := req.URL.Path == "/v1/wait" && refused < 2
			if busy {
				refused++
			}
			mu.Unlock()
			if busy {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte(`{"error":{"code":"too_many_requests","message":"this client already holds 1 waits"}}`))
				return
			}
			h.ServeHTTP(w, req)
		})
	})
	s.open("wf2")
	s.end("wf2", batch.StatusSuccess)
	r := start(context.Background(), "wf2", url(s), "--timeout", "15s")
	r.wantExit(t, exitReady)
	if !strings.Contains(r.stderr.String(), "busy") {
		t.Errorf("no word of the busy server: %s", r.stderr.String())
	}
}

func TestInterrupt(t *testing.T) {
	s := newServer(t, rdbtest.Backends[0], nil)
	ctx, cancel := context.WithCancel(context.Background())
	r := start(ctx, "wf1", url(s))
	time.Sleep(100 * time.Millisecond)
	cancel()
	if !r.exited(time.Second) {
		t.Fatal("waitsy did not stop within a second of Ctrl-C")
	}
	if r.code != exitInterrupted {
		t.Errorf("exit %d, want %d", r.code, exitInterrupted)
	}
}

func TestSurvivesServerRestart(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		s := newServer(t, b, nil)
		s.open("wf2")
		r := start(context.Background(), "wf2", url(s))
		time.Sleep(100 * time.Millisecond)
		s.restart(500 * time.Millisecond)
		if r.exited(200 * time.Millisecond) {
			t.Fatalf("waitsy gave up on a restart: %d\n%s", r.code, r.stderr.String())
		}
		s.end("wf2", batch.StatusSuccess)
		r.wantExit(t, exitReady)
	})
}

// TestPollingFallback: against a server with only the original routes, waitsy polls get_status.
func TestPollingFallback(t *testing.T) {
	onlyOriginal := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/get_status/") {
				http.NotFound(w, r) // as Flask would: not batchy's JSON error
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	s := newServer(t, rdbtest.Backends[0], onlyOriginal)
	s.open("wf2")
	r := start(context.Background(), "wf2", url(s), "--interval", "50ms")
	if r.exited(300 * time.Millisecond) {
		t.Fatalf("returned early: %d\n%s", r.code, r.stderr.String())
	}
	s.end("wf2", batch.StatusSuccess)
	r.wantExit(t, exitReady)
	if !strings.Contains(r.stderr.String(), "polling") {
		t.Errorf("waitsy did not say it fell back to polling:\n%s", r.stderr.String())
	}
	start(context.Background(), "nope", url(s), "--interval", "50ms").wantExit(t, exitUsage)
}

// TestOriginalPythonStatus: waitsy reads the original Batchy's get_status (naive dates, "failure").
func TestOriginalPythonStatus(t *testing.T) {
	today := time.Now().UTC().Format("2006-01-02")
	body := `{"job1": {"status": "success", "batch_end": "` + today + `T00:00:01.5"}, "job2": {"status": "failure", "batch_end": "` + today + ` 00:00:02"}}`
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/get_status/wf1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	})}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()
	r := start(context.Background(), "-wf", "wf1", "--url=http://"+l.Addr().String(), "--interval", "50ms", "--fail-fast")
	r.wantExit(t, exitFailed)
	// As the original waitsy, it keeps polling through the failure by default.
	r = start(context.Background(), "-wf", "wf1", "--url=http://"+l.Addr().String(), "--interval", "50ms")
	if r.exited(300 * time.Millisecond) {
		t.Fatalf("returned on the original's failure without --fail-fast: %d\n%s", r.code, r.stderr.String())
	}
}

// TestOriginalFlagsAndURL: the original's flags (-wf, --workflow) and its URL constant
// http://0.0.0.0:5000 reach a loopback-only batchy without tokens.
func TestOriginalFlagsAndURL(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	store := rdb.New(client, rdb.Options{})
	for wf, y := range map[string]string{"wf1": "job1: {}\n", "wf2": "a: {}\n"} {
		w, err := config.Parse(wf, []byte(y), config.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Load(context.Background(), w, true); err != nil {
			t.Fatal(err)
		}
		store.Open(context.Background(), wf, batch.OpenRequest{})
		store.End(context.Background(), wf, batch.EndRequest{Status: batch.StatusSuccess})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.New(api.Options{Store: store, CfgDir: t.TempDir(), LoopbackOnly: true}).Handler()}
	go srv.Serve(l)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for _, args := range [][]string{
		{"-wf", "wf1"},
		{"--workflow", "wf1"},
		{"--workflow=wf1", "-wf", "wf2"},
		{"-wf=wf1", "--workflow", "wf2", "--wf", "wf1"},
	} {
		r := start(context.Background(), append(args, "--url", "http://0.0.0.0:"+port, "--json")...)
		r.wantExit(t, exitReady)
		for _, a := range args {
			if (a == "wf1" || a == "wf2") && !strings.Contains(r.stdout.String(), `"workflow": "`+a+`"`) {
				t.Errorf("%v: the report lacks %s:\n%s", args, a, r.stdout.String())
			}
		}
	}
}

// TestEndToEndShell runs `waitsy -wf wf1 && next_step` in a real shell against a server.
func TestEndToEndShell(t *testing.T) {
	s := newServer(t, rdbtest.Backends[1], nil) // a real redis-server
	dir := t.TempDir()
	bin := filepath.Join(dir, "waitsy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	s.open("wf1")
	marker := filepath.Join(dir, "ran")
	cmd := exec.Command("sh", "-c", bin+" -wf wf1 --url http://"+s.addr+" && touch "+marker)
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("next_step ran before upstream succeeded")
	}
	s.end("wf1", batch.StatusSuccess)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shell: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("next_step did not run after upstream succeeded:\n%s", out.String())
	}
}
