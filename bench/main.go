// Command bench measures batchy end to end on this machine and writes docs/benchmarks.md: HTTP
// throughput and latency of open+close and state reads (original and v1 routes, Redis and the
// embedded store), the same store operations without HTTP, the bare Redis round trip of the same
// Lua scripts, waitsy's wake-up latency with 100 and 1,000 waits, and memory.
//
//	go run ./bench                      # or: make bench
//	go run ./bench --duration 5s --out ''
//
// It starts its own redis-server on a free loopback port (never 6379) and builds and runs batchy
// serve from ./cmd/batchy; run it from the module's root.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/rdb"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "waiters" {
		os.Exit(waitersMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// benchConfig is the bench's flags.
type benchConfig struct {
	duration   time.Duration
	warmup     time.Duration
	conc       []int
	waits      []int
	wakeRounds int
	history    int
	out        string
	redisBin   string
	parts      []string
	keepTmp    bool
	profile    string
	verbose    bool
}

// Workflow names besides the workers' wf-1..wf-N.
const (
	wakeWF = "wake" // the workflow every wait waits on
	memWF  = "mem"  // the workflow whose Redis memory is measured
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg benchConfig
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "how long each throughput measurement runs (after its warm-up)")
	fs.DurationVar(&cfg.warmup, "warmup", 300*time.Millisecond, "warm-up before each throughput measurement, not counted")
	fs.IntSliceVar(&cfg.conc, "concurrency", []int{1, 16, 64}, "concurrent clients of the throughput measurements")
	fs.IntSliceVar(&cfg.waits, "waits", []int{100, 1000}, "concurrent waits of the wake-up measurements")
	fs.IntVar(&cfg.wakeRounds, "wake-rounds", 10, "closes measured per wake-up size (after one warm-up round)")
	fs.IntVar(&cfg.history, "history", 1000, "batches of history of the workflow whose Redis memory is measured")
	fs.StringVar(&cfg.out, "out", "docs/benchmarks.md", "where to write the report; empty: print only")
	fs.StringVar(&cfg.redisBin, "redis-server", "redis-server", "the redis-server binary")
	fs.StringSliceVar(&cfg.parts, "parts", allParts, "what to measure: http (Redis), direct (store and bare scripts), memory, wake, embedded")
	fs.BoolVar(&cfg.keepTmp, "keep-tmp", false, "keep the temporary directory (binaries, config, data file)")
	fs.BoolVarP(&cfg.verbose, "verbose", "v", false, "print each wake-up round's figures")
	fs.StringVar(&cfg.profile, "profile", "", "write CPU profiles of the c16 HTTP measurements and of every wake-up, and heap profiles with the waits held, to this directory (batchy built with a pprof hook)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(cfg.conc) == 0 || slices.Min(cfg.conc) < 1 || len(cfg.waits) == 0 || slices.Min(cfg.waits) < 1 || cfg.wakeRounds < 1 || cfg.history < 1 {
		fmt.Fprintln(stderr, "bench: --concurrency, --waits, --wake-rounds and --history must be 1 or more")
		return 2
	}
	for _, p := range cfg.parts {
		if !slices.Contains(allParts, p) {
			fmt.Fprintf(stderr, "bench: --parts: unknown part %q (use %s)\n", p, strings.Join(allParts, ","))
			return 2
		}
	}
	if _, err := os.Stat("cmd/batchy"); err != nil {
		fmt.Fprintln(stderr, "bench: run it from the module's root (cmd/batchy not found)")
		return 2
	}
	rep, err := bench(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	printTable(stdout, rep)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(markdown(rep)), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", cfg.out)
	}
	return 0
}

// allParts are the measurements, in the order they run (http and direct take turns, one
// concurrency at a time).
var allParts = []string{"wake", "memory", "http", "direct", "embedded"}

func (c benchConfig) does(part string) bool { return slices.Contains(c.parts, part) }

// Report is everything one run measured.
type Report struct {
	Machine  Machine
	Command  string
	Config   benchConfig
	HTTP     []Result // both stores, both APIs
	Direct   []Result // rdb.Store without HTTP, and the bare scripts
	Wake     []WakeResult
	Mem      Memory
	Took     time.Duration
	Warnings []string
}

// Memory is the memory figures.
type Memory struct {
	// Batches of history the measured workflow holds.
	Batches int
	// UsedDelta is Redis's used_memory after loading the workflow and running its batches,
	// minus before.
	UsedDelta int64
	// StateBytes is MEMORY USAGE summed over the workflow's state and history keys, EventsBytes
	// over its event stream; Keys counts them all.
	StateBytes, EventsBytes int64
	Keys                    int
	Events                  int64
}

