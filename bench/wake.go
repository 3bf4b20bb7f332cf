package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchy/batchy/client"
	"github.com/batchy/batchy/internal/batch"
)

// The waiters subcommand holds the long polls of the wake-up measurement in a process of its own,
// so that 1,000 client goroutines do not share the bench's scheduler with the load generator. It
// reads commands on stdin and answers on stdout, one line each:
//
//	wait <n> <since, RFC 3339>   ->  sent            once the n requests are written
//	                             ->  done <json>     once all n returned: waitReport
//	quit
type waitReport struct {
	Ends   []int64  `json:"ends"` // wall clock (Unix ns) at which each wait returned "ready"
	Errors []string `json:"errors,omitempty"`
}

// waitersMain is the waiters subcommand.
func waitersMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bench waiters <batchy URL> <workflow>")
		return 2
	}
	base, wf := args[0], args[1]
	if path := os.Getenv("BENCH_WAITERS_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	hc := newHTTPClient(5000)
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "quit" {
			return 0
		}
		if f[0] != "wait" || len(f) != 3 {
			say("error unknown command %q", in.Text())
			return 2
		}
		n, _ := strconv.Atoi(f[1])
		since, err := time.Parse(time.RFC3339Nano, f[2])
		if err != nil || n < 1 {
			say("error bad wait command %q", in.Text())
			return 2
		}
		var rep waitReport
		if os.Getenv("BENCH_WAITERS_HTTP") != "" {
			rep = waitRound(hc, base, wf, n, since, func() { say("sent") })
		} else {
			rep = rawWaitRound(base, wf, n, since, func() { say("sent") })
		}
		data, _ := json.Marshal(rep)
		say("done %s", data)
	}
	return 0
}

// waitRound starts n waits on wf and returns when all have answered; sent runs once every
// request is written.
func waitRound(hc *http.Client, base, wf string, n int, since time.Time, sent func()) waitReport {
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		once    sync.Once
		ends    = make([]int64, n)
		errs    = make([]error, n)
	)
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		if written.Add(1) == int64(n) {
			once.Do(sent)
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tctx := httptrace.WithClientTrace(ctx, trace)
	for i := range n {
		wg.Go(func() {
			c := client.New(base, "")
			c.HTTP = hc
			res, err := c.Wait(tctx, client.WaitRequest{
				Targets:  []batch.Target{{Workflow: wf}},
				Since:    since,
				Timeout:  90 * time.Second,
				FailFast: true,
			})
			ends[i] = time.Now().UnixNano()
			switch {
			case err != nil:
				errs[i] = err
			case res.State != batch.Ready:
				errs[i] = fmt.Errorf("wait answered %q, want %q", res.State, batch.Ready)
			}
		})
	}
	wg.Wait()
	once.Do(sent) // should a request fail before it was written
	rep := waitReport{Ends: ends}
	for _, err := range errs {
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	return rep
}

// waiters is the bench's end of a waiters process.
type waiters struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startWaiters(base, wf string, prof *profiler) (*waiters, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "waiters", base, wf)
	cmd.Stderr = os.Stderr
	if prof != nil {
		cmd.Env = append(os.Environ(), "BENCH_WAITERS_CPUPROFILE="+filepath.Join(prof.dir, "waiters.pprof"))
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &waiters{cmd: cmd, in: in, out: sc}, nil
}

func (w *waiters) line() (string, error) {
	if !w.out.Scan() {
		if err := w.out.Err(); err != nil {
			return "", err
		}
		return "", errors.New("the waiters process ended")
	}
	return w.out.Text(), nil
}

func (w *waiters) stop() {
	fmt.Fprintln(w.in, "quit")
	w.in.Close()
	done := make(chan struct{})
	go func() { w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		w.cmd.Process.Kill()
		<-done
	}
}

// WakeResult is the wake-up latency of n waits on one workflow, over several rounds.
type WakeResult struct {
	Waits, Rounds int
	Lat           Latency
	// RSS is batchy's resident memory with the n waits registered (the largest over the rounds);
	// RSSIdle before the first round.
	RSS, RSSIdle int64
	// RSSRounds is the RSS with the waits registered, round by round (the warm-up first).
	RSSRounds []int64
	// Registered says how the bench knew every wait was in place before closing: "metrics" (the
	// server's batchy_active_waits gauge) or "settle" (a pause after the requests were written).
	Registered string
	Errors     []string
	// ServerCPU and WaitersCPU are the CPU time batchy and the waiters process used per round,
	// from the close to the last answer.
	ServerCPU, WaitersCPU time.Duration
	// Close is the close request's own time (to its answer), every round's: the reference, taken
	// in the same moments, for how busy the machine was.
	Close Latency
}

// activeWaits reads batchy_active_waits from the server's /metrics; ok is false without it.
func activeWaits(ctx context.Context, hc *http.Client, base string) (n int, ok bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	// Uncompressed: the bench asks every 25 ms while waits register, and each gzip answer may cost
	// batchy a new compressor (about 1 MB: its pool empties at each collection), garbage of the
	// bench's own making in the memory measured (a Prometheus server asks every 15 s or so).
	req.Header.Set("Accept-Encoding", "identity")
	res, err := hc.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, res.Body)
		return 0, false
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), "batchy_active_waits "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int(v), err == nil
		}
	}
	return 0, false
}

