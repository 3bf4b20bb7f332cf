package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/format"
	"github.com/batchy/batchy/internal/metrics"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/scheduler"
	"github.com/batchy/batchy/internal/ui"
)

// serveConfig is everything serve is configured with: flags, BATCHY_* variables and --config.
type serveConfig struct {
	// alertBackstop runs the alerts' backstop (--alert-backstop).
	alertBackstop     bool
	store             storeFlags
	log               logFlags
	addr              string
	cfgDir            string
	infaDateFormat    string
	origDateFormat    string
	strictOriginal    bool
	shutdownWait      time.Duration
	schedulerMode     string
	leaseTime         time.Duration
	logSinks          []string
	eventsKeep        int64
	minReplicas       int
	slackHooks        []string
	jsonHooks         []string
	tokensFile        string
	tokens            string
	insecureNoAuth    bool
	tlsCert           string
	tlsKey            string
	maxBody           int64
	maxConfigBytes    int64
	maxWaitsPerClient int
	metrics           bool
	memoryLimit       string
}

// flagSet registers serve's flags on a new set; `batchy config` shares it.
func (c *serveConfig) flagSet(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5000", "address to listen on (host:port); without tokens only a loopback address is allowed (see --insecure-no-auth)")
	fs.StringVar(&c.cfgDir, "cfg-dir", "cfg", "directory of workflow files (<wf>.yaml)")
	fs.StringVar(&c.infaDateFormat, "infa-date-format", format.DefaultInfaDateFormat, "date format of the infa output on the v1 routes, in Informatica's notation")
	fs.StringVar(&c.origDateFormat, "original-infa-date-format", format.OriginalDates, "date format of the infa output on the original routes: original (the original Batchy's 2026-11-22 13:49:30.840061, None, True) or one in Informatica's notation; ?date_format= overrides either per request")
	fs.BoolVar(&c.strictOriginal, "strict-original", false, "GET /get_status/<wf> answers 404 for a workflow that is not loaded, instead of the original's 200 {}")
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for requests in flight")
	fs.StringVar(&c.schedulerMode, "scheduler", "on", "on: run workflows with a schedule or after: (one replica leads); off: cron, systemd or Kubernetes drive batchy over HTTP")
	fs.DurationVar(&c.leaseTime, "scheduler-lease", 15*time.Second, "leader and run lease: a replica that dies is replaced within about this time")
	fs.StringArrayVar(&c.logSinks, "log-sink", nil, "also send every event to this sink (repeatable): file:///path.jsonl, stdout://, postgres://..., nats://...; the Redis stream (redis://) is always written. A #<id> at the end names the sink's cursors (default: the URL without credentials): replicas with the same ID share one delivery")
	fs.Int64Var(&c.eventsKeep, "events-keep", 100000, "events kept per workflow in its Redis stream")
	fs.IntVar(&c.minReplicas, "redis-min-replicas", 0, "after each transition, wait up to 1s (WAIT) for this many Redis replicas to confirm it, and answer 503 when fewer do; 0: do not wait (Redis replicates asynchronously)")
	fs.StringArrayVar(&c.slackHooks, "alert-webhook", nil, "send alerts (failed, retries exhausted, late, long open) to this Slack-compatible webhook URL (repeatable)")
	fs.StringArrayVar(&c.jsonHooks, "alert-webhook-json", nil, "send alerts as JSON to this webhook URL (repeatable)")
	fs.BoolVar(&c.alertBackstop, "alert-backstop", false, "also raise alerts from the durable event streams (polled every 5s, one replica at a time), so that a replica dying between a transition and its alert's claim loses no alert; it reads every event once more")
	fs.StringVar(&c.tokensFile, "tokens-file", "", `API tokens, one "<role> <name> <secret or sha256:hex>" per line (roles: read, operate, admin); turns auth on`)
	fs.StringVar(&c.tokens, "tokens", "", "API tokens as in --tokens-file, comma-separated (meant for BATCHY_TOKENS); turns auth on")
	fs.BoolVar(&c.insecureNoAuth, "insecure-no-auth", false, "allow serving without tokens on a non-loopback address: anyone who reaches it can change every watermark")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	fs.Int64Var(&c.maxBody, "max-body-bytes", 1<<20, "largest request body accepted")
	fs.Int64Var(&c.maxConfigBytes, "max-config-bytes", 1<<20, "largest workflow file accepted")
	fs.IntVar(&c.maxWaitsPerClient, "max-waits-per-client", 10000, "most waits (GET /v1/wait) one client holds at once: one token, or one address without auth; 0 means no limit")
	fs.BoolVar(&c.metrics, "metrics", true, "serve Prometheus metrics at /metrics (read role when auth is on)")
	fs.StringVar(&c.memoryLimit, "memory-limit", "auto", "soft limit of the Go runtime's memory, as GOMEMLIMIT: auto (with Redis and no GOMEMLIMIT: twice the memory held once started, at least 32MiB, raised when the live heap outgrows it, and GOGC off unless set: the GC runs near the limit; none with the embedded store), off, or a size such as 96MiB; near it the GC spends more CPU")
	c.store.register(fs)
	c.log.register(fs)
	markSecret(fs, "tokens", secretHidden)
	markSecret(fs, "log-sink", secretURL)
	markSecret(fs, "alert-webhook", secretHook)
	markSecret(fs, "alert-webhook-json", secretHook)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy serve [flags]\n\nRuns the HTTP service. Flags (each also BATCHY_<FLAG> in the environment, or a key of the --config file):\n%s", fs.FlagUsages())
	}
	return fs
}

