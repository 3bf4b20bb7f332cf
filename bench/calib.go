package main

// The calibration phase (not timed, at c1): what one request of each transition costs Redis and
// batchy, request by request, from INFO commandstats and /proc, plus a short pass with MONITOR that
// tells the commands batchy sent itself (round trips) from those its scripts ran. Nothing here
// knows batchy's scripts or keys.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Transition is the calibration of one kind of request.
type Transition struct {
	Name    string // "open after open", ...
	Request string // "GET /open_batch/wf-1", ...
	Samples int
	// Per request, averaged over Samples: Calls is the sum of INFO commandstats calls of every
	// command but the script runners and connection/admin commands (metaCommands); RedisUsec the
	// usec of the top-level commands only (script runners, which include their scripts' calls, plus
	// direct commands); BatchyUsec batchy's CPU (/proc/<pid>/task/*/schedstat).
	Calls, RedisUsec, BatchyUsec    float64
	CallsMin, CallsMax, CallsMedian int64
	// ByCommand: calls per request of each command (runners and meta included), from commandstats.
	ByCommand map[string]float64
	// From the MONITOR pass (MonitorSamples requests): per request, the commands batchy sent (round
	// trips; a pipeline's commands count one each) and, of each command, how many were sent directly.
	MonitorSamples int
	RoundTrips     float64
	Direct         map[string]float64
	InScripts      float64
}