// measureWake opens a batch of wf, has the waiters process start n waits, and once all are
// registered closes the batch; each wait's latency runs from just before the close request to its
// answer. The first round warms the connections up and is not counted.
func measureWake(ctx context.Context, hc *http.Client, base, wf string, n, rounds int, pid int, w *waiters, prof *profiler, verbose bool) (WakeResult, error) {
	res := WakeResult{Waits: n, Rounds: rounds}
	res.RSSIdle, _ = rssBytes(pid)
	var lat, closes []time.Duration
	for round := range rounds + 1 {
		// The previous round's waits are answered, but batchy closes their connections (and
		// stops counting them) a little later: not to be counted as this round's.
		for settle := time.Now().Add(5 * time.Second); time.Now().Before(settle); time.Sleep(10 * time.Millisecond) {
			if active, ok := activeWaits(ctx, hc, base); !ok || active == 0 {
				break
			}
		}
		since := time.Now().UTC()
		if err := do(ctx, hc, http.MethodGet, base+"/open_batch/"+wf); err != nil {
			return res, err
		}
		fmt.Fprintf(w.in, "wait %d %s\n", n, since.Format(time.RFC3339Nano))
		if l, err := w.line(); err != nil || l != "sent" {
			return res, fmt.Errorf("waiters: %q %v", l, err)
		}
		// Every wait must be registered with the server before the close, else it would find the
		// batch closed on its first read and look faster than a woken wait.
		deadline := time.Now().Add(30 * time.Second)
		res.Registered = "settle"
		for {
			active, ok := activeWaits(ctx, hc, base)
			if !ok {
				time.Sleep(200*time.Millisecond + time.Duration(n)*300*time.Microsecond)
				break
			}
			res.Registered = "metrics"
			if active >= n {
				// Registered means counted; the hub's Watch follows at once in the handler.
				time.Sleep(20 * time.Millisecond)
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("only %d of %d waits registered after 30s", active, n)
			}
			time.Sleep(25 * time.Millisecond) // a scrape costs the server too: not too often
		}
		if rss, err := rssBytes(pid); err == nil {
			res.RSS = max(res.RSS, rss)
			res.RSSRounds = append(res.RSSRounds, rss)
			if verbose {
				anon, _ := procStatus(pid, "RssAnon:")
				file, _ := procStatus(pid, "RssFile:")
				fmt.Fprintf(os.Stderr, "bench: wake %d round %d: RSS %s (anon %s, file %s) with the waits held\n", n, round, mb(rss), mb(anon), mb(file))
			}
		}
		if round >= 1 {
			// Heap and memory statistics with the waits held, each round: growth shows across them.
			prof.snapshot(ctx, fmt.Sprintf("wake-%d-r%d", n, round))
		}
		if round > 0 {
			prof.startCPU(ctx, fmt.Sprintf("wake-%d-r%d", n, round))
		}
		s0, w0 := cpuTime(pid), cpuTime(w.cmd.Process.Pid)
		t0 := time.Now()
		if err := do(ctx, hc, http.MethodGet, base+"/close_batch/"+wf); err != nil {
			return res, err
		}
		if round > 0 {
			closes = append(closes, time.Since(t0))
		}
		l, err := w.line()
		if err != nil {
			return res, err
		}
		data, ok := strings.CutPrefix(l, "done ")
		if !ok {
			return res, fmt.Errorf("waiters: %q", l)
		}
		if round > 0 {
			prof.stopCPU(ctx)
			res.ServerCPU += (cpuTime(pid) - s0) / time.Duration(rounds)
			res.WaitersCPU += (cpuTime(w.cmd.Process.Pid) - w0) / time.Duration(rounds)
		}
		var rep waitReport
		if err := json.Unmarshal([]byte(data), &rep); err != nil {
			return res, err
		}
		res.Errors = append(res.Errors, rep.Errors...)
		if round == 0 {
			continue
		}
		var mine []time.Duration
		for _, end := range rep.Ends {
			if end < t0.UnixNano() {
				res.Errors = append(res.Errors, "a wait answered before the batch closed")
				continue
			}
			mine = append(mine, time.Duration(end-t0.UnixNano()))
		}
		lat = append(lat, mine...)
		if verbose {
			l := summarize(mine)
			fmt.Fprintf(os.Stderr, "bench: wake %d round %d: p50 %s p99 %s max %s\n", n, round, ms(l.P50), ms(l.P99), ms(l.Max))
		}
	}
	res.Lat = summarize(lat)
	res.Close = summarize(closes)
	return res, nil
}

