package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/rdb"
)

// storeFlags select and configure the store; serve, export and import share them.
type storeFlags struct {
	config   string
	redisURL string
	// Sentinel and Cluster deployments (see docs/deployment.md).
	redisCluster          []string
	redisSentinel         []string
	redisMaster           string
	redisUsername         string
	redisPassword         string
	redisSentinelPassword string
	redisDB               int
	redisTLS              bool

	dataFile string
	repair   bool
	prefix   string
	tz       string
	history  int
	// eventsKeep caps the event streams the store's scripts write; serve sets it from
	// --events-keep (export and import make no transitions).
	eventsKeep int64
	// minReplicas is serve's --redis-min-replicas (rdb.Options.MinReplicas).
	minReplicas int
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML file of settings, keyed by flag name (redis-url: ...); flags and BATCHY_* variables win over it")
	fs.StringVar(&f.redisURL, "redis-url", "", "a single Redis to keep state in (redis://[user:password@]host:port/db, rediss:// for TLS); with no Redis option the embedded store runs")
	fs.StringSliceVar(&f.redisCluster, "redis-cluster", nil, "Redis Cluster seed nodes (host:port,host:port,...), instead of --redis-url")
	fs.StringSliceVar(&f.redisSentinel, "redis-sentinel", nil, "Redis Sentinels (host:port,...) watching --redis-master, instead of --redis-url; batchy follows failovers")
	fs.StringVar(&f.redisMaster, "redis-master", "", "the master name the Sentinels watch (with --redis-sentinel)")
	fs.StringVar(&f.redisUsername, "redis-username", "", "ACL user for Cluster or Sentinel-managed nodes (a --redis-url carries its own)")
	fs.StringVar(&f.redisPassword, "redis-password", "", "password for Cluster or Sentinel-managed nodes (a --redis-url carries its own); prefer BATCHY_REDIS_PASSWORD")
	fs.StringVar(&f.redisSentinelPassword, "redis-sentinel-password", "", "password of the Sentinels themselves")
	fs.IntVar(&f.redisDB, "redis-db", 0, "database number with --redis-sentinel (a Cluster has only 0)")
	fs.BoolVar(&f.redisTLS, "redis-tls", false, "use TLS to Cluster or Sentinel nodes (a --redis-url says rediss://)")
	fs.StringVar(&f.dataFile, "data-file", "data/batchy.json", "the embedded store's data file (only without a Redis option): every change is journaled and synced beside it before its reply")
	fs.BoolVar(&f.repair, "repair", false, "start the embedded store on a damaged journal by keeping the records before the damage (the rest is moved aside to <file>.damaged)")
	fs.StringVar(&f.prefix, "prefix", "batchy", "prefix of every Redis key")
	fs.StringVar(&f.tz, "tz", "UTC", "time zone of trunc_start's midnight (IANA name, e.g. Europe/Berlin)")
	fs.IntVar(&f.history, "history", 1000, "batches of history kept per workflow (up to a sixteenth more: trimmed in steps)")
	markSecret(fs, "redis-url", secretURL)
	markSecret(fs, "redis-password", secretHidden)
	markSecret(fs, "redis-sentinel-password", secretHidden)
}

// check reports the first usage error of the store flags, without connecting to anything.
func (f *storeFlags) check() error {
	if _, err := f.location(); err != nil {
		return err
	}
	if f.history < 1 {
		return fmt.Errorf("--history must be 1 or more, got %d", f.history)
	}
	if f.prefix == "" || strings.ContainsAny(f.prefix, "{}*?[] \t\r\n") {
		return fmt.Errorf("--prefix %q must be non-empty, without braces, glob characters or spaces", f.prefix)
	}
	modes := 0
	for _, set := range []bool{f.redisURL != "", len(f.redisCluster) > 0, len(f.redisSentinel) > 0} {
		if set {
			modes++
		}
	}
	if modes > 1 {
		return errors.New("give only one of --redis-url, --redis-cluster and --redis-sentinel")
	}
	if len(f.redisSentinel) > 0 && f.redisMaster == "" {
		return errors.New("--redis-sentinel needs --redis-master, the master name the Sentinels watch")
	}
	return nil
}

// location returns the --tz zone.
func (f *storeFlags) location() (*time.Location, error) {
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return nil, fmt.Errorf("--tz %q is not a known time zone (use an IANA name such as UTC or Europe/Berlin)", f.tz)
	}
	return loc, nil
}

// openedStore is a store with what it runs on.
type openedStore struct {
	*rdb.Store
	// Client is the Redis client the store uses, for the event stream.
	Client rdb.Client
	// Name is "embedded" or "redis".
	Name string
	// Where says where the data is, with any password hidden.
	Where string
	close func() error
}

// Close releases the store: the index writes still waiting are made, and the embedded store writes a snapshot.
func (s *openedStore) Close() error {
	s.FlushIndex(context.Background()) // the index writes still waiting (rdb/indexer.go)
	return s.close()
}

