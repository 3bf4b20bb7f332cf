package main

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// analysis is the hand-written part of docs/benchmarks.md (profiles, what was changed, gaps): it
// is kept in bench/ so that a rerun rewrites the figures and keeps the explanation.
//
//go:embed analysis.md
var analysis string

// Targets.
const (
	targetRatio   = 0.30                  // HTTP open+close throughput / bare-script open+close, at c16
	targetP99     = 5 * time.Millisecond  // every HTTP request at c16, Redis
	targetWakeP99 = 20 * time.Millisecond // wake-up at 1,000 waits
	targetRSS     = 64 << 20              // batchy's RSS with 1,000 waits
	targetConc    = 16
	targetWaits   = 1000
)

// Check is one target with its figure.
type Check struct {
	Target, Figure string
	Met, Measured  bool
}

func (c Check) verdict() string {
	switch {
	case !c.Measured:
		return "not measured"
	case c.Met:
		return "**met**"
	}
	return "**not met**"
}

func find(rs []Result, target, op string, conc int) (Result, bool) {
	for _, r := range rs {
		if r.Target == target && r.Op == op && r.Conc == conc {
			return r, true
		}
	}
	return Result{}, false
}

func checks(rep *Report) []Check {
	var out []Check
	raw, rawOK := find(rep.Direct, "raw-lua", opPair, targetConc)
	for _, api := range []string{"original", "v1"} {
		c := Check{Target: fmt.Sprintf("open+close over HTTP (%s routes, Redis) ≥ %.2f × bare Lua open+close, at c%d", api, targetRatio, targetConc)}
		if h, ok := find(rep.HTTP, "http-redis/"+api, opPair, targetConc); ok && rawOK && raw.OpsPerSec() > 0 {
			ratio := h.OpsPerSec() / raw.OpsPerSec()
			c.Measured, c.Met = true, ratio >= targetRatio
			c.Figure = fmt.Sprintf("%.2f (%.0f / %.0f pairs/s)", ratio, h.OpsPerSec(), raw.OpsPerSec())
		}
		out = append(out, c)
	}
	for _, api := range []string{"original", "v1"} {
		c := Check{Target: fmt.Sprintf("p99 of each request (open, close, get_status; %s routes, Redis) ≤ %s at c%d", api, ms(targetP99), targetConc)}
		pair, ok1 := find(rep.HTTP, "http-redis/"+api, opPair, targetConc)
		state, ok2 := find(rep.HTTP, "http-redis/"+api, opState, targetConc)
		if ok1 && ok2 {
			worst, which := pair.Parts["open"].P99, "open"
			if p := pair.Parts["close"].P99; p > worst {
				worst, which = p, "close"
			}
			if p := state.Lat.P99; p > worst {
				worst, which = p, "get_status"
			}
			c.Measured, c.Met = true, worst <= targetP99
			c.Figure = fmt.Sprintf("worst: %s %s (open %s, close %s, get_status %s)", which, ms(worst),
				ms(pair.Parts["open"].P99), ms(pair.Parts["close"].P99), ms(state.Lat.P99))
		}
		out = append(out, c)
	}
	for _, w := range rep.Wake {
		if w.Waits != targetWaits {
			continue
		}
		out = append(out,
			Check{Target: fmt.Sprintf("wake-up p99 ≤ %s with %d waits", ms(targetWakeP99), targetWaits), Measured: true,
				Met: w.Lat.P99 <= targetWakeP99 && len(w.Errors) == 0, Figure: fmt.Sprintf("%s (p50 %s)", ms(w.Lat.P99), ms(w.Lat.P50))},
			Check{Target: fmt.Sprintf("batchy RSS ≤ %d MB with %d waits", targetRSS>>20, targetWaits), Measured: true,
				Met: w.RSS <= targetRSS, Figure: fmt.Sprintf("%s (%s idle)", mb(w.RSS), mb(w.RSSIdle))})
	}
	return out
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// cpuCell is a CPU time per round, measured in 10 ms ticks summed over the rounds.
func cpuCell(d time.Duration, rounds int) string {
	if d == 0 {
		return "< " + ms(10*time.Millisecond/time.Duration(max(rounds, 1)))
	}
	return ms(d)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func kb(n int64) string { return fmt.Sprintf("%.1f KB", float64(n)/(1<<10)) }

func cores(f float64) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", f)
}

// partCell is a composite op's request latency, or "" for a single request.
func partCell(r Result, part string) string {
	l, ok := r.Parts[part]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%s / %s", ms(l.P50), ms(l.P99))
}

// opsCell is the throughput in operations and, for a pair, in requests.
func opsCell(r Result) string {
	if len(r.Parts) > 0 {
		return fmt.Sprintf("%.0f (%.0f req/s)", r.OpsPerSec(), r.OpsPerSec()*float64(len(r.Parts)))
	}
	return fmt.Sprintf("%.0f", r.OpsPerSec())
}

func errCell(r Result) string {
	if r.Errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d: %s", r.Errors, clip(r.FirstErr, 80))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// printTable writes the figures for a terminal.
func printTable(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\ntarget\top\tc\tops/s\tp50\tp99\topen p50/p99\tclose p50/p99\tbatchy CPU\tredis CPU\tbench CPU\terrors")
	for _, rs := range [][]Result{rep.HTTP, rep.Direct} {
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Target, r.Op, r.Conc, opsCell(r), ms(r.Lat.P50), ms(r.Lat.P99),
				partCell(r, "open"), partCell(r, "close"), cores(r.ServerCPU), cores(r.RedisCPU), cores(r.ClientCPU), errCell(r))
		}
	}
	tw.Flush()
	fmt.Fprintln(tw, "\nwaits\trounds\twake-up p50\tp99\tmax\tbatchy CPU/round\twaiters CPU/round\tbatchy RSS idle\twith waits\terrors")
	for _, r := range rep.Wake {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Waits, r.Rounds, ms(r.Lat.P50), ms(r.Lat.P99), ms(r.Lat.Max),
			cpuCell(r.ServerCPU, r.Rounds), cpuCell(r.WaitersCPU, r.Rounds), mb(r.RSSIdle), mb(r.RSS), len(r.Errors))
	}
	tw.Flush()
	if m := rep.Mem; m.Batches > 0 {
		fmt.Fprintf(w, "\nRedis memory, one workflow of 3 jobs with %d batches of history: used_memory +%s; MEMORY USAGE state+history %s, event stream %s (%d events), %d keys\n",
			m.Batches, kb(m.UsedDelta), kb(m.StateBytes), kb(m.EventsBytes), m.Events, m.Keys)
	}
	fmt.Fprintln(w)
	for _, c := range checks(rep) {
		fmt.Fprintf(w, "%-13s %s: %s\n", strings.Trim(c.verdict(), "*"), c.Target, c.Figure)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

// markdown renders docs/benchmarks.md.
func markdown(rep *Report) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	m := rep.Machine
	p("# Benchmarks")
	p("")
	p("Figures from one run of the benchmark program in `bench/` (generated: rerun it rather than edit them).")
	p("It starts its own `redis-server` on a free loopback port and a `batchy serve` built from `./cmd/batchy`")
	p("(`--scheduler off --log-level warn`), loads a workflow of 3 jobs, and measures everything below in one run.")
	p("The order: the wake-ups first, on the freshly started server; then the Redis memory; then, at each")
	p("concurrency in turn, HTTP, the store and the bare scripts, so that the ratios compare neighbouring")
	p("measurements; last, the embedded store.")
	p("")
	p("```sh")
	p("make bench                              # = go run ./bench: about 2-3 minutes, rewrites this file")
	p("go run ./bench --duration 5s --out ''   # longer measurements, print only; --help for every flag")
	p("```")
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("|---|---|")
	p("| CPU | %s, %d cores |", m.CPU, m.Cores)
	p("| OS | %s |", m.Kernel)
	p("| Go | %s |", m.GoVersion)
	p("| Redis | redis-server %s (`--save \"\" --appendonly no`) |", m.Redis)
	p("| date | %s |", m.Date)
	p("| load average | %s at the start, %s at the end (other work on the machine; 0 would be idle) |", m.LoadStart, m.LoadEnd)
	p("| run | `%s`: %s per measurement after a %s warm-up; the whole run took %s |", rep.Command, rep.Config.duration, rep.Config.warmup, rep.Took.Round(time.Second))
	p("")
	p("**The load generator, batchy, redis-server and (for the wake-up) the waiting clients share these %d", m.Cores)
	p("cores.** Every figure is therefore what the whole system does on %d cores, not what batchy does with", m.Cores)
	p("a machine of its own: at concurrency 16 and 64 the cores are saturated, and the client's own work")
	p("(HTTP, JSON) takes CPU that a real deployment spends on another machine. The *batchy CPU*, *redis CPU*")
	p("and *bench CPU* (the load generator) columns say how many cores each process kept busy during a")
	p("measurement (their kernel time included); the rest of the 2 cores went to other processes (see the load")
	p("average) or was idle.")
	p("")
	p("## Targets")
	p("")
	p("| target | figure | |")
	p("|---|---|---|")
	for _, c := range checks(rep) {
		fig := c.Figure
		if fig == "" {
			fig = "-"
		}
		p("| %s | %s | %s |", c.Target, fig, c.verdict())
	}
	for _, warn := range rep.Warnings {
		p("")
		p("Warning: %s.", warn)
	}
	p("")
	p("## HTTP: throughput and latency")
	p("")
	p("Each of *c* clients loops over one operation on its own workflow (`wf-1` ... `wf-64`, each loaded")
	p("with `/load_cfg`), so open+close pairs never meet. The headline operation is the **open+close pair**:")
	p("its ops/s are pairs per second (two requests each), p50 and p99 are of the whole pair, and the open and")
	p("close columns are each request's own p50 / p99. `original` is `GET /open_batch/<wf>`, `GET /close_batch/<wf>`,")
	p("`GET /get_status/<wf>`; `v1` is `POST /v1/workflows/<wf>/open`, `POST .../close` (strict) and `GET /v1/workflows/<wf>`.")
	p("Every change also writes its events to the workflow's Redis stream, in its own script, as always.")
	p("`embedded` is `batchy serve` without `--redis-url`, saving its data file after every change.")
	p("")
	resultTable(p, rep.HTTP)
	p("")
	p("## The store without HTTP, and the bare Lua scripts")
	p("")
	p("`store`: the same operations through `internal/rdb.Store` called directly with go-redis (its Go work:")
	p("arguments, reply parsing; no HTTP, and no other sink than the stream the scripts write). `raw-lua`: the")
	p("store's own scripts sent with `EVALSHA` alone (the bench records the store's calls and replays them), so")
	p("only the Redis round trip and the script's run in Redis, events included. Both on the same redis-server")
	p("under other key prefixes, with a pool as large as the concurrency.")
	p("")
	resultTable(p, rep.Direct)
	p("")
	p("Ratios of open+close pairs per second to the bare scripts':")
	p("")
	p("| c | store / raw-lua | http-redis/original / raw-lua | http-redis/v1 / raw-lua |")
	p("|---|---|---|---|")
	for _, c := range rep.Config.conc {
		raw, ok := find(rep.Direct, "raw-lua", opPair, c)
		if !ok || raw.OpsPerSec() == 0 {
			continue
		}
		cell := func(rs []Result, target string) string {
			r, ok := find(rs, target, opPair, c)
			if !ok {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.OpsPerSec()/raw.OpsPerSec())
		}
		p("| %d | %s | %s | %s |", c, cell(rep.Direct, "store"), cell(rep.HTTP, "http-redis/original"), cell(rep.HTTP, "http-redis/v1"))
	}
	p("")
	p("## waitsy: wake-up latency")
	p("")
	p("*n* long polls (`GET /v1/wait?target=wake`, through `client.Wait` as waitsy does) are held by a")
	p("separate process (the bench re-executing itself as `bench waiters`), each on its own kept-alive")
	p("connection. Once the server counts all *n* (its `batchy_active_waits` metric), the bench closes the")
	p("batch with `GET /close_batch/wake`; a wait's latency runs from just before that request to the")
	p("moment its answer (`ready`) is decoded. One warm-up round, then %d rounds per size: every wait of", rep.Config.wakeRounds)
	p("every round is in the percentiles. RSS is batchy's `VmRSS` (from `/proc/<pid>/status`) with the waits")
	p("registered, the largest over the rounds; idle is before the first round of that size.")
	p("")
	p("| waits | samples | p50 | p99 | max | batchy CPU per wake | waiters CPU per wake | batchy RSS idle | with waits | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Wake {
		p("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %d |", r.Waits, r.Lat.N, ms(r.Lat.P50), ms(r.Lat.P99), ms(r.Lat.Max),
			cpuCell(r.ServerCPU, r.Rounds), cpuCell(r.WaitersCPU, r.Rounds), mb(r.RSSIdle), mb(r.RSS), len(r.Errors))
	}
	p("")
	mem := rep.Mem
	p("## Redis memory per workflow")
	p("")
	p("One workflow of 3 jobs after %d open+close batches over HTTP (history keeps the last 1,000, `--history`):", mem.Batches)
	p("")
	p("| | |")
	p("|---|---|")
	p("| `INFO memory` used_memory, after minus before | %s |", kb(mem.UsedDelta))
	p("| `MEMORY USAGE` (SAMPLES 0) of state and history keys | %s (%.0f bytes per batch) |", kb(mem.StateBytes), float64(mem.StateBytes)/float64(max(mem.Batches, 1)))
	p("| `MEMORY USAGE` of the event stream | %s (%d events: an open and a close per job and batch) |", kb(mem.EventsBytes), mem.Events)
	p("| keys | %d |", mem.Keys)
	p("")
	p("The stream keeps up to `--events-keep` (100,000) events per workflow, about %d batches of 3 jobs: a", 100000/6)
	p("workflow's memory is dominated by its events long after its history stopped growing.")
	p("")
	b.WriteString(analysis)
	return b.String()
}

func resultTable(p func(string, ...any), rs []Result) {
	p("| target | op | c | ops/s | p50 | p99 | open p50 / p99 | close p50 / p99 | batchy CPU | redis CPU | bench CPU | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |", r.Target, r.Op, r.Conc, opsCell(r), ms(r.Lat.P50), ms(r.Lat.P99),
			partCell(r, "open"), partCell(r, "close"), cores(r.ServerCPU), cores(r.RedisCPU), cores(r.ClientCPU), strings.ReplaceAll(errCell(r), "|", "\\|"))
	}
}
