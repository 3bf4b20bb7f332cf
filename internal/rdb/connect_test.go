package rdb_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

func TestConnectModes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  rdb.ConnectOptions
		where string
		kind  string
	}{
		{"single node", rdb.ConnectOptions{URL: "redis://127.0.0.1:6379/2"}, "redis 127.0.0.1:6379/2", "*redis.Client"},
		{"single node with credentials", rdb.ConnectOptions{URL: "redis://u:s3cret@10.0.0.1:6380"}, "redis 10.0.0.1:6380/0", "*redis.Client"},
		{"TLS URL", rdb.ConnectOptions{URL: "rediss://:s3cret@redis.example:6380/1"}, "redis redis.example:6380/1 (TLS)", "*redis.Client"},
		{"unix socket", rdb.ConnectOptions{URL: "unix:///run/redis.sock?db=3"}, "redis unix:/run/redis.sock/3", "*redis.Client"},
		{"cluster", rdb.ConnectOptions{ClusterAddrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Password: "s3cret"}, "cluster 127.0.0.1:7000,127.0.0.1:7001", "*redis.ClusterClient"},
		{"one cluster seed is still a cluster", rdb.ConnectOptions{ClusterAddrs: []string{"[::1]:7000"}, TLS: true}, "cluster [::1]:7000 (TLS)", "*redis.ClusterClient"},
		{"sentinel", rdb.ConnectOptions{SentinelAddrs: []string{"127.0.0.1:26379"}, SentinelMaster: "mymaster", Password: "s3cret", SentinelPassword: "s3cret2"}, "sentinel mymaster via 127.0.0.1:26379", "*redis.Client"},
		{"sentinel with a database", rdb.ConnectOptions{SentinelAddrs: []string{"a:26379", "b:26379"}, SentinelMaster: "m", DB: 2}, "sentinel m/2 via a:26379,b:26379", "*redis.Client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, where, err := rdb.Connect(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if where != tc.where {
				t.Errorf("where = %q, want %q", where, tc.where)
			}
			if strings.Contains(where, "s3cret") {
				t.Errorf("where %q holds the password", where)
			}
			var kind string
			switch c.(type) {
			case *redis.Client:
				kind = "*redis.Client"
			case *redis.ClusterClient:
				kind = "*redis.ClusterClient"
			}
			if kind != tc.kind {
				t.Errorf("client is %T, want %s", c, tc.kind)
			}
		})
	}
}

