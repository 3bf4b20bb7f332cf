package event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// FeedStore keeps what the log sinks' feeders share between replicas and restarts: each sink's
// lease and its cursor in every workflow's event stream, and the index of which workflows'
// streams were written lately (rdb.Sinks).
type FeedStore interface {
	// Lease takes or renews the lease of sink for holder until now+ttl; false when another holder
	// has it.
	Lease(ctx context.Context, sink, holder string, ttl time.Duration) (bool, error)
	// Release gives the lease of sink up, if holder has it.
	Release(ctx context.Context, sink, holder string) error
	// Marks returns up to limit workflows whose streams were written after sequence number after,
	// in the order of their last write.
	Marks(ctx context.Context, after int64, limit int) ([]Mark, error)
	// Start records now as the time sink was first fed, unless one is recorded already, and
	// returns the recorded time (FeederOptions.Recent).
	Start(ctx context.Context, sink string, now time.Time) (time.Time, error)
	// Next reads the events of up to limit entries of a workflow's stream after sink's cursor; in a
	// stream sink has no cursor in, from the first entry written at or after from (zero: from the
	// oldest entry kept).
	Next(ctx context.Context, sink, wf string, from time.Time, limit int) (*Pending, error)
	// Advance moves sink's cursor in wf's stream past p, never back.
	Advance(ctx context.Context, sink, wf string, p *Pending) error
}

// Mark says a workflow's stream was written; Seq orders the marks.
type Mark struct {
	Workflow string
	Seq      int64
}

// Pending is what a sink has not received yet of a workflow's stream, from its cursor on.
type Pending struct {
	Events []Event
	// Entries is the number of stream entries Events came from (a transition's entry holds several).
	Entries int
	// Lost is the number of entries trimmed from the stream before the sink got them.
	Lost int64
	// Oldest is the time of the first entry read.
	Oldest time.Time
	// More says the stream holds entries after these.
	More bool
	// Cursor is the store's position after these entries ("" when none was read).
	Cursor string
}

// FeederOptions configures a Feeder; the zero value of each field says what it means.
type FeederOptions struct {
	// ID names the sink's cursor and lease: replicas with the same ID share them (one of them
	// delivers). "" means the sink's String(), which holds no credentials.
	ID string
	// Holder names this replica in the lease; "" means a random name.
	Holder string
	// Lease is how long the lease lasts unless renewed (every third of it): a dead replica's sink
	// is taken over within about 4/3 of it. 0 means 15 s.
	Lease time.Duration
	// Poll is how often the events index is read when nothing woke the feeder. 0 means 1 s.
	Poll time.Duration
	// BatchSize is the most stream entries passed to one Write. 0 means 200.
	BatchSize int
	// MinBackoff is the wait after a first failed write, doubled after each further failure up to
	// MaxBackoff (each wait drawn between half and all of that). 0 means 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// WriteTimeout bounds each Write. 0 means 10 s.
	WriteTimeout time.Duration
	// Log receives failures, recoveries and losses; nil means slog.Default().
	Log *slog.Logger
	// Recent makes the sink get only the events written since it was first fed, by any replica
	// (FeedStore.Start, kept in the store): in a workflow it has no cursor in yet, it starts at the
	// first entry written since then, not at the oldest one kept. The alerts' backstop needs it: a
	// new sink of alerts must not page for every failure in the streams' history.
	Recent bool
}

// closeGrace is how long Close waits, once its context has ended, for the write it cancelled to
// return; a sink that ignores its context is then left behind.
const closeGrace = time.Second

// backoff returns the wait before retry number n (1 for the first): lo doubled n-1 times, at most
// hi, drawn between half and all of that so that several replicas do not retry in step.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 32 {
		if x := lo << (n - 1); x > 0 && x < d {
			d = x
		}
	}
	return d/2 + rand.N(d/2+1)
}

// wakeDelay is how long a feeder woken by Notify waits for more events before it reads.
const wakeDelay = 20 * time.Millisecond

// marksPage is the most workflows read from the events index at once.
const marksPage = 500

// maxDirty is the most workflows Notify remembers; beyond it the events index finds them.
const maxDirty = 1000

// errLeaseLost stops a delivery when another replica took the sink over.
var errLeaseLost = errors.New("the sink's lease was lost")

// Feeder delivers the events of every workflow's stream to one sink, in order per workflow, at
// least once: the sink's cursors move only after its Write succeeded, and they live in the store,
// so a restart, a crash or an outage of the sink resumes where the sink stopped. One replica feeds
// a sink at a time (the lease). It finds the workflows with new events through the store's events
// index, polled every Poll, and at once through Notify for this process's own events.
type Feeder struct {
	sink  Sink
	store FeedStore
	opts  FeederOptions
	log   *slog.Logger

	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	dirty   map[string]bool
	lastErr string
	pending int       // events of the write that failed last, 0 once caught up
	since   time.Time // the oldest event not delivered yet that the feeder has read; zero: none

	leader    atomic.Bool
	delivered atomic.Uint64
	failed    atomic.Uint64
	lost      atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	renewed   time.Time // last lease renewal (run's goroutine only)
	from      time.Time // with Recent, when the sink was first fed (run's goroutine only)
}