// scriptRunners are the commands whose usec includes the commands their scripts ran.
// (EXEC is not one: MONITOR shows a transaction's commands as sent by the client, and they are
// counted as such.)
var scriptRunners = []string{"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}

// isMeta: the command is not itself work on data: a script runner, a transaction's frame, or a
// connection, admin or introspection command (the bench's own INFO and ECHO included).
func isMeta(name string) bool {
	if slices.Contains(scriptRunners, name) {
		return true
	}
	base, _, _ := strings.Cut(name, "|")
	switch base {
	case "script", "function", "info", "ping", "client", "hello", "echo", "select", "auth", "command",
		"config", "monitor", "multi", "exec", "discard", "quit", "readonly", "readwrite", "cluster", "memory", "latency", "slowlog":
		return true
	}
	return false
}

// diffStats is s1 - s0 for every command whose calls changed, the bench's own INFO aside.
func diffStats(s0, s1 map[string]cmdStat) map[string]cmdStat {
	out := map[string]cmdStat{}
	for name, a := range s1 {
		d := a.Calls - s0[name].Calls
		if d == 0 || name == "info" {
			continue
		}
		out[name] = cmdStat{Calls: d, Usec: a.Usec - s0[name].Usec}
	}
	return out
}

// topLevelUsec is the Redis µs of a commandstats difference: the usec of the top-level commands
// only. A script runner counts whole (its usec includes the calls its script ran, which are not
// counted again); any other command counts for the share of its calls that clients sent directly:
// direct[name] of them (from MONITOR), at most all. A connection or admin command a client sent
// (SCRIPT LOAD, ...) counts whole, but EXEC, whose commands count themselves.
func topLevelUsec(delta map[string]cmdStat, direct map[string]float64) float64 {
	var us float64
	for name, d := range delta {
		switch {
		case slices.Contains(scriptRunners, name):
			us += float64(d.Usec)
		case direct[name] > 0 && !isMeta(name) && d.Calls > 0:
			us += float64(d.Usec) * min(1, direct[name]/float64(d.Calls))
		case direct[name] > 0 && name != "exec":
			us += float64(d.Usec)
		}
	}
	return us
}

// calibKind is one transition: setup requests, then the measured one.
type calibKind struct {
	name    string
	setup   []route
	measure route
	bare    bool // the bare EVAL instead of an HTTP request
}

func calibKinds(api apiRoutes) []calibKind {
	return []calibKind{
		{name: "open after open", setup: []route{api.open}, measure: api.open},
		{name: "open after close", setup: []route{api.close}, measure: api.open},
		{name: "close after open", setup: []route{api.open}, measure: api.close},
		{name: "fail after open", setup: []route{api.open}, measure: api.fail},
	}
}

// Transition names the targets refer to.
const (
	trOpenOpen  = "open after open"
	trOpenClose = "open after close"
	trClose     = "close after open"
	trFail      = "fail after open"
	trBare      = "bare EVAL"
)

// calibrate measures each kind n times (commandstats) and m times (MONITOR) on workflow wf.
func calibrate(ctx context.Context, hc *http.Client, base, wf string, ref *redisRef, redisURL string, bare *bareRef, batchyPID, n, m int) ([]Transition, error) {
	kinds := calibKinds(originalRoutes)
	if bare != nil {
		kinds = append(kinds, calibKind{name: trBare, bare: true})
	}
	var out []Transition
	for _, k := range kinds {
		t := Transition{Name: k.name, Samples: n, ByCommand: map[string]float64{}, Direct: map[string]float64{}}
		if k.bare {
			t.Request = "EVALSHA of the bare script, from the bench"
		} else {
			t.Request = k.measure.method + " " + k.measure.path(wf)
		}
		do1 := func(r route) error { return do(ctx, hc, r.method, base+r.path(wf)) }
		measured := func() error {
			if k.bare {
				return bare.call(ctx, 0)
			}
			return do1(k.measure)
		}
		setup := func() error {
			for _, r := range k.setup {
				if err := do1(r); err != nil {
					return err
				}
			}
			return nil
		}
		sum := map[string]cmdStat{} // commandstats differences summed over the n requests
		var perSample []int64
		t.CallsMin = -1
		for range n {
			if err := setup(); err != nil {
				return nil, fmt.Errorf("%s: %w", k.name, err)
			}
			s0, err := ref.commandStats(ctx)
			if err != nil {
				return nil, err
			}
			c0 := cpuNS(batchyPID)
			if err := measured(); err != nil {
				return nil, fmt.Errorf("%s: %w", k.name, err)
			}
			s1, err := settled(ctx, ref)
			if err != nil {
				return nil, err
			}
			c1 := cpuNS(batchyPID)
			if !k.bare {
				t.BatchyUsec += float64(c1-c0) / 1e3
			}
			var calls int64
			for name, d := range diffStats(s0, s1) {
				t.ByCommand[name] += float64(d.Calls)
				sum[name] = cmdStat{Calls: sum[name].Calls + d.Calls, Usec: sum[name].Usec + d.Usec}
				if !isMeta(name) {
					calls += d.Calls
				}
			}
			t.Calls += float64(calls)
			perSample = append(perSample, calls)
			if t.CallsMin < 0 || calls < t.CallsMin {
				t.CallsMin = calls
			}
			t.CallsMax = max(t.CallsMax, calls)
		}
		if m > 0 {
			mon, err := monitorPass(ctx, ref, redisURL, m, setup, measured)
			if err != nil {
				return nil, fmt.Errorf("%s: MONITOR: %w", k.name, err)
			}
			t.MonitorSamples = m
			for name, c := range mon.direct {
				t.Direct[name] = float64(c) / float64(m)
				t.RoundTrips += float64(c) / float64(m)
			}
			t.InScripts = float64(mon.inScripts) / float64(m)
		}
		// Redis µs: the runners' usec (their scripts' calls included), plus the share of every other
		// command that batchy sent directly (MONITOR's count over commandstats').
		direct := map[string]float64{}
		for name, d := range t.Direct {
			direct[name] = d * float64(n)
		}
		t.RedisUsec = topLevelUsec(sum, direct)
		slices.Sort(perSample)
		t.CallsMedian = perSample[len(perSample)/2]
		t.Calls /= float64(n)
		t.RedisUsec /= float64(n)
		t.BatchyUsec /= float64(n)
		for name := range t.ByCommand {
			t.ByCommand[name] /= float64(n)
		}
		out = append(out, t)
		time.Sleep(100 * time.Millisecond) // let anything the last request started end
	}
	return out, nil
}

// settleGap is how long Redis must see no command (but INFO) before a request's work counts as
// done: work batchy does after answering (an alert's SETNX and XADD after a fail, ...) is the
// request's too.
const settleGap = 3 * time.Millisecond

// settled reads INFO commandstats until two readings settleGap apart agree (but for INFO), at most
// 200 ms, and returns the last.
func settled(ctx context.Context, ref *redisRef) (map[string]cmdStat, error) {
	prev, err := ref.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		time.Sleep(settleGap)
		cur, err := ref.commandStats(ctx)
		if err != nil {
			return nil, err
		}
		if sameCalls(prev, cur) || time.Now().After(deadline) {
			return cur, nil
		}
		prev = cur
	}
}

func sameCalls(a, b map[string]cmdStat) bool {
	for name, s := range b {
		if name != "info" && a[name].Calls != s.Calls {
			return false
		}
	}
	return true
}

// monitorCount is what MONITOR showed over the pass's requests.
type monitorCount struct {
	direct    map[string]int // commands sent by a client (batchy), by name
	inScripts int            // commands run by scripts ("[0 lua]")
}