// check reports the first usage error in the configuration.
func (c *serveConfig) check() error {
	if err := format.CheckInfaDateFormat(c.infaDateFormat); err != nil {
		return fmt.Errorf("--infa-date-format: %v", err)
	}
	if err := format.CheckInfaDateFormat(c.origDateFormat); err != nil {
		return fmt.Errorf("--original-infa-date-format: %v", err)
	}
	if err := c.store.check(); err != nil {
		return err
	}
	if c.schedulerMode != "on" && c.schedulerMode != "off" {
		return fmt.Errorf("--scheduler %q: use on or off", c.schedulerMode)
	}
	if c.leaseTime < time.Second {
		return fmt.Errorf("--scheduler-lease %s: use 1s or more", c.leaseTime)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.maxBody < 1024 {
		return fmt.Errorf("--max-body-bytes %d: use 1024 or more", c.maxBody)
	}
	if c.maxConfigBytes < 1024 {
		return fmt.Errorf("--max-config-bytes %d: use 1024 or more", c.maxConfigBytes)
	}
	if c.memoryLimit != "auto" && c.memoryLimit != "off" {
		if _, err := parseBytes(c.memoryLimit); err != nil {
			return fmt.Errorf("--memory-limit %v", err)
		}
	}
	if c.maxWaitsPerClient < 0 {
		return fmt.Errorf("--max-waits-per-client %d: use 0 (no limit) or more", c.maxWaitsPerClient)
	}
	if c.minReplicas < 0 {
		return fmt.Errorf("--redis-min-replicas %d: use 0 (do not wait) or more", c.minReplicas)
	}
	if c.minReplicas > 0 && c.store.redisURL == "" && len(c.store.redisCluster) == 0 && len(c.store.redisSentinel) == 0 {
		return fmt.Errorf("--redis-min-replicas %d needs Redis (--redis-url, --redis-sentinel or --redis-cluster): the embedded store has no replicas", c.minReplicas)
	}
	if c.eventsKeep < 1 {
		return fmt.Errorf("--events-keep %d: use 1 or more", c.eventsKeep)
	}
	for _, u := range append(append([]string{}, c.slackHooks...), c.jsonHooks...) {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("alert webhook %s must be an http:// or https:// URL", hideSecret(secretHook, u))
		}
	}
	if _, err := net.ResolveTCPAddr("tcp", c.addr); err != nil {
		return fmt.Errorf("--addr %q: %v", c.addr, err)
	}
	return nil
}

