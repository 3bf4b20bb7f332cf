// Package api is batchy's HTTP interface: the original Batchy's GET routes, kept working for
// existing curl calls, and the v1 REST API. Handlers only translate between HTTP and the
// batch.Store; every rule lives in the domain and the store.
package api

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/format"
	"github.com/batchy/batchy/internal/metrics"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/scheduler"
)

// Options configure a Server.
type Options struct {
	// Store keeps the batch state. Required.
	Store batch.Store
	// Summaries lists the workflows (GET /v1/workflows); nil means Store, when it keeps summaries
	// (rdb.Store), else the list answers 503.
	Summaries batch.SummaryReader
	// CfgDir is the directory of workflow files; "" means "cfg".
	CfgDir string
	// Limits bound the workflow files read; the zero value takes config's defaults.
	Limits config.Limits
	// Format tunes the infa and env outputs of the v1 routes.
	Format format.Options
	// OriginalInfaDateFormat is the infa date format of the original routes; "" means
	// format.OriginalDates, the original's own (2026-11-22 13:49:30.840061, None, True).
	OriginalInfaDateFormat string
	// StrictOriginal makes GET /get_status/<wf> answer 404 for a workflow that is not loaded, as
	// every other route does; false answers the original's 200 {}.
	StrictOriginal bool
	// Location is the server's time zone (--tz), used for previews of trunc_start; nil means UTC.
	Location *time.Location
	// Hub wakes waits when a workflow changes; nil means waits only re-check periodically.
	Hub *notify.Hub
	// Events records log lines posted to the API and serves the event readers; nil means no
	// events (the event routes answer 503).
	Events *event.Bus
	// Tokens are the API tokens; empty means auth is off (serve refuses that off loopback).
	Tokens *auth.Tokens
	// LoopbackOnly, with no tokens, refuses requests that a browser makes for another site's
	// page or for a Host that is not a name of this machine (DNS rebinding): the protection of a
	// batchy that serves only this machine, without auth. serve sets it unless --insecure-no-auth.
	LoopbackOnly bool
	// HostNames are this machine's names, which a browser may use for a LoopbackOnly batchy
	// besides localhost and loopback addresses; nil means os.Hostname's.
	HostNames []string
	// UI serves the web UI at GET / and under /ui/; nil means no UI.
	UI http.Handler
	// Scheduler runs workflows; nil means the scheduler is off (its routes answer 503).
	Scheduler *scheduler.Scheduler
	// StoreName says which store is in use ("embedded" or "redis"), for /healthz.
	StoreName string
	// MaxWaitsPerClient bounds the waits one client (token, or address without auth) holds at
	// once; zero means no bound.
	MaxWaitsPerClient int
	// MaxBodyBytes bounds a request body; zero means 1 MiB.
	MaxBodyBytes int64
	// ChangeInterval is the shortest time between two reports of a change stream (GET
	// /v1/changes) to one client: a workflow that changes more often is reported once per
	// interval. Zero means 500ms.
	ChangeInterval time.Duration
	// Metrics records requests and serves GET /metrics; nil means no metrics and no route.
	Metrics *metrics.Metrics
	// Logger receives request and error logs; nil means slog.Default().
	Logger *slog.Logger
}

// Server serves the HTTP API.
type Server struct {
	opts    Options
	log     *slog.Logger
	engine  *gin.Engine
	closing chan struct{} // closed by Close: long polls answer at once
	reads   *sharedReads  // waits of one workflow share state reads
	// hostNames are this machine's names (Options.HostNames), never empty.
	hostNames []string
	waits     waitCounter
	closeOne  sync.Once
	never     config.Unloaded // the configuration files never loaded, for GET /v1/workflows
	recheck   recheck         // wakes every wait at once, every recheckEvery
	parking   parking         // the parked waits (park.go)
}

