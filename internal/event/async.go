package event

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// AsyncOptions configures an Async; the zero value is ready to use.
type AsyncOptions struct {
	// Buffer is the most events held for the sink; when it is full the oldest are dropped.
	// 0 means 10,000.
	Buffer int
	// BatchSize is the most events passed to one Write. 0 means 500.
	BatchSize int
	// MinBackoff is the wait after a first failed Write, doubled after each further failure up to
	// MaxBackoff (each wait is drawn between half and all of that, so that several batchy
	// processes do not retry in step). 0 means 100 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between retries. 0 means 30 s.
	MaxBackoff time.Duration
	// WriteTimeout bounds each Write through its context. 0 means 10 s.
	WriteTimeout time.Duration
	// Log receives failures, recoveries and drops; nil means slog.Default().
	Log *slog.Logger
}

// closeGrace is how long Close waits, once its context has ended, for the write it cancelled to
// return; a sink that ignores its context is then left behind.
const closeGrace = time.Second

// Async feeds a secondary sink from a bounded buffer on its own goroutine, so that a slow or dead
// sink never blocks the caller: Emit only appends to the buffer, dropping the oldest events when
// it is full. A failed batch is retried, with exponential backoff, until it is written; events
// emitted meanwhile wait behind it, so the sink gets every event it gets in order.
type Async struct {
	sink Sink
	opts AsyncOptions
	log  *slog.Logger

	mu       sync.Mutex
	queue    []Event // waiting events are queue[head:]
	head     int
	inflight int // events taken by the goroutine and not yet written
	closed   bool
	lastErr  string

	dropped   atomic.Uint64
	delivered atomic.Uint64

	wake    chan struct{} // capacity 1: "there may be events"
	closing chan struct{} // closed by Close: drain and stop
	ctx     context.Context
	cancel  context.CancelFunc // ends writes and waits when Close gives up
	done    chan struct{}      // closed when the goroutine has closed the sink

	closeOnce  sync.Once
	closeErr   error // the sink's Close error, set before done is closed
	lostAtStop uint64
}

// NewAsync starts feeding s; Close stops it.
func NewAsync(s Sink, opts AsyncOptions) *Async {
	if opts.Buffer <= 0 {
		opts.Buffer = 10_000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Async{
		sink:    s,
		opts:    opts,
		log:     log.With("sink", s.String()),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go a.run()
	return a
}

// String names the wrapped sink.
func (a *Async) String() string { return a.sink.String() }

// Unwrap returns the wrapped sink (ReopenAll looks through it).
func (a *Async) Unwrap() Sink {
	if a == nil {
		return nil
	}
	return a.sink
}

// Emit queues events for the sink without blocking; when the buffer is full the oldest queued
// events are dropped (and counted), and after Close the events themselves are.
func (a *Async) Emit(events ...Event) {
	if len(events) == 0 {
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.dropped.Add(uint64(len(events)))
		return
	}
	var dropped uint64
	for _, e := range events {
		if len(a.queue)-a.head >= a.opts.Buffer {
			a.queue[a.head] = Event{}
			a.head++
			dropped++
		}
		if len(a.queue) == cap(a.queue) && a.head > 0 {
			// Reuse the room before head rather than growing.
			n := copy(a.queue, a.queue[a.head:])
			clear(a.queue[n:])
			a.queue = a.queue[:n]
			a.head = 0
		}
		a.queue = append(a.queue, e)
	}
	a.mu.Unlock()
	if dropped > 0 {
		a.dropped.Add(dropped)
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Dropped returns how many events were dropped: pushed out of a full buffer, emitted after
// Close, or still undelivered when Close gave up.
func (a *Async) Dropped() uint64 { return a.dropped.Load() }

// Delivered returns how many events the sink has accepted.
func (a *Async) Delivered() uint64 { return a.delivered.Load() }

// Pending returns how many events wait for the sink, the batch being written included.
func (a *Async) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue) - a.head + a.inflight
}

// LastError returns the error of the last failed Write, "" once a Write has succeeded since.
// Sinks keep passwords out of their errors, so the text is safe to show.
func (a *Async) LastError() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastErr
}

// Close stops accepting events, keeps writing the buffered ones until they are all written or
// ctx ends, then closes the sink. Events left undelivered are counted in Dropped and reported in
// the error, as is the sink's Close error. When ctx ends it cancels the write in progress; if the
// sink ignores that for another second, Close returns and the sink is closed when the write
// returns, if ever.
func (a *Async) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		close(a.closing)
	})
	select {
	case <-a.done:
	case <-ctx.Done():
		a.cancel()
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-a.done:
		case <-t.C:
			return fmt.Errorf("event.Async %s: closing: the sink has not returned from a write; %d events not delivered", a, a.Pending())
		}
	}
	a.cancel()
	if a.lostAtStop > 0 {
		return fmt.Errorf("event.Async %s: closing: %d events not delivered (last error: %s)", a, a.lostAtStop, a.LastError())
	}
	if a.closeErr != nil {
		return fmt.Errorf("event.Async %s: closing: %w", a, a.closeErr)
	}
	return nil
}