// NewFeeder starts feeding sink from store; Close stops it.
func NewFeeder(sink Sink, store FeedStore, opts FeederOptions) *Feeder {
	if opts.ID == "" {
		opts.ID = sink.String()
	}
	if opts.Holder == "" {
		opts.Holder = fmt.Sprintf("feeder-%016x", rand.Uint64())
	}
	if opts.Lease <= 0 {
		opts.Lease = 15 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 200
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Feeder{
		sink: sink, store: store, opts: opts, log: log.With("sink", opts.ID),
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel, dirty: map[string]bool{},
	}
	go f.run()
	return f
}

// String names the sink (its ID).
func (f *Feeder) String() string { return f.opts.ID }

// Unwrap returns the sink (ReopenAll looks through it).
func (f *Feeder) Unwrap() Sink {
	if f == nil {
		return nil
	}
	return f.sink
}

// Notify says these workflows' streams were written: the feeder looks at them now rather than at
// its next poll. It does not block.
func (f *Feeder) Notify(wfs ...string) {
	f.mu.Lock()
	for _, wf := range wfs {
		if len(f.dirty) < maxDirty {
			f.dirty[wf] = true
		}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Observe is Notify as a Bus observer.
func (f *Feeder) Observe(_ context.Context, events []Event) {
	wfs := make([]string, 0, 1)
	for i := range events {
		if n := len(wfs); n == 0 || wfs[n-1] != events[i].Workflow {
			wfs = append(wfs, events[i].Workflow)
		}
	}
	f.Notify(wfs...)
}

// Delivered returns how many events the sink took from this feeder.
func (f *Feeder) Delivered() uint64 { return f.delivered.Load() }

// Failed returns how many writes to the sink failed.
func (f *Feeder) Failed() uint64 { return f.failed.Load() }

// Dropped returns how many stream entries were trimmed (--events-keep) before the sink got them.
func (f *Feeder) Dropped() uint64 { return f.lost.Load() }

// Leader reports whether this replica holds the sink's lease.
func (f *Feeder) Leader() bool { return f.leader.Load() }

// Pending returns how many events the last failed write held, 0 once the sink caught up.
func (f *Feeder) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending
}

// LastError returns the error of the last failed write, "" once a write has succeeded since.
func (f *Feeder) LastError() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// Lag returns the age of the oldest event this feeder has read and not delivered yet, 0 when the
// sink is caught up (or another replica feeds it).
func (f *Feeder) Lag(now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		return 0
	}
	return max(now.Sub(f.since), 0)
}

// Close stops the feeder: it keeps delivering until the sink has caught up or ctx ends, gives the
// lease up and closes the sink. What is left undelivered stays in the streams, after the sink's
// cursors, for the next holder of the lease.
func (f *Feeder) Close(ctx context.Context) error {
	f.closeOnce.Do(func() { close(f.closing) })
	select {
	case <-f.done:
	case <-ctx.Done():
		f.cancel()
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-f.done:
		case <-t.C:
			return fmt.Errorf("event.Feeder %s: closing: the sink has not returned from a write", f)
		}
	}
	f.cancel()
	return f.closeErr
}

func (f *Feeder) run() {
	defer close(f.done)
	defer func() {
		if f.leader.Load() {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := f.store.Release(rctx, f.opts.ID, f.opts.Holder); err != nil {
				f.log.Warn("log sink: giving its lease up", "err", err)
			}
			cancel()
			f.leader.Store(false)
		}
		if err := f.sink.Close(); err != nil {
			f.closeErr = fmt.Errorf("event.Feeder %s: closing: %w", f, err)
		}
	}()
	var (
		seen     int64 // the events index was read up to this mark
		failures int
		draining bool
		closing  = f.closing // nil once seen: a closed channel would always be ready
		leaseErr bool        // the last lease call failed (logged once until one succeeds)
		woken    bool        // Notify ended the last wait, not the poll
	)
	for f.ctx.Err() == nil {
		wasLeader := f.leader.Load()
		leader, err := f.keepLease()
		switch {
		case err != nil:
			if !leaseErr {
				f.log.Warn("log sink: its lease could not be taken or renewed", "err", err)
			}
			leaseErr = true
		case leader && !wasLeader:
			leaseErr = false
			// A full sweep: every workflow's cursor is checked once, so that an event whose mark
			// was lost (a replica died between the two writes) is still found.
			seen = 0
			f.log.Info("log sink: this replica feeds it")
		default:
			leaseErr = false
		}
		wait := f.opts.Poll
		if leader {
			// A wake delivers the workflows Notify named; the events index is read at each poll,
			// so that a burst of this process's events costs no more reads of it.
			full := !woken || draining || failures > 0 || !wasLeader
			err := f.deliver(&seen, full)
			switch {
			case err == nil:
				if failures > 0 {
					f.log.Info("log sink writes again", "failed_attempts", failures)
				}
				failures = 0
				if draining {
					return
				}
			case f.ctx.Err() != nil:
				return
			case errors.Is(err, errLeaseLost):
				f.log.Info("log sink: another replica feeds it now")
			default:
				failures++
				if failures == 1 {
					f.log.Warn("log sink write failed; retrying from its cursor", "err", err)
				}
				wait = backoff(f.opts.MinBackoff, f.opts.MaxBackoff, failures)
			}
		} else if draining {
			return
		}
		woken = false
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-f.wake:
			// A transition publishes its events, then its run steps and log lines follow: take
			// them together.
			woken = true
			time.Sleep(wakeDelay)
		case <-closing:
			// Deliver what is left at once, then stop (see Close).
			draining, closing = true, nil
		case <-f.ctx.Done():
		}
		t.Stop()
	}
}