// WaitsyResult is the time from a close to the exit of waitsy processes waiting on it.
type WaitsyResult struct {
	Procs, Rounds int
	// Lat runs from just before the close request to each process's exit, every round's.
	Lat Latency
	// Close is the close request's own time, every round's (the reference).
	Close  Latency
	Errors []string
}

// buildWaitsy builds ./cmd/waitsy into dir.
func buildWaitsy(dir string) (string, error) {
	bin := filepath.Join(dir, "waitsy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/waitsy")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/waitsy: %w", err)
	}
	return bin, nil
}

// measureWaitsy starts n waitsy processes waiting on wf (a batch open), and once the server holds
// their n waits closes the batch; each process's latency runs from just before the close request
// to its exit (as its parent sees it). One warm-up round, then rounds.
func measureWaitsy(ctx context.Context, hc *http.Client, bin, base, wf string, n, rounds int, verbose bool) (WaitsyResult, error) {
	return waitsyRounds(ctx, bin, base, wf, n, rounds, verbose, "waitsy",
		func() error { return do(ctx, hc, http.MethodGet, base+"/open_batch/"+wf) },
		func() (int, bool) { return activeWaits(ctx, hc, base) },
		func() error { return do(ctx, hc, http.MethodGet, base+"/close_batch/"+wf) })
}

// measureWaitsyFloor is measureWaitsy against waitsyFloor: the reference.
func measureWaitsyFloor(ctx context.Context, bin string, n, rounds int, verbose bool) (WaitsyResult, error) {
	f, err := startWaitsyFloor()
	if err != nil {
		return WaitsyResult{}, err
	}
	defer f.l.Close()
	return waitsyRounds(ctx, bin, f.url(), "wake", n, rounds, verbose, "waitsy floor",
		func() error { return nil },
		func() (int, bool) { return f.heldCount(), true },
		func() error { f.release(); return nil })
}

