package main

// What a timed phase cost Redis, per request: INFO commandstats and redis-server's CPU time read
// before and after the phase (warm-up included, like batchy's CPU), so that the Redis µs of a
// transition is a hot figure, measured under load, rather than one request's alone (calib.go), which
// cold caches, CPU frequency and vCPU steal inflate several times on a small shared machine.

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// redisMeter reads what a timed phase cost the bench's redis-server.
type redisMeter struct {
	ref *redisRef
	pid int
	// transitions is the calibration, for the commands each operation sends directly.
	transitions []Transition
	logf        func(string, ...any)
}

// redisMark is a reading of the meter.
type redisMark struct {
	stats map[string]cmdStat
	cpu   time.Duration
	ok    bool
}

func (m *redisMeter) mark(ctx context.Context) redisMark {
	if m == nil {
		return redisMark{}
	}
	s, err := m.ref.commandStats(ctx)
	if err != nil {
		m.logf("INFO commandstats: %v", err)
		return redisMark{}
	}
	return redisMark{stats: s, cpu: cpuOf(m.pid), ok: true}
}

// finish reads the meter again once Redis has settled (work batchy does after answering counts
// too) and sets r's Redis figures per request since m0.
func (m *redisMeter) finish(ctx context.Context, r *Result, parts int, m0 redisMark) {
	if m == nil || !m0.ok || r.Requests == 0 {
		return
	}
	s1, err := settled(ctx, m.ref)
	if err != nil {
		m.logf("INFO commandstats: %v", err)
		return
	}
	cpu := cpuOf(m.pid) - m0.cpu
	delta := diffStats(m0.stats, s1)
	ops := float64(r.Requests) / float64(max(1, parts))
	direct := map[string]float64{}
	if perOp, ok := directPerOp(m.transitions, r.Op); ok {
		for name, d := range perOp {
			direct[name] = d * ops
			if got := float64(delta[name].Calls); got < 0.9*direct[name] {
				r.RedisNote = fmt.Sprintf("%s %s at c%d: %.0f `%s` calls where the calibration expects %.0f sent directly: its Redis µs may be off",
					r.Target, r.Op, r.Conc, got, name, direct[name])
				m.logf("warning: %s", r.RedisNote)
			}
		}
	} else if !anyRunner(delta) {
		// No script ran: every data command was sent by a client (get_status's HGETALL, ...).
		for name, d := range delta {
			if !isMeta(name) {
				direct[name] = float64(d.Calls)
			}
		}
	} else {
		r.RedisUsecLow = true // scripts ran, the direct commands are not known: runners only
	}
	r.RedisMeasured = true
	r.RedisUsec = topLevelUsec(delta, direct) / float64(r.Requests)
	r.RedisProcUsec = float64(cpu.Microseconds()) / float64(r.Requests)
}

func anyRunner(delta map[string]cmdStat) bool {
	for name := range delta {
		if slices.Contains(scriptRunners, name) {
			return true
		}
	}
	return false
}

// directPerOp returns the commands a client sends directly (not from a script) per operation op,
// from the calibration's MONITOR pass (original routes; the v1 routes call the same store). The
// open alone is `open after open`; a pair is its open and its end. The open of an open+fail loop
// follows a fail, which is not calibrated: `open after close`, an open after an ended batch too,
// stands for it (every open sends one EVALSHA alone). The bench's own EVALSHA phases send nothing
// but a script runner. ok is false when it is not known.
func directPerOp(ts []Transition, op string) (map[string]float64, bool) {
	var names []string
	switch op {
	case opBare, opNoop, opStoreOpen, opStorePair, opStoreFail: // script runners alone
		return map[string]float64{}, true
	case opOpen:
		names = []string{trOpenOpen}
	case opPair:
		names = []string{trOpenClose, trClose}
	case opFail:
		names = []string{trOpenClose, trFail}
	default:
		return nil, false
	}
	out := map[string]float64{}
	for _, n := range names {
		t, ok := findTransition(ts, n)
		if !ok || t.MonitorSamples == 0 {
			return nil, false
		}
		for name, d := range t.Direct {
			out[name] += d
		}
	}
	return out, true
}