// New returns a Server with every route registered.
func New(opts Options) *Server {
	if opts.CfgDir == "" {
		opts.CfgDir = "cfg"
	}
	if opts.HostNames == nil {
		if h, err := os.Hostname(); err == nil && h != "" {
			opts.HostNames = []string{h}
			if short, _, ok := strings.Cut(h, "."); ok {
				opts.HostNames = append(opts.HostNames, short)
			}
		}
	}
	if len(opts.HostNames) == 0 {
		opts.HostNames = []string{"localhost"}
	}
	if opts.OriginalInfaDateFormat == "" {
		opts.OriginalInfaDateFormat = format.OriginalDates
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.ChangeInterval <= 0 {
		opts.ChangeInterval = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Hub == nil {
		opts.Hub = notify.NewHub(nil, opts.Logger)
	}
	if r, ok := opts.Store.(batch.SummaryReader); ok && opts.Summaries == nil {
		opts.Summaries = r
	}
	opts.Store = shownStore{opts.Store}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{opts: opts, log: opts.Logger, engine: gin.New(), closing: make(chan struct{}), reads: newSharedReads(opts.Store), hostNames: opts.HostNames}
	s.engine.HandleMethodNotAllowed = true
	// A client's address is the connection's: X-Forwarded-For is set by anyone, so trusting it
	// would let a client escape its wait limit by naming another address.
	s.engine.SetTrustedProxies(nil)
	// Route on the escaped path, so that /load_cfg/..%2Fetc reaches the handler as the name
	// "../etc" and is refused as an invalid name rather than as an unknown route.
	s.engine.UseRawPath = true
	s.engine.UnescapePathValues = true
	s.engine.Use(s.requestID, s.recoverer, opts.Metrics.GinMiddleware(), s.logRequests, s.authenticate)
	s.engine.NoRoute(func(c *gin.Context) {
		s.fail(c, batch.Errorf(batch.ENOTFOUND, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	s.engine.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, errorBody("method_not_allowed", "method "+c.Request.Method+" is not allowed on "+c.Request.URL.Path))
	})
	if opts.Metrics != nil {
		s.engine.GET("/metrics", gin.WrapH(opts.Metrics.Handler()))
	}
	s.routesOriginal()
	s.routesV1()
	if !opts.Tokens.Empty() {
		s.routesLogin()
	}
	if opts.UI != nil {
		ui := gin.WrapH(opts.UI)
		s.engine.Match([]string{http.MethodGet, http.MethodHead}, "/", ui)
		s.engine.Match([]string{http.MethodGet, http.MethodHead}, "/ui/*path", ui)
	}
	return s
}

// Close makes waits in progress answer at once, so that a graceful shutdown need not wait for
// long polls; call it before http.Server.Shutdown.
// Parked waits are answered before it returns (or after a second at most): their connections are
// no longer net/http's, and http.Server.Shutdown does not wait for them.
func (s *Server) Close() {
	s.closeOne.Do(func() {
		close(s.closing)
		s.closeParked(time.Second)
	})
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists every registered route as "METHOD path", for docs and their tests.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.engine.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// status is the one map from error code to HTTP status.
var status = map[string]int{
	batch.EINVALID:      http.StatusBadRequest,
	batch.ENOTFOUND:     http.StatusNotFound,
	batch.ECONFLICT:     http.StatusConflict,
	batch.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	batch.ETOOMANY:      http.StatusTooManyRequests,
	batch.EUNAVAILABLE:  http.StatusServiceUnavailable,
	batch.EUNAUTHORIZED: http.StatusUnauthorized,
	batch.EFORBIDDEN:    http.StatusForbidden,
	batch.EINTERNAL:     http.StatusInternalServerError,
}

// ErrorBody is the JSON every error response carries.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errorBody(code, msg string) ErrorBody {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	return b
}

// fail writes err as a JSON error. Internal and store errors are logged with their cause, which
// never reaches the client.
func (s *Server) fail(c *gin.Context, err error) {
	code := batch.ErrorCode(err)
	st, ok := status[code]
	if !ok {
		st = http.StatusInternalServerError
	}
	var be *batch.Error
	if code == batch.EUNAVAILABLE && errors.As(err, &be) && be.Cause != nil {
		s.opts.Metrics.RedisError() // the store failed (not the scheduler being off, or shutdown)
	}
	if st >= 500 {
		s.logger(c).Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "code", code, "err", err)
	}
	c.AbortWithStatusJSON(st, errorBody(code, batch.ErrorMessage(err)))
}

func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.logger(c).Error("panic in handler", "path", c.Request.URL.Path, "panic", v)
			s.fail(c, errors.New("panic"))
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "(no route)"
	}
	// Checked first: the arguments would be built for every request only to be dropped.
	if s.log.Enabled(c.Request.Context(), slog.LevelDebug) {
		s.logger(c).Debug("request", "method", c.Request.Method, "route", route, "status", c.Writer.Status(), "duration", time.Since(start))
	}
}