// TestConnectDefaults: unset timeouts become the fail-fast ones; timeouts in the URL are kept.
func TestConnectDefaults(t *testing.T) {
	c, _, err := rdb.Connect(rdb.ConnectOptions{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.DialTimeout.Seconds() != 2 || o.ReadTimeout.Seconds() != 3 || o.WriteTimeout.Seconds() != 3 {
		t.Errorf("timeouts dial %s read %s write %s, want 2s 3s 3s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}
	c2, _, err := rdb.Connect(rdb.ConnectOptions{URL: "redis://127.0.0.1:6379/0?dial_timeout=5s&read_timeout=7s"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if o := c2.(*redis.Client).Options(); o.DialTimeout.Seconds() != 5 || o.ReadTimeout.Seconds() != 7 || o.WriteTimeout.Seconds() != 3 {
		t.Errorf("timeouts dial %s read %s write %s, want 5s 7s 3s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}
	cc, _, err := rdb.Connect(rdb.ConnectOptions{ClusterAddrs: []string{"127.0.0.1:7000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// A Cluster dials for 1s: a dead master's slots move to its replica, and the client must
	// not spend long on it (connect.go); its slot map is reloaded every 5s at least.
	if o := cc.(*redis.ClusterClient).Options(); o.DialTimeout.Seconds() != 1 || o.ReadTimeout.Seconds() != 3 || o.WriteTimeout.Seconds() != 3 || o.ClusterStateReloadInterval.Seconds() != 5 {
		t.Errorf("cluster timeouts dial %s read %s write %s reload %s, want 1s 3s 3s 5s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ClusterStateReloadInterval)
	}
}

func TestConnectRefuses(t *testing.T) {
	sentinels := []string{"127.0.0.1:26379"}
	for _, tc := range []struct {
		name string
		opts rdb.ConnectOptions
		want string // in the error
	}{
		{"nothing", rdb.ConnectOptions{}, "exactly one"},
		{"URL and cluster", rdb.ConnectOptions{URL: "redis://h:1", ClusterAddrs: []string{"h:2"}}, "exactly one"},
		{"cluster and sentinel", rdb.ConnectOptions{ClusterAddrs: []string{"h:2"}, SentinelAddrs: sentinels, SentinelMaster: "m"}, "exactly one"},
		{"sentinel without a master name", rdb.ConnectOptions{SentinelAddrs: sentinels}, "master name"},
		{"master name without sentinels", rdb.ConnectOptions{URL: "redis://h:1", SentinelMaster: "m"}, "needs Sentinel addresses"},
		{"sentinel password without sentinels", rdb.ConnectOptions{ClusterAddrs: []string{"h:1"}, SentinelPassword: "x"}, "needs Sentinel addresses"},
		{"cluster database", rdb.ConnectOptions{ClusterAddrs: []string{"h:1"}, DB: 1}, "only database 0"},
		{"negative sentinel database", rdb.ConnectOptions{SentinelAddrs: sentinels, SentinelMaster: "m", DB: -1}, "not valid"},
		{"cluster address without a port", rdb.ConnectOptions{ClusterAddrs: []string{"h:1", "h"}}, `"h" is not host:port`},
		{"empty cluster address", rdb.ConnectOptions{ClusterAddrs: []string{""}}, `"" is not host:port`},
		{"cluster address without a host", rdb.ConnectOptions{ClusterAddrs: []string{":7000"}}, "not host:port"},
		{"cluster port out of range", rdb.ConnectOptions{ClusterAddrs: []string{"h:70000"}}, "not host:port"},
		{"sentinel port not a number", rdb.ConnectOptions{SentinelAddrs: []string{"h:x"}, SentinelMaster: "m"}, "not host:port"},
		{"URL with a separate password", rdb.ConnectOptions{URL: "redis://h:1", Password: "x"}, "set them in the URL"},
		{"URL with a separate database", rdb.ConnectOptions{URL: "redis://h:1", DB: 2}, "set them in the URL"},
		{"URL with TLS flag", rdb.ConnectOptions{URL: "redis://h:1", TLS: true}, "rediss://"},
		{"URL scheme", rdb.ConnectOptions{URL: "http://h:1"}, "invalid URL scheme: http"},
		{"URL database", rdb.ConnectOptions{URL: "redis://h:1/x"}, `invalid database number: "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := rdb.Connect(tc.opts)
			if err == nil {
				c.Close()
				t.Fatalf("accepted %+v", tc.opts)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestConnectHidesPasswords: no error quotes a URL's password, however the URL is broken, also
// when the password holds characters that make the URL parser split it.
func TestConnectHidesPasswords(t *testing.T) {
	for _, raw := range []string{
		"http://user:hunter2@h:1",                 // bad scheme
		"redis://user:hunter2@h:1/notadb",         // bad database
		"redis://user:hunter2@h:1/0?bogus=1",      // unknown option
		"redis://user:hunter2@h:1/0?db=x",         // bad database option
		"redis://user:hunt/er2@h:6379/0",          // '/' ends the authority inside the password
		"redis://user:12/hunter2@h:6379/0",        // ... with a numeric piece taken as the port
		"redis://user:hunt?er2@h:6379/0",          // '?' likewise
		"redis://user:hunter2@h:6379/0 x",         // a space
		"redis://user:hunter2@h:port/0",           // bad port
		"redis://user:hunter2\x7f@h:6379/0",       // a control character
		"redis://user:hunter2%zz@h:6379/0",        // a bad escape
		"redis://user:hunter2@[::1:6379/0",        // a bad IPv6 literal
		"redis//user:hunter2@h:6379/0",            // no scheme
		"rediss://user:hunter2@h:1/0?protocol=x",  // bad number option
		"redis://user:hunter%32@h:1/0?bogus=1",    // an escaped password
		"unix://user:hunter2@/run/r.sock?db=nope", // unix socket
		"redis://:#hunter2@redis.internal:6379/0", // '#': go-redis reads localhost:6379, batchy refuses
		"redis://default:/hunter2@h:6379/0",       // '/' with nothing before it: likewise
	} {
		t.Run(raw, func(t *testing.T) {
			c, where, err := rdb.Connect(rdb.ConnectOptions{URL: raw})
			if err == nil {
				c.Close()
				t.Fatalf("accepted %q (where %q)", raw, where)
			}
			for _, secret := range []string{"hunter", "er2", "hunt"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes the password", err)
				}
			}
		})
	}
}

// TestConnectSingleNode: a client from Connect reaches a real redis-server.
func TestConnectSingleNode(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	c, where, err := rdb.Connect(rdb.ConnectOptions{URL: "redis://" + srv.Addr + "/1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := "redis " + srv.Addr + "/1"; where != want {
		t.Errorf("where = %q, want %q", where, want)
	}
	if err := rdb.New(c, rdb.Options{}).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