// take moves up to BatchSize waiting events into a new slice, in flight.
func (a *Async) take() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := min(len(a.queue)-a.head, a.opts.BatchSize)
	if k == 0 {
		return nil
	}
	batch := make([]Event, k)
	copy(batch, a.queue[a.head:a.head+k])
	clear(a.queue[a.head : a.head+k])
	a.head += k
	if a.head == len(a.queue) {
		a.queue = a.queue[:0]
		a.head = 0
	}
	a.inflight = k
	return batch
}

// run writes batches until Close, then closes the sink.
func (a *Async) run() {
	defer close(a.done)
	defer func() {
		// Whatever is left when run stops early (Close's context ended) is lost.
		a.mu.Lock()
		lost := uint64(len(a.queue) - a.head + a.inflight)
		a.queue, a.head, a.inflight = nil, 0, 0
		a.mu.Unlock()
		a.dropped.Add(lost)
		a.lostAtStop = lost
		a.closeErr = a.sink.Close()
	}()
	var (
		batch       []Event
		failures    int
		draining    bool   // Close was called: stop once the buffer is empty
		loggedDrops uint64 // Dropped() when drops were last logged
	)
	for {
		if a.ctx.Err() != nil {
			return // Close has given up
		}
		if batch == nil {
			batch = a.take()
		}
		if batch == nil {
			if draining {
				return // closed is set, so nothing more can arrive
			}
			select {
			case <-a.wake:
			case <-a.closing:
				draining = true
			case <-a.ctx.Done():
				return
			}
			continue
		}
		wctx, cancel := context.WithTimeout(a.ctx, a.opts.WriteTimeout)
		err := a.sink.Write(wctx, batch)
		cancel()
		if err == nil {
			a.delivered.Add(uint64(len(batch)))
			a.mu.Lock()
			a.inflight = 0
			a.lastErr = ""
			a.mu.Unlock()
			if failures > 0 {
				a.log.Info("log sink writes again", "failed_attempts", failures)
			}
			batch, failures = nil, 0
			continue
		}
		failures++
		a.mu.Lock()
		a.lastErr = err.Error()
		a.mu.Unlock()
		if failures == 1 {
			a.log.Warn("log sink write failed; retrying", "events", len(batch), "err", err)
		}
		if d := a.dropped.Load(); d > loggedDrops {
			a.log.Warn("log sink buffer full: oldest events dropped", "dropped_total", d)
			loggedDrops = d
		}
		t := time.NewTimer(a.backoff(failures))
		select {
		case <-t.C:
		case <-a.ctx.Done():
			t.Stop()
			return
		}
	}
}

// backoff returns the wait before retry number n (1 for the first).
func (a *Async) backoff(n int) time.Duration {
	return backoff(a.opts.MinBackoff, a.opts.MaxBackoff, n)
}

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
