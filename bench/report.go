package main

import (
	_ "embed"
	"fmt"
	"io"
	"slices"
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
	targetCalls       = 8                     // Redis calls per open, close or fail of the 3-job workflow
	targetRedisUsec   = 40                    // Redis CPU per request, µs (INFO commandstats, timed phases at targetConc)
	targetBatchyUsec  = 60                    // batchy CPU per request, µs (/proc, timed phases)
	targetOpenRatio   = 0.30                  // GET /open_batch req/s / bare EVAL req/s, at c16
	targetOpenStretch = 0.45                  // the same, stretch
	targetRatio       = 0.30                  // HTTP open+close throughput / batchy's own scripts' open+close, at c16
	targetP99         = 5 * time.Millisecond  // every HTTP request at c16, Redis
	targetWakeP99     = 20 * time.Millisecond // wake-up at 1,000 waits
	targetRSS         = 64 << 20              // batchy's RSS with 1,000 waits
	targetConc        = 16
	targetWaits       = 1000
	targetRSSFlat     = 0.05                  // batchy's RSS with 1,000 waits, over the rounds: within ±5 % of its mean
	targetWaitsyExit  = 50 * time.Millisecond // close to exit of 50 waitsy processes, p99
	targetWaitsyProcs = 50
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

func findTransition(ts []Transition, name string) (Transition, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return Transition{}, false
}

// transitionOps maps a transition to the timed operation whose batchy CPU and Redis µs per request
// it is given (the open alone, or the pair it is part of: a pair's figure is the mean of its two
// requests; the calibration's split of a pair is one request alone, not a hot figure, and is not
// used to split it).
var transitionOps = []struct{ tr, op string }{
	{trOpenOpen, opOpen}, {trOpenClose, opPair}, {trClose, opPair}, {trFail, opFail},
}

// checkBareAccounting checks the calibration's accounting on the bare EVAL: 3 calls (HGETALL and 2
// HSET) in 1 EVALSHA; it returns a warning if not.
func checkBareAccounting(ts []Transition, monitored bool) string {
	t, ok := findTransition(ts, trBare)
	if !ok {
		return ""
	}
	near := func(x, want float64) bool { return x > want-0.05 && x < want+0.05 }
	ok = t.CallsMedian == 3 && near(t.Calls, 3) && near(t.ByCommand["hgetall"], 1) && near(t.ByCommand["hset"], 2) && near(t.ByCommand["evalsha"], 1)
	if monitored {
		ok = ok && near(t.RoundTrips, 1) && near(t.Direct["evalsha"], 1)
	}
	if ok {
		return ""
	}
	return fmt.Sprintf("the calibration's accounting does not find the bare EVAL's 3 calls in 1 round trip (%s calls, %s round trips: %s): its per-transition figures are suspect",
		num(t.Calls), num(t.RoundTrips), commandsCell(t))
}

// usecCell lists batchy's CPU per request of op (original routes) at every concurrency, and the worst.
func usecCells(rep *Report, op string) (string, float64, bool) {
	var cells []string
	worst, any := 0.0, false
	for _, c := range rep.Config.conc {
		if r, ok := find(rep.HTTP, "http-redis/original", op, c); ok && r.ServerUsec > 0 {
			cells = append(cells, fmt.Sprintf("c%d %.1f", c, r.ServerUsec))
			worst, any = max(worst, r.ServerUsec), true
		}
	}
	return strings.Join(cells, ", ") + " µs", worst, any
}

// storeOp is the store phase's operation of an HTTP operation.
func storeOp(op string) string {
	switch op {
	case opPair:
		return opStorePair
	case opFail:
		return opStoreFail
	}
	return opStoreOpen
}

// floorCells is the floor server's CPU per request at each concurrency: the same open's HTTP and
// Redis round trip with batchy out of the path (bench/floor).
func floorCells(rep *Report) (string, bool) {
	var cells []string
	for _, c := range rep.Config.conc {
		if r, ok := find(rep.Floor, "floor", opOpen, c); ok && r.ServerUsec > 0 {
			cells = append(cells, fmt.Sprintf("c%d %.1f", c, r.ServerUsec))
		}
	}
	return strings.Join(cells, ", ") + " µs", len(cells) > 0
}

// transitionOp is the timed operation of a transition (see transitionOps).
func transitionOp(tr string) string {
	for _, to := range transitionOps {
		if to.tr == tr {
			return to.op
		}
	}
	return ""
}

// hotRedis is the timed phase at targetConc whose Redis figures per request a transition (or the
// bare EVAL) is given: original routes.
func hotRedis(rep *Report, tr string) (Result, bool) {
	var (
		r  Result
		ok bool
	)
	if tr == trBare {
		r, ok = find(rep.Bare, "bare-eval", opBare, targetConc)
	} else {
		r, ok = find(rep.HTTP, "http-redis/original", transitionOp(tr), targetConc)
	}
	return r, ok && r.RedisMeasured
}

// hotCell is a calibration row's hot Redis µs (its timed phase at targetConc).
func hotCell(rep *Report, t Transition) string {
	r, ok := hotRedis(rep, t.Name)
	if !ok {
		return "-"
	}
	if len(r.Parts) > 0 {
		return redisUsecCell(r) + " (" + r.Op + ", per request)"
	}
	return redisUsecCell(r)
}

// redisFigure is a hot Redis µs figure beside the bare EVAL's at the same concurrency, and the
// redis-server CPU per request beside the bare and no-op EVALs'.
func redisFigure(rep *Report, r Result) string {
	fig := redisUsecCell(r) + " µs"
	bare, okB := find(rep.Bare, "bare-eval", opBare, r.Conc)
	noop, okN := find(rep.Bare, "noop-eval", opNoop, r.Conc)
	if okB && bare.RedisMeasured {
		fig += fmt.Sprintf(" (bare EVAL %.1f µs)", bare.RedisUsec)
	}
	fig += fmt.Sprintf("; redis-server CPU %.1f µs/req", r.RedisProcUsec)
	var ref []string
	if okB && bare.RedisMeasured {
		ref = append(ref, fmt.Sprintf("bare EVAL %.1f", bare.RedisProcUsec))
	}
	if okN && noop.RedisMeasured {
		ref = append(ref, fmt.Sprintf("no-op EVAL %.1f", noop.RedisProcUsec))
	}
	if len(ref) > 0 {
		fig += " (" + strings.Join(ref, ", ") + ")"
	}
	return fig
}

func checks(rep *Report) []Check {
	var out []Check
	for _, to := range transitionOps {
		t, ok := findTransition(rep.Transitions, to.tr)
		what := to.tr
		if ok {
			what = fmt.Sprintf("%s (`%s`)", to.tr, t.Request)
		}
		calls := Check{Target: fmt.Sprintf("%s: ≤ %d Redis calls per request", what, targetCalls)}
		so := storeOp(to.op)
		phase := fmt.Sprintf("the store's %s phase at c%d, sent by the bench as the bare EVAL is", strings.TrimPrefix(so, "store "), targetConc)
		if to.op != opOpen {
			phase += ", per request: the pair's figure, halved"
		}
		usec := Check{Target: fmt.Sprintf("%s: ≤ %d µs of Redis CPU per request (Redis µs, %s)", what, targetRedisUsec, phase)}
		if ok {
			rt := "round trips not counted (--monitor 0)"
			if t.MonitorSamples > 0 {
				rt = fmt.Sprintf("%s round trip(s)", num(t.RoundTrips))
			}
			calls.Measured, calls.Met = true, t.CallsMax <= targetCalls
			calls.Figure = fmt.Sprintf("%s calls, %s", callsCell(t), rt)
		}
		if r, found := find(rep.Store, "store", so, targetConc); found && r.RedisMeasured {
			usec.Measured, usec.Met = true, !r.RedisUsecLow && r.RedisUsec <= targetRedisUsec
			usec.Figure = redisFigure(rep, r)
			if to.op == opFail {
				usec.Figure += " (the fail alone: the alerts it raises are counted in the HTTP phase)"
			}
		} else {
			usec.Figure = fmt.Sprintf("no %s phase at c%d", so, targetConc)
		}
		if h, hot := hotRedis(rep, to.tr); hot {
			usec.Figure += "; in the HTTP " + to.op + " phase at c" + fmt.Sprint(targetConc) + ": " + redisFigure(rep, h)
		}
		if ok {
			usec.Figure += fmt.Sprintf("; this request alone at c1: %.1f µs", t.RedisUsec)
		}
		cpu := Check{Target: fmt.Sprintf("%s: ≤ %d µs of batchy CPU per request (%s phases, original routes, every concurrency)", to.tr, targetBatchyUsec, to.op)}
		if cells, worst, ok2 := usecCells(rep, to.op); ok2 {
			cpu.Measured, cpu.Met = true, worst <= targetBatchyUsec
			cpu.Figure = cells
			if f, okF := floorCells(rep); okF {
				cpu.Figure += "; the floor server (one Redis round trip, no batchy): " + f
			}
			if ok {
				cpu.Figure += fmt.Sprintf("; this request alone at c1: %.1f µs", t.BatchyUsec)
			}
		}
		out = append(out, calls, usec, cpu)
	}
	bare, bareOK := find(rep.Bare, "bare-eval", opBare, targetConc)
	open, openOK := find(rep.HTTP, "http-redis/original", opOpen, targetConc)
	c := Check{Target: fmt.Sprintf("`GET /open_batch/<wf>` ≥ %.2f × the bare EVAL's rate at c%d (stretch %.2f)", targetOpenRatio, targetConc, targetOpenStretch)}
	if bareOK && openOK && bare.OpsPerSec() > 0 {
		ratio := open.OpsPerSec() / bare.OpsPerSec()
		c.Measured, c.Met = true, ratio >= targetOpenRatio
		stretch := "stretch not met"
		if ratio >= targetOpenStretch {
			stretch = "stretch met"
		}
		c.Figure = fmt.Sprintf("%.2f (%.0f / %.0f req/s); %s", ratio, open.OpsPerSec(), bare.OpsPerSec(), stretch)
		if f, ok := find(rep.Floor, "floor", opOpen, targetConc); ok {
			c.Figure += fmt.Sprintf("; the floor server (one Redis round trip, no batchy): %.2f (%.0f req/s)", f.OpsPerSec()/bare.OpsPerSec(), f.OpsPerSec())
		}
	}
	out = append(out, c)
	c = Check{Target: fmt.Sprintf("`GET /open_batch/<wf>` p99 ≤ %s at c%d", ms(targetP99), targetConc)}
	if openOK {
		c.Measured, c.Met = true, open.Lat.P99 <= targetP99
		c.Figure = fmt.Sprintf("%s (p50 %s)", ms(open.Lat.P99), ms(open.Lat.P50))
	}
	out = append(out, c)
	raw, rawOK := find(rep.Direct, "raw-lua", opPair, targetConc)
	for _, api := range []string{"original", "v1"} {
		if len(rep.Direct) == 0 {
			break // the direct part is not compiled in
		}
		c := Check{Target: fmt.Sprintf("open+close over HTTP (%s routes, Redis) ≥ %.2f × batchy's own scripts replayed (raw-lua, direct part; not the reference), at c%d", api, targetRatio, targetConc)}
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
				Met: w.RSS <= targetRSS, Figure: fmt.Sprintf("%s (%s idle)", mb(w.RSS), mb(w.RSSIdle))},
			rssFlat(w))
	}
	if w := rep.Waitsy; w != nil && w.Procs == targetWaitsyProcs {
		out = append(out, Check{Target: fmt.Sprintf("waitsy: close → process exit p99 ≤ %s with %d processes", ms(targetWaitsyExit), targetWaitsyProcs),
			Measured: true, Met: w.Lat.P99 <= targetWaitsyExit && len(w.Errors) == 0,
			Figure: fmt.Sprintf("%s (p50 %s, max %s, %d errors)%s", ms(w.Lat.P99), ms(w.Lat.P50), ms(w.Lat.Max), len(w.Errors), waitsyRef(rep))})
	}
	out = append(out, embeddedChecks(rep)...)
	return append(out, scaleChecks(rep)...)
}