// monitorPass runs m requests with a MONITOR connection open. Each measured request is framed by
// two ECHO markers from the bench; the lines between them, but the bench's own, are the request's.
func monitorPass(ctx context.Context, ref *redisRef, redisURL string, m int, setup, measured func() error) (monitorCount, error) {
	mc := monitorCount{direct: map[string]int{}}
	u, err := url.Parse(redisURL)
	if err != nil {
		return mc, err
	}
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return mc, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		return mc, err
	}
	rd := bufio.NewReader(conn)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		return mc, fmt.Errorf("MONITOR answered %q, %v", line, err)
	}
	var (
		mu    sync.Mutex
		lines []string
		seen  = make(chan string, 16) // markers
	)
	go func() {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				close(seen)
				return
			}
			line = strings.TrimSpace(line)
			if i := strings.Index(line, `"echo" "batchy-bench-mark-`); i >= 0 {
				seen <- strings.Trim(line[i+len(`"echo" `):], `"`)
				continue
			}
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
		}
	}()
	mark := func(s string) error {
		if err := ref.echo(ctx, s); err != nil {
			return err
		}
		timeout := time.After(5 * time.Second)
		for {
			select {
			case got, ok := <-seen:
				if !ok {
					return fmt.Errorf("the MONITOR connection closed")
				}
				if got == s {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("marker %s not seen", s)
			}
		}
	}
	for i := range m {
		if err := setup(); err != nil {
			return mc, err
		}
		if err := mark(fmt.Sprintf("batchy-bench-mark-%d-a", i)); err != nil {
			return mc, err
		}
		mu.Lock()
		lines = nil
		mu.Unlock()
		if err := measured(); err != nil {
			return mc, err
		}
		if _, err := settled(ctx, ref); err != nil { // INFO is not shown by MONITOR
			return mc, err
		}
		if err := mark(fmt.Sprintf("batchy-bench-mark-%d-b", i)); err != nil {
			return mc, err
		}
		mu.Lock()
		got := lines
		lines = nil
		mu.Unlock()
		for _, l := range got {
			src, name, ok := parseMonitorLine(l)
			if !ok || name == "info" { // the bench's own INFO (settled)
				continue
			}
			if src == "lua" {
				mc.inScripts++
			} else {
				mc.direct[name]++
			}
		}
	}
	return mc, nil
}

// parseMonitorLine reads `+1700000000.123456 [0 127.0.0.1:5000] "evalsha" "..."`: the source
// ("lua" inside a script, else the client's address) and the command's name (with its subcommand
// for container commands, as INFO commandstats names it).
func parseMonitorLine(l string) (src, name string, ok bool) {
	i := strings.IndexByte(l, '[')
	j := strings.IndexByte(l, ']')
	if i < 0 || j < i {
		return "", "", false
	}
	f := strings.Fields(l[i+1 : j])
	if len(f) < 2 {
		return "", "", false
	}
	src = f[len(f)-1]
	args := strings.Fields(l[j+1:])
	if len(args) == 0 {
		return "", "", false
	}
	name = strings.ToLower(strings.Trim(args[0], `"`))
	switch name {
	case "script", "client", "config", "command", "function", "memory", "object", "xinfo", "cluster", "xgroup":
		if len(args) > 1 {
			name += "|" + strings.ToLower(strings.Trim(args[1], `"`))
		}
	}
	return src, name, true
}

// commandsCell lists a transition's commands per request: the ones batchy sent, then the ones its
// scripts ran (commandstats' count minus the direct ones).
func commandsCell(t Transition) string {
	type kv struct {
		name string
		n    float64
	}
	var direct, inner []kv
	for name, n := range t.ByCommand {
		d := t.Direct[name]
		if d > 0 {
			direct = append(direct, kv{name, d})
		}
		if rest := n - d; rest > 0.005 && !(t.MonitorSamples > 0 && isMeta(name)) {
			inner = append(inner, kv{name, rest})
		}
	}
	for name, d := range t.Direct {
		if _, ok := t.ByCommand[name]; !ok { // MONITOR saw it, commandstats did not (should not happen)
			direct = append(direct, kv{name, d})
		}
	}
	order := func(a, b kv) int {
		if a.n != b.n {
			if a.n > b.n {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	}
	slices.SortFunc(direct, order)
	slices.SortFunc(inner, order)
	f := func(xs []kv) string {
		var s []string
		for _, x := range xs {
			s = append(s, fmt.Sprintf("%s %s", x.name, num(x.n)))
		}
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	if t.MonitorSamples == 0 {
		return "all: " + f(append(direct, inner...))
	}
	return "sent: " + f(direct) + "; in scripts: " + f(inner)
}

// num prints a per-request count: whole numbers as such, else with two decimals.
func num(x float64) string {
	if r := float64(int64(x + 0.5)); x-r < 0.005 && r-x < 0.005 {
		return fmt.Sprintf("%d", int64(r))
	}
	return fmt.Sprintf("%.2f", x)
}
