package main

// The bench's own redis-server is reached here, through the store's client (rdb.Connect: go-redis
// is imported by internal/rdb alone), for INFO, memory figures and the bare EVAL reference. batchy
// is only ever measured through HTTP, INFO commandstats and /proc.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/rdb"
)

// redisRef is the bench's own connection pool to its redis-server.
type redisRef struct {
	rc rdb.Client
}

func newRedisRef(url string, pool int) (*redisRef, error) {
	// The pool is never what limits the bare EVAL measurement.
	rc, _, err := rdb.Connect(rdb.ConnectOptions{URL: url + "?pool_size=" + strconv.Itoa(pool)})
	if err != nil {
		return nil, err
	}
	return &redisRef{rc: rc}, nil
}

func (r *redisRef) Close() error { return r.rc.Close() }

// waitRedis pings url until it answers, p exits or 10 s pass.
func waitRedis(ctx context.Context, url string, p *process) error {
	r, err := newRedisRef(url, 1)
	if err != nil {
		return err
	}
	defer r.Close()
	deadline := time.Now().Add(10 * time.Second)
	for r.rc.Ping(ctx).Err() != nil {
		if p.exited() || time.Now().After(deadline) {
			return errors.New("no answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct {
	Calls, Usec, Failed, Rejected int64
}

// commandStats reads INFO commandstats: command name (subcommands as "script|load") → figures.
func (r *redisRef) commandStats(ctx context.Context) (map[string]cmdStat, error) {
	info, err := r.rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

func parseCommandStats(info string) map[string]cmdStat {
	out := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var s cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.Calls = n
			case "usec":
				s.Usec = n
			case "failed_calls":
				s.Failed = n
			case "rejected_calls":
				s.Rejected = n
			}
		}
		out[name] = s
	}
	return out
}

func (r *redisRef) usedMemory(ctx context.Context) (int64, error) {
	info, err := r.rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory has no used_memory")
}

// keys returns every key of the database (SCAN).
func (r *redisRef) keys(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	iter := r.rc.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		out[iter.Val()] = true
	}
	return out, iter.Err()
}

// keyMemory returns a key's MEMORY USAGE (SAMPLES 0: every element counted), its type and, for a
// stream, its length.
func (r *redisRef) keyMemory(ctx context.Context, key string) (bytes int64, typ string, entries int64, err error) {
	if bytes, err = r.rc.MemoryUsage(ctx, key, 0).Result(); err != nil {
		return
	}
	if typ, err = r.rc.Type(ctx, key).Result(); err != nil || typ != "stream" {
		return
	}
	entries, err = r.rc.XLen(ctx, key).Result()
	return
}

// bareScript is the reference: the Redis work an open needs, as one Lua script, sent with EVALSHA by
// the bench itself (no batchy, no HTTP).
const bareScript = `local h = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'batch_id', ARGV[2], 'batch_start', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1
`

// noopScript is the floor of a round trip: a script that does nothing, sent with EVALSHA by the
// bench like the bare script.
const noopScript = `return 1`

// bareHistoryIDs is how many batch ids each worker's history hash cycles through: it never grows
// past that.
const bareHistoryIDs = 100

// bareRef runs the bare script for the workers' keys.
type bareRef struct {
	r       *redisRef
	sha     string
	noopSHA string
	keys    [][]string
	next    []int // per worker: the next batch id
	payload string
}

func bareKeys(w int) []string {
	tag := "{" + wfName(w) + "}"
	return []string{"bare:" + tag + ":state", "bare:" + tag + ":history"}
}

// newBareRef loads the script and preloads each worker's state hash with fields like a job's.
func newBareRef(ctx context.Context, r *redisRef, workers int) (*bareRef, error) {
	sha, err := r.rc.ScriptLoad(ctx, bareScript).Result()
	if err != nil {
		return nil, err
	}
	noopSHA, err := r.rc.ScriptLoad(ctx, noopScript).Result()
	if err != nil {
		return nil, err
	}
	b := &bareRef{r: r, sha: sha, noopSHA: noopSHA, next: make([]int, workers),
		payload: `{"extract":{"status":"open","from_date":"2026-01-01T00:00:00Z","to_date":"2026-01-01T01:00:00Z"},"transform":{"status":"open"},"load":{"status":"open"}}`}
	for w := range workers {
		k := bareKeys(w)
		b.keys = append(b.keys, k)
		err := r.rc.HSet(ctx, k[0], "status", "success", "batch_id", "0", "batch_start", "2026-01-01T00:00:00Z",
			"batch_end", "2026-01-01T00:05:00Z", "from_date", "2026-01-01T00:00:00Z", "to_date", "2026-01-01T01:00:00Z",
			"reprocess_hours", "2", "table", "orders", "last_run", "2026-01-01T00:05:00Z").Err()
		if err != nil {
			return nil, err
		}
		if err := r.rc.Del(ctx, k[1]).Err(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// call runs the script once for worker w: one round trip, HGETALL + 2 HSET inside Redis.
func (b *bareRef) call(ctx context.Context, w int) error {
	id := b.next[w]
	b.next[w] = (id + 1) % bareHistoryIDs
	return b.r.rc.EvalSha(ctx, b.sha, b.keys[w], "open", id+1, time.Now().UTC().Format(time.RFC3339Nano), b.payload).Err()
}

// op is the bare EVAL as a measured operation.
func (b *bareRef) op() op {
	return op{name: opBare, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error { return b.call(ctx, w) }}
}

// noopOp is the no-op script as a measured operation: one EVALSHA, no key, no call inside.
func (b *bareRef) noopOp() op {
	return op{name: opNoop, run: func(ctx context.Context, _ int, _ func(int, time.Duration)) error {
		return b.r.rc.EvalSha(ctx, b.noopSHA, nil).Err()
	}}
}

// echo sends ECHO msg (a marker in MONITOR's output).
func (r *redisRef) echo(ctx context.Context, msg string) error {
	return r.rc.Echo(ctx, msg).Err()
}
