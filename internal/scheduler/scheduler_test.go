package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/scheduler"
)

var ctx = context.Background()

// t0 is a round time the tests' clocks start from.
var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// env is a real Redis with a store and a way to make schedulers on it.
type env struct {
	t      *testing.T
	client rdb.Client
	store  *rdb.Store
	mu     sync.Mutex
	logs   []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := rdbtest.StartRedis(t)
	client := srv.Client(t)
	return &env{t: t, client: client, store: rdb.New(client, rdb.Options{})}
}

// clock is a settable clock shared by the test and the schedulers' goroutines.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// scheduler returns a scheduler on the test clock (the tests move it and call Tick).
func (e *env) scheduler(id string, clk *clock) *scheduler.Scheduler {
	s := scheduler.New(scheduler.Options{
		Store: e.store, Runs: e.store.Scheduler(), ID: id, Lease: 10 * time.Second,
		Now: clk.Now,
		Log: func(wf, job, runID string, attempt int, stream, line string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.logs = append(e.logs, fmt.Sprintf("%s/%s#%d %s: %s", wf, job, attempt, stream, line))
		},
	})
	e.t.Cleanup(func() { s.Stop("test over") })
	return s
}

func (e *env) load(name, yaml string) {
	e.t.Helper()
	wf, err := config.Parse(name, []byte(yaml), config.Limits{})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := scheduler.Validate(wf, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Load(ctx, wf, false); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) runs(s *scheduler.Scheduler, wf string) []*scheduler.Run {
	e.t.Helper()
	runs, err := s.Runs(ctx, wf, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return runs
}

func (e *env) status(wf, job string) batch.Status {
	e.t.Helper()
	st, err := e.store.State(ctx, wf)
	if err != nil {
		e.t.Fatal(err)
	}
	j, _ := st.Jobs.Get(job)
	return j.Fields.Status()
}

func tick(t *testing.T, s *scheduler.Scheduler, now time.Time) {
	t.Helper()
	if err := s.Tick(ctx, now); err != nil {
		t.Fatal(err)
	}
}

func TestCronFiresAndRunsExec(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", `
batchy:
  schedule: "*/5 * * * *"
extract:
  run: {type: exec, command: ["sh", "-c", "echo window $BATCHY_EXTRACT_FROM_DATE; echo run=[$BATCHY_EXTRACT_RUN]; echo oops >&2"]}
`)
	tick(t, s, clk.Now()) // the schedule starts clk.Now(): no catch-up of earlier fire times
	clk.Set(t0.Add(4 * time.Minute))
	tick(t, s, clk.Now())
	s.Wait()
	if runs := e.runs(s, "w"); len(runs) != 0 {
		t.Fatalf("runs before the first fire time: %d", len(runs))
	}
	clk.Set(t0.Add(5 * time.Minute))
	tick(t, s, clk.Now())
	s.Wait()
	runs := e.runs(s, "w")
	if len(runs) != 1 {
		t.Fatalf("runs after the fire time = %d, want 1", len(runs))
	}
	r := runs[0]
	if r.State != scheduler.StateSucceeded || r.Trigger != scheduler.TriggerCron || r.FireTime == nil || !r.FireTime.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("run = %+v", r)
	}
	if got := e.status("w", "extract"); got != batch.StatusSuccess {
		t.Errorf("job status = %s, want success", got)
	}
	if code := r.Attempts[0].Jobs["extract"].ExitCode; code == nil || *code != 0 {
		t.Errorf("exit code = %v", code)
	}
	joined := strings.Join(e.logs, "\n")
	if !strings.Contains(joined, "w/extract#1 stdout: window 1776-07-04T23:59:00.000000Z") || !strings.Contains(joined, "w/extract#1 stderr: oops") {
		t.Errorf("job output did not reach the log:\n%s", joined)
	}
	if !strings.Contains(joined, "run=[]") {
		t.Errorf("the job's run: settings (which may hold secrets) reached its environment:\n%s", joined)
	}
	// The same fire time never fires twice.
	tick(t, s, clk.Now().Add(time.Second))
	s.Wait()
	if n := len(e.runs(s, "w")); n != 1 {
		t.Errorf("runs after a second tick = %d, want 1", n)
	}
}

func TestRetriesWithBackoffOverTheSameWindow(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	marker := filepath.Join(t.TempDir(), "second")
	e.load("w", fmt.Sprintf(`
batchy:
  retries: {count: 2, backoff: 1m}
flaky:
  from_date: 2026-01-01T00:00:00Z
  run: {type: exec, command: ["sh", "-c", "if [ -f %s ]; then exit 0; fi; touch %s; exit 3"]}
steady:
  run: {type: exec, command: ["true"]}
`, marker, marker))
	if _, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{}); err != nil {
		t.Fatal(err)
	}
	tick(t, s, clk.Now())
	s.Wait()
	r := e.runs(s, "w")[0]
	if r.State != scheduler.StateWaitingRetry || !r.NotBefore.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("after a failed attempt: state %s, not before %s", r.State, r.NotBefore)
	}
	if got := e.status("w", "flaky"); got != batch.StatusFailed {
		t.Errorf("flaky after attempt 1 = %s, want failed", got)
	}
	clk.Set(t0.Add(30 * time.Second))
	tick(t, s, clk.Now())
	s.Wait()
	if r := e.runs(s, "w")[0]; len(r.Attempts) != 1 {
		t.Fatalf("retried before the backoff passed")
	}
	clk.Set(t0.Add(time.Minute))
	tick(t, s, clk.Now())
	s.Wait()
	r = e.runs(s, "w")[0]
	if r.State != scheduler.StateSucceeded || len(r.Attempts) != 2 {
		t.Fatalf("run after the retry: state %s, %d attempts", r.State, len(r.Attempts))
	}
	if c := r.Attempts[0].Jobs["flaky"].ExitCode; c == nil || *c != 3 {
		t.Errorf("attempt 1 exit code = %v, want 3", c)
	}
	if _, again := r.Attempts[1].Jobs["steady"]; again {
		t.Errorf("the retry re-ran a job that had succeeded")
	}
	st, _ := e.store.State(ctx, "w")
	j, _ := st.Jobs.Get("flaky")
	if from, _ := j.Fields.Time("from_date"); !from.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("the retry's window starts at %s, want the failed window's 2026-01-01", from)
	}
}

func TestRetriesExhausted(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "batchy:\n  retries: {count: 1, backoff: 1m}\na:\n  run: {type: exec, command: [\"false\"]}\n")
	s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s, clk.Now())
	s.Wait()
	clk.Set(clk.Now().Add(time.Minute))
	tick(t, s, clk.Now())
	s.Wait()
	r := e.runs(s, "w")[0]
	if r.State != scheduler.StateFailed || len(r.Attempts) != 2 || !strings.Contains(r.Reason, "retries exhausted") {
		t.Errorf("run = state %s, %d attempts, reason %q", r.State, len(r.Attempts), r.Reason)
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	pids := filepath.Join(t.TempDir(), "pids")
	// 3s: time enough for sh to start its child and record it even on a loaded machine (with 1s
	// the timeout once came first, under a full -race suite beside other work).
	e.load("w", fmt.Sprintf(`
batchy:
  timeout: 3s
slow:
  run: {type: exec, command: ["sh", "-c", "sleep 60 & echo $! > %s; wait"]}
`, pids))
	s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	start := time.Now()
	tick(t, s, clk.Now())
	s.Wait()
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the run took %s: the timeout did not kill it", d)
	}
	r := e.runs(s, "w")[0]
	if r.State != scheduler.StateFailed || !strings.Contains(r.Attempts[0].Jobs["slow"].Error, "timed out") {
		t.Errorf("run = %s, job %+v", r.State, r.Attempts[0].Jobs["slow"])
	}
	data, _ := os.ReadFile(pids)
	var pid int
	fmt.Sscan(string(data), &pid)
	if pid == 0 {
		t.Fatal("the job did not record its child's pid")
	}
	if err := processAlive(pid); err == nil {
		t.Errorf("the grandchild %d survived the timeout", pid)
	}
}

func TestCatchup(t *testing.T) {
	for _, c := range []struct {
		catchup string
		gap     time.Duration
		want    int
	}{
		{"all", 5*time.Hour + 10*time.Minute, 5},
		{"latest", 5*time.Hour + 10*time.Minute, 1},
		{"none", 5*time.Hour + 10*time.Minute, 0},
		{"none", 5*time.Hour + 30*time.Second, 1}, // the latest fire is not missed, just clk.Now()
		{"all", 30 * time.Hour, 25},               // bounded by the 24h lookback (both ends count)
	} {
		t.Run(fmt.Sprintf("%s after %s", c.catchup, c.gap), func(t *testing.T) {
			e := newEnv(t)
			clk := newClock(t0)
			s := e.scheduler("s1", clk)
			e.load("w", fmt.Sprintf("batchy:\n  schedule: \"@hourly\"\n  catchup: %s\n  concurrency: allow\na: {}\n", c.catchup))
			tick(t, s, clk.Now())
			clk.Set(t0.Add(c.gap))
			tick(t, s, clk.Now())
			s.Wait()
			runs := e.runs(s, "w")
			if len(runs) != c.want {
				t.Fatalf("runs = %d, want %d", len(runs), c.want)
			}
			for _, r := range runs {
				if c.gap > time.Hour+recent && r.FireTime != nil && clk.Now().Sub(*r.FireTime) > recent && r.Trigger != scheduler.TriggerCatchup {
					t.Errorf("missed fire %s has trigger %s, want catchup", r.FireTime, r.Trigger)
				}
			}
		})
	}
}

const recent = time.Minute

func TestNeedsOrderAndParallelism(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	dir := t.TempDir()
	job := func(name string) string {
		return fmt.Sprintf(`["sh", "-c", "date +%%s%%N > %[1]s/%[2]s.start; sleep 0.3; date +%%s%%N > %[1]s/%[2]s.end"]`, dir, name)
	}
	e.load("w", fmt.Sprintf(`
a:
  run: {type: exec, command: %s}
b:
  run: {type: exec, command: %s}
c:
  needs: [a, b]
  run: {type: exec, command: %s}
d:
  needs: [c]
  run: {type: exec, command: ["false"]}
e:
  needs: [d]
  run: {type: exec, command: ["true"]}
`, job("a"), job("b"), job("c")))
	s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s, clk.Now())
	s.Wait()
	read := func(name string) int64 {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var v int64
		fmt.Sscan(string(data), &v)
		return v
	}
	if read("c.start") < read("a.end") || read("c.start") < read("b.end") {
		t.Errorf("c started before the jobs it needs ended")
	}
	if read("a.start") > read("b.end") || read("b.start") > read("a.end") {
		t.Errorf("a and b, which need nothing, did not run in parallel")
	}
	r := e.runs(s, "w")[0]
	if got := r.Attempts[0].Jobs["e"]; got.Status != "skipped" || !strings.Contains(got.Error, "needs d") {
		t.Errorf("e (needs d, which failed) = %+v", got)
	}
	if got := e.status("w", "e"); got != batch.StatusFailed {
		t.Errorf("e's batch status = %s, want failed", got)
	}
}

func TestAfterTrigger(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("up", "x: {}\n")
	e.load("down", "batchy:\n  after: [up]\ny:\n  run: {type: exec, command: [\"true\"]}\n")
	tick(t, s, clk.Now())
	s.Wait()
	if n := len(e.runs(s, "down")); n != 0 {
		t.Fatalf("down ran before up was ready: %d runs", n)
	}
	e.store.Open(ctx, "up", batch.OpenRequest{})
	e.store.End(ctx, "up", batch.EndRequest{Status: batch.StatusSuccess})
	clk.Set(time.Now()) // up's batch_end is real time
	tick(t, s, clk.Now())
	s.Wait()
	runs := e.runs(s, "down")
	if len(runs) != 1 || runs[0].Trigger != scheduler.TriggerAfter || runs[0].State != scheduler.StateSucceeded {
		t.Fatalf("runs of down = %+v", runs)
	}
	// The same upstream success does not trigger it again.
	tick(t, s, clk.Now().Add(time.Second))
	s.Wait()
	if n := len(e.runs(s, "down")); n != 1 {
		for _, r := range e.runs(s, "down") {
			t.Logf("run %+v", r)
		}
		t.Logf("sched %v", e.client.HGetAll(ctx, e.store.Keys().Sched("down")).Val())
		st, _ := e.store.State(ctx, "up")
		t.Logf("up %s", st.Jobs[0].Fields["batch_end"])
		t.Errorf("down ran again on the same upstream success: %d runs", n)
	}
}

func TestCancelRunningRun(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "a:\n  run: {type: exec, command: [\"sleep\", \"60\"]}\n")
	run, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tick(t, s, clk.Now())
	time.Sleep(200 * time.Millisecond) // let the process start
	if err := s.Cancel(ctx, "w", run.ID, "operator said so"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the cancelled run did not stop")
	}
	r, _ := s.GetRun(ctx, "w", run.ID)
	if r.State != scheduler.StateCancelled || !strings.Contains(r.Reason, "operator said so") {
		t.Errorf("run = %s %q", r.State, r.Reason)
	}
	if got := e.status("w", "a"); got != batch.StatusFailed {
		t.Errorf("job status = %s, want failed", got)
	}
	if err := s.Cancel(ctx, "w", run.ID, "again"); batch.ErrorCode(err) != batch.ECONFLICT {
		t.Errorf("cancelling a finished run: %v, want conflict", err)
	}
}

// TestExactlyOnceAcrossReplicas: three schedulers tick together on one Redis; every fire time
// runs once, also when the leader stops mid-way.
func TestExactlyOnceAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := []*scheduler.Scheduler{e.scheduler("s1", clk), e.scheduler("s2", clk), e.scheduler("s3", clk)}
	e.load("w", "batchy:\n  schedule: \"* * * * *\"\n  concurrency: allow\n  catchup: all\na: {}\n")
	tickAll := func(list []*scheduler.Scheduler) {
		var wg sync.WaitGroup
		for _, sc := range list {
			wg.Add(1)
			go func() { defer wg.Done(); sc.Tick(ctx, clk.Now()) }()
		}
		wg.Wait()
		for _, sc := range list {
			sc.Wait()
		}
	}
	tickAll(s)
	for i := 1; i <= 10; i++ {
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		tickAll(s)
	}
	var leader *scheduler.Scheduler
	var others []*scheduler.Scheduler
	for _, sc := range s {
		if sc.Leader() {
			leader = sc
		} else {
			others = append(others, sc)
		}
	}
	if leader == nil || len(others) != 2 {
		t.Fatalf("want exactly one leader, got %v", []bool{s[0].Leader(), s[1].Leader(), s[2].Leader()})
	}
	// The leader stops ticking (it died); the others take over once its lease runs out.
	for i := 11; i <= 20; i++ {
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		tickAll(others)
	}
	runs := e.runs(s[0], "w")
	seen := map[time.Time]int{}
	for _, r := range runs {
		if r.FireTime != nil {
			seen[*r.FireTime]++
		}
	}
	for i := 1; i <= 20; i++ {
		ft := t0.Add(time.Duration(i) * time.Minute)
		if seen[ft] != 1 {
			t.Errorf("fire time %s ran %d times, want once", ft.Format("15:04"), seen[ft])
		}
	}
	if len(runs) != 20 {
		t.Errorf("%d runs, want 20", len(runs))
	}
}

// TestDeadReplicaRunIsTakenOver: a run whose replica stopped renewing its lease is failed with a
// reason and retried by the new leader.
func TestDeadReplicaRunIsTakenOver(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s1 := e.scheduler("s1", clk)
	s2 := e.scheduler("s2", clk)
	e.load("w", "batchy:\n  retries: {count: 1, backoff: 1s}\na:\n  run: {type: exec, command: [\"sleep\", \"60\"]}\n")
	run, _ := s1.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s1, clk.Now()) // s1 leads and starts the run
	time.Sleep(300 * time.Millisecond)
	// s1 dies: it ticks no more. After the lease, s2 leads and takes the run over.
	clk.Set(t0.Add(11 * time.Second))
	tick(t, s2, clk.Now())
	r, err := s2.GetRun(ctx, "w", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != scheduler.StateWaitingRetry || !strings.Contains(r.Attempts[0].Error, "replica s1") {
		t.Fatalf("after the takeover: state %s, attempt %+v", r.State, r.Attempts[0])
	}
	// The backoff is 1s, but the retry waits a whole lease (10s) after the takeover: time for a
	// replica cut off from Redis to have stopped the attempt's processes.
	if min := clk.Now().Add(10 * time.Second); r.NotBefore.Before(min) {
		t.Errorf("retry not before %s, want no sooner than %s", r.NotBefore, min)
	}
	if got := e.status("w", "a"); got != batch.StatusFailed {
		t.Errorf("the dead replica's job = %s, want failed", got)
	}
	// s1 wakes up: its renewal is refused, so it stops its process.
	tick(t, s1, clk.Now())
	done := make(chan struct{})
	go func() { s1.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the replica that lost its run did not stop executing it")
	}
	if r, _ := s2.GetRun(ctx, "w", run.ID); len(r.Attempts) != 1 {
		t.Errorf("the old replica wrote to a run it no longer holds: %d attempts", len(r.Attempts))
	}
}

// TestStalledReplicaCannotChangeTheOutcome: a replica that stalls past its lease (a paused VM)
// and then finishes its job finds the run taken over: it neither closes the job the takeover
// failed nor announces a result of its own.
func TestStalledReplicaCannotChangeTheOutcome(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	bus := event.NewBus(rdb.NewEventStream(e.client, e.store.Keys(), 0), nil)
	mk := func(id string) *scheduler.Scheduler {
		s := scheduler.New(scheduler.Options{Store: event.RecordingStore{Store: e.store, Bus: bus}, Runs: e.store.Scheduler(),
			ID: id, Lease: 10 * time.Second, Now: clk.Now, Events: bus})
		t.Cleanup(func() { s.Stop("test over") })
		return s
	}
	s1, s2 := mk("s1"), mk("s2")
	e.load("w", "a:\n  run: {type: exec, command: [\"sleep\", \"1\"]}\n")
	run, _ := s1.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s1, clk.Now()) // s1 leads and starts the run, then stalls: it ticks no more
	time.Sleep(300 * time.Millisecond)
	clk.Set(t0.Add(11 * time.Second))
	tick(t, s2, clk.Now()) // s2 takes the run over: the job fails, the run fails (no retries)
	s1.Wait()              // s1's process ends and s1 tries to close the job and finish the run
	if got := e.status("w", "a"); got != batch.StatusFailed {
		t.Errorf("job a = %s after the stalled replica finished, want failed (as the takeover left it)", got)
	}
	if r, _ := s2.GetRun(ctx, "w", run.ID); r.State != scheduler.StateFailed {
		t.Errorf("run state = %s, want failed", r.State)
	}
	evs, err := bus.Stream().Read(ctx, "w", event.Query{After: "0-0", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, ev := range evs {
		count[ev.Type]++
	}
	if count[event.TypeClose] != 0 || count[event.TypeFail] != 1 || count[event.TypeRunFinished] != 1 {
		t.Errorf("events by type = %v, want one fail, one run.finished and no close", count)
	}
}

// TestEveryNeedsAPositiveDuration: robfig/cron reads "@every -5s" as every second.
func TestEveryNeedsAPositiveDuration(t *testing.T) {
	for _, expr := range []string{"@every -5s", "@every 0s", "@every 500ms"} {
		if _, err := scheduler.ParseSchedule(expr, time.UTC); err == nil || !strings.Contains(batch.ErrorMessage(err), "1s or more") {
			t.Errorf("ParseSchedule(%q) = %v, want an error asking for 1s or more", expr, err)
		}
	}
	if _, err := scheduler.ParseSchedule("@every 1s", time.UTC); err != nil {
		t.Errorf("@every 1s: %v", err)
	}
}

// TestAfterCycle: after: targets that lead back to the workflow are a cycle, with its path.
func TestAfterCycle(t *testing.T) {
	after := map[string][]string{"b": {"c:job"}, "c": {"a"}, "d": {"e"}}
	lookup := func(wf string) ([]string, bool) { a, ok := after[wf]; return a, ok }
	for _, c := range []struct {
		wf      string
		targets []string
		want    string
	}{
		{"a", []string{"a"}, "a a"},
		{"a", []string{"b"}, "a b c a"},
		{"a", []string{"d", "x"}, ""},
		{"a", nil, ""},
	} {
		if got := strings.Join(scheduler.AfterCycle(c.wf, c.targets, lookup), " "); got != c.want {
			t.Errorf("AfterCycle(%s, %v) = %q, want %q", c.wf, c.targets, got, c.want)
		}
	}
}

// TestCatchupAllUnderForbid: catchup: all runs every missed fire time, oldest first, one after
// another, though concurrency: forbid skips a fire that comes while a run is running.
func TestCatchupAllUnderForbid(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "batchy:\n  schedule: \"@every 10s\"\n  catchup: all\na:\n  run: {type: exec, command: [\"sleep\", \"0.2\"]}\n")
	tick(t, s, clk.Now())
	clk.Set(t0.Add(35 * time.Second)) // fire times 10s, 20s and 30s were missed
	for i := 0; i < 60; i++ {
		tick(t, s, clk.Now())
		time.Sleep(50 * time.Millisecond)
		done := 0
		for _, r := range e.runs(s, "w") {
			if r.State == scheduler.StateSucceeded || r.State == scheduler.StateSkipped {
				done++
			}
		}
		if done == 3 {
			break
		}
	}
	s.Wait()
	runs := e.runs(s, "w")
	if len(runs) != 3 {
		t.Fatalf("runs = %d, want 3", len(runs))
	}
	// Oldest fire time first: their batches were opened in that order (ids increase).
	sort.Slice(runs, func(i, j int) bool { return runs[i].FireTime.Before(*runs[j].FireTime) })
	var prev int64
	for _, r := range runs {
		if r.State != scheduler.StateSucceeded || len(r.Attempts) != 1 {
			t.Fatalf("run for %s: %s (%s), want succeeded in one attempt", r.FireTime, r.State, r.Reason)
		}
		if id := r.Attempts[0].BatchID; id <= prev {
			t.Errorf("run for %s opened batch %d after batch %d of an earlier fire time: not oldest first", r.FireTime, id, prev)
		} else {
			prev = id
		}
	}
}

// TestJobRemovedWhileRunning: a reload that removes a running job leaves its result nowhere to
// go: the run does not count it as a success.
func TestJobRemovedWhileRunning(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "a:\n  run: {type: exec, command: [\"true\"]}\nb:\n  run: {type: exec, command: [\"sleep\", \"0.5\"]}\n")
	run, _ := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s, clk.Now())
	time.Sleep(200 * time.Millisecond) // b is running
	e.load("w", "a:\n  run: {type: exec, command: [\"true\"]}\n")
	s.Wait()
	r, _ := s.GetRun(ctx, "w", run.ID)
	if r.State != scheduler.StateFailed {
		t.Fatalf("run state = %s, want failed", r.State)
	}
	if jr := r.Attempts[0].Jobs["b"]; jr == nil || jr.Status != "failed" || !strings.Contains(jr.Error, "not in workflow") {
		t.Errorf("job b's result = %+v, want failed: not in workflow", jr)
	}
}

// TestForbidCountsAPendingRetry: under concurrency: forbid, a run waiting for its retry is in
// progress: a manual run is refused (409 naming it), a scheduled fire is skipped, and the retry
// still runs.
func TestForbidCountsAPendingRetry(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	marker := filepath.Join(t.TempDir(), "failed-once")
	e.load("w", fmt.Sprintf(`batchy:
  schedule: "@every 10s"
  retries: {count: 1, backoff: 30s}
a:
  run: {type: exec, shell: true, command: "if [ ! -f %[1]s ]; then touch %[1]s; exit 3; fi"}
`, marker))
	tick(t, s, clk.Now()) // the schedule starts from now
	first, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(time.Second))
	tick(t, s, clk.Now())
	s.Wait()
	if r, _ := s.GetRun(ctx, "w", first.ID); r.State != scheduler.StateWaitingRetry {
		t.Fatalf("first run = %s (%s), want waiting_retry", r.State, r.Reason)
	}

	_, err = s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	if batch.ErrorCode(err) != batch.ECONFLICT || !strings.Contains(batch.ErrorMessage(err), first.ID) {
		t.Errorf("manual run under forbid with a pending retry: err = %v, want ECONFLICT naming run %s", err, first.ID)
	}

	clk.Set(t0.Add(10 * time.Second)) // a fire time while the retry waits
	tick(t, s, clk.Now())
	skipped := 0
	for _, r := range e.runs(s, "w") {
		if r.ID == first.ID {
			continue
		}
		if r.State != scheduler.StateSkipped || !strings.Contains(r.Reason, first.ID+" was still waiting for its retry") {
			t.Errorf("scheduled run %s: %s (%s), want skipped because of %s", r.ID, r.State, r.Reason, first.ID)
		}
		skipped++
	}
	if skipped != 1 {
		t.Errorf("%d scheduled runs, want 1 (skipped)", skipped)
	}

	clk.Set(t0.Add(31 * time.Second)) // the retry is due
	tick(t, s, clk.Now())
	s.Wait()
	r, _ := s.GetRun(ctx, "w", first.ID)
	if r.State != scheduler.StateSucceeded || len(r.Attempts) != 2 {
		t.Errorf("first run = %s after %d attempts (%s), want succeeded on its retry", r.State, len(r.Attempts), r.Reason)
	}
}

// TestReplaceCancelsAPendingRetry: under concurrency: replace, a new run cancels a run waiting
// for its retry, then starts.
func TestReplaceCancelsAPendingRetry(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "batchy:\n  concurrency: replace\n  retries: {count: 1, backoff: 1h}\na:\n  run: {type: exec, command: [\"false\"]}\n")
	first, _ := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s, clk.Now())
	s.Wait()
	second, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		clk.Set(t0.Add(time.Duration(i) * time.Second))
		tick(t, s, clk.Now())
		s.Wait()
	}
	if r, _ := s.GetRun(ctx, "w", first.ID); r.State != scheduler.StateCancelled || !strings.Contains(r.Reason, "replaced by run "+second.ID) {
		t.Errorf("first run = %s (%s), want cancelled: replaced by run %s", r.State, r.Reason, second.ID)
	}
	if r, _ := s.GetRun(ctx, "w", second.ID); len(r.Attempts) != 1 {
		t.Errorf("second run = %s with %d attempts, want it started", r.State, len(r.Attempts))
	}
}

// failingRenew is a RunStore whose lease renewals fail, as when Redis cannot be reached.
type failingRenew struct{ scheduler.RunStore }

func (failingRenew) Renew(context.Context, string, string, string, time.Time) (string, error) {
	return "", fmt.Errorf("dial tcp: connection refused")
}

// RenewAll fails each renewal as Renew does: the scheduler renews its runs' leases in one call.
func (failingRenew) RenewAll(_ context.Context, _ string, _ time.Time, runs []rdb.RunRef) ([]string, []error) {
	errs := make([]error, len(runs))
	for i := range errs {
		errs[i] = fmt.Errorf("dial tcp: connection refused")
	}
	return make([]string, len(runs)), errs
}

// TestReplicaThatCannotRenewStopsItsRun: a replica that cannot renew its lease on a run stops the
// run's processes before the lease expires, since another replica will take the run over then.
func TestReplicaThatCannotRenewStopsItsRun(t *testing.T) {
	e := newEnv(t)
	s := scheduler.New(scheduler.Options{Store: e.store, Runs: failingRenew{e.store.Scheduler()}, ID: "s1", Lease: 2 * time.Second})
	t.Cleanup(func() { s.Stop("test over") })
	e.load("w", "a:\n  run: {type: exec, command: [\"sleep\", \"60\"]}\n")
	run, _ := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
				s.Tick(ctx, time.Now())
			}
		}
	}()
	s.Tick(ctx, time.Now())
	time.Sleep(100 * time.Millisecond)
	s.Wait()
	close(done)
	// Stopped within three quarters of the lease (1.5s), plus the kill and a tick or two.
	if took := time.Since(start); took > 2*time.Second+time.Second {
		t.Errorf("the run went on for %s without a lease renewal", took)
	}
	r, _ := s.GetRun(ctx, "w", run.ID)
	if len(r.Attempts) != 1 || !strings.Contains(r.Attempts[0].Error, "could not renew its lease") {
		t.Errorf("run %s, attempts %+v: want the attempt stopped because the lease could not be renewed", r.State, r.Attempts)
	}
}