// requestIDHeader carries a request's id, from a proxy and in the response.
const requestIDHeader = "X-Request-Id"

// requestID gives every request an id, taken from a well-formed X-Request-Id header (a proxy's)
// or made up, and echoes it in the response, where logger finds it for the request's log lines.
// A made-up id only has to tell requests apart, not be secret: it comes from math/rand, which
// costs no system call.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if !validRequestID(id) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], rand.Uint64())
		id = hex.EncodeToString(b[:])
	}
	c.Header(requestIDHeader, id)
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// logger returns the request's logger, which carries its request id. It is made only when a
// request logs, which most never do.
func (s *Server) logger(c *gin.Context) *slog.Logger {
	if id := c.Writer.Header().Get(requestIDHeader); id != "" {
		return s.log.With("request_id", id)
	}
	return s.log
}

// workflow returns the :wf path parameter, validated.
func workflow(c *gin.Context) (string, error) {
	wf := c.Param("wf")
	return wf, batch.CheckName("workflow", wf)
}

// load reads a workflow's file and stores it.
func (s *Server) load(ctx context.Context, wf string, reset bool) (*batch.State, error) {
	w, err := config.LoadFile(s.opts.CfgDir, wf, s.opts.Limits)
	if err != nil {
		return nil, err
	}
	if err := scheduler.Validate(w, nil, s.opts.Location); err != nil {
		return nil, err
	}
	// A cycle of after: settings would make each run start the next, forever: refuse the load
	// that closes one, against the other workflows as loaded.
	lookup := func(wf string) ([]string, bool) {
		st, err := s.opts.Store.State(ctx, wf)
		if err != nil {
			return nil, false
		}
		return st.Settings.After, true
	}
	if cycle := scheduler.AfterCycle(w.Name, w.Settings.After, lookup); cycle != nil {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: after: waits for itself (%s)", w.Name, strings.Join(cycle, " after "))
	}
	return s.opts.Store.Load(ctx, w, reset)
}

// render writes jobs in format f with status 200.
func (s *Server) render(c *gin.Context, f format.Format, opts format.Options, wf string, batchID int64, jobs batch.Jobs) {
	b, err := format.Append(nil, f, wf, batchID, jobs, opts)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Data(http.StatusOK, f.ContentType(), b)
}

// decode reads a JSON request body into v, strictly (see strictJSON).
// An empty body leaves v as it is, so every body is optional.
func (s *Server) decode(c *gin.Context, v any) error {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return batch.Errorf(batch.ETOOLARGE, "request body is larger than %d bytes", s.opts.MaxBodyBytes)
		}
		return batch.Errorf(batch.EINVALID, "reading request body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := strictJSON(data, v); err != nil {
		return batch.Errorf(batch.EINVALID, "request body: %s", jsonError(err))
	}
	return nil
}

// jsonError words a decoding error for a user, naming the field where it can.
func jsonError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return "the body must be " + jsonKind(typeErr.Type) + ", got " + typeErr.Value
		}
		return "field " + typeErr.Field + " must be " + jsonKind(typeErr.Type) + ", got " + typeErr.Value
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return "malformed JSON: " + syntaxErr.Error()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "malformed JSON: unexpected end of input"
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return msg
}

// jsonKind words a Go type as the JSON a client should send.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a JSON value"
}

// handle adapts a route's work to gin: the work answers the request itself, or returns the
// error that fail answers with. One place turns errors into responses, so no handler can forget
// to stop after one.
func (s *Server) handle(h func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			s.fail(c, err)
		}
	}
}