// waitsyRounds runs the rounds of measureWaitsy: open, registered (the waits the server holds)
// and close are the server's.
func waitsyRounds(ctx context.Context, bin, base, wf string, n, rounds int, verbose bool, what string, open func() error, registered func() (int, bool), closeBatch func() error) (WaitsyResult, error) {
	res := WaitsyResult{Procs: n, Rounds: rounds}
	var lat, closes []time.Duration
	for round := range rounds + 1 {
		for settle := time.Now().Add(5 * time.Second); time.Now().Before(settle); time.Sleep(10 * time.Millisecond) {
			if active, ok := registered(); !ok || active == 0 {
				break
			}
		}
		if err := open(); err != nil {
			return res, err
		}
		since := time.Now().UTC().Format(time.RFC3339Nano)
		ends := make([]time.Time, n)
		errs := make([]error, n)
		cmds := make([]*exec.Cmd, n)
		for i := range n {
			cmds[i] = exec.Command(bin, "--url", base, "--since", since, "--quiet", "--timeout", "2m", wf)
			if err := cmds[i].Start(); err != nil {
				return res, err
			}
		}
		// The exits are seen by one thread (exitWatcher: pidfds in one epoll set); the processes
		// are reaped after. A goroutine per process blocked in wait(2) would put 50 threads of the
		// bench on the CPU at the moment measured.
		exited, err := exitWatcher(cmds)
		if err != nil {
			return res, err
		}
		// Every process first asks with no hold (to show the state), then waits: registered once
		// the server counts n waits twice in a row.
		deadline := time.Now().Add(30 * time.Second)
		for seen := 0; seen < 2; {
			active, ok := registered()
			if !ok {
				return res, errors.New("the server has no batchy_active_waits metric")
			}
			if active >= n {
				seen++
			} else {
				seen = 0
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("only %d of %d waitsy waits registered after 30s", active, n)
			}
			time.Sleep(25 * time.Millisecond)
		}
		t0 := time.Now()
		if err := closeBatch(); err != nil {
			return res, err
		}
		if round > 0 {
			closes = append(closes, time.Since(t0))
		}
		copy(ends, exited())
		for i, cmd := range cmds {
			errs[i] = cmd.Wait()
		}
		var mine []time.Duration
		for i := range n {
			if errs[i] != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("waitsy: %v", errs[i]))
				continue
			}
			mine = append(mine, ends[i].Sub(t0))
		}
		if round == 0 {
			continue
		}
		lat = append(lat, mine...)
		if verbose {
			l := summarize(mine)
			fmt.Fprintf(os.Stderr, "bench: %s %d round %d: p50 %s p99 %s max %s\n", what, n, round, ms(l.P50), ms(l.P99), ms(l.Max))
		}
	}
	res.Lat = summarize(lat)
	res.Close = summarize(closes)
	return res, nil
}

// waitsyFloor is the reference of the waitsy measurement: a server of the bench's own, with no
// batchy or Redis behind it, that answers a wait with no hold (waitsy's first request) pending at
// once and holds the others until release, which writes them all a ready answer, prepared in
// advance, from one goroutine. What remains is the processes' own cost of waking, reading the
// answer and exiting on these 2 cores.
type waitsyFloor struct {
	l    net.Listener
	mu   sync.Mutex
	held []net.Conn
}

func startWaitsyFloor() (*waitsyFloor, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &waitsyFloor{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f, nil
}

func (f *waitsyFloor) url() string { return "http://" + f.l.Addr().String() }

func floorAnswer(state string) []byte {
	body := `{"state":"` + state + `","since":"2026-01-01T00:00:00.000000Z","jobs":[{"workflow":"wake","job":"a","status":"success","readiness":"` + state + `"}]}`
	return []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

func (f *waitsyFloor) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			c.Close()
			return
		}
		if req.URL.Query().Get("timeout") == "0s" {
			c.Write(floorAnswer("pending"))
			c.Close()
			return
		}
		f.mu.Lock()
		f.held = append(f.held, c)
		f.mu.Unlock()
		return
	}
}

func (f *waitsyFloor) heldCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func (f *waitsyFloor) release() {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	answer := floorAnswer("ready")
	for _, c := range held {
		c.Write(answer)
	}
	for _, c := range held {
		c.Close()
	}
}
