package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/client"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// parkEnv is an API server on a loopback listener, its store and a client.
type parkEnv struct {
	s     *Server
	store *rdb.Store
	c     *client.Client
}

func newParkEnv(t *testing.T, b rdbtest.Backend) *parkEnv {
	t.Helper()
	rc, emb := b.New(t)
	store := rdb.New(rc, rdb.Options{Embedded: emb})
	quiet := slog.New(slog.DiscardHandler)
	hub := notify.NewHub(store, quiet)
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go hub.Run(ctx)
	s := New(Options{Store: store, Hub: hub, CfgDir: t.TempDir(), StoreName: b.Name, Logger: quiet})
	s.recheck.every = 200 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(l)
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	t.Cleanup(func() { s.Close(); hs.Close(); tr.CloseIdleConnections() })
	c := client.New("http://"+l.Addr().String(), "")
	c.HTTP = &http.Client{Transport: tr}
	w, err := config.Parse("wf", []byte("a: {}\nb: {}\n"), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, w, true); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, "wf", batch.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	return &parkEnv{s: s, store: store, c: c}
}

// parked counts the parked waits.
func (e *parkEnv) parked() int {
	p := &e.s.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, g := range p.groups {
		n += len(g.waits)
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type waitOutcome struct {
	res *client.WaitResult
	err error
	at  time.Time
}

func (e *parkEnv) startWait(ctx context.Context, req client.WaitRequest) <-chan waitOutcome {
	out := make(chan waitOutcome, 1)
	go func() {
		res, err := e.c.Wait(ctx, req)
		out <- waitOutcome{res, err, time.Now()}
	}()
	return out
}

// TestParkedWaits: a pending wait is parked (its connection taken from net/http, held by its
// question's group); a change answers every parked wait of every question it concerns, each its
// own answer; a parked wait times out with a pending answer; a client that goes away is noticed
// at the next recheck; a closing server answers parked waits at once.
func TestParkedWaits(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newParkEnv(t, b)
		ctx := context.Background()
		since := batch.Midnight(time.Now(), time.UTC)
		wf := []batch.Target{{Workflow: "wf"}}
		var waits []<-chan waitOutcome
		for range 20 {
			waits = append(waits, e.startWait(ctx, client.WaitRequest{Targets: wf, Since: since, Timeout: time.Minute, FailFast: true}))
		}
		onlyB := e.startWait(ctx, client.WaitRequest{Targets: []batch.Target{{Workflow: "wf", Job: "b"}}, Since: since, Timeout: time.Minute, FailFast: true})
		short := e.startWait(ctx, client.WaitRequest{Targets: wf, Since: since, Timeout: 300 * time.Millisecond})
		gctx, leave := context.WithCancel(ctx)
		gone := e.startWait(gctx, client.WaitRequest{Targets: wf, Since: since, Timeout: time.Minute})
		eventually(t, "23 waits parked", func() bool { return e.parked() == 23 })
		if n := e.s.ActiveWaits(); n != 23 {
			t.Errorf("active waits %d, want 23", n)
		}

		start := time.Now()
		o := <-short
		if o.err != nil || o.res.State != batch.Pending || o.at.Sub(start) > 2*time.Second {
			t.Errorf("the wait of 300ms: %+v, %v, after %s", o.res, o.err, o.at.Sub(start))
		}
		leave()
		if o := <-gone; !errors.Is(o.err, context.Canceled) {
			t.Errorf("the wait that left: %v", o.err)
		}
		eventually(t, "the wait whose client left ended", func() bool { return e.s.ActiveWaits() == 21 })

		// a fails: the waits on the workflow (fail_fast) answer failed, the wait on b stays.
		if _, err := e.store.End(ctx, "wf", batch.EndRequest{Jobs: []string{"a"}, Status: batch.StatusFailed}); err != nil {
			t.Fatal(err)
		}
		for i, w := range waits {
			o := <-w
			if o.err != nil || o.res.State != batch.Failed || len(o.res.Jobs) != 2 {
				t.Fatalf("wait %d: %+v, %v", i, o.res, o.err)
			}
		}
		eventually(t, "the wait on b alone parked", func() bool { return e.parked() == 1 })
		if _, err := e.store.End(ctx, "wf", batch.EndRequest{Jobs: []string{"b"}, Status: batch.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		if o := <-onlyB; o.err != nil || o.res.State != batch.Ready || len(o.res.Jobs) != 1 || o.res.Jobs[0].Job != "b" {
			t.Fatalf("the wait on b: %+v, %v", o.res, o.err)
		}
		eventually(t, "no wait left", func() bool { return e.s.ActiveWaits() == 0 && e.parked() == 0 })

		// Shutting down answers parked waits at once, with an error that says to ask again.
		last := e.startWait(ctx, client.WaitRequest{Targets: []batch.Target{{Workflow: "wf", Job: "a"}}, Since: since, Timeout: time.Minute})
		eventually(t, "a wait parked", func() bool { return e.parked() == 1 })
		e.s.Close()
		var apiErr *client.Error
		if o := <-last; !errors.As(o.err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			t.Fatalf("a parked wait at shutdown: %+v, %v", o.res, o.err)
		}
	})
}

// TestParkedWaitsShareOneAnswer: many parked waits woken by one change get the same bytes, with
// their own request ids.
func TestParkedWaitsShareOneAnswer(t *testing.T) {
	e := newParkEnv(t, rdbtest.Backends[0])
	ctx := context.Background()
	since := batch.Midnight(time.Now(), time.UTC)
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	ids := map[string]bool{}
	var mu sync.Mutex
	for i := range bodies {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.BaseURL+"/v1/wait?target=wf&timeout=1m&since="+batch.FormatTime(since), nil)
			res, err := e.c.HTTP.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var b [4096]byte
			n, _ := res.Body.Read(b[:])
			bodies[i] = string(b[:n])
			mu.Lock()
			ids[res.Header.Get(requestIDHeader)] = true
			mu.Unlock()
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json; charset=utf-8" || !res.Close {
				t.Errorf("status %d, headers %v, close %v", res.StatusCode, res.Header, res.Close)
			}
		})
	}
	eventually(t, "50 waits parked", func() bool { return e.parked() == 50 })
	if _, err := e.store.End(ctx, "wf", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, b := range bodies {
		if b != bodies[0] || b == "" {
			t.Fatalf("answer %d: %q, answer 0: %q", i, b, bodies[0])
		}
	}
	if len(ids) != 50 {
		t.Errorf("%d request ids in 50 answers", len(ids))
	}
}