// loadTokens reads the tokens of --tokens-file and --tokens. Errors name the line or entry,
// never a secret.
func (c *serveConfig) loadTokens() (*auth.Tokens, error) {
	var fromFile, fromList *auth.Tokens
	var err error
	if c.tokensFile != "" {
		if fromFile, err = auth.Load(c.tokensFile); err != nil {
			return nil, fmt.Errorf("--tokens-file: %v", err)
		}
	}
	if c.tokens != "" {
		if fromList, err = auth.ParseList(c.tokens); err != nil {
			return nil, fmt.Errorf("--tokens (BATCHY_TOKENS): %v", err)
		}
	}
	t, err := auth.Merge(fromFile, fromList)
	if err != nil {
		return nil, fmt.Errorf("--tokens-file and --tokens: %v", err)
	}
	return t, nil
}

// alertBackstopPoll is how often the alerts' backstop looks for new events: the longest an alert
// whose replica died waits, besides a takeover of the backstop's lease (docs/operations.md).
const alertBackstopPoll = 5 * time.Second

// logSink is a configured log sink and the ID its cursors and lease go by.
type logSink struct {
	sink event.Sink
	id   string
}

// openLogSinks opens the secondary log sinks (the Redis stream is always written, so redis://
// is skipped); on an error the ones opened are closed. A sink's ID is its URL's fragment
// (file:///var/log/b.jsonl#replica-a), cut off before the sink opens, or else its description
// without credentials (String): replicas configured with the same sink share its cursors.
func (c *serveConfig) openLogSinks(stdout io.Writer) ([]logSink, error) {
	registry := event.DefaultRegistry(event.RegistryOptions{Stdout: stdout})
	var sinks []logSink
	for _, u := range c.logSinks {
		if u == "redis://" || u == "redis:" {
			continue
		}
		id := ""
		if before, fragment, ok := strings.Cut(u, "#"); ok && !batch.URLMisread(u) {
			u, id = before, fragment
		}
		sink, err := registry.Open(u)
		if err != nil {
			for _, s := range sinks {
				s.sink.Close()
			}
			return nil, err
		}
		if id == "" {
			id = sink.String()
		}
		for _, s := range sinks {
			if s.id == id {
				sink.Close()
				for _, s := range sinks {
					s.sink.Close()
				}
				return nil, fmt.Errorf("two log sinks go by %q: give one an ID of its own after '#'", id)
			}
		}
		sinks = append(sinks, logSink{sink: sink, id: id})
	}
	return sinks, nil
}

// alertNotifiers are the webhooks alerts go to.
func (c *serveConfig) alertNotifiers() []alert.Notifier {
	var notifiers []alert.Notifier
	for _, u := range c.slackHooks {
		notifiers = append(notifiers, &alert.Webhook{URL: u, Slack: true})
	}
	for _, u := range c.jsonHooks {
		notifiers = append(notifiers, &alert.Webhook{URL: u})
	}
	return notifiers
}

