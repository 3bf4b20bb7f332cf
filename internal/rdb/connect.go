package rdb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// ConnectOptions say how to reach Redis. Exactly one of URL, ClusterAddrs or SentinelAddrs is set.
type ConnectOptions struct {
	// URL is a single node: redis://[user:password@]host:port/db, rediss:// for TLS, or
	// unix:///path. It carries its own credentials, database and TLS choice, so Username,
	// Password, SentinelPassword, DB and TLS must stay zero with it.
	URL string
	// ClusterAddrs are seed nodes of a Redis Cluster (host:port); the client learns the others.
	ClusterAddrs []string
	// SentinelAddrs are Sentinels (host:port) watching the master named SentinelMaster.
	SentinelAddrs []string
	// SentinelMaster is the master name the Sentinels watch; required with SentinelAddrs.
	SentinelMaster string
	// Username and Password authenticate to Cluster nodes and Sentinel-managed nodes; empty
	// means none (Username empty with a Password is the "default" user).
	Username, Password string
	// SentinelPassword authenticates to the Sentinels themselves; empty means none.
	SentinelPassword string
	// DB is the database number for Sentinel-managed nodes (the URL has its own); a Cluster has
	// only database 0, so anything else is an error there.
	DB int
	// TLS makes Cluster and Sentinel connections use TLS (a URL says rediss:// instead).
	TLS bool
}

// Fail-fast timeouts, used where the options leave them unset: a request made while Redis is
// down fails with "unavailable" (503) in seconds instead of hanging.
const (
	defaultDialTimeout = 2 * time.Second
	defaultIOTimeout   = 3 * time.Second
)

// Connect returns a client for the deployment o describes: a single node, a Sentinel-managed
// master (the client follows failovers) or a Redis Cluster. It does not contact Redis: the client
// connects on first use, so batchy can start while Redis is down. where names the target for
// logs, e.g. "redis 127.0.0.1:6379/0", "cluster 10.0.0.1:7000,10.0.0.2:7000" or "sentinel
// mymaster via 10.0.0.1:26379"; neither it nor err ever holds a password.
func Connect(o ConnectOptions) (client redis.UniversalClient, where string, err error) {
	modes := 0
	for _, set := range []bool{o.URL != "", len(o.ClusterAddrs) > 0, len(o.SentinelAddrs) > 0} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return nil, "", errors.New("rdb.Connect: give exactly one of a Redis URL, Cluster addresses or Sentinel addresses")
	}
	if o.SentinelMaster != "" && len(o.SentinelAddrs) == 0 {
		return nil, "", errors.New("rdb.Connect: a Sentinel master name needs Sentinel addresses")
	}
	if o.SentinelPassword != "" && len(o.SentinelAddrs) == 0 {
		return nil, "", errors.New("rdb.Connect: a Sentinel password needs Sentinel addresses")
	}
	switch {
	case o.URL != "":
		return connectURL(o)
	case len(o.ClusterAddrs) > 0:
		return connectCluster(o)
	default:
		return connectSentinel(o)
	}
}

func connectURL(o ConnectOptions) (redis.UniversalClient, string, error) {
	if o.Username != "" || o.Password != "" || o.SentinelPassword != "" || o.DB != 0 || o.TLS {
		return nil, "", errors.New("rdb.Connect: a Redis URL carries its own user, password, database and TLS choice (rediss://): set them in the URL")
	}
	ropts, err := redis.ParseURL(o.URL)
	if err == nil && batch.URLMisread(o.URL) {
		err = errors.New("misread") // urlError says why, without the URL
	}
	if err != nil {
		return nil, "", fmt.Errorf("rdb.Connect: the Redis URL is not valid: %s", urlError(o.URL, err))
	}
	ropts.DialTimeout = orDefault(ropts.DialTimeout, defaultDialTimeout)
	ropts.ReadTimeout = orDefault(ropts.ReadTimeout, defaultIOTimeout)
	ropts.WriteTimeout = orDefault(ropts.WriteTimeout, defaultIOTimeout)
	where := "redis " + ropts.Addr + "/" + strconv.Itoa(ropts.DB)
	if ropts.Network == "unix" {
		where = "redis unix:" + ropts.Addr + "/" + strconv.Itoa(ropts.DB)
	}
	if ropts.TLSConfig != nil {
		where += " (TLS)"
	}
	return redis.NewClient(ropts), where, nil
}