// keepLease takes or renews the sink's lease once a third of it has passed since the last try:
// a holder renews it in time, and a standby replica takes over within 4/3 of a lease of a dead
// holder's last renewal, each at a few Redis calls per lease.
func (f *Feeder) keepLease() (bool, error) {
	if time.Since(f.renewed) < f.opts.Lease/3 {
		return f.leader.Load(), nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, min(f.opts.Lease/3, 5*time.Second))
	defer cancel()
	tried := time.Now()
	ok, err := f.store.Lease(ctx, f.opts.ID, f.opts.Holder, f.opts.Lease)
	if err != nil {
		// Keep delivering on a lease that may still hold; the cursors never go back.
		return f.leader.Load() && time.Since(f.renewed) < f.opts.Lease, err
	}
	f.renewed = tried
	f.leader.Store(ok)
	return ok, nil
}

// deliver feeds the workflows Notify named, then (full) those of the events index after *seen,
// which it moves past each workflow delivered.
func (f *Feeder) deliver(seen *int64, full bool) error {
	if f.opts.Recent && f.from.IsZero() {
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.WriteTimeout)
		from, err := f.store.Start(ctx, f.opts.ID, time.Now())
		cancel()
		if err != nil {
			return err
		}
		f.from = from
	}
	f.mu.Lock()
	dirty := f.dirty
	f.dirty = map[string]bool{}
	f.mu.Unlock()
	for wf := range dirty {
		if err := f.feed(wf); err != nil {
			f.Notify(keys(dirty)...) // looked at again on the next attempt
			return err
		}
	}
	for full {
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.WriteTimeout)
		marks, err := f.store.Marks(ctx, *seen, marksPage)
		cancel()
		if err != nil {
			return err
		}
		for _, m := range marks {
			if err := f.feed(m.Workflow); err != nil {
				return err
			}
			*seen = m.Seq
		}
		full = len(marks) == marksPage
	}
	// Everything read was delivered.
	f.mu.Lock()
	f.since, f.pending, f.lastErr = time.Time{}, 0, ""
	f.mu.Unlock()
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// feed delivers a workflow's events after the sink's cursor, a batch at a time.
func (f *Feeder) feed(wf string) error {
	for {
		if ok, err := f.keepLease(); err == nil && !ok {
			return errLeaseLost
		}
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.WriteTimeout)
		p, err := f.store.Next(ctx, f.opts.ID, wf, f.from, f.opts.BatchSize)
		cancel()
		if err != nil {
			return err
		}
		if p.Entries == 0 && p.Lost == 0 {
			return nil
		}
		f.mu.Lock()
		if f.since.IsZero() || p.Oldest.Before(f.since) {
			f.since = p.Oldest
		}
		f.mu.Unlock()
		if len(p.Events) > 0 {
			ctx, cancel := context.WithTimeout(f.ctx, f.opts.WriteTimeout)
			err := f.sink.Write(ctx, p.Events)
			cancel()
			if err != nil {
				f.failed.Add(1)
				f.mu.Lock()
				f.lastErr, f.pending = err.Error(), len(p.Events)
				f.mu.Unlock()
				return fmt.Errorf("workflow %s: %w", wf, err)
			}
			f.delivered.Add(uint64(len(p.Events)))
		}
		ctx, cancel = context.WithTimeout(f.ctx, f.opts.WriteTimeout)
		err = f.store.Advance(ctx, f.opts.ID, wf, p)
		cancel()
		if err != nil {
			return err
		}
		if p.Lost > 0 {
			f.lost.Add(uint64(p.Lost))
			f.log.Error("log sink: events trimmed from the stream before the sink got them (raise --events-keep)",
				"workflow", wf, "entries_lost", p.Lost)
		}
		if !p.More {
			return nil
		}
	}
}
