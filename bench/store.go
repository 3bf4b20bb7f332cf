package main

import (
	"context"
	"strconv"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
)

// The store phase: batchy's store (internal/rdb.Store) driven from the bench process, as the bare
// EVAL is, so that its Redis µs per transition is measured the same way as the reference's: with
// Redis kept busy by one client process and no HTTP round trip between two requests. The HTTP
// phases' Redis µs also count what the machine adds when Redis idles or is preempted between
// requests (docs/benchmarks.md says how much).

// Store-phase operation names: a transition the bench sends through the store.
const (
	opStoreOpen = "store open"
	opStorePair = "store open+close"
	opStoreFail = "store open+fail"
)

// storeSuite is the store and its operations, on workflows of their own (prefix benchstore).
type storeSuite struct {
	close func() error
	ops   []op
}

func newStoreSuite(ctx context.Context, redisURL string, workers int) (*storeSuite, error) {
	client, _, err := rdb.Connect(rdb.ConnectOptions{URL: redisURL + "?pool_size=" + strconv.Itoa(2*workers)})
	if err != nil {
		return nil, err
	}
	st := rdb.New(client, rdb.Options{Prefix: "benchstore"})
	for w := range workers {
		wf, err := config.Parse(wfName(w), []byte(workflowYAML), config.Limits{})
		if err != nil {
			client.Close()
			return nil, err
		}
		if _, err := st.Load(ctx, wf, true); err != nil {
			client.Close()
			return nil, err
		}
	}
	open := func(ctx context.Context, w int) error {
		_, err := st.Open(ctx, wfName(w), batch.OpenRequest{})
		return err
	}
	pair := func(name string, status batch.Status) op {
		return op{name: name, parts: []string{"open", string(status)}, run: func(ctx context.Context, w int, rec func(int, time.Duration)) error {
			t := time.Now()
			if err := open(ctx, w); err != nil {
				return err
			}
			t1 := time.Now()
			rec(0, t1.Sub(t))
			_, err := st.End(ctx, wfName(w), batch.EndRequest{Status: status})
			rec(1, time.Since(t1))
			return err
		}}
	}
	return &storeSuite{close: client.Close, ops: []op{
		{name: opStoreOpen, run: func(ctx context.Context, w int, _ func(int, time.Duration)) error { return open(ctx, w) }},
		pair(opStorePair, batch.StatusSuccess),
		pair(opStoreFail, batch.StatusFailed),
	}}, nil
}
