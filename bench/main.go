// Command bench measures batchy end to end on this machine and writes docs/benchmarks.md: what each
// transition (open, close, fail) costs Redis and batchy per request (calibration: INFO commandstats,
// MONITOR and /proc), HTTP throughput, latency and batchy CPU per request of the open alone, the
// open+close and open+fail pairs and state reads (original and v1 routes, Redis and the embedded
// store), against the reference: a bare 3-call EVAL sent by the bench in the same run at the same
// concurrency; waitsy's wake-up latency with 100 and 1,000 waits, and memory; with many workflows
// loaded (the scale part, scale.go: 10 and --workflows), the idle Redis commands per second and the
// times of the dashboard and of a page of GET /v1/workflows. Optionally (the direct
// part, direct.go) the store without HTTP and batchy's own scripts replayed.
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

	"github.com/spf13/pflag"
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
	duration    time.Duration
	warmup      time.Duration
	conc        []int
	waits       []int
	wakeRounds  int
	waitsyProcs int
	history     int
	out         string
	redisBin    string
	parts       []string
	keepTmp     bool
	profile     string
	verbose     bool
	calib       int
	monitor     int
	workflows   int
	scaleSinks  []string
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
	fs.IntVar(&cfg.waitsyProcs, "waitsy", 50, "waitsy processes of the close-to-exit measurement (part wake; 0: none)")
	fs.IntVar(&cfg.history, "history", 1000, "batches of history of the workflow whose Redis memory is measured")
	fs.StringVar(&cfg.out, "out", "docs/benchmarks.md", "where to write the report; empty: print only")
	fs.StringVar(&cfg.redisBin, "redis-server", "redis-server", "the redis-server binary")
	fs.StringSliceVar(&cfg.parts, "parts", allParts, "what to measure: "+partsHelp())
	fs.IntVar(&cfg.calib, "calibrate", 300, "requests of each transition measured one at a time with INFO commandstats (part http; 0: none)")
	fs.IntVar(&cfg.workflows, "workflows", 10000, "workflows loaded in the scale part (measured beside 10)")
	fs.StringArrayVar(&cfg.scaleSinks, "scale-log-sink", nil, "a --log-sink of the scale part's batchy (repeatable; {n} in it becomes the number of workflows): the idle cost of its feeder")
	fs.IntVar(&cfg.monitor, "monitor", 20, "requests of each transition watched with MONITOR to tell round trips from script calls (part http; 0: none)")
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
	if cfg.calib < 0 || cfg.monitor < 0 {
		fmt.Fprintln(stderr, "bench: --calibrate and --monitor must be 0 or more")
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
// concurrency at a time). direct.go adds "direct" when it is compiled in.
var allParts = []string{"wake", "memory", "http", "embedded", "scale"}

func partsHelp() string {
	h := "wake (wake-up latency), memory, http (calibration, bare EVAL reference and HTTP against Redis), embedded, scale (idle Redis commands, dashboard and list times with 10 and --workflows workflows)"
	if slices.Contains(allParts, "direct") {
		h += ", direct (the store without HTTP and its own scripts replayed: extra information)"
	}
	return h
}

// targetOp is an operation of the direct part and its target's name.
type targetOp struct {
	target string
	o      op
}

// directSuite is the direct part, when direct.go is compiled in.
type directSuite struct {
	ops   []targetOp
	close func()
}

// newDirect is set by direct.go.
var newDirect func(ctx context.Context, redisURL string, workers int) (*directSuite, error)

func (c benchConfig) does(part string) bool { return slices.Contains(c.parts, part) }

// Report is everything one run measured.
type Report struct {
	Machine Machine
	Command string
	Config  benchConfig
	HTTP    []Result // both stores, both APIs
	Bare    []Result // the bare EVAL reference, one per concurrency
	// Store is batchy's store driven from the bench (bench/store.go): its Redis cost per
	// transition measured as the bare EVAL's is.
	Store []Result
	// Floor is the floor server's open (bench/floor: gin, one EVALSHA of the bare script, no
	// batchy), one per concurrency: what any HTTP server doing one Redis round trip costs here.
	Floor  []Result
	Direct []Result // rdb.Store without HTTP, and batchy's own scripts replayed (direct part)
	// Embedded is the embedded store with history and its RSS (bench/embedded.go).
	Embedded *EmbeddedFigures
	// Transitions is the calibration: Redis calls, round trips, Redis µs and batchy CPU per request.
	Transitions []Transition
	Wake        []WakeResult
	// Waitsy is the close-to-exit time of waitsy processes (wake part; nil when not measured).
	Waitsy *WaitsyResult
	// WaitsyFloor is the same against the bench's own server (bench/wake.go waitsyFloor).
	WaitsyFloor *WaitsyResult
	Scale       []ScaleResult
	Mem         Memory
	Took        time.Duration
	Warnings    []string
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
	loaded := []string{wakeWF} // memWF is loaded by the memory part: its keys are those that appear then
	if !cfg.does("memory") {
		loaded = append(loaded, memWF)
	}
	for w := range workers {
		loaded = append(loaded, wfName(w))
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
		extra = append(extra, "--max-waits-per-client", strconv.Itoa(2*max(slices.Max(cfg.waits), cfg.waitsyProcs)))
	}

	redisDir := filepath.Join(tmp, "redis")
	os.MkdirAll(redisDir, 0o755)
	rp, redisURL, err := startRedis(ctx, cfg.redisBin, redisDir)
	if err != nil {
		return nil, err
	}
	defer rp.stop()
	logf("redis-server %s on %s", rep.Machine.Redis, redisURL)
	ref, err := newRedisRef(redisURL, 2*workers)
	if err != nil {
		return nil, err
	}
	defer ref.Close()

	bp, base, err := startBatchy(ctx, env, bin, append([]string{"--redis-url", redisURL}, extra...)...)
	if err != nil {
		return nil, err
	}
	defer bp.stop()
	hc := newHTTPClient(workers + 16)
	for _, n := range loaded {
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
		if cfg.waitsyProcs > 0 {
			bin, err := buildWaitsy(tmp)
			if err != nil {
				return nil, err
			}
			logf("waitsy: %d processes, %d rounds", cfg.waitsyProcs, cfg.wakeRounds)
			wr, err := measureWaitsy(ctx, hc, bin, base, wakeWF, cfg.waitsyProcs, cfg.wakeRounds, cfg.verbose)
			if err != nil {
				return nil, fmt.Errorf("waitsy processes: %w", err)
			}
			rep.Waitsy = &wr
			logf("waitsy: %d processes, %d rounds, against the bench's own server (the reference)", cfg.waitsyProcs, cfg.wakeRounds)
			fl, err := measureWaitsyFloor(ctx, bin, cfg.waitsyProcs, cfg.wakeRounds, cfg.verbose)
			if err != nil {
				return nil, fmt.Errorf("waitsy processes, reference: %w", err)
			}
			rep.WaitsyFloor = &fl
		}
		if rep.Wake[0].Registered == "settle" {
			rep.Warnings = append(rep.Warnings, "the server has no batchy_active_waits metric: the bench paused after the waits were sent instead of checking they were registered")
		}
	}

	// 2. Memory: a workflow with a full history.
	if cfg.does("memory") {
		logf("memory: %d batches of history on workflow %s", cfg.history, memWF)
		if rep.Mem, err = measureMemory(ctx, ref, hc, base, cfg.history); err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
	}

	// 3. Calibration at c1, not timed: what one request of each transition costs Redis and batchy,
	// and the same accounting of the bare EVAL (which must show 3 calls in 1 round trip).
	var bare *bareRef
	if cfg.does("http") {
		if bare, err = newBareRef(ctx, ref, workers); err != nil {
			return nil, fmt.Errorf("bare EVAL: %w", err)
		}
		if cfg.calib > 0 {
			logf("calibration: %d requests of each transition with INFO commandstats, %d with MONITOR", cfg.calib, cfg.monitor)
			if rep.Transitions, err = calibrate(ctx, hc, base, wfName(0), ref, redisURL, bare, bp.pid(), cfg.calib, cfg.monitor); err != nil {
				return nil, fmt.Errorf("calibration: %w", err)
			}
			for _, t := range rep.Transitions {
				logf("  %-17s %5.2f calls (%d-%d), %4.2f round trips, %6.1f µs Redis, %6.1f µs batchy: %s", t.Name, t.Calls, t.CallsMin, t.CallsMax, t.RoundTrips, t.RedisUsec, t.BatchyUsec, commandsCell(t))
			}
			if w := checkBareAccounting(rep.Transitions, cfg.monitor > 0); w != "" {
				rep.Warnings = append(rep.Warnings, w)
			}
		}
	}

	// 4. At each concurrency in turn: the bare EVAL, then HTTP against Redis (the open alone first,
	// right after the bare EVAL its ratio compares with), then the direct part if any. Close
	// together in time, so that the ratios compare measurements made under the same conditions.
	var direct *directSuite
	if cfg.does("direct") && newDirect != nil {
		if direct, err = newDirect(ctx, redisURL, workers); err != nil {
			return nil, fmt.Errorf("direct part: %w", err)
		}
		defer direct.close()
	}
	// The floor server: the same load generator against an open with batchy out of the path.
	var floor *process
	var floorBase string
	if cfg.does("http") {
		if floor, floorBase, err = startFloor(ctx, tmp, redisURL); err != nil {
			return nil, fmt.Errorf("floor server: %w", err)
		}
		defer floor.stop()
	}
	var store *storeSuite
	if cfg.does("http") {
		if store, err = newStoreSuite(ctx, redisURL, workers); err != nil {
			return nil, fmt.Errorf("store phase: %w", err)
		}
		defer store.close()
	}
	// Every timed phase against Redis also reads what it cost Redis per request.
	rm := &redisMeter{ref: ref, pid: rp.pid(), transitions: rep.Transitions, logf: logf}
	// The no-op EVAL (the floor of a round trip) is a short phase.
	short := cfg
	short.duration = min(cfg.duration, max(cfg.duration/2, 500*time.Millisecond))
	for _, c := range cfg.conc {
		if cfg.does("http") {
			rep.Bare = append(rep.Bare, timed(ctx, "noop-eval", bare.noopOp(), c, short, bp.pid(), rm, logf))
			rep.Bare = append(rep.Bare, timed(ctx, "bare-eval", bare.op(), c, cfg, bp.pid(), rm, logf))
			rep.Floor = append(rep.Floor, timed(ctx, "floor", floorOp(hc, floorBase, workers), c, cfg, floor.pid(), rm, logf))
			rep.HTTP = append(rep.HTTP, httpSuite(ctx, cfg, []int{c}, "redis", hc, base, bp.pid(), rm, prof, logf)...)
			for _, o := range store.ops {
				rep.Store = append(rep.Store, timed(ctx, "store", o, c, short, 0, rm, logf))
			}
		}
		if direct != nil {
			for _, t := range direct.ops {
				rep.Direct = append(rep.Direct, timed(ctx, t.target, t.o, c, cfg, 0, rm, logf))
			}
		}
	}
	for _, rs := range [][]Result{rep.Bare, rep.Floor, rep.Store, rep.HTTP, rep.Direct} {
		for _, r := range rs {
			if r.RedisNote != "" {
				rep.Warnings = append(rep.Warnings, r.RedisNote)
			}
		}
	}
	bp.stop()

	// 5. HTTP against the embedded store (open+close and the state read only: it is slow).
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
		rep.HTTP = append(rep.HTTP, httpSuite(ctx, cfg, cfg.conc, "embedded", hc, ebase, ep.pid(), nil, prof, logf, opPair, opState)...)
		ep.stop()
		var workerNames []string
		for w := range workers {
			workerNames = append(workerNames, wfName(w))
		}
		fig, err := embeddedHistory(ctx, cfg, hc, bin, tmp, cfgDir, workerNames, extra, logf)
		if err != nil {
			return nil, fmt.Errorf("embedded store with history: %w", err)
		}
		rep.Embedded = &fig
	}
	// Last, on a Redis and a batchy of their own: the scale part.
	if cfg.does("scale") {
		bp.stop()
		// 10 is the reference; 100 fills a page (50 rows), so that 100 against --workflows
		// tells the cost of the number of workflows from the cost of the rows shown.
		sizes := []int{10}
		for _, n := range []int{100, cfg.workflows} {
			if n > sizes[len(sizes)-1] {
				sizes = append(sizes, n)
			}
		}
		for _, n := range sizes {
			sr, err := measureScale(ctx, cfg, bin, tmp, n, logf)
			if err != nil {
				return nil, fmt.Errorf("scale with %d workflows: %w", n, err)
			}
			logf("scale: %d workflows: idle %.1f Redis commands/s (%s); GET / p50 %s, /v1/workflows p50 %s; fire lag %s over %d fires; RSS %s",
				n, sr.IdleCmds, sr.IdleTop, ms(sr.Dashboard[0]), ms(sr.List[0]), ms(sr.FireLag), sr.Fires, mb(sr.RSS))
			rep.Scale = append(rep.Scale, sr)
		}
	}
	rep.Took = time.Since(began)
	rep.Machine.LoadEnd = loadAverage()
	return rep, ctx.Err()
}

