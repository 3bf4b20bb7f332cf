package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestMixedOriginalAndV1NeverFlips: 32 clients mix the original routes (open_batch, then
// close_batch or fail_batch) with v1 per-job cycles on one workflow. Every ended job-batch that
// any answer showed keeps that status and batch_end to the end (no late close turns a failure
// into a success or the reverse), and each ended job-batch has exactly one close or fail event
// (none is ended twice).
func TestMixedOriginalAndV1NeverFlips(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg, jobs := faultCfg(t)
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr, "--cfg-dir", cfg, "--scheduler", "off", "--history", "100000", "--events-keep", "1000000")
	if code, body := curl(t, p.url+"/load_cfg/rel"); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{url: p.url, jobs: jobs}
	const workers = 32
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 20 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for ctx.Err() == nil {
				if rnd.IntN(2) == 0 {
					l.cycle(ctx, hc, rnd)
				} else {
					l.originalCycle(ctx, hc, rnd)
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	cancel()
	l.wait()
	acks, calls, bad := l.snapshot()
	for _, b := range bad {
		t.Errorf("unexpected answer: %s", b)
	}
	ends := 0
	for _, a := range acks {
		if a.status != batch.StatusOpen {
			ends++
		}
	}
	if ends < 100 {
		t.Fatalf("only %d ended job-batches acknowledged in %d calls: the load did not run", ends, len(calls))
	}
	d, err := rdb.New(srv.Client(t), rdb.Options{}).Dump(context.Background(), "rel")
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, d, jobs, acks)
	checkEvents(t, srv.Client(t), d)
	t.Logf("%d calls, %d acknowledged ends checked against %d batches", len(calls), ends, len(d.Batches))
	p.stop(t)
}

// originalCycle opens a batch for every job through the original route, then closes or fails it
// the same way, recording each ended job the answer shows (whoever ended it) as acknowledged.
func (l *load) originalCycle(ctx context.Context, hc *http.Client, rnd *rand.Rand) {
	if code, _ := l.request(ctx, hc, "GET", "/open_batch/rel", ""); code != 200 {
		return
	}
	path := "/close_batch/rel"
	if rnd.IntN(2) == 0 {
		path = "/fail_batch/rel"
	}
	code, body := l.request(ctx, hc, "GET", path, "")
	if code != 200 {
		return
	}
	var jobs map[string]batch.Fields
	if err := json.Unmarshal(body, &jobs); err != nil {
		l.mu.Lock()
		l.bad = append(l.bad, "GET "+path+": "+err.Error())
		l.mu.Unlock()
		return
	}
	for name, f := range jobs {
		st := f.Status()
		if st != batch.StatusSuccess && st != batch.StatusFailed {
			continue
		}
		id, _ := f.Int(batch.FieldBatchID)
		l.record(ack{job: name, id: id, status: st, end: originalTime(f, batch.FieldBatchEnd)})
	}
}

// originalTime reads a date field of an original route's answer in history's layout (RFC 3339),
// whichever layout the route answers in.
func originalTime(f batch.Fields, name string) string {
	if t, ok := f.Time(name); ok {
		return batch.FormatTime(t)
	}
	s, _ := f.String(name)
	if t, err := time.Parse("2006-01-02 15:04:05.999999", s); err == nil {
		return batch.FormatTime(t)
	}
	return s
}
