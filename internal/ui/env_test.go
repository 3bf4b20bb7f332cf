package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/scheduler"
	"github.com/batchy/batchy/internal/ui"
)

var ctx = context.Background()

// clock is a settable clock shared by the store and the UI; zero means the real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// env is the API and the UI on one real listener, over one store, as batchy serves them.
type env struct {
	url    string
	client rdb.Client
	store  *rdb.Store
	rec    batch.Store
	bus    *event.Bus
	sch    *scheduler.Scheduler
	cfg    string
	clock  *clock
}

// envOptions tune newEnv.
type envOptions struct {
	noEvents, noScheduler bool
	// noCfg leaves the configuration directory empty.
	noCfg bool
	// ui changes the UI's options before it is built.
	ui func(*ui.Options)
	// tokens turn auth on: the server is wired as batchy serve wires it, the UI behind the
	// API's authentication, with its read-only and CSRF decisions.
	tokens *auth.Tokens
	// noChanges leaves the API without the change stream: the dashboard falls back to its timer.
	noChanges bool
	// changeInterval is the API's ChangeInterval (zero: its default).
	changeInterval time.Duration
	// wrap wraps the server's handler (to count the requests a page makes).
	wrap func(http.Handler) http.Handler
}

// newEnv starts the API and the UI over a fresh store of backend b. The scheduler exists (its
// runs can be listed and queued) but does not run: nothing executes by itself.
func newEnv(t testing.TB, client rdb.Client, o envOptions) *env {
	t.Helper()
	e := &env{cfg: t.TempDir(), client: client, clock: &clock{}}
	e.store = rdb.New(client, rdb.Options{Now: e.clock.Now})
	e.rec = e.store
	if !o.noEvents {
		e.bus = event.NewBus(rdb.NewEventStream(client, e.store.Keys(), 0), nil)
		e.rec = event.RecordingStore{Store: e.store, Bus: e.bus}
	}
	if !o.noScheduler {
		e.sch = scheduler.New(scheduler.Options{Store: e.rec, Runs: e.store.Scheduler(), Events: e.bus})
	}
	for _, f := range []string{"wf1", "sales"} {
		if o.noCfg {
			break
		}
		data, err := os.ReadFile("../../cfg/" + f + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		e.writeCfg(t, f, string(data))
	}
	opts := ui.Options{Store: e.rec, Summaries: e.store, Events: e.bus, Scheduler: e.sch, CfgDir: e.cfg, Now: e.clock.Now}
	if o.tokens != nil {
		opts.CanAct, opts.CanAdmin, opts.CSRFToken = api.CanAct(o.tokens), api.CanAdmin(o.tokens), api.CSRFToken
	}
	if o.ui != nil {
		o.ui(&opts)
	}
	var (
		apiSrv  *api.Server
		handler http.Handler
	)
	// The hub of change notifications, as serve runs it: the dashboard follows GET /v1/changes.
	hub := notify.NewHub(e.store, nil)
	hubCtx, stopHub := context.WithCancel(context.Background())
	go hub.Run(hubCtx)
	apiOpts := api.Options{Store: e.rec, Summaries: e.store, Hub: hub, Events: e.bus, Scheduler: e.sch, CfgDir: e.cfg, ChangeInterval: o.changeInterval}
	if o.noChanges {
		apiOpts.Summaries = nil // GET /v1/changes answers 503
	}
	if o.tokens != nil {
		apiOpts.Tokens, apiOpts.UI = o.tokens, ui.New(opts)
		apiSrv = api.New(apiOpts)
		handler = apiSrv.Handler()
	} else {
		apiSrv = api.New(apiOpts)
		handler = mount(apiSrv.Handler(), ui.New(opts))
	}
	if o.wrap != nil {
		handler = o.wrap(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		// End the event streams a browser holds: Close makes them return, and closing the client
		// interrupts the blocking read they may be in (go-redis does not on a cancelled context).
		apiSrv.Close()
		stopHub()
		client.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	e.url = srv.URL
	return e
}

// newEmbedded is newEnv on the embedded store.
func newEmbedded(t testing.TB, o envOptions) *env {
	t.Helper()
	client, _ := rdbtest.Backends[0].New(t)
	return newEnv(t, client, o)
}

// mount routes the UI's paths to the UI and everything else to the API, as the server does.
func mount(apiH, uiH http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/") {
			uiH.ServeHTTP(w, r)
			return
		}
		apiH.ServeHTTP(w, r)
	})
}

func (e *env) writeCfg(t testing.TB, wf, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.cfg, wf+".yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// load stores a workflow from YAML directly (no file), as a load would.
func (e *env) load(t testing.TB, wf, yaml string) {
	t.Helper()
	w, err := config.Parse(wf, []byte(yaml), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rec.Load(ctx, w, false); err != nil {
		t.Fatal(err)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t testing.TB, method, path, ctype, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: string(data)}
}

func (e *env) get(t testing.TB, path string) response {
	t.Helper()
	return e.do(t, "GET", path, "", "")
}

// post calls the v1 API and wants a 2xx.
func (e *env) post(t testing.TB, path, body string) response {
	t.Helper()
	r := e.do(t, "POST", path, "application/json", body)
	if r.status/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, r.status, r.body)
	}
	return r
}

// page GETs a UI page and wants a 200.
func (e *env) page(t testing.TB, path string) string {
	t.Helper()
	r := e.get(t, path)
	if r.status != 200 {
		t.Fatalf("GET %s: %d\n%s", path, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("GET %s: content type %q", path, ct)
	}
	return r.body
}