// open connects to Redis, or starts the embedded store when no Redis URL is given.
func (f *storeFlags) open(ctx context.Context) (*openedStore, error) {
	loc, err := f.location()
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	opts := rdb.Options{Prefix: f.prefix, Location: loc, HistoryKeep: f.history, EventsKeep: f.eventsKeep, MinReplicas: f.minReplicas}
	if f.redisURL == "" && len(f.redisCluster) == 0 && len(f.redisSentinel) == 0 {
		e, err := rdb.OpenEmbedded(f.dataFile, rdb.EmbeddedOptions{Repair: f.repair})
		if err != nil {
			return nil, err
		}
		if os.Getenv("GOGC") == "" {
			// miniredis runs each script in a fresh Lua state: the embedded store allocates about
			// 100 KB per transition, nearly all of it garbage at once. Collecting at 5 times the
			// live heap instead of twice halves the CPU of a transition (docs/benchmarks.md); the
			// live heap of a small installation is a few MB. GOGC in the environment wins.
			debug.SetGCPercent(400)
		}
		opts.MaxJobs = rdb.EmbeddedMaxJobs
		opts.Embedded = e
		where := "in memory only"
		if f.dataFile != "" {
			where = "data file " + f.dataFile
		}
		return migrated(ctx, &openedStore{Store: rdb.New(e.Client(), opts), Client: e.Client(), Name: "embedded", Where: where, close: e.Close})
	}
	client, where, err := rdb.Connect(rdb.ConnectOptions{
		URL: f.redisURL, ClusterAddrs: f.redisCluster, SentinelAddrs: f.redisSentinel, SentinelMaster: f.redisMaster,
		Username: f.redisUsername, Password: f.redisPassword, SentinelPassword: f.redisSentinelPassword, DB: f.redisDB, TLS: f.redisTLS,
	})
	if err != nil {
		// rdb.Connect's errors never quote a password; its "rdb.Connect: " prefix means nothing
		// to a user, who gave flags.
		return nil, errors.New(strings.Replace(err.Error(), "rdb.Connect: ", "", 1))
	}
	return migrated(ctx, &openedStore{Store: rdb.New(client, opts), Client: client, Name: "redis", Where: where, close: client.Close})
}

// migrated brings the store's data to this batchy's layout (rdb.Migrate) before anything uses it;
// a store it cannot bring across is closed and the error returned.
func migrated(ctx context.Context, s *openedStore) (*openedStore, error) {
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", s.Where, err)
	}
	return s, nil
}

// applyEnv sets every flag that was not given on the command line from BATCHY_<FLAG>, so flags win
// over the environment.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		name := envName(fl.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		values := []string{v}
		if fl.Value.Type() == "stringArray" {
			values = splitURLs(v)
		}
		for _, v := range values {
			if err := setFrom(fs, fl.Name, v, "env "+name); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", name, err))
				return
			}
		}
	})
	return errors.Join(errs...)
}

// splitURLs splits a repeatable flag's variable into its URLs: they are separated by spaces
// (BATCHY_LOG_SINK="stdout:// nats://host:4222"), and a word that does not start with a scheme
// continues the URL before it (file:///var/log/my logs/b.jsonl).
func splitURLs(v string) []string {
	var out []string
	for _, w := range strings.Fields(v) {
		if len(out) > 0 && !urlStart.MatchString(w) {
			out[len(out)-1] += " " + w
			continue
		}
		out = append(out, w)
	}
	return out
}

var urlStart = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// envName is the environment variable of a flag: --redis-url is BATCHY_REDIS_URL.
func envName(flag string) string {
	return "BATCHY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

const sourceAnnotation = "batchy-source"

// setFrom sets a flag and records where its value came from, for `batchy config`.
func setFrom(fs *pflag.FlagSet, name, value, source string) error {
	if err := fs.Set(name, value); err != nil {
		return err
	}
	return fs.SetAnnotation(name, sourceAnnotation, []string{source})
}

// flagSources says where each set flag's value came from: flag, env BATCHY_..., or file.
func flagSources(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if a := f.Annotations[sourceAnnotation]; len(a) > 0 {
			out[f.Name] = a[0]
		} else if f.Changed {
			out[f.Name] = "flag"
		}
	})
	return out
}

// parseFlags parses args, the environment and the --config file, in that order of precedence; on
// a usage error it prints it and returns false.
func parseFlags(fs *pflag.FlagSet, args []string, stderr io.Writer) (ok bool, code int) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return false, exitOK
		}
		fmt.Fprintf(stderr, "batchy %s: %v\n", fs.Name(), err)
		return false, exitUsage
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "batchy %s: %v\n", fs.Name(), err)
		return false, exitUsage
	}
	if fl := fs.Lookup("config"); fl != nil && fl.Value.String() != "" {
		if err := applyConfigFile(fs, fl.Value.String()); err != nil {
			fmt.Fprintf(stderr, "batchy %s: %v\n", fs.Name(), err)
			return false, exitUsage
		}
	}
	return true, exitOK
}

// logFlags configure the logger.
type logFlags struct {
	format string
	level  string
}

func (f *logFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.level, "log-level", "info", "log level: debug, info, warn or error")
}

func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", f.format)
}
