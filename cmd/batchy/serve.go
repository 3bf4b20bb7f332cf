package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/format"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/scheduler"
	"github.com/batchy/batchy/internal/ui"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var (
		sf             storeFlags
		lf             logFlags
		addr           string
		cfgDir         string
		infaDateFormat string
		shutdownWait   time.Duration
		schedulerMode  string
		leaseTime      time.Duration
		logSinks       []string
		eventsKeep     int64
		slackHooks     []string
		jsonHooks      []string
	)
	fs.StringVar(&addr, "addr", "127.0.0.1:5000", "address to listen on (host:port)")
	fs.StringVar(&cfgDir, "cfg-dir", "cfg", "directory of workflow files (<wf>.yaml)")
	fs.StringVar(&infaDateFormat, "infa-date-format", format.DefaultInfaDateFormat, "date format of the infa output, in Informatica's notation")
	fs.DurationVar(&shutdownWait, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for requests in flight")
	fs.StringVar(&schedulerMode, "scheduler", "on", "on: run workflows with a schedule or after: (one replica leads); off: cron, systemd or Kubernetes drive batchy over HTTP")
	fs.DurationVar(&leaseTime, "scheduler-lease", 15*time.Second, "leader and run lease: a replica that dies is replaced within about this time")
	fs.StringArrayVar(&logSinks, "log-sink", nil, "also send every event to this sink (repeatable): file:///path.jsonl, stdout://, postgres://..., nats://...; the Redis stream (redis://) is always written")
	fs.Int64Var(&eventsKeep, "events-keep", 100000, "events kept per workflow in its Redis stream")
	fs.StringArrayVar(&slackHooks, "alert-webhook", nil, "send alerts (failed, retries exhausted, late, long open) to this Slack-compatible webhook URL (repeatable)")
	fs.StringArrayVar(&jsonHooks, "alert-webhook-json", nil, "send alerts as JSON to this webhook URL (repeatable)")
	sf.register(fs)
	lf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy serve [flags]\n\nRuns the HTTP service. Flags (each also BATCHY_<FLAG> in the environment):\n%s", fs.FlagUsages())
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "batchy serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitUsage
	}
	if err := format.CheckInfaDateFormat(infaDateFormat); err != nil {
		fmt.Fprintf(stderr, "batchy serve: --infa-date-format: %v\n", err)
		return exitUsage
	}
	loc, err := sf.location()
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitUsage
	}
	if schedulerMode != "on" && schedulerMode != "off" {
		fmt.Fprintf(stderr, "batchy serve: --scheduler %q: use on or off\n", schedulerMode)
		return exitUsage
	}
	if leaseTime < time.Second {
		fmt.Fprintf(stderr, "batchy serve: --scheduler-lease %s: use 1s or more\n", leaseTime)
		return exitUsage
	}

	registry := event.DefaultRegistry(event.RegistryOptions{Stdout: stdout})
	var sinks []event.Sink
	for _, u := range logSinks {
		if u == "redis://" || u == "redis:" {
			continue // the stream: always on
		}
		sink, err := registry.Open(u)
		if err != nil {
			for _, s := range sinks {
				s.Close()
			}
			fmt.Fprintf(stderr, "batchy serve: --log-sink: %v\n", err)
			return exitUsage
		}
		sinks = append(sinks, sink)
	}

	store, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitError
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := store.Ping(pingCtx); err != nil {
		// Start anyway: requests answer 503 until the store is back, and /readyz says why.
		log.Warn("the store does not answer yet", "store", store.Name, "where", store.Where, "err", err)
	}
	cancel()

	var secondaries []*event.Async
	for _, sink := range sinks {
		secondaries = append(secondaries, event.NewAsync(sink, event.AsyncOptions{}))
		log.Info("log sink", "sink", sink.String())
	}
	bus := event.NewBus(event.NewStream(store.Client, store.Keys(), eventsKeep), secondaries, log)
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bus.Close(fctx) // flush the secondary sinks
	}()
	recording := event.RecordingStore{Store: store, Bus: bus}

	for _, u := range append(append([]string{}, slackHooks...), jsonHooks...) {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			fmt.Fprintf(stderr, "batchy serve: alert webhook %s must be an http:// or https:// URL\n", event.Redact(u))
			return exitUsage
		}
	}
	var notifiers []alert.Notifier
	for _, u := range slackHooks {
		notifiers = append(notifiers, &alert.Webhook{URL: u, Slack: true})
	}
	for _, u := range jsonHooks {
		notifiers = append(notifiers, &alert.Webhook{URL: u})
	}
	alerter := alert.New(alert.Options{Store: store, Client: store.Client, Keys: store.Keys(), Notifiers: notifiers, Events: bus, Location: loc, Logger: log})
	bus.Observe(alerter.Observe)
	for _, n := range notifiers {
		log.Info("alert notifier", "notifier", n.String())
	}

	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	go event.WatchSIGHUP(hubCtx, sinks, log)
	go alerter.Run(hubCtx, 30*time.Second)
	hub := notify.NewHub(store.Client, store.Keys().Changed(), log)
	go hub.Run(hubCtx)

	var sch *scheduler.Scheduler
	if schedulerMode == "on" {
		sch = scheduler.New(scheduler.Options{Store: recording, Client: store.Client, Keys: store.Keys(), Location: loc, Lease: leaseTime, Logger: log, Events: bus})
		go sch.Run(hubCtx)
		log.Info("scheduler on", "replica", sch.ID())
	}

	srv := api.New(api.Options{
		Store:     recording,
		Events:    bus,
		Hub:       hub,
		Scheduler: sch,
		UI:        ui.New(ui.Options{Store: recording, Events: bus, Scheduler: sch, CfgDir: cfgDir, Location: loc, Logger: log}),
		CfgDir:    cfgDir,
		Format:    format.Options{InfaDateFormat: infaDateFormat},
		Location:  loc,
		StoreName: store.Name,
		Logger:    log,
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "batchy serve: %v\n", err)
		return exitError
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	log.Info("batchy listening", "addr", ln.Addr().String(), "store", store.Name, "where", store.Where, "cfg_dir", cfgDir, "tz", loc.String(), "version", version)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		log.Error("server stopped", "err", err)
		return exitError
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", shutdownWait)
	srv.Close()
	stopHub()
	if sch != nil {
		// Runs in progress are cancelled: their jobs fail with this reason and, per their retry
		// policy, another replica (or this one after a restart) runs them again.
		sch.Stop("batchy shut down while the run was executing")
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "err", err)
	}
	log.Info("stopped")
	return exitOK
}
