package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchy/batchy/client"
	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// wakeWorkflow is the workflow every waiter of BenchmarkWaitWakeup waits for.
const wakeWorkflow = "wfwake"

// wakeWaiters are the waiter counts measured; the HTTP transport keeps an idle connection for
// each waiter of the largest.
var wakeWaiters = []int{100, 1000}

// wakeEnv is a batchy API on a real loopback listener over one store backend, with the
// notification hub running, and one HTTP client whose transport keeps a connection per waiter.
type wakeEnv struct {
	url   string
	api   *api.Server
	store *rdb.Store
	hub   *notify.Hub
	http  *http.Client
	conns atomic.Int64 // connections the server accepted
}

func newWakeEnv(b *testing.B, be rdbtest.Backend) *wakeEnv {
	b.Helper()
	rc, emb := be.New(b)
	opts := rdb.Options{}
	if emb != nil {
		opts.Embedded = emb // as batchy serve runs the embedded store
	}
	quiet := slog.New(slog.DiscardHandler)
	e := &wakeEnv{store: rdb.New(rc, opts)}
	e.hub = notify.NewHub(e.store, quiet)
	hubCtx, stopHub := context.WithCancel(context.Background())
	b.Cleanup(stopHub)
	go e.hub.Run(hubCtx)

	as := api.New(api.Options{Store: e.store, Hub: e.hub, CfgDir: b.TempDir(), StoreName: be.Name, Logger: quiet})
	e.api = as
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: as.Handler(), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}}
	go srv.Serve(l)
	e.url = "http://" + l.Addr().String()

	// Every waiter keeps its connection between iterations: no per-host limit, and room for one
	// idle connection per waiter.
	maxN := slices.Max(wakeWaiters)
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: maxN + 10,
		MaxConnsPerHost:     0, // no limit
		IdleConnTimeout:     0, // idle connections stay
	}
	e.http = &http.Client{Transport: tr}
	b.Cleanup(func() {
		as.Close() // long polls still open answer at once
		srv.Close()
		tr.CloseIdleConnections()
	})

	w, err := config.Parse(wakeWorkflow, []byte("a: {}\nb: {}\nc: {}\n"), config.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.store.Load(context.Background(), w, true); err != nil {
		b.Fatal(err)
	}
	// Do not start before the hub's subscription is in place: a close published earlier would
	// reach no one until the hub's resubscribe-wakeAll, and distort the first iteration. The hub
	// subscribes only while someone waits: a watch of the bench's own holds it.
	held := e.hub.Watch(wakeWorkflow)
	b.Cleanup(held.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		subs, err := rc.PubSubNumSub(context.Background(), e.store.Keys().Changed()).Result()
		if err != nil {
			b.Fatal(err)
		}
		if subs[e.store.Keys().Changed()] > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the notification hub did not subscribe within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return e
}

// waitFor polls cond every short while until it holds, failing after d.
func waitFor(b *testing.B, d time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not reached within %s", what, d)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkWaitWakeup measures how long the waiters of GET /v1/wait take to learn that the batch
// they wait for has closed: N clients long-poll over real HTTP on loopback, and once every wait is
// registered with the hub the batch is closed; each waiter's latency runs from just before the
// close (store.End) to its Wait returning "ready". The target is p99 < 20 ms with 1,000
// waits. It is a benchmark, not a test: it asserts no latency, it reports p50-ms, p99-ms and
// max-ms over every waiter of every iteration, and the heap held with the waits registered.
//
//	go test -run '^$' -bench BenchmarkWaitWakeup -benchtime 5x ./internal/api/
//
// Clients, server and store (miniredis for "embedded"; for "redis" a redis-server process) share
// the machine, so the clients' own work (decoding answers, scheduling 1,000 goroutines) is part of
// what is measured; on a real deployment the clients are elsewhere.
func BenchmarkWaitWakeup(b *testing.B) {
	for _, be := range rdbtest.Backends {
		b.Run(be.Name, func(b *testing.B) {
			e := newWakeEnv(b, be) // one server per backend: connections carry over between sizes
			for _, n := range wakeWaiters {
				b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) { e.bench(b, n) })
			}
		})
	}
}

func (e *wakeEnv) bench(b *testing.B, n int) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, n*b.N)
	var heapWith, heapPerWait float64
	conns0 := e.conns.Load()

	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		// Settle the previous iteration: its waits end just after answering (a parked wait's
		// connection closes closeDelay after its answer).
		waitFor(b, 10*time.Second, "waiters of the previous iteration gone", func() bool { return e.api.ActiveWaits() == 0 })
		since := time.Now().UTC().Truncate(time.Microsecond)
		if _, err := e.store.Open(ctx, wakeWorkflow, batch.OpenRequest{}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapBase := ms.HeapInuse

		var (
			wg    sync.WaitGroup
			ended = make([]time.Time, n)
			errs  = make([]error, n)
		)
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		for i := range n {
			wg.Go(func() {
				c := client.New(e.url, "")
				c.HTTP = e.http
				res, err := c.Wait(wctx, client.WaitRequest{
					Targets:  []batch.Target{{Workflow: wakeWorkflow}},
					Since:    since,
					Timeout:  60 * time.Second,
					FailFast: true,
				})
				ended[i] = time.Now()
				switch {
				case err != nil:
					errs[i] = err
				case res.State != batch.Ready:
					errs[i] = fmt.Errorf("wait answered %q, want %q: %+v", res.State, batch.Ready, res.Jobs)
				}
			})
		}
		// Counted means in the handler: its watch (or its group's) follows at once.
		waitFor(b, 30*time.Second, fmt.Sprintf("%d waits registered", n), func() bool { return e.api.ActiveWaits() == n })
		time.Sleep(20 * time.Millisecond)

		// HeapInuse of this test process: the server's waits AND the clients' requests, goroutines
		// excluded (their stacks are StackInuse). After a GC, so it is mostly live memory.
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heapWith += float64(ms.HeapInuse)
		heapPerWait += (float64(ms.HeapInuse) - float64(heapBase)) / float64(n)

		b.StartTimer()
		t0 := time.Now()
		if _, err := e.store.End(ctx, wakeWorkflow, batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		b.StopTimer()
		cancel()

		for i, err := range errs {
			if err != nil {
				b.Fatalf("waiter %d: %v", i, err)
			}
			if ended[i].Before(t0) {
				b.Fatalf("waiter %d answered before the batch closed", i)
			}
			lat = append(lat, ended[i].Sub(t0))
		}
	}

	slices.Sort(lat)
	toMS := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(toMS(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(toMS(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(toMS(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(heapWith/float64(b.N)/(1<<20), "heap-MB-with-waits")
	b.ReportMetric(heapPerWait/float64(b.N)/(1<<10), "heap-KB-per-wait")
	// Connections the server accepted during this run: 0 once the transport reuses them.
	b.ReportMetric(float64(e.conns.Load()-conns0), "new-conns")
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
