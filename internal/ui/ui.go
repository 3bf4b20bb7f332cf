// Package ui is batchy's web UI: a dashboard of the workflows (a page at a time, from the
// summaries' index) and a page per workflow, rendered on the server with html/template from files
// embedded in the binary, plus one small script.
//
// The UI only reads (through batch.Store, the event stream and the scheduler). Every action a
// person takes (load, open, close, fail, rewind, run, backfill, cancel) is a fetch() from the
// browser to the existing v1 API, so the API stays the one place where changes are made, checked
// and, later, authorised. Live updates come from event streams (SSE), not from timers: the
// dashboard follows the installation's change stream (GET /v1/changes) and re-fetches only the
// rows it reports (live.go); the workflow and run pages follow the workflow's event stream and
// re-fetch their server-rendered live parts when it reports a transition, and the workflow page
// appends that stream to a live tail. Without a stream, the pages re-fetch their live parts on a
// timer.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/scheduler"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the UI.
type Options struct {
	// Store keeps the batch state. Required.
	Store batch.Store
	// Events is the event bus whose stream the workflow page reads and tails; nil hides the
	// event and log tail.
	Events *event.Bus
	// Scheduler runs workflows; nil hides runs, next run times, late detection and the "run
	// now" action (backfills then open the window directly instead of queueing a run).
	Scheduler *scheduler.Scheduler
	// Summaries lists the workflows for the dashboard; nil means Store, when it keeps summaries
	// (rdb.Store), else the dashboard answers 503.
	Summaries batch.SummaryReader
	// CfgDir is the directory of workflow files; configured workflows that are not loaded yet are
	// listed with a "load" action. "" lists loaded workflows only.
	CfgDir string
	// Location is the default time zone of schedules (--tz); nil means UTC. Times are shown in UTC,
	// as the API gives them.
	Location *time.Location
	// CanAct reports whether the request's user may change state; false renders no action
	// buttons or forms. nil means everyone may act (batchy has no authentication yet): an auth
	// layer passes its read-only decision here.
	CanAct func(*http.Request) bool
	// CanAdmin reports whether the request's user may also take admin actions (load
	// configuration, rewind a watermark); false hides them. nil means as CanAct.
	CanAdmin func(*http.Request) bool
	// CSRFToken returns the token the page sends back in the X-CSRF-Token header of every action;
	// nil sends none. For an auth layer that checks one.
	CSRFToken func(*http.Request) string
	// StoreName names the store on the page shown when it does not answer ("Redis at
	// 10.0.0.5:6379"); "" means "The store (Redis)". It must hold no credentials.
	StoreName string
	// PageSize is the number of workflows per dashboard page; zero means 50.
	PageSize int
	// Refresh is how often a page re-fetches its live part when it has no event stream to follow;
	// zero means 5s. With one (the dashboard's change stream, the workflow page's event stream)
	// the timer is a safety net: every 12 × Refresh on the dashboard (for the counts of workflows
	// off the page), 3 × on the workflow page.
	Refresh time.Duration
	// LongOpen is how long a batch may stay open before its workflow stands out; zero means 4h.
	LongOpen time.Duration
	// LateAfter is how long past its scheduled time a workflow that has not started stands out as
	// late; zero means 30m.
	LateAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
}

// UI serves the web UI: GET / (dashboard), GET /ui/workflows/<wf> (a workflow), their live
// fragments under /ui/fragment/ (the dashboard rows' action menus too) and the static files under
// /ui/static/.
type UI struct {
	opts  Options
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
	// handler is mux behind gzip/zstd compression of every text answer.
	handler http.Handler
	version string // of the static files, for cache busting
	never   config.Unloaded
	// rows keeps the dashboard's rendered rows (rows.go).
	rows *rowCache
}

var _ http.Handler = (*UI)(nil)

// New returns the UI.
func New(opts Options) *UI {
	if opts.Store == nil {
		panic("ui.New: Options.Store is required")
	}
	if r, ok := opts.Store.(batch.SummaryReader); ok && opts.Summaries == nil {
		opts.Summaries = r
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.CanAct == nil {
		opts.CanAct = func(*http.Request) bool { return true }
	}
	if opts.CanAdmin == nil {
		opts.CanAdmin = opts.CanAct
	}
	if opts.StoreName == "" {
		opts.StoreName = "The store (Redis)"
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.LongOpen <= 0 {
		opts.LongOpen = 4 * time.Hour
	}
	if opts.LateAfter <= 0 {
		opts.LateAfter = 30 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	u := &UI{opts: opts, log: opts.Logger, mux: http.NewServeMux(), version: staticVersion(), rows: newRowCache()}
	u.pages = map[string]*template.Template{
		"dashboard": parsePage("dashboard.html"),
		"workflow":  parsePage("workflow.html"),
		"error":     parsePage("error.html"),
		"run":       parsePage("run.html"),
		"batch":     parsePage("batch.html"),
	}
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	u.mux.Handle("GET /ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") == u.version {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	}))
	u.mux.HandleFunc("GET /{$}", u.dashboard)
	u.mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/", http.StatusFound) })
	u.mux.HandleFunc("GET /ui/fragment/dashboard", u.dashboard)
	u.routesLive()
	u.mux.HandleFunc("GET /ui/fragment/dashboard/actions/{wf}", u.dashboardActions)
	u.mux.HandleFunc("GET /ui/workflows/{wf}", u.workflow)
	u.mux.HandleFunc("GET /ui/fragment/workflows/{wf}", u.workflow)
	u.mux.HandleFunc("GET /ui/workflows/{wf}/runs/{run}", u.run)
	u.mux.HandleFunc("GET /ui/workflows/{wf}/runs/{run}/log.txt", u.run)
	u.mux.HandleFunc("GET /ui/fragment/workflows/{wf}/runs/{run}", u.run)
	u.mux.HandleFunc("GET /ui/workflows/{wf}/batches/{id}", u.batchPage)
	u.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, batch.Errorf(batch.ENOTFOUND, "there is no page %s", r.URL.Path))
	})
	// Every answer is text (pages, fragments, CSS, JS, log downloads): compressed when the browser
	// accepts it. Pages reflect the search (?q=) beside the CSRF token: a random jitter in the
	// compressed size defeats guessing the token from sizes (BREACH). The fastest level: a
	// dashboard page of 50 rows is about 65 KB of repetitive HTML, compressed in a third less time
	// than at the default level for a tenth more bytes.
	compress, err := gzhttp.NewWrapper(gzhttp.MinSize(1024), gzhttp.RandomJitter(32, 0, false), gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		panic("ui.New: " + err.Error())
	}
	u.handler = compress(u.mux)
	return u
}