func connectCluster(o ConnectOptions) (redis.UniversalClient, string, error) {
	if o.DB != 0 {
		return nil, "", fmt.Errorf("rdb.Connect: a Redis Cluster has only database 0, not %d", o.DB)
	}
	if err := checkAddrs("Cluster", o.ClusterAddrs); err != nil {
		return nil, "", err
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        o.ClusterAddrs,
		Username:     o.Username,
		Password:     o.Password,
		TLSConfig:    tlsConfig(o.TLS),
		DialTimeout:  clusterDialTimeout,
		ReadTimeout:  defaultIOTimeout,
		WriteTimeout: defaultIOTimeout,
		// go-redis reloads the slot map on MOVED and READONLY only, and otherwise once a minute:
		// after a master dies, its replica takes the slots over without a MOVED from the dead
		// node, and the client went on dialling it for up to a minute (43s measured). A failed
		// command reloads the map at once (reloadOnError); the interval is the bound for a change
		// no command fails on.
		ClusterStateReloadInterval: clusterReloadInterval,
	})
	c.AddHook(reloadOnError{c})
	return c, "cluster " + strings.Join(o.ClusterAddrs, ",") + tlsNote(o.TLS), nil
}

// The Cluster client's timeouts: a master that died without closing its connections (a host
// down, a network cut) costs a dial timeout per try, so a short one; a loopback or LAN dial
// takes well under a millisecond.
const (
	clusterDialTimeout    = time.Second
	clusterReloadInterval = 5 * time.Second
)

// reloadOnError asks a Cluster client for a fresh slot map (CLUSTER SLOTS, from a node that
// answers) after a command fails for want of a node: a connection error or a node saying the
// cluster is down or reconfiguring. go-redis coalesces the reloads (one at a time, at most one
// each 200ms), so an outage costs a CLUSTER SLOTS every 200ms at most, whatever the load.
type reloadOnError struct{ c *redis.ClusterClient }

var _ redis.Hook = reloadOnError{}

func (h reloadOnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if nodeTrouble(err) {
			h.c.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if nodeTrouble(err) {
			h.c.ReloadState(ctx)
		}
		return err
	}
}

// nodeTrouble reports whether err says a node is gone or not serving its slots, rather than
// that the command itself was refused (a script's error, a missing key) or its caller gave up.
func nodeTrouble(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "LOADING", "READONLY"} {
			if strings.HasPrefix(rerr.Error(), p) {
				return true
			}
		}
		return false
	}
	return true // a dial, read or write that failed, a timeout, a closed connection
}

func connectSentinel(o ConnectOptions) (redis.UniversalClient, string, error) {
	if o.SentinelMaster == "" {
		return nil, "", errors.New("rdb.Connect: Sentinel addresses need the master name the Sentinels watch")
	}
	if o.DB < 0 {
		return nil, "", fmt.Errorf("rdb.Connect: database %d is not valid", o.DB)
	}
	if err := checkAddrs("Sentinel", o.SentinelAddrs); err != nil {
		return nil, "", err
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       o.SentinelMaster,
		SentinelAddrs:    o.SentinelAddrs,
		SentinelPassword: o.SentinelPassword,
		Username:         o.Username,
		Password:         o.Password,
		DB:               o.DB,
		TLSConfig:        tlsConfig(o.TLS),
		DialTimeout:      defaultDialTimeout,
		ReadTimeout:      defaultIOTimeout,
		WriteTimeout:     defaultIOTimeout,
	})
	where := "sentinel " + o.SentinelMaster
	if o.DB != 0 {
		where += "/" + strconv.Itoa(o.DB)
	}
	return c, where + " via " + strings.Join(o.SentinelAddrs, ",") + tlsNote(o.TLS), nil
}

// checkAddrs requires every address to be host:port with a port in 1-65535.
func checkAddrs(kind string, addrs []string) error {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("rdb.Connect: %s address %q is not host:port", kind, a)
		}
	}
	return nil
}

// tlsConfig returns nil without TLS; with it, certificates are verified against each node's host
// name (crypto/tls takes it from the address dialled, so one config serves every node).
func tlsConfig(on bool) *tls.Config {
	if !on {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

func tlsNote(on bool) string {
	if on {
		return " (TLS)"
	}
	return ""
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// urlError describes why a Redis URL was refused without quoting its password. url.Parse's
// errors quote the whole URL, and when the password holds a character that ends the authority
// ('/', '?', '#') the parser splits the URL inside it and quotes a piece of it as a port or a
// path. So the message of a URL with an '@' anywhere but between user info and host is not shown
// at all; otherwise the password is known and go-redis's messages (scheme, database, options)
// are shown with it masked.
func urlError(raw string, err error) string {
	u, perr := url.Parse(raw)
	if batch.URLMisread(raw) {
		return "it could not be read (not shown, as it holds credentials: percent-encode special characters in the user name and password)"
	}
	if perr != nil {
		var uerr *url.Error
		if errors.As(perr, &uerr) {
			return uerr.Err.Error() // without the URL it quotes
		}
		return perr.Error()
	}
	msg := err.Error()
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			for _, form := range []string{p, url.QueryEscape(p), url.PathEscape(p)} {
				msg = strings.ReplaceAll(msg, form, "xxxxx")
			}
		}
	}
	return msg
}