func bench(ctx context.Context, cfg benchConfig, logw io.Writer) (*Report, error) {
	began := time.Now()
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "bench: "+format+"\n", a...) }
	rep := &Report{Machine: describeMachine(cfg.redisBin), Config: cfg, Command: "make bench"}
	if len(os.Args) > 1 {
		rep.Command = "go run ./bench " + strings.Join(os.Args[1:], " ")
	}
	workers := slices.Max(cfg.conc)

	tmp, err := os.MkdirTemp("", "batchy-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.keepTmp {
		logf("temporary directory %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	cfgDir := filepath.Join(tmp, "cfg")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return nil, err
	}
	names := []string{wakeWF, memWF}
	for w := range workers {
		names = append(names, wfName(w))
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(cfgDir, n+".yaml"), []byte(workflowYAML), 0o644); err != nil {
			return nil, err
		}
	}

	logf("building ./cmd/batchy")
	var (
		bin  string
		env  []string
		prof *profiler
	)
	if cfg.profile == "" {
		bin, err = buildBatchy(tmp)
	} else {
		bin, err = buildProfiledBatchy(tmp)
		if err == nil {
			err = os.MkdirAll(cfg.profile, 0o755)
		}
		port, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		env = []string{fmt.Sprintf("BATCHY_BENCH_PPROF=127.0.0.1:%d", port)}
		dir, _ := filepath.Abs(cfg.profile)
		prof = &profiler{dir: dir, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	}
	if err != nil {
		return nil, err
	}
	extra := []string{"--cfg-dir", cfgDir}
	if help := serveFlags(bin); strings.Contains(help, "--max-waits-per-client") {
		// The waits all come from one address: lift the per-client bound above the largest size.
		extra = append(extra, "--max-waits-per-client", strconv.Itoa(2*slices.Max(cfg.waits)))
	}

	redisDir := filepath.Join(tmp, "redis")
	os.MkdirAll(redisDir, 0o755)
	rp, redisURL, err := startRedis(ctx, cfg.redisBin, redisDir)
	if err != nil {
		return nil, err
	}
	defer rp.stop()
	logf("redis-server %s on %s", rep.Machine.Redis, redisURL)
	ropts, _ := redis.ParseURL(redisURL)
	ropts.PoolSize = 2 * workers // the pool is never what limits the direct measurements
	rc := redis.NewClient(ropts)
	defer rc.Close()

	bp, base, err := startBatchy(ctx, env, bin, append([]string{"--redis-url", redisURL}, extra...)...)
	if err != nil {
		return nil, err
	}
	defer bp.stop()
	hc := newHTTPClient(workers + 16)
	for _, n := range names {
		if err := do(ctx, hc, http.MethodGet, base+"/load_cfg/"+n+"?reset=true"); err != nil {
			return nil, err
		}
	}

	// 1. Wake-up latency of waits, held by a process of their own; first, so that batchy's memory
	// with the waits is not what the load of the other measurements left behind.
	if cfg.does("wake") {
		wp, err := startWaiters(base, wakeWF, prof)
		if err != nil {
			return nil, err
		}
		for _, n := range cfg.waits {
			logf("wake-up: %d waits, %d rounds", n, cfg.wakeRounds)
			wr, err := measureWake(ctx, hc, base, wakeWF, n, cfg.wakeRounds, bp.pid(), wp, prof, cfg.verbose)
			if err != nil {
				wp.stop()
				return nil, fmt.Errorf("wake-up with %d waits: %w", n, err)
			}
			rep.Wake = append(rep.Wake, wr)
		}
		wp.stop()
		if rep.Wake[0].Registered == "settle" {
			rep.Warnings = append(rep.Warnings, "the server has no batchy_active_waits metric: the bench paused after the waits were sent instead of checking they were registered")
		}
	}

	// 2. Memory: a workflow with a full history.
	if cfg.does("memory") {
		logf("memory: %d batches of history on workflow %s", cfg.history, memWF)
		if rep.Mem, err = measureMemory(ctx, rc, hc, base, cfg.history); err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
	}

	// 3. At each concurrency in turn: HTTP against Redis, then the store without HTTP and the bare
	// scripts on the same Redis under other prefixes. Close together in time, so that the ratios
	// compare measurements made under the same conditions.
	var (
		st      *rdb.Store
		scripts rawScripts
	)
	if cfg.does("direct") {
		st = rdb.New(rc, rdb.Options{Prefix: "benchstore"})
		if err := loadStore(ctx, st, workers); err != nil {
			return nil, err
		}
		if scripts, err = captureScripts(ctx, redisURL, "benchraw", workers); err != nil {
			return nil, fmt.Errorf("capturing the store's scripts: %w", err)
		}
	}
	for _, c := range cfg.conc {
		if cfg.does("http") {
			rep.HTTP = append(rep.HTTP, httpSuite(ctx, cfg, []int{c}, "redis", hc, base, bp.pid(), rp.pid(), prof, logf)...)
		}
		if cfg.does("direct") {
			for _, o := range storeOps(st) {
				rep.Direct = append(rep.Direct, timed(ctx, "store", o, c, cfg, 0, rp.pid(), logf))
			}
			for _, o := range rawOps(rc, scripts, "benchraw", workers) {
				rep.Direct = append(rep.Direct, timed(ctx, "raw-lua", o, c, cfg, 0, rp.pid(), logf))
			}
		}
	}
	bp.stop()

	// 4. HTTP against the embedded store.
	if cfg.does("embedded") {
		ep, ebase, err := startBatchy(ctx, env, bin, append([]string{"--data-file", filepath.Join(tmp, "data", "batchy.json")}, extra...)...)
		if err != nil {
			return nil, err
		}
		defer ep.stop()
		for _, n := range names {
			if err := do(ctx, hc, http.MethodGet, ebase+"/load_cfg/"+n+"?reset=true"); err != nil {
				return nil, err
			}
		}
		rep.HTTP = append(rep.HTTP, httpSuite(ctx, cfg, cfg.conc, "embedded", hc, ebase, ep.pid(), 0, prof, logf)...)
		ep.stop()
	}
	rep.Took = time.Since(began)
	rep.Machine.LoadEnd = loadAverage()
	return rep, ctx.Err()
}