// ServeHTTP implements http.Handler.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Every script and style is a file of ours: no inline code runs, whatever a field holds.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	u.handler.ServeHTTP(w, r)
}

func parsePage(file string) *template.Template {
	return template.Must(template.New(file).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+file))
}

func staticVersion() string {
	h := sha256.New()
	fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := staticFS.ReadFile(path)
			h.Write([]byte(path))
			h.Write(data)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// page is what every page template gets.
type page struct {
	Title    string
	Page     string // "dashboard", "workflow" or "error"
	Version  string
	CSRF     string
	CanAct   bool
	CanAdmin bool   // false hides the actions only admins may take
	Refresh  int    // seconds between refreshes of the live parts
	Fragment string // URL of the live parts; "" for none
	// Follow is the URL of an event stream whose events refresh the live parts; "" for none.
	Follow string
	// Retry, when non-zero, makes the page load itself again every Retry seconds until it
	// answers (the store was down).
	Retry int
	Now   time.Time
	Data  any
}

func (u *UI) newPage(r *http.Request, name, title string, data any) *page {
	p := &page{Title: title, Page: name, Version: u.version, CanAct: u.opts.CanAct(r), CanAdmin: u.opts.CanAdmin(r),
		Refresh: int(u.opts.Refresh / time.Second), Now: u.opts.Now().UTC(), Data: data}
	if p.Refresh < 1 {
		p.Refresh = 1
	}
	if u.opts.CSRFToken != nil {
		p.CSRF = u.opts.CSRFToken(r)
	}
	return p
}

// render writes a whole page, or only its live parts on a fragment URL.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, p *page) {
	tmpl := "layout"
	if strings.HasPrefix(r.URL.Path, "/ui/fragment/") {
		tmpl = "live"
	}
	u.renderPart(w, r, status, p, tmpl)
}

// renderPart writes the template tmpl of p's page: "layout" (the whole page), "live" (its live
// parts) or another part a fragment URL answers.
func (u *UI) renderPart(w http.ResponseWriter, r *http.Request, status int, p *page, tmpl string) {
	b := renderBuffers.Get().(*bytes.Buffer)
	defer putRenderBuffer(b)
	if err := u.pages[p.Page].ExecuteTemplate(b, tmpl, p); err != nil {
		u.log.Error("ui: rendering a page", "page", p.Page, "err", err)
		http.Error(w, "the page could not be rendered; details are in batchy's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if tmpl == "live" && status == http.StatusOK {
		// The page's script sends back the ETag of the live parts it shows: when nothing changed,
		// a refresh costs a 304 and no body.
		sum := sha256.Sum256(b.Bytes())
		etag := `"` + hex.EncodeToString(sum[:12]) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// renderBuffers keeps the buffers pages are rendered into: a dashboard page is about 65 KB, which
// a buffer grown anew for each view would allocate several times over.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putRenderBuffer returns b to renderBuffers, unless an unusually large page grew it.
func putRenderBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return
	}
	b.Reset()
	renderBuffers.Put(b)
}

// errorView is what the error page shows.
type errorView struct {
	Status  int
	Message string
	// Load names a configured workflow that is not loaded, offered for loading.
	Load string
	// Down: the store is not answering; Store names it.
	Down  bool
	Store string
}

// fail renders an error page. Messages of internal errors stay in the log, as on the API.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	u.failLoad(w, r, err, "")
}

func (u *UI) failLoad(w http.ResponseWriter, r *http.Request, err error, load string) {
	st := httpStatus(err)
	msg := batch.ErrorMessage(err)
	if errors.Is(err, context.Canceled) {
		return // the browser went away
	}
	if st >= 500 {
		u.log.Error("ui: request failed", "path", r.URL.Path, "err", err)
		if st == http.StatusInternalServerError {
			msg = "something went wrong; details are in batchy's log"
		}
	}
	v := errorView{Status: st, Message: msg, Load: load}
	title := http.StatusText(st)
	if batch.ErrorCode(err) == batch.EUNAVAILABLE {
		v.Down, v.Store, title = true, u.opts.StoreName, "Store not answering"
	}
	p := u.newPage(r, "error", title, v)
	if v.Down {
		p.Retry = 5
		w.Header().Set("Retry-After", "5")
	}
	u.render(w, r, st, p)
}

// httpStatus maps the domain's error codes to what an error page answers; it follows the API's
// one map (internal/api), of which the UI needs only these cases.
func httpStatus(err error) int {
	switch batch.ErrorCode(err) {
	case batch.EINVALID:
		return http.StatusBadRequest
	case batch.EFORBIDDEN:
		return http.StatusForbidden
	case batch.ENOTFOUND:
		return http.StatusNotFound
	case batch.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
