package rdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// onceScripter runs scripts through a client without go-redis's retries. go-redis sends a
// command again when its reply is lost (a read timeout, a connection dropped by a dying server),
// though Redis may have run it already. The reading scripts may run twice, the changing ones may
// not: a second Open would open a second batch (abandoning the first, which the caller was told
// about), a second strict End would fail with a conflict after the first succeeded. Without the
// retry the caller gets "unavailable" and can read the state to see whether the change happened.
// Commands refused before they run (MOVED, ASK, READONLY) are still redirected by go-redis.
type onceScripter struct {
	redis.UniversalClient
}

var _ redis.Scripter = onceScripter{}

// Eval implements redis.Scripter.
func (s onceScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.once(ctx, "eval", script, keys, args)
}

// EvalSha implements redis.Scripter.
func (s onceScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return s.once(ctx, "evalsha", sha, keys, args)
}

func (s onceScripter) once(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmd := scriptCmd(ctx, name, payload, keys, args)
	_ = s.Process(ctx, noRetryCmd{cmd})
	return cmd
}

// scriptCmd builds EVAL or EVALSHA.
func scriptCmd(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	all := make([]any, 0, 3+len(keys)+len(args))
	all = append(all, name, payload, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	cmd := redis.NewCmd(ctx, append(all, args...)...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3) // routes the call to KEYS[1]'s slot on a Cluster
	}
	return cmd
}

// noRetryCmd is a command go-redis must not send a second time.
type noRetryCmd struct {
	*redis.Cmd
}

// NoRetry implements redis.Cmder.
func (noRetryCmd) NoRetry() bool { return true }

// ReplicaWaitTimeout is how long a transition waits for --redis-min-replicas replicas to confirm
// its write (Options.MinReplicas).
const ReplicaWaitTimeout = time.Second

// waitScripter is onceScripter followed by WAIT: each script is sent on a connection of its own
// to the master that holds its keys, and when it wrote (not an error, not apply.lua's STALE),
// WAIT n follows on that connection, since WAIT counts the replicas that have every write of the
// connection it runs on. short is set when the script wrote but fewer than n replicas confirmed
// it within ReplicaWaitTimeout.
type waitScripter struct {
	client redis.UniversalClient
	n      int
	short  error
}

var _ redis.Scripter = (*waitScripter)(nil)

// Eval implements redis.Scripter.
func (w *waitScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return w.once(ctx, "eval", script, keys, args)
}

// EvalSha implements redis.Scripter.
func (w *waitScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return w.once(ctx, "evalsha", sha, keys, args)
}

// EvalRO implements redis.Scripter; batchy's changing scripts never use it.
func (w *waitScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return w.client.EvalRO(ctx, script, keys, args...)
}

// EvalShaRO implements redis.Scripter; batchy's changing scripts never use it.
func (w *waitScripter) EvalShaRO(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return w.client.EvalShaRO(ctx, sha, keys, args...)
}

// ScriptExists implements redis.Scripter.
func (w *waitScripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return w.client.ScriptExists(ctx, hashes...)
}

// ScriptLoad implements redis.Scripter.
func (w *waitScripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return w.client.ScriptLoad(ctx, script)
}

func (w *waitScripter) once(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmd := scriptCmd(ctx, name, payload, keys, args)
	cc, cluster := w.client.(*redis.ClusterClient)
	var node *redis.Client
	switch c := w.client.(type) {
	case *redis.Client: // a single node, or Sentinel's master
		node = c
	case *redis.ClusterClient:
		// The master of the keys' slot, from the client's slot map: WAIT has no key, so the
		// Cluster client would send it to any master.
		m, err := c.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd.SetErr(err)
			return cmd
		}
		node = m
	default:
		cmd.SetErr(fmt.Errorf("rdb: --redis-min-replicas needs a Redis client, not %T", w.client))
		return cmd
	}
	conn := node.Conn()
	defer conn.Close()
	_ = conn.Process(ctx, noRetryCmd{cmd})
	if err := cmd.Err(); err != nil {
		if cluster && (nodeTrouble(err) || strings.HasPrefix(err.Error(), "MOVED") || strings.HasPrefix(err.Error(), "ASK")) {
			// Not redirected here (a node's own client does not follow MOVED): the script did
			// not run; the caller answers 503 and the next try has a fresh slot map.
			cc.ReloadState(ctx)
		}
		return cmd
	}
	if l, ok := cmd.Val().([]any); ok && len(l) > 0 && l[0] == "STALE" {
		return cmd // apply.lua wrote nothing: nothing to confirm
	}
	got, err := conn.Wait(ctx, w.n, ReplicaWaitTimeout).Result()
	if err != nil || got < int64(w.n) {
		w.short = &batch.Error{Code: batch.EUNAVAILABLE, Message: fmt.Sprintf(
			"the change was made on the Redis master, but only %d of the %d replicas required (--redis-min-replicas) confirmed it within %s: a failover now could lose it; read the state before trying again",
			got, w.n, ReplicaWaitTimeout), Cause: err}
	}
	return cmd
}