// rssFlat checks that batchy's RSS with the waits held stays within ±5 % of its mean over the
// measured rounds (the warm-up round left out).
func rssFlat(w WakeResult) Check {
	c := Check{Target: fmt.Sprintf("batchy RSS with %d waits flat (±%.0f %%) over the %d rounds", w.Waits, targetRSSFlat*100, w.Rounds)}
	if len(w.RSSRounds) < 2 {
		return c
	}
	rounds := w.RSSRounds[1:]
	var sum int64
	for _, v := range rounds {
		sum += v
	}
	mean := float64(sum) / float64(len(rounds))
	lo, hi := slices.Min(rounds), slices.Max(rounds)
	dev := max(float64(hi)-mean, mean-float64(lo)) / mean
	c.Measured, c.Met = true, dev <= targetRSSFlat
	c.Figure = fmt.Sprintf("±%.1f %% (%s to %s, mean %.1f MB)", dev*100, mb(lo), mb(hi), mean/(1<<20))
	return c
}

// waitsyRef is the waitsy target's reference figure, if measured.
func waitsyRef(rep *Report) string {
	f := rep.WaitsyFloor
	if f == nil {
		return ""
	}
	return fmt.Sprintf("; the same processes against the bench's own server, no batchy: p99 %s (p50 %s)", ms(f.Lat.P99), ms(f.Lat.P50))
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

// endCell is a pair's second request's latency (close or fail).
func endCell(r Result) string {
	if _, ok := r.Parts["close"]; ok {
		return partCell(r, "close")
	}
	return partCell(r, "fail")
}

func usecCell(r Result) string {
	if r.ServerUsec == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", r.ServerUsec)
}

// redisUsecCell is a timed phase's Redis µs per request ("≥" when only the script runners could be
// counted).
func redisUsecCell(r Result) string {
	if !r.RedisMeasured {
		return "-"
	}
	if r.RedisUsecLow {
		return fmt.Sprintf("≥ %.1f", r.RedisUsec)
	}
	return fmt.Sprintf("%.1f", r.RedisUsec)
}

// redisProcCell is a timed phase's redis-server CPU per request.
func redisProcCell(r Result) string {
	if !r.RedisMeasured {
		return "-"
	}
	return fmt.Sprintf("%.1f", r.RedisProcUsec)
}

func callsCell(t Transition) string {
	if t.CallsMin == t.CallsMax {
		return num(t.Calls)
	}
	return fmt.Sprintf("%s (%d-%d, median %d)", num(t.Calls), t.CallsMin, t.CallsMax, t.CallsMedian)
}

func roundTripsCell(t Transition) string {
	if t.MonitorSamples == 0 {
		return "-"
	}
	return num(t.RoundTrips)
}

func batchyCell(t Transition) string {
	if t.Name == trBare {
		return "-"
	}
	return fmt.Sprintf("%.1f", t.BatchyUsec)
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
	if len(rep.Transitions) > 0 {
		fmt.Fprintf(tw, "\ntransition\trequest\tRedis calls\tround trips\tRedis µs (c%d phase)\tRedis µs (alone, c1)\tbatchy µs (alone, c1)\tcommands per request\n", targetConc)
		for _, t := range rep.Transitions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\n", t.Name, t.Request, callsCell(t), roundTripsCell(t), hotCell(rep, t), t.RedisUsec, batchyCell(t), commandsCell(t))
		}
		tw.Flush()
	}
	fmt.Fprintln(tw, "\ntarget\top\tc\tops/s\tp50\tp99\topen p50/p99\tclose|fail p50/p99\tbatchy µs/req\tredis µs/req\tredis CPU µs/req\tbatchy CPU\tredis CPU\tbench CPU\terrors")
	for _, rs := range [][]Result{rep.Bare, rep.Floor, rep.Store, rep.HTTP, rep.Direct} {
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Target, r.Op, r.Conc, opsCell(r), ms(r.Lat.P50), ms(r.Lat.P99),
				partCell(r, "open"), endCell(r), usecCell(r), redisUsecCell(r), redisProcCell(r), cores(r.ServerCPU), cores(r.RedisCPU), cores(r.ClientCPU), errCell(r))
		}
	}
	tw.Flush()
	fmt.Fprintln(tw, "\nwaits\trounds\twake-up p50\tp99\tmax\tclose req p50/max\tbatchy CPU/round\twaiters CPU/round\tbatchy RSS idle\twith waits\terrors")
	for _, r := range rep.Wake {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s / %s\t%s\t%s\t%s\t%s\t%d\n", r.Waits, r.Rounds, ms(r.Lat.P50), ms(r.Lat.P99), ms(r.Lat.Max),
			ms(r.Close.P50), ms(r.Close.Max), cpuCell(r.ServerCPU, r.Rounds), cpuCell(r.WaitersCPU, r.Rounds), mb(r.RSSIdle), mb(r.RSS), len(r.Errors))
	}
	for _, r := range rep.Wake {
		var cells []string
		for _, v := range r.RSSRounds {
			cells = append(cells, mb(v))
		}
		fmt.Fprintf(tw, "RSS with %d waits, round by round: %s\n", r.Waits, strings.Join(cells, ", "))
	}
	if w := rep.Waitsy; w != nil {
		fmt.Fprintln(tw, "\nwaitsy procs\trounds\tclose→exit p50\tp99\tmax\tclose req p50/max\terrors")
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s / %s\t%d\n", w.Procs, w.Rounds, ms(w.Lat.P50), ms(w.Lat.P99), ms(w.Lat.Max), ms(w.Close.P50), ms(w.Close.Max), len(w.Errors))
		if f := rep.WaitsyFloor; f != nil {
			fmt.Fprintf(tw, "%d (reference)\t%d\t%s\t%s\t%s\t-\t%d\n", f.Procs, f.Rounds, ms(f.Lat.P50), ms(f.Lat.P99), ms(f.Lat.Max), len(f.Errors))
		}
	}
	tw.Flush()
	if len(rep.Scale) > 0 {
		fmt.Fprintln(tw, "\nworkflows\tload\tidle Redis cmds/s\tGET / p50\tmax\t/v1/workflows p50\tmax\tfire lag\tfires\tRSS")
		for _, r := range rep.Scale {
			fmt.Fprintf(tw, "%d\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Workflows, r.LoadTook.Round(time.Millisecond), r.IdleCmds,
				ms(r.Dashboard[0]), ms(r.Dashboard[1]), ms(r.List[0]), ms(r.List[1]), ms(r.FireLag), r.Fires, mb(r.RSS))
		}
		tw.Flush()
	}
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
	p("(`--scheduler off --log-level warn`), loads a workflow of 3 jobs, and measures everything below in one run,")
	p("through HTTP, `INFO commandstats` (and `MONITOR`) and `/proc` only: nothing depends on batchy's scripts or keys.")
	p("The order: the wake-ups first, on the freshly started server; then the Redis memory; then the calibration")
	p("(each transition request by request, not timed); then, at each concurrency in turn, a short no-op EVAL")
	p("(the floor of a round trip), the reference (a bare 3-call EVAL sent by the bench) immediately followed by")
	p("HTTP, so that the ratios compare neighbouring measurements; last, the embedded store. Every timed phase")
	p("against Redis also reads `INFO commandstats` and redis-server's CPU time before and after: what Redis did")
	p("per request under load (*redis µs/req*, *redis CPU µs/req*), the figures the Redis targets use.")
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
	p("## Per transition: Redis calls, Redis CPU, batchy CPU")
	p("")
	p("Calibration, not timed: %d requests of each kind, one at a time (c1) on `wf-1`, each after its setup", rep.Config.calib)
	p("request (an open before `open after open`, `close after open` and `fail after open`, a close before `open after close`).")
	p("Around each measured request the bench reads `INFO commandstats` before, and after it once Redis has seen no")
	p("command for %s (so that work batchy does after answering, such as an alert after a fail, counts too).", settleGap)
	p("*Redis calls*: the sum of `calls` of every command but the script runners (`evalsha`, `eval`, `fcall`) and")
	p("connection/admin commands (`info`, `ping`, `client`, `hello`, `script`, `multi`/`exec`, ...): the commands the")
	p("scripts ran (Redis 7 counts them under their own names) plus the ones batchy sent directly. *Redis µs*: the `usec`")
	p("of the top-level commands only (a runner's usec includes its script's calls, which are not counted again), plus")
	p("the direct commands'. *Round trips*: from a second pass of %d requests of each kind with `MONITOR` on (its cost", rep.Config.monitor)
	p("does not reach the figures above), the commands batchy's own connections sent (a pipeline's commands count")
	p("one each), told apart from those run inside scripts (`[0 lua]`). *Redis µs (alone, c1)* and *batchy µs (alone,")
	p("c1)*: one request on an otherwise idle server (batchy's CPU over the same window, `/proc/<pid>/task/*/schedstat`),")
	p("which cold caches, CPU frequency and vCPU steal inflate several times on this machine; the targets use the timed")
	p("phases' figures instead. *Redis µs (c%d phase)* is the same accounting over a whole timed phase under load", targetConc)
	p("(original routes; see *Redis per request in the timed phases* below): the `open` phase for `open after open`, the")
	p("`open+close` phase for `open after close` and `close after open` and the `open+fail` phase for `fail after open`,")
	p("a pair's figure being its two requests' cost halved (this table's split of a pair is of lone requests, and is")
	p("not used to split it). The bare EVAL row checks the accounting: it must show 3 calls (`hgetall`, 2")
	p("`hset`) in 1 round trip (`evalsha`). Averages per request; a range when the requests differed.")
	p("")
	p("| transition | request | Redis calls | round trips | Redis µs (c%d phase) | Redis µs (alone, c1) | batchy µs (alone, c1) | commands per request |", targetConc)
	p("|---|---|---|---|---|---|---|---|")
	for _, t := range rep.Transitions {
		p("| %s | `%s` | %s | %s | %s | %.1f | %s | %s |", t.Name, t.Request, callsCell(t), roundTripsCell(t), hotCell(rep, t), t.RedisUsec, batchyCell(t), commandsCell(t))
	}
	p("")
	p("## The reference: the bare EVAL and the open")
	p("")
	p("The bare EVAL is the Redis work an open needs, as one Lua script (below) sent with `EVALSHA` by the bench")
	p("itself (go-redis, a pool as large as the concurrency) to the same redis-server, on keys `bare:{wf-N}:state`")
	p("(10 fields preloaded) and `bare:{wf-N}:history` (batch ids cycle through %d, so it stays small). At each", bareHistoryIDs)
	p("concurrency it runs immediately before `GET /open_batch/<wf>` (each request re-opens the open batch).")
	p("Before it, a shorter phase sends a script that does nothing (`%s`, `EVALSHA`, no key) the same way: its", noopScript)
	p("redis-server CPU per request is the floor of a round trip (reading, parsing and answering a command, the")
	p("loopback TCP), for a reader to subtract from the other phases' *redis CPU µs/req*.")
	p("")
	p("```lua")
	b.WriteString(bareScript)
	p("```")
	p("")
	p("| c | bare EVAL req/s | p50 / p99 | `GET /open_batch` req/s | p50 / p99 | ratio | batchy µs per open | redis CPU (bare / open) |")
	p("|---|---|---|---|---|---|---|---|")
	for _, c := range rep.Config.conc {
		bare, ok1 := find(rep.Bare, "bare-eval", opBare, c)
		open, ok2 := find(rep.HTTP, "http-redis/original", opOpen, c)
		if !ok1 || !ok2 || bare.OpsPerSec() == 0 {
			continue
		}
		p("| %d | %.0f | %s / %s | %.0f | %s / %s | %.2f | %s | %s / %s |", c, bare.OpsPerSec(), ms(bare.Lat.P50), ms(bare.Lat.P99),
			open.OpsPerSec(), ms(open.Lat.P50), ms(open.Lat.P99), open.OpsPerSec()/bare.OpsPerSec(), usecCell(open), cores(bare.RedisCPU), cores(open.RedisCPU))
	}
	p("")
	p("## batchy CPU per request")
	p("")
	p("batchy's user+system CPU time (`/proc/<pid>/stat`, 10 ms ticks) over each timed phase, warm-up included,")
	p("divided by every request sent in it (a pair is two requests). µs per request:")
	p("")
	hdr, sep := "| routes | op |", "|---|---|"
	for _, c := range rep.Config.conc {
		hdr += fmt.Sprintf(" c%d |", c)
		sep += "---|"
	}
	p("%s", hdr)
	p("%s", sep)
	for _, api := range []string{"original", "v1"} {
		for _, o := range []string{opOpen, opPair, opFail, opState} {
			row := fmt.Sprintf("| %s | %s |", api, o)
			any := false
			for _, c := range rep.Config.conc {
				r, ok := find(rep.HTTP, "http-redis/"+api, o, c)
				if ok {
					any = true
					row += " " + usecCell(r) + " |"
				} else {
					row += " - |"
				}
			}
			if any {
				p("%s", row)
			}
		}
	}
	if len(rep.Floor) > 0 {
		row := "| floor server (no batchy) | open |"
		for _, c := range rep.Config.conc {
			if r, ok := find(rep.Floor, "floor", opOpen, c); ok {
				row += " " + usecCell(r) + " |"
			} else {
				row += " - |"
			}
		}
		p("%s", row)
		p("")
		p("The floor server (`bench/floor`) answers the same `GET /open_batch/<wf>` from the same load generator")
		p("with one EVALSHA of the bare script and the hash it read as JSON, on gin without middleware: what any")
		p("HTTP server doing one Redis round trip costs on this machine, batchy's work aside.")
	}
	p("")
	p("## Redis per request in the timed phases")
	p("")
	p("Around each timed phase (warm-up included, like batchy's CPU above) the bench reads `INFO commandstats` and")
	p("redis-server's user+system CPU time (`/proc/<pid>/stat`, 10 ms ticks), the second reading once Redis has seen")
	p("no command for %s; both are divided by every request sent in the phase (a pair is two requests).", settleGap)
	p("*Redis µs*: the calibration's accounting, `usec` of the top-level commands only (`evalsha`/`eval`/`fcall`, which")
	p("include their scripts' calls, plus the commands sent directly: how many per operation comes from the")
	p("calibration's `MONITOR` pass; the open of an `open+fail` loop, after a fail, is counted as `open after close`;")
	p("`get_status` runs no script, so each of its data commands was sent directly). *Redis CPU*: the whole process,")
	p("so also reading, parsing and answering each command and the loopback TCP; the no-op EVAL is that floor.")
	p("Redis times a command's `usec` with its clock, not as CPU time: when the cores are saturated, a command")
	p("preempted midway counts the wait too, and *Redis µs* can then exceed *Redis CPU*.")
	p("µs per request, *Redis µs / Redis CPU*:")
	p("")
	p("%s", hdr)
	p("%s", sep)
	redisRow := func(r Result, ok bool) string {
		if !ok || !r.RedisMeasured {
			return " - |"
		}
		return fmt.Sprintf(" %s / %s |", redisUsecCell(r), redisProcCell(r))
	}
	for _, ref := range []struct{ target, op string }{{"noop-eval", opNoop}, {"bare-eval", opBare}} {
		row := fmt.Sprintf("| bench | %s |", ref.op)
		any := false
		for _, c := range rep.Config.conc {
			r, ok := find(rep.Bare, ref.target, ref.op, c)
			any = any || ok
			row += redisRow(r, ok)
		}
		if any {
			p("%s", row)
		}
	}
	for _, api := range []string{"original", "v1"} {
		for _, o := range []string{opOpen, opPair, opFail, opState} {
			row := fmt.Sprintf("| %s | %s |", api, o)
			any := false
			for _, c := range rep.Config.conc {
				r, ok := find(rep.HTTP, "http-redis/"+api, o, c)
				any = any || ok
				row += redisRow(r, ok)
			}
			if any {
				p("%s", row)
			}
		}
	}
	p("")
	p("## HTTP: throughput and latency")
	p("")
	p("Each of *c* clients loops over one operation on its own workflow (`wf-1` ... `wf-64`, each loaded")
	p("with `/load_cfg`), so pairs never meet. `open` is the open route again and again (each re-opens the open")
	p("batch); `open+close` and `open+fail` are pairs: their ops/s are pairs per second (two requests each), p50")
	p("and p99 are of the whole pair, and the open and close|fail columns are each request's own p50 / p99.")
	p("`original` is `GET /open_batch/<wf>`, `GET /close_batch/<wf>`, `GET /fail_batch/<wf>`, `GET /get_status/<wf>`;")
	p("`v1` is `POST /v1/workflows/<wf>/open`, `POST .../close` and `POST .../fail` (strict) and `GET /v1/workflows/<wf>`.")
	p("Every change also writes its events to the workflow's Redis stream, as always. `bare-eval` is the reference")
	p("above. `embedded` is `batchy serve` without `--redis-url`, saving its data file after every change (open+close")
	p("and get_status only). *batchy µs/req* is the batchy CPU table's figure, *redis µs/req* and *redis CPU µs/req*")
	p("the Redis table's; `noop-eval` is the no-op EVAL.")
	p("")
	resultTable(p, slices.Concat(rep.Bare, rep.Floor, rep.Store, rep.HTTP))
	p("")
	if len(rep.Direct) > 0 {
		p("## Extra: the store without HTTP, and batchy's own scripts")
		p("")
		p("Not the reference (the bare EVAL is): this compares batchy with its own scripts, and is the one part that")
		p("uses batchy's internals (`bench/direct.go`, `--parts direct`; delete the file when it no longer compiles).")
		p("`store`: the same operations through `internal/rdb.Store` called directly with go-redis (its Go work:")
		p("arguments, reply parsing; no HTTP, and no other sink than the stream the scripts write). `raw-lua`: the")
		p("store's own scripts sent with `EVALSHA` alone (the bench records the store's calls and replays them), so")
		p("only the Redis round trip and the script's run in Redis, events included. Both on the same redis-server")
		p("under other key prefixes, with a pool as large as the concurrency.")
		p("")
		resultTable(p, rep.Direct)
		p("")
		p("Ratios of open+close pairs per second to batchy's own scripts replayed (raw-lua):")
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
	}
	p("## waitsy: wake-up latency")
	p("")
	p("*n* long polls (`GET /v1/wait?target=wake`) are held by a separate process (the bench re-executing")
	p("itself as `bench waiters`), each on a connection of its own, opened for the round (batchy closes a")
	p("parked wait's connection after its answer). The process is kept cheap, as it shares the 2 cores: raw")
	p("sockets sent one pre-built request, read by one epoll loop (`BENCH_WAITERS_HTTP=1` uses `client.Wait`")
	p("instead). Once the server counts all *n* (its `batchy_active_waits` metric), the bench closes the")
	p("batch with `GET /close_batch/wake`; a wait's latency runs from just before that request to the")
	p("moment its whole answer (200, `ready`) is read. One warm-up round, then %d rounds per size: every wait of", rep.Config.wakeRounds)
	p("every round is in the percentiles. RSS is batchy's `VmRSS` (from `/proc/<pid>/status`) with the waits")
	p("registered, the largest over the rounds; idle is before the first round of that size.")
	p("")
	p("The reference, measured in the same rounds: the close request's own time (p50 / max), which is")
	p("what the machine's load did to one request then. *batchy µs per wait*: its CPU per wake-up over the waits.")
	p("")
	p("| waits | samples | p50 | p99 | max | close request p50 / max | batchy CPU per wake | batchy µs per wait | waiters CPU per wake | batchy RSS idle | with waits | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Wake {
		p("| %d | %d | %s | %s | %s | %s / %s | %s | %.1f | %s | %s | %s | %d |", r.Waits, r.Lat.N, ms(r.Lat.P50), ms(r.Lat.P99), ms(r.Lat.Max),
			ms(r.Close.P50), ms(r.Close.Max), cpuCell(r.ServerCPU, r.Rounds), float64(r.ServerCPU)/float64(time.Microsecond)/float64(r.Waits),
			cpuCell(r.WaitersCPU, r.Rounds), mb(r.RSSIdle), mb(r.RSS), len(r.Errors))
	}
	p("")
	if len(rep.Wake) > 0 {
		p("RSS with the waits registered, round by round (the warm-up first):")
		p("")
		for _, r := range rep.Wake {
			var cells []string
			for _, v := range r.RSSRounds {
				cells = append(cells, mb(v))
			}
			p("- %d waits: %s", r.Waits, strings.Join(cells, ", "))
		}
		p("")
	}
	if w := rep.Waitsy; w != nil {
		p("### waitsy processes: from the close to their exit")
		p("")
		p("waitsy is built once; each round starts %d `waitsy --since <now> wake` processes, waits until the", w.Procs)
		p("server counts their %d waits, then closes the batch. A process's time runs from just before the", w.Procs)
		p("close request to its exit as the bench (its parent) sees it. One warm-up round, then %d rounds.", w.Rounds)
		p("The reference, right after: the same processes against a server of the bench's own (no batchy,")
		p("no Redis) that holds their waits and writes them all a prepared answer at once: what waking,")
		p("reading the answer and exiting costs the processes themselves on this machine.")
		p("")
		p("| processes | samples | p50 | p99 | max | close request p50 / max | errors |")
		p("|---|---|---|---|---|---|---|")
		p("| %d | %d | %s | %s | %s | %s / %s | %d |", w.Procs, w.Lat.N, ms(w.Lat.P50), ms(w.Lat.P99), ms(w.Lat.Max), ms(w.Close.P50), ms(w.Close.Max), len(w.Errors))
		if f := rep.WaitsyFloor; f != nil {
			p("| %d, the reference | %d | %s | %s | %s | - | %d |", f.Procs, f.Lat.N, ms(f.Lat.P50), ms(f.Lat.P99), ms(f.Lat.Max), len(f.Errors))
		}
		p("")
	}
	if len(rep.Scale) > 0 {
		p("## Scale: many workflows loaded")
		p("")
		p("For each size, a Redis and a batchy of their own (`--scheduler on`) with that many generated")
		p("workflows of 2 jobs (`--workflows`; a quarter with a yearly `schedule:`, a quarter with `after:` on")
		p("the previous one) and `tick`, which runs `true` every 10 s. Idle: the Redis commands of")
		p("everything (INFO commandstats, the bench's own INFO left out) over the window, once the loads'")
		p("aftermath settled; the every-10 s fires fall in it. Then 20 `GET /` and 20")
		p("`GET /v1/workflows?limit=50`, one at a time on loopback (the time to the whole answer, so server")
		p("time plus a loopback round trip). Fire lag: the latest start of `tick`'s runs after their fire time.")
		p("")
		p("| workflows | load (16 at a time) | idle window | idle Redis commands/s | busiest | GET / p50 | max | GET /v1/workflows?limit=50 p50 | max | fire lag (fires) | batchy RSS |")
		p("|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range rep.Scale {
			p("| %d | %s | %s | %.1f | %s | %s | %s | %s | %s | %s (%d) | %s |", r.Workflows, r.LoadTook.Round(time.Millisecond), r.IdleWindow,
				r.IdleCmds, r.IdleTop, ms(r.Dashboard[0]), ms(r.Dashboard[1]), ms(r.List[0]), ms(r.List[1]), ms(r.FireLag), r.Fires, mb(r.RSS))
		}
		p("")
	}
	mem := rep.Mem
	p("## Redis memory per workflow")
	p("")
	p("One workflow of 3 jobs after %d open+close batches over HTTP (history keeps the last 1,000, `--history`):", mem.Batches)
	p("")
	p("| | |")
	p("|---|---|")
	p("| `INFO memory` used_memory, after minus before | %s |", kb(mem.UsedDelta))
	p("| `MEMORY USAGE` (SAMPLES 0) of the keys that appeared meanwhile, streams aside (state, history) | %s (%.0f bytes per batch) |", kb(mem.StateBytes), float64(mem.StateBytes)/float64(max(mem.Batches, 1)))
	p("| `MEMORY USAGE` of the streams among them (events) | %s (%d events: an open and a close per job and batch) |", kb(mem.EventsBytes), mem.Events)
	p("| keys | %d |", mem.Keys)
	p("")
	p("The stream keeps up to `--events-keep` (100,000) events per workflow, about %d batches of 3 jobs: a", 100000/6)
	p("workflow's memory is dominated by its events long after its history stopped growing.")
	p("")
	b.WriteString(analysis)
	return b.String()
}

func resultTable(p func(string, ...any), rs []Result) {
	p("| target | op | c | ops/s | p50 | p99 | open p50 / p99 | close\\|fail p50 / p99 | batchy µs/req | redis µs/req | redis CPU µs/req | batchy CPU | redis CPU | bench CPU | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", r.Target, r.Op, r.Conc, opsCell(r), ms(r.Lat.P50), ms(r.Lat.P99),
			partCell(r, "open"), endCell(r), usecCell(r), redisUsecCell(r), redisProcCell(r), cores(r.ServerCPU), cores(r.RedisCPU), cores(r.ClientCPU), strings.ReplaceAll(errCell(r), "|", "\\|"))
	}
}