// isLoopback reports whether addr's host only accepts connections from this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := cfg.flagSet("serve", stderr)
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "batchy serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	log, err := cfg.log.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitUsage
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitUsage
	}
	// go-redis reports connection trouble through its own logger: route it to ours, so that
	// --log-format json stays JSON.
	rdb.SetLogger(log)
	loc, _ := cfg.store.location()
	tokens, err := cfg.loadTokens()
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitUsage
	}
	if tokens.Empty() && !isLoopback(cfg.addr) && !cfg.insecureNoAuth {
		// Protected mode, as Redis has it: an open batchy on a network changes anyone's watermarks.
		fmt.Fprintf(stderr, "batchy serve: refusing to serve %s without tokens: anyone who reaches it could change every workflow. "+
			"Give --tokens-file (or BATCHY_TOKENS), listen on 127.0.0.1, or pass --insecure-no-auth if a proxy in front authenticates.\n", cfg.addr)
		return exitUsage
	}
	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			fmt.Fprintf(stderr, "batchy serve: --tls-cert/--tls-key: %v\n", err)
			return exitUsage
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	sinks, err := cfg.openLogSinks(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: --log-sink: %v\n", err)
		return exitUsage
	}

	cfg.store.eventsKeep = cfg.eventsKeep
	cfg.store.minReplicas = cfg.minReplicas
	store, err := cfg.store.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitError
	}
	closeStore := sync.OnceFunc(func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	})
	defer closeStore()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := store.Ping(pingCtx); err != nil {
		// Start anyway: requests answer 503 until the store is back, and /readyz says why.
		log.Warn("the store does not answer yet", "store", store.Name, "where", store.Where, "err", err)
	}
	cancel()

	// Each log sink is fed from the Redis streams by one replica at a time, from cursors kept in
	// Redis: nothing is lost when a sink is down, at a shutdown or in a crash (docs/operations.md).
	replica := scheduler.ReplicaID()
	bus := event.NewBus(rdb.NewEventStream(store.Client, store.Keys(), cfg.eventsKeep), log)
	plainSinks := make([]event.Sink, len(sinks))
	for i, s := range sinks {
		plainSinks[i] = s.sink
		bus.Feed(event.NewFeeder(s.sink, store.Sinks(), event.FeederOptions{ID: s.id, Holder: replica, Lease: cfg.leaseTime, Log: log}))
		log.Info("log sink", "sink", s.sink.String(), "id", s.id)
	}
	// At a shutdown the feeders deliver until the grace of --shutdown-timeout ends.
	var shutdownDeadline time.Time
	var backstop *event.Feeder // the alerts', below
	flushSinks := sync.OnceFunc(func() {
		deadline := shutdownDeadline
		if deadline.IsZero() {
			deadline = time.Now().Add(5 * time.Second)
		}
		fctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		bus.Close(fctx)
		if backstop != nil {
			if err := backstop.Close(fctx); err != nil {
				log.Warn("alerts' backstop: closing", "err", err)
			}
		}
	})
	defer flushSinks()
	recording := event.RecordingStore{Store: store, Bus: bus}

	var m *metrics.Metrics
	if cfg.metrics {
		m = metrics.New()
		bus.Observe(m.Observe)
	}
	notifiers := cfg.alertNotifiers()
	alerter := alert.New(alert.Options{Store: store, Marker: store, Notifiers: notifiers, Events: bus, Location: loc, Logger: log, Counter: m})
	bus.Observe(alerter.Observe)
	for _, n := range notifiers {
		log.Info("alert notifier", "notifier", n.String())
	}
	// The alerts' backstop (--alert-backstop): fed from the streams like a log sink (one replica at
	// a time, cursors in Redis), it raises the alerts of transitions whose replica died before
	// claiming them. Polled only, not woken by this process's events: Observe raised those already.
	// Off by default: it reads and decodes every event once more, in batches every 5 s, so after a
	// burst of transitions it keeps a CPU busy while it catches up (bench/analysis.md).
	if cfg.alertBackstop {
		backstop = event.NewFeeder(alerter.Backstop(), store.Sinks(), event.FeederOptions{ID: alert.FeedID, Holder: replica,
			Lease: cfg.leaseTime, Poll: alertBackstopPoll, Recent: true, Log: log})
	}

	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	go event.WatchSIGHUP(hubCtx, plainSinks, log)
	go alerter.Run(hubCtx, 30*time.Second)
	hub := notify.NewHub(store, log)
	go hub.Run(hubCtx)
	go func() {
		// The lists read the installation-wide index, which each change writes right after the
		// change itself (docs/redis.md): writing it again from the states repairs what a crash
		// between the two, or an earlier batchy, left stale.
		n, err := store.RebuildIndex(hubCtx)
		if err != nil && hubCtx.Err() == nil {
			log.Warn("rebuilding the workflow index", "err", err, "done", n)
			return
		}
		log.Debug("workflow index rebuilt", "workflows", n)
	}()

	var sch *scheduler.Scheduler
	if cfg.schedulerMode == "on" {
		sch = scheduler.New(scheduler.Options{ID: replica, Store: recording, Runs: store.Scheduler(), Location: loc, Lease: cfg.leaseTime, Logger: log, Events: bus})
		go sch.Run(hubCtx)
		log.Info("scheduler on", "replica", sch.ID())
	}

	limits := config.Limits{MaxBytes: cfg.maxConfigBytes}
	srv := api.New(api.Options{
		Store:     recording,
		Summaries: store,
		Events:    bus,
		Hub:       hub,
		Scheduler: sch,
		Tokens:    tokens,
		// Without tokens and --insecure-no-auth, batchy listens on loopback only: keep browsers
		// on other sites and DNS rebinding out too.
		LoopbackOnly: tokens.Empty() && !cfg.insecureNoAuth,
		Metrics:      m,
		UI: ui.New(ui.Options{Store: recording, Summaries: store, Events: bus, Scheduler: sch, CfgDir: cfg.cfgDir, Location: loc, Logger: log,
			CanAct: api.CanAct(tokens), CanAdmin: api.CanAdmin(tokens), CSRFToken: api.CSRFToken, StoreName: storeName(store.Name, store.Where)}),
		CfgDir:                 cfg.cfgDir,
		Limits:                 limits,
		Format:                 format.Options{InfaDateFormat: cfg.infaDateFormat},
		OriginalInfaDateFormat: cfg.origDateFormat,
		StrictOriginal:         cfg.strictOriginal,
		Location:               loc,
		StoreName:              store.Name,
		MaxBodyBytes:           cfg.maxBody,
		MaxWaitsPerClient:      cfg.maxWaitsPerClient,
		Logger:                 log,
	})
	m.SetSources(metrics.Sources{
		ActiveWaits: srv.ActiveWaits,
		SinkDropped: func() map[string]uint64 {
			out := map[string]uint64{}
			for _, f := range bus.Feeders() {
				out[f.String()] = f.Dropped()
			}
			return out
		},
		Sinks: func() []metrics.SinkStats {
			var out []metrics.SinkStats
			now := time.Now()
			for _, f := range bus.Feeders() {
				out = append(out, metrics.SinkStats{Sink: f.String(), Delivered: f.Delivered(), Failed: f.Failed(), Lag: f.Lag(now)})
			}
			return out
		},
		OpenBatches: metrics.OpenBatches(store, 2*time.Second, 10*time.Second),
		Summaries:   metrics.Summaries(store, 2*time.Second, 10*time.Second),
		NextFire: func(s batch.Summary, now time.Time) (time.Time, bool) {
			if s.Paused {
				return time.Time{}, false // a paused workflow does not fire
			}
			return scheduler.NextFire(s.Schedule, s.Timezone, loc, now)
		},
	})
	// Once started: auto sizes the limit from what batchy then holds.
	held := goMemory()
	limit, why := applyMemoryLimit(cfg.memoryLimit, store.Name, held)
	log.Info("memory limit", "bytes", limit, "why", why, "held", held)
	if limit > 0 && cfg.memoryLimit == "auto" {
		go followLiveHeap(ctx, limit, 30*time.Second, log)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitError
	}
	// Timeouts against slow clients (slowloris). No WriteTimeout: waits hold for up to five
	// minutes and event tails (SSE) for as long as the browser stays.
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	authMode := fmt.Sprintf("%d tokens", tokens.Len())
	if tokens.Empty() {
		authMode = "off"
	}
	log.Info("batchy listening", "addr", ln.Addr().String(), "scheme", scheme, "auth", authMode, "store", store.Name, "where", store.Where,
		"cfg_dir", cfg.cfgDir, "tz", loc.String(), "version", version)

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	select {
	case err := <-errc:
		log.Error("server stopped", "err", err)
		return exitError
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.shutdownWait)
	shutdownDeadline = time.Now().Add(cfg.shutdownWait)
	srv.Close()
	stopHub()
	if sch != nil {
		// Runs in progress are cancelled: their jobs fail with this reason and, per their retry
		// policy, another replica (or this one after a restart) runs them again.
		sch.Stop("batchy shut down while the run was executing")
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownWait)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "err", err)
	}
	flushSinks()
	closeStore()
	log.Info("stopped")
	return exitOK
}

// storeName names the store on the UI's page shown when it does not answer: "Redis at
// 10.0.0.5:6379" (where already hides any password).
func storeName(name, where string) string {
	if name == "redis" {
		name = "Redis"
	}
	if name == "embedded" {
		return "The embedded store (" + where + ")"
	}
	if where == "" {
		return "The store (" + name + ")"
	}
	return name + " at " + where
}
