package rdb

import (
	"context"

	"github.com/redis/go-redis/v9"
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
	all := make([]any, 0, 3+len(keys)+len(args))
	all = append(all, name, payload, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	cmd := redis.NewCmd(ctx, append(all, args...)...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3) // routes the call to KEYS[1]'s slot on a Cluster
	}
	_ = s.Process(ctx, noRetryCmd{cmd})
	return cmd
}

// noRetryCmd is a command go-redis must not send a second time.
type noRetryCmd struct {
	*redis.Cmd
}

// NoRetry implements redis.Cmder.
func (noRetryCmd) NoRetry() bool { return true }
