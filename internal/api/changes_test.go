package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// changeEnv is an API server with its hub running, as batchy serve wires them, and two loaded
// workflows: wf1 and sales.
type changeEnv struct {
	*env
	srv    *api.Server
	client *redis.Client
}

func newChangeEnv(t *testing.T, opts api.Options) *changeEnv {
	t.Helper()
	client := rdbtest.StartRedis(t).Client(t)
	e := &env{cfg: t.TempDir()}
	e.store = rdb.New(client, rdb.Options{})
	hub := notify.NewHub(e.store, nil)
	hubCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go hub.Run(hubCtx)
	e.writeCfg(t, "wf1", "job1:\n  table: a\njob2:\n  table: b\n")
	e.writeCfg(t, "sales", "orders:\n  table: c\n")
	opts.Store, opts.Summaries, opts.Hub, opts.CfgDir = e.store, e.store, hub, e.cfg
	srv := api.New(opts)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		hs.CloseClientConnections()
		hs.Close()
	})
	e.url = hs.URL
	if opts.Tokens.Empty() {
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/load", ""), 200)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/sales/load", ""), 200)
	}
	return &changeEnv{env: e, srv: srv, client: client}
}

// frame is one Server-Sent Event.
type frame struct {
	event string
	data  string
	at    time.Time
}

// sse is an open change stream.
type sse struct {
	frames chan frame
	done   chan struct{} // closed when the server ended the stream
}

// openChanges opens GET /v1/changes?query and waits until it follows the changes: a fresh hub
// subscribes on the first stream, which then gets a reset.
func (e *changeEnv) openChanges(t *testing.T, query string, firstOnHub bool) *sse {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/v1/changes?"+query, nil)
	reqCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	res, err := http.DefaultClient.Do(req.WithContext(reqCtx))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/changes?%s: %d %s", query, res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sse{frames: make(chan frame, 100), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var f frame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				f.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.data = line[6:]
			case line == "" && f.event != "":
				f.at = time.Now()
				s.frames <- f
				f = frame{}
			}
		}
	}()
	if firstOnHub {
		if f := s.next(t, 5*time.Second); f.event != "reset" {
			t.Fatalf("first frame on a fresh hub: %+v, want a reset", f)
		}
	}
	return s
}

func (s *sse) next(t *testing.T, within time.Duration) frame {
	t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(within):
		t.Fatalf("no frame within %s", within)
	}
	return frame{}
}

// none fails if a frame arrives within d.
func (s *sse) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case f := <-s.frames:
		t.Fatalf("unexpected frame %+v", f)
	case <-time.After(d):
	}
}

func summaryOf(t *testing.T, f frame) batch.Summary {
	t.Helper()
	if f.event != "change" {
		t.Fatalf("frame %+v, want a change", f)
	}
	var sum batch.Summary
	if err := json.Unmarshal([]byte(f.data), &sum); err != nil {
		t.Fatalf("change data %q: %v", f.data, err)
	}
	return sum
}

// TestChangeStreamSendsSummaries: a change of a workflow is one message with its summary, and
// the filters keep out the workflows a client does not show.
func TestChangeStreamSendsSummaries(t *testing.T) {
	e := newChangeEnv(t, api.Options{})
	all := e.openChanges(t, "", true)
	byName := e.openChanges(t, "names=sales,other", false)
	byPrefix := e.openChanges(t, "prefix=wf", false)
	byRange := e.openChanges(t, "after=sales&until=wf1", false) // wf1 only

	wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/open", ""), 200)
	sum := summaryOf(t, all.next(t, 2*time.Second))
	if sum.Workflow != "wf1" || sum.Status != batch.StatusOpen || sum.OpenJobs != 2 || sum.LastBatchID == 0 || sum.From == nil {
		t.Errorf("summary after open: %+v", sum)
	}
	if got := summaryOf(t, byPrefix.next(t, 2*time.Second)); got.Workflow != "wf1" {
		t.Errorf("prefix=wf got %s", got.Workflow)
	}
	if got := summaryOf(t, byRange.next(t, 2*time.Second)); got.Workflow != "wf1" {
		t.Errorf("after=sales&until=wf1 got %s", got.Workflow)
	}
	all.none(t, 700*time.Millisecond) // one change, one message

	wantStatus(t, e.do(t, "POST", "/v1/workflows/sales/open", ""), 200)
	wantStatus(t, e.do(t, "POST", "/v1/workflows/sales/fail", `{"metadata":{"why":"disk full"}}`), 200)
	// The open and the fail within the interval: one message, of the failure.
	sum = summaryOf(t, byName.next(t, 2*time.Second))
	if sum.Status == batch.StatusOpen {
		sum = summaryOf(t, byName.next(t, 2*time.Second)) // the open went out on its own
	}
	if sum.Workflow != "sales" || sum.Status != batch.StatusFailed || sum.LastFailure == nil || !strings.Contains(sum.Reason, "disk full") {
		t.Errorf("summary after fail: %+v", sum)
	}
	if got := summaryOf(t, all.next(t, 2*time.Second)); got.Workflow != "sales" {
		t.Errorf("all got %s", got.Workflow)
	}
	for len(all.frames) > 0 { // the fail, when the open went out on its own
		if got := summaryOf(t, all.next(t, time.Second)); got.Workflow != "sales" {
			t.Errorf("all got %s", got.Workflow)
		}
	}
	// The other streams' workflows did not change.
	byPrefix.none(t, 100*time.Millisecond)
	byRange.none(t, 100*time.Millisecond)
	byName.none(t, 100*time.Millisecond)

	for _, bad := range []string{"prefix=a%20b", "names=ok,,x", "after=../x", "names=" + strings.Repeat("a,", 500) + "a"} {
		if r := e.get(t, "/v1/changes?"+bad); r.status/100 != 4 {
			t.Errorf("GET /v1/changes?%s: %d, want a refusal", bad, r.status)
		}
	}
}