// httpSuite measures both APIs' operations at each concurrency of concs against one server.
func httpSuite(ctx context.Context, cfg benchConfig, concs []int, store string, hc *http.Client, base string, serverPID, redisPID int, prof *profiler, logf func(string, ...any)) []Result {
	var out []Result
	workers := slices.Max(cfg.conc)
	for _, c := range concs {
		for _, api := range []apiRoutes{originalRoutes, v1Routes} {
			for _, o := range httpOps(hc, base, api, workers) {
				var p *profiler
				if c == targetConc {
					p = prof
				}
				p.startCPU(ctx, fmt.Sprintf("http-%s-%s-%s-c%d", store, api.name, strings.ReplaceAll(o.name, "+", "-"), c))
				out = append(out, timed(ctx, "http-"+store+"/"+api.name, o, c, cfg, serverPID, redisPID, logf))
				p.stopCPU(ctx)
			}
		}
	}
	return out
}

// timed measures o and the CPU the server and Redis used meanwhile.
func timed(ctx context.Context, target string, o op, conc int, cfg benchConfig, serverPID, redisPID int, logf func(string, ...any)) Result {
	s0, r0, c0 := cpuOf(serverPID), cpuOf(redisPID), cpuOf(os.Getpid())
	r := measure(ctx, target, o, conc, cfg.warmup, cfg.duration)
	wall := r.Elapsed + cfg.warmup
	r.ClientCPU = float64(cpuOf(os.Getpid())-c0) / float64(wall)
	if serverPID != 0 {
		r.ServerCPU = float64(cpuOf(serverPID)-s0) / float64(wall)
	}
	if redisPID != 0 {
		r.RedisCPU = float64(cpuOf(redisPID)-r0) / float64(wall)
	}
	logf("%-22s %-10s c=%-3d %8.0f ops/s  p50 %-8s p99 %-8s errors %d", target, o.name, conc, r.OpsPerSec(), ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
	if r.FirstErr != "" {
		logf("  first error: %s", r.FirstErr)
	}
	return r
}

func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	return cpuTime(pid)
}

// measureMemory loads memWF, runs history open+close pairs on it over HTTP, and measures what
// Redis holds for it.
func measureMemory(ctx context.Context, rc *redis.Client, hc *http.Client, base string, history int) (Memory, error) {
	m := Memory{Batches: history}
	before, err := usedMemory(ctx, rc)
	if err != nil {
		return m, err
	}
	if err := do(ctx, hc, http.MethodGet, base+"/load_cfg/"+memWF+"?reset=true"); err != nil {
		return m, err
	}
	for range history {
		if err := do(ctx, hc, http.MethodGet, base+"/open_batch/"+memWF); err != nil {
			return m, err
		}
		if err := do(ctx, hc, http.MethodGet, base+"/close_batch/"+memWF); err != nil {
			return m, err
		}
	}
	after, err := usedMemory(ctx, rc)
	if err != nil {
		return m, err
	}
	m.UsedDelta = after - before
	keys := rdb.Keys{Prefix: "batchy"}
	events := keys.Events(memWF)
	iter := rc.Scan(ctx, 0, strings.TrimSuffix(keys.State(memWF), "state")+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		n, err := rc.MemoryUsage(ctx, k, 0).Result() // SAMPLES 0: every element counted
		if err != nil {
			return m, err
		}
		m.Keys++
		if k == events {
			m.EventsBytes += n
			m.Events, _ = rc.XLen(ctx, k).Result()
		} else {
			m.StateBytes += n
		}
	}
	return m, iter.Err()
}

func usedMemory(ctx context.Context, rc *redis.Client) (int64, error) {
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory has no used_memory")
}