// httpSuite measures both APIs' operations (those named in only, if any) at each concurrency of
// concs against one server.
func httpSuite(ctx context.Context, cfg benchConfig, concs []int, store string, hc *http.Client, base string, serverPID int, rm *redisMeter, prof *profiler, logf func(string, ...any), only ...string) []Result {
	var out []Result
	workers := slices.Max(cfg.conc)
	for _, c := range concs {
		for _, api := range []apiRoutes{originalRoutes, v1Routes} {
			for _, o := range httpOps(hc, base, api, workers, only...) {
				var p *profiler
				if c == targetConc {
					p = prof
				}
				p.startCPU(ctx, fmt.Sprintf("http-%s-%s-%s-c%d", store, api.name, strings.ReplaceAll(o.name, "+", "-"), c))
				out = append(out, timed(ctx, "http-"+store+"/"+api.name, o, c, cfg, serverPID, rm, logf))
				p.stopCPU(ctx)
			}
		}
	}
	return out
}

// timed measures o and the CPU the server and Redis used meanwhile, and, with rm, what Redis did
// per request (INFO commandstats and its CPU time).
func timed(ctx context.Context, target string, o op, conc int, cfg benchConfig, serverPID int, rm *redisMeter, logf func(string, ...any)) Result {
	redisPID := 0
	if rm != nil {
		redisPID = rm.pid
	}
	m0 := rm.mark(ctx)
	s0, r0, c0 := cpuOf(serverPID), cpuOf(redisPID), cpuOf(os.Getpid())
	r := measure(ctx, target, o, conc, cfg.warmup, cfg.duration)
	wall := r.Elapsed + cfg.warmup
	r.ClientCPU = float64(cpuOf(os.Getpid())-c0) / float64(wall)
	if serverPID != 0 {
		d := cpuOf(serverPID) - s0
		r.ServerCPU = float64(d) / float64(wall)
		if r.Requests > 0 && o.name != opBare && o.name != opNoop { // the bench's own EVALSHA: the server is idle
			r.ServerUsec = float64(d.Microseconds()) / float64(r.Requests)
		}
	}
	if redisPID != 0 {
		r.RedisCPU = float64(cpuOf(redisPID)-r0) / float64(wall)
	}
	rm.finish(ctx, &r, len(o.parts), m0)
	logf("%-22s %-10s c=%-3d %8.0f ops/s  p50 %-8s p99 %-8s batchy %5.1f µs/req  redis %5.1f µs/req, CPU %5.1f µs/req  errors %d",
		target, o.name, conc, r.OpsPerSec(), ms(r.Lat.P50), ms(r.Lat.P99), r.ServerUsec, r.RedisUsec, r.RedisProcUsec, r.Errors)
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
// Redis holds for it: the keys that appeared meanwhile (nothing else runs then), whatever their names.
func measureMemory(ctx context.Context, ref *redisRef, hc *http.Client, base string, history int) (Memory, error) {
	m := Memory{Batches: history}
	before, err := ref.usedMemory(ctx)
	if err != nil {
		return m, err
	}
	old, err := ref.keys(ctx)
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
	after, err := ref.usedMemory(ctx)
	if err != nil {
		return m, err
	}
	m.UsedDelta = after - before
	now, err := ref.keys(ctx)
	if err != nil {
		return m, err
	}
	for k := range now {
		if old[k] {
			continue
		}
		n, typ, entries, err := ref.keyMemory(ctx, k)
		if err != nil {
			return m, err
		}
		m.Keys++
		if typ == "stream" {
			m.EventsBytes += n
			m.Events += entries
		} else {
			m.StateBytes += n
		}
	}
	return m, nil
}
