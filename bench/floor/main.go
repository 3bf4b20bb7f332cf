// Command floor is the bench's floor server: the work of an open with batchy out of the path. It
// answers GET /open_batch/<wf> with one EVALSHA of the bare script (HGETALL and two HSETs, the
// Redis work an open needs) and the hash it read as a JSON object, on gin with no middleware,
// through the store's Redis client. Whatever CPU it spends per request is what any HTTP server
// doing one Redis round trip spends on this machine; batchy's own CPU per request is measured
// against it (see docs/benchmarks.md).
//
//	go run ./bench/floor --addr 127.0.0.1:5001 --redis-url redis://127.0.0.1:6379/0
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/rdb"
)

// script is the bench's bare script (bench/redisref.go), returning the hash it read.
const script = `local h = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'batch_id', ARGV[2], 'batch_start', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return h
`

func main() {
	addr := pflag.String("addr", "127.0.0.1:5001", "listen address")
	url := pflag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis")
	pflag.Parse()
	client, _, err := rdb.Connect(rdb.ConnectOptions{URL: *url})
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	sha, err := client.ScriptLoad(ctx, script).Result()
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	var n atomic.Int64
	r.GET("/readyz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/open_batch/:wf", func(c *gin.Context) {
		wf := c.Param("wf")
		id := strconv.FormatInt(n.Add(1)%100, 10) // a few history fields, rewritten in turn
		v, err := client.EvalSha(c.Request.Context(), sha, []string{"bare:{" + wf + "}:state", "bare:{" + wf + "}:history"},
			"open", id, time.Now().UTC().Format(time.RFC3339Nano), `{"status":"open"}`).StringSlice()
		if err != nil {
			c.String(http.StatusServiceUnavailable, err.Error())
			return
		}
		h := make(map[string]string, len(v)/2)
		for i := 0; i+1 < len(v); i += 2 {
			h[v[i]] = v[i+1]
		}
		c.JSON(http.StatusOK, gin.H{wf: h})
	})
	if err := http.ListenAndServe(*addr, r); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}
