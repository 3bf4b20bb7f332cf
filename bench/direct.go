package main

// The direct part (--parts direct): internal/rdb.Store called without HTTP, and batchy's own scripts
// replayed with EVALSHA (raw-lua). It compares batchy with its own scripts, which is not the
// reference (the bare EVAL, in redisref.go, is): extra information only. It is the one place the
// bench uses batchy's internals, so it is kept in this file alone: when internal/rdb changes and it
// stops compiling, delete this file (and nothing else); the part then no longer exists. It imports
// go-redis itself only because rdb.New takes a go-redis client.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
)

func init() {
	allParts = append(allParts, "direct")
	newDirect = func(ctx context.Context, redisURL string, workers int) (*directSuite, error) {
		opts, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, err
		}
		opts.PoolSize = 2 * workers // the pool is never what limits the direct measurements
		rc := redis.NewClient(opts)
		st := rdb.New(rc, rdb.Options{Prefix: "benchstore"})
		if err := loadStore(ctx, st, workers); err != nil {
			rc.Close()
			return nil, err
		}
		scripts, err := captureScripts(ctx, redisURL, "benchraw", workers)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("capturing the store's scripts: %w", err)
		}
		var ops []targetOp
		for _, o := range storeOps(st) {
			ops = append(ops, targetOp{"store", o})
		}
		for _, o := range rawOps(rc, scripts, "benchraw", workers) {
			ops = append(ops, targetOp{"raw-lua", o})
		}
		return &directSuite{ops: ops, close: func() { rc.Close() }}, nil
	}
}

// storeOps drive rdb.Store directly: the store's Go work and its Redis round trips, no HTTP.
// Close is strict, as on v1.
func storeOps(st *rdb.Store) []op {
	return []op{
		{name: opPair, parts: []string{"open", "close"}, run: func(ctx context.Context, w int, rec func(int, time.Duration)) error {
			wf := wfName(w)
			t := time.Now()
			if _, err := st.Open(ctx, wf, batch.OpenRequest{}); err != nil {
				return err
			}
			t1 := time.Now()
			rec(0, t1.Sub(t))
			if _, err := st.End(ctx, wf, batch.EndRequest{Status: batch.StatusSuccess, Strict: true}); err != nil {
				return err
			}
			rec(1, time.Since(t1))
			return nil
		}},
		{name: opState, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error {
			_, err := st.State(ctx, wfName(w))
			return err
		}},
	}
}

// loadStore loads the benchmark workflow into st under each worker's name.
func loadStore(ctx context.Context, st *rdb.Store, workers int) error {
	for w := range workers {
		wf, err := config.Parse(wfName(w), []byte(workflowYAML), config.Limits{})
		if err != nil {
			return err
		}
		if _, err := st.Load(ctx, wf, true); err != nil {
			return err
		}
	}
	return nil
}

// scriptCall is a script invocation as the store sent it: EVALSHA sha 1 key argv...
type scriptCall struct {
	sha  string
	argv []any
}

// captureHook records the EVALSHA calls a client makes, so that the bench replays the store's
// own scripts with the store's own arguments without reaching into rdb's unexported names.
type captureHook struct {
	mu    sync.Mutex
	calls []scriptCall
}

func (h *captureHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *captureHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) >= 4 && strings.EqualFold(fmt.Sprint(a[0]), "evalsha") && fmt.Sprint(a[2]) == "1" {
			h.mu.Lock()
			h.calls = append(h.calls, scriptCall{sha: fmt.Sprint(a[1]), argv: slices.Clone(a[4:])})
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (h *captureHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// last returns the last call recorded, then forgets them all.
func (h *captureHook) last() (scriptCall, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.calls) == 0 {
		return scriptCall{}, false
	}
	c := h.calls[len(h.calls)-1]
	h.calls = nil
	return c, true
}

// rawScripts are the open, end and state scripts as the store calls them.
type rawScripts struct {
	open, end, state scriptCall
}

// captureScripts loads the workflows under prefix with a store whose client records its script
// calls, and makes one open, close and state read to learn the scripts and their arguments.
func captureScripts(ctx context.Context, redisURL, prefix string, workers int) (rawScripts, error) {
	var rs rawScripts
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return rs, err
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	hook := &captureHook{}
	rc.AddHook(hook)
	st := rdb.New(rc, rdb.Options{Prefix: prefix})
	if err := loadStore(ctx, st, workers); err != nil {
		return rs, err
	}
	steps := []struct {
		into *scriptCall
		do   func() error
	}{
		{&rs.open, func() error { _, err := st.Open(ctx, wfName(0), batch.OpenRequest{}); return err }},
		{&rs.end, func() error {
			_, err := st.End(ctx, wfName(0), batch.EndRequest{Status: batch.StatusSuccess, Strict: true})
			return err
		}},
		{&rs.state, func() error { _, err := st.State(ctx, wfName(0)); return err }},
	}
	for _, s := range steps {
		hook.last()
		if err := s.do(); err != nil {
			return rs, err
		}
		c, ok := hook.last()
		if !ok {
			return rs, fmt.Errorf("the store made no EVALSHA call")
		}
		*s.into = c
	}
	return rs, nil
}

// rawOps are the store's scripts sent with EVALSHA alone: the Redis round trip and the script's
// run inside Redis, without any of the store's Go-side work (argument building, reply parsing).
// ARGV[1] of open and end is the clock (µs): each call gets the current time.
func rawOps(rc *redis.Client, rs rawScripts, prefix string, workers int) []op {
	keys := rdb.Keys{Prefix: prefix}
	metas := make([][]string, workers)
	for w := range metas {
		metas[w] = []string{keys.Meta(wfName(w))}
	}
	withNow := func(argv []any) []any {
		a := slices.Clone(argv)
		if len(a) > 0 {
			a[0] = time.Now().UnixMicro()
		}
		return a
	}
	return []op{
		{name: opPair, parts: []string{"open", "close"}, run: func(ctx context.Context, w int, rec func(int, time.Duration)) error {
			t := time.Now()
			if err := rc.EvalSha(ctx, rs.open.sha, metas[w], withNow(rs.open.argv)...).Err(); err != nil {
				return err
			}
			t1 := time.Now()
			rec(0, t1.Sub(t))
			if err := rc.EvalSha(ctx, rs.end.sha, metas[w], withNow(rs.end.argv)...).Err(); err != nil {
				return err
			}
			rec(1, time.Since(t1))
			return nil
		}},
		{name: opState, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error {
			return rc.EvalSha(ctx, rs.state.sha, metas[w], rs.state.argv...).Err()
		}},
	}
}
