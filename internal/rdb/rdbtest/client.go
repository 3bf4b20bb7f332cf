package rdbtest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/rdb"
)

// Dial returns a client for the Redis server at addr (one not started through this package, or
// one node of a Cluster), closed when the test ends.
func Dial(tb testing.TB, addr string) rdb.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

// WaitUp waits until the Redis server at addr answers PING, for at most within.
func WaitUp(addr string, within time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(within)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer within %s", addr, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Snapshot reads every key of the store (on every master of a Cluster) with its value, to compare
// the whole state before and after something.
func Snapshot(tb testing.TB, c rdb.Client) map[string]string {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			k, err := m.Keys(ctx, "*").Result()
			mu.Lock()
			keys = append(keys, k...)
			mu.Unlock()
			return err
		})
	} else {
		keys, err = c.Keys(ctx, "*").Result()
	}
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			tb.Fatal(err)
		}
		var v any
		switch typ {
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "set":
			var m []string
			m, err = c.SMembers(ctx, k).Result()
			sort.Strings(m)
			v = m
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		default:
			tb.Fatalf("key %s has type %s", k, typ)
		}
		if err != nil {
			tb.Fatal(err)
		}
		out[k] = typ + " " + fmt.Sprint(v)
	}
	return out
}
