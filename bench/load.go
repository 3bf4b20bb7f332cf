package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// opFunc performs one operation for worker w (0-based). An operation made of several requests (an
// open+close pair) reports each request's latency through rec, by its index in the op's parts.
type opFunc func(ctx context.Context, w int, rec func(part int, d time.Duration)) error

// op is a measured operation.
type op struct {
	name  string
	parts []string // names of the requests an op is made of; nil: a single request
	run   opFunc
}

// Latency sums up a latency sample.
type Latency struct {
	P50, P99, Max time.Duration
	N             int
}

func summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	return Latency{P50: percentile(lat, 50), P99: percentile(lat, 99), Max: lat[len(lat)-1], N: len(lat)}
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// Result is one measurement: an operation at a concurrency on a target.
type Result struct {
	Target   string // "http-redis/original", "store", "raw-lua", ...
	Op       string
	Conc     int
	Elapsed  time.Duration
	Ops      int
	Errors   int
	FirstErr string
	Lat      Latency
	Parts    map[string]Latency // per request of a composite op
	// ServerCPU, RedisCPU and ClientCPU are the cores batchy, redis-server and the bench itself
	// (the load generator) kept busy meanwhile (1.0: one core); zero when not measured.
	ServerCPU, RedisCPU, ClientCPU float64
	// Requests is how many HTTP requests (or bare EVALs) were sent over the whole measurement,
	// warm-up and errors included (a pair is two); ServerUsec is batchy's CPU time over the same
	// span (/proc/<pid>/stat) divided by Requests, in µs.
	Requests   int
	ServerUsec float64
	// Redis per request over the same span (RedisMeasured: both read): RedisUsec is the usec of
	// the top-level commands (INFO commandstats, the calibration's accounting: topLevelUsec)
	// divided by Requests, RedisUsecLow when it is a lower bound (scripts ran and the commands sent
	// directly were not known: the runners alone); RedisProcUsec is redis-server's user+system CPU
	// time (/proc/<pid>/stat) divided by Requests.
	RedisMeasured            bool
	RedisUsec, RedisProcUsec float64
	RedisUsecLow             bool
	RedisNote                string // the accounting's doubt, if any
}

// OpsPerSec is the measured throughput of the operation.
func (r Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// measure runs o with conc closed-loop workers: warm-up first (not counted), then for d.
func measure(ctx context.Context, target string, o op, conc int, warm, d time.Duration) Result {
	type sample struct {
		lat   []time.Duration
		parts [][]time.Duration
		errs  int
		total int // every op this worker ran, warm-up and errors included
		first error
	}
	samples := make([]sample, conc)
	var wg sync.WaitGroup
	start := make(chan struct{})
	var t0 time.Time
	var measureFrom, stopAt time.Time
	for w := range conc {
		wg.Go(func() {
			s := &samples[w]
			s.parts = make([][]time.Duration, len(o.parts))
			partLat := make([]time.Duration, len(o.parts))
			rec := func(p int, d time.Duration) { partLat[p] = d }
			<-start
			for {
				begin := time.Now()
				if begin.After(stopAt) || ctx.Err() != nil {
					return
				}
				err := o.run(ctx, w, rec)
				end := time.Now()
				s.total++
				if begin.Before(measureFrom) {
					continue // warm-up
				}
				if err != nil {
					s.errs++
					if s.first == nil {
						s.first = err
					}
					continue
				}
				s.lat = append(s.lat, end.Sub(begin))
				for p := range o.parts {
					s.parts[p] = append(s.parts[p], partLat[p])
				}
			}
		})
	}
	t0 = time.Now()
	measureFrom, stopAt = t0.Add(warm), t0.Add(warm+d)
	close(start)
	wg.Wait()
	// Ops started before stopAt and finished after it: elapsed runs to the last one's end.
	elapsed := time.Since(measureFrom)

	r := Result{Target: target, Op: o.name, Conc: conc, Elapsed: elapsed}
	var all []time.Duration
	parts := make([][]time.Duration, len(o.parts))
	for _, s := range samples {
		all = append(all, s.lat...)
		r.Requests += s.total * max(1, len(o.parts))
		r.Errors += s.errs
		if s.first != nil && r.FirstErr == "" {
			r.FirstErr = s.first.Error()
		}
		for p := range o.parts {
			parts[p] = append(parts[p], s.parts[p]...)
		}
	}
	r.Ops = len(all)
	r.Lat = summarize(all)
	if len(o.parts) > 0 {
		r.Parts = map[string]Latency{}
		for p, name := range o.parts {
			r.Parts[name] = summarize(parts[p])
		}
	}
	return r
}
