package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The scale part (issue 16): what batchy costs with many workflows loaded. For each size (10, as
// the reference, 100, a full page of the lists, and --workflows) a fresh Redis and batchy (scheduler on) with that many generated
// workflows (a quarter with a yearly schedule, a quarter with after: on the previous one, and one
// firing every 10s): the Redis commands per second while idle, the server time of the dashboard
// and of a page of GET /v1/workflows, how late the every-10s workflow's fires start, and RSS.

// ScaleResult is the scale part's figures for one number of workflows.
type ScaleResult struct {
	Workflows int
	// LoadTook is how long loading them all took (16 at a time, over HTTP).
	LoadTook time.Duration
	// IdleWindow is how long the idle commands were counted; IdleCmds the commands per second
	// (INFO commandstats, the bench's own INFO left out), IdleTop the busiest commands.
	IdleWindow time.Duration
	IdleCmds   float64
	IdleTop    string
	// Dashboard and List are the times of GET / and GET /v1/workflows?limit=50 (20 each, one at a
	// time, on loopback): p50 and max.
	Dashboard, List [2]time.Duration
	// FireLag is the latest start of the every-10s workflow's runs after their fire time, over
	// the fires seen; Fires how many.
	FireLag time.Duration
	Fires   int
	RSS     int64
}

// The scale part's targets (issue 16).
const (
	targetIdleCmds   = 50                    // Redis commands per second, idle, scheduler on
	targetViewTime   = 20 * time.Millisecond // GET / and GET /v1/workflows?limit=50, p50
	targetViewSpread = 0.5                   // ... within this share of the times with 10 workflows
	targetFireLag    = time.Second           // a due fire starts within this
)

// scaleChecks are the scale part's targets, for the largest number of workflows measured, with
// the 10 workflows' figures as the reference.
func scaleChecks(rep *Report) []Check {
	if len(rep.Scale) < 2 {
		return nil
	}
	ref, big := rep.Scale[0], rep.Scale[len(rep.Scale)-1]
	// full is the smallest size whose pages are full (50 rows), when one was measured between.
	var full *ScaleResult
	if len(rep.Scale) > 2 {
		full = &rep.Scale[1]
	}
	n := big.Workflows
	out := []Check{{Target: fmt.Sprintf("%d workflows, scheduler on, idle: ≤ %d Redis commands/s", n, targetIdleCmds), Measured: true,
		Met: big.IdleCmds <= targetIdleCmds, Figure: fmt.Sprintf("%.1f (%.1f with %d)", big.IdleCmds, ref.IdleCmds, ref.Workflows)}}
	for _, v := range []struct {
		what     string
		big, ref time.Duration
		full     func(ScaleResult) time.Duration
	}{{"GET /", big.Dashboard[0], ref.Dashboard[0], func(r ScaleResult) time.Duration { return r.Dashboard[0] }},
		{"GET /v1/workflows?limit=50", big.List[0], ref.List[0], func(r ScaleResult) time.Duration { return r.List[0] }}} {
		ratio := float64(v.big) / float64(v.ref)
		fig := fmt.Sprintf("%s (%s with %d: %.2f ×", ms(v.big), ms(v.ref), ref.Workflows, ratio)
		if full != nil {
			fig += fmt.Sprintf("; %s with %d, a full page of 50 rows: %.2f ×", ms(v.full(*full)), full.Workflows, float64(v.big)/float64(v.full(*full)))
		}
		out = append(out, Check{Target: fmt.Sprintf("%s with %d workflows: p50 ≤ %s and within ±%.0f %% of the p50 with %d", v.what, n, ms(targetViewTime), 100*targetViewSpread, ref.Workflows),
			Measured: v.ref > 0, Met: v.big <= targetViewTime && ratio <= 1+targetViewSpread && ratio >= 1-targetViewSpread,
			Figure: fig + ")"})
	}
	return append(out, Check{Target: fmt.Sprintf("%d workflows: each due fire starts within %s", n, targetFireLag), Measured: big.Fires > 0,
		Met: big.Fires > 0 && big.FireLag <= targetFireLag, Figure: fmt.Sprintf("latest %s after its fire time over %d fires", ms(big.FireLag), big.Fires)})
}

// scaleWorkflowYAML returns the i-th generated workflow.
func scaleWorkflowYAML(i int) string {
	jobs := "extract:\n  table: orders\nload:\n  reprocess_hours: 2\n"
	switch i % 4 {
	case 0:
		return "batchy:\n  schedule: \"0 3 1 1 *\"\n" + jobs
	case 1:
		return fmt.Sprintf("batchy:\n  after: [%s]\n", scaleName(i-1)) + jobs
	}
	return jobs
}

func scaleName(i int) string { return fmt.Sprintf("s%05d", i) }

// tickWF fires every 10 seconds: its runs' start against their fire time is the scheduler's lag.
const tickWF = "tick"

func measureScale(ctx context.Context, cfg benchConfig, bin, tmp string, n int, logf func(string, ...any)) (ScaleResult, error) {
	res := ScaleResult{Workflows: n}
	dir := filepath.Join(tmp, fmt.Sprintf("scale-%d", n))
	cfgDir := filepath.Join(dir, "cfg")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return res, err
	}
	names := []string{tickWF}
	if err := os.WriteFile(filepath.Join(cfgDir, tickWF+".yaml"), []byte("batchy:\n  schedule: \"@every 10s\"\na:\n  run: {type: exec, command: [\"true\"]}\n"), 0o644); err != nil {
		return res, err
	}
	for i := range n {
		names = append(names, scaleName(i))
		if err := os.WriteFile(filepath.Join(cfgDir, scaleName(i)+".yaml"), []byte(scaleWorkflowYAML(i)), 0o644); err != nil {
			return res, err
		}
	}
	redisDir := filepath.Join(dir, "redis")
	os.MkdirAll(redisDir, 0o755)
	rp, redisURL, err := startRedis(ctx, cfg.redisBin, redisDir)
	if err != nil {
		return res, err
	}
	defer rp.stop()
	ref, err := newRedisRef(redisURL, 2)
	if err != nil {
		return res, err
	}
	defer ref.Close()
	args := []string{"--redis-url", redisURL, "--cfg-dir", cfgDir, "--scheduler", "on"}
	for _, s := range cfg.scaleSinks {
		args = append(args, "--log-sink", strings.ReplaceAll(s, "{n}", fmt.Sprint(n)))
	}
	bp, base, err := startBatchy(ctx, nil, bin, args...)
	if err != nil {
		return res, err
	}
	defer bp.stop()
	hc := newHTTPClient(32)

	logf("scale: loading %d workflows", n)
	began := time.Now()
	work := make(chan string)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := do(ctx, hc, http.MethodGet, base+"/load_cfg/"+name); err != nil {
					select {
					case errs <- fmt.Errorf("load %s: %w", name, err):
					default:
					}
				}
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return res, err
	default:
	}
	res.LoadTook = time.Since(began)

	// The leader looks at every loaded workflow once after the loads: wait until the commands
	// settle (at most a minute), then count them while nothing happens but the every-10s fire.
	calls := func() (int64, map[string]int64, error) {
		st, err := ref.commandStats(ctx)
		if err != nil {
			return 0, nil, err
		}
		var total int64
		by := map[string]int64{}
		for name, s := range st {
			if name == "info" {
				continue // the bench's own
			}
			total += s.Calls
			by[name] = s.Calls
		}
		return total, by, nil
	}
	settle := time.Now().Add(time.Minute)
	prev, _, err := calls()
	if err != nil {
		return res, err
	}
	for time.Now().Before(settle) {
		time.Sleep(2 * time.Second)
		now, _, err := calls()
		if err != nil {
			return res, err
		}
		if now-prev < 400 { // under 200/s: the loads' aftermath is over
			break
		}
		prev = now
	}
	res.IdleWindow = 30 * time.Second
	if cfg.duration < 2*time.Second {
		res.IdleWindow = 10 * time.Second // a quick run
	}
	logf("scale: counting Redis commands for %s", res.IdleWindow)
	before, byBefore, err := calls()
	if err != nil {
		return res, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(res.IdleWindow):
	}
	after, byAfter, err := calls()
	if err != nil {
		return res, err
	}
	secs := time.Since(start).Seconds()
	res.IdleCmds = float64(after-before) / secs
	type kv struct {
		name string
		n    int64
	}
	var top []kv
	for name, c := range byAfter {
		if d := c - byBefore[name]; d > 0 {
			top = append(top, kv{name, d})
		}
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n })
	var parts []string
	for i, t := range top {
		if i == 6 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", t.name, float64(t.n)/secs))
	}
	res.IdleTop = strings.Join(parts, ", ")

	timeGets := func(path string) ([2]time.Duration, error) {
		var ds []time.Duration
		for range 21 {
			t0 := time.Now()
			if err := do(ctx, hc, http.MethodGet, base+path); err != nil {
				return [2]time.Duration{}, fmt.Errorf("GET %s: %w", path, err)
			}
			ds = append(ds, time.Since(t0))
		}
		ds = ds[1:] // the first warms the connection and the templates
		slices.Sort(ds)
		return [2]time.Duration{ds[len(ds)/2], ds[len(ds)-1]}, nil
	}
	logf("scale: timing GET / and GET /v1/workflows?limit=50")
	// The bench's own heap holds what the earlier parts measured (latency samples of the HTTP
	// phases): a collection of it due during these 40 requests would time the bench, not batchy.
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	runtime.GC()
	logf("scale: the bench's own heap: %.0f MB in use, %d collections so far", float64(mem.HeapAlloc)/(1<<20), mem.NumGC)
	if res.Dashboard, err = timeGets("/"); err != nil {
		return res, err
	}
	if res.List, err = timeGets("/v1/workflows?limit=50"); err != nil {
		return res, err
	}

	// The every-10s workflow's runs: how late each started after its fire time.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/workflows/"+tickWF+"/runs?limit=100", nil)
	if r, err := hc.Do(req); err == nil {
		var body struct {
			Runs []struct {
				FireTime  *time.Time `json:"fire_time"`
				StartedAt *time.Time `json:"started_at"`
			} `json:"runs"`
		}
		err = json.NewDecoder(r.Body).Decode(&body)
		r.Body.Close()
		if err == nil {
			for _, run := range body.Runs {
				if run.FireTime != nil && run.StartedAt != nil {
					res.Fires++
					res.FireLag = max(res.FireLag, run.StartedAt.Sub(*run.FireTime))
				}
			}
		}
	}
	res.RSS, _ = rssBytes(bp.pid())
	return res, nil
}