// TestChangeStreamCoalesces: a burst of changes of a workflow is at most one message per
// interval, the last one showing the end of the burst.
func TestChangeStreamCoalesces(t *testing.T) {
	const interval = time.Second
	e := newChangeEnv(t, api.Options{ChangeInterval: interval})
	s := e.openChanges(t, "names=wf1", true)
	start := time.Now()
	for i := 0; i < 10; i++ {
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/open", ""), 200)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/close", ""), 200)
	}
	burst := time.Since(start)
	var got []frame
	deadline := time.After(burst + 2*interval + 500*time.Millisecond)
collect:
	for {
		select {
		case f := <-s.frames:
			got = append(got, f)
		case <-deadline:
			break collect
		}
	}
	// One message at the first change, then one per interval while the burst lasts.
	if max := 2 + int(burst/interval); len(got) == 0 || len(got) > max {
		t.Fatalf("20 changes in %s gave %d messages, want 1 to %d", burst, len(got), max)
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < interval-50*time.Millisecond {
			t.Errorf("messages %d and %d %s apart, want at least %s", i-1, i, gap, interval)
		}
	}
	last := summaryOf(t, got[len(got)-1])
	if last.Status != batch.StatusSuccess || last.OpenJobs != 0 || last.LastEnd == nil {
		t.Errorf("last message: %+v, want the closed batch", last)
	}
}

// TestChangeStreamAuth: the stream needs a read token like every other v1 read.
func TestChangeStreamAuth(t *testing.T) {
	const secret = "reader-secret-0123456789"
	tokens, err := auth.Parse("read viewer " + secret)
	if err != nil {
		t.Fatal(err)
	}
	e := newChangeEnv(t, api.Options{Tokens: tokens})
	if r := e.get(t, "/v1/changes"); r.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d %s, want 401", r.status, r.body)
	}
	if r := e.get(t, "/v1/changes?token=wrong-secret-0123456789"); r.status != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d, want 401", r.status)
	}
	s := e.openChanges(t, "token="+secret, true)
	s.none(t, 100*time.Millisecond)
}

// TestChangeStreamEndsAtShutdown: Close ends the streams at once, so that a graceful shutdown
// does not wait for the browsers that hold one.
func TestChangeStreamEndsAtShutdown(t *testing.T) {
	e := newChangeEnv(t, api.Options{})
	s := e.openChanges(t, "", true)
	e.srv.Close()
	select {
	case <-s.done:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end within 2s of Close")
	}
}

// TestChangeStreamSharesReads: the streams that one change concerns share one read of the
// workflow, and the streams of other workflows cost no read at all.
func TestChangeStreamSharesReads(t *testing.T) {
	e := newChangeEnv(t, api.Options{})
	const tabs = 20
	first := e.openChanges(t, "names=wf1", true)
	streams := []*sse{first}
	for range tabs - 1 {
		streams = append(streams, e.openChanges(t, "names=wf1", false))
	}
	others := make([]*sse, tabs)
	for i := range others {
		others[i] = e.openChanges(t, "names=sales", false)
	}
	stateReads := func() int {
		t.Helper()
		info, err := e.client.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_hgetall:calls="); ok {
				n := 0
				for _, c := range rest {
					if c < '0' || c > '9' {
						break
					}
					n = n*10 + int(c-'0')
				}
				return n
			}
		}
		return 0
	}
	before := stateReads()
	wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job1/watermark", `{"from_date":"2026-01-01"}`), 200)
	for i, s := range streams {
		if sum := summaryOf(t, s.next(t, 2*time.Second)); sum.Workflow != "wf1" {
			t.Errorf("stream %d got %s", i, sum.Workflow)
		}
	}
	for _, s := range others {
		s.none(t, 10*time.Millisecond)
	}
	// The watermark's own request reads the state once; the streams join a few shared reads (a
	// stream joins the next read when one is under way), not one each (21).
	n := stateReads() - before
	if n > 6 {
		t.Errorf("%d state reads for one change followed by %d streams, want at most 6", n, tabs)
	}
	t.Logf("%d state reads (HGETALL) for one change followed by %d streams", n, tabs)
}
