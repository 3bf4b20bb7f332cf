package event

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Bus sends every event to the authoritative stream, synchronously, and then wakes the log
// sinks' feeders (Feed), which read the events back from the stream on their own goroutines, so
// that a slow or dead sink never delays a transition.
type Bus struct {
	stream    Stream
	feeders   []*Feeder
	observers []func(context.Context, []Event)
	log       *slog.Logger
	now       func() time.Time
}

// Observe registers a function that sees every event after it was recorded (alerts use it). It
// runs in the emitting goroutine: it must not block. Call before the bus is used.
func (b *Bus) Observe(f func(context.Context, []Event)) { b.observers = append(b.observers, f) }

// NewBus returns a bus; stream may be nil (events then go to the observers only).
func NewBus(stream Stream, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	return &Bus{stream: stream, log: log, now: time.Now}
}

// Stream returns the authoritative stream sink, nil if there is none.
func (b *Bus) Stream() Stream {
	if b == nil {
		return nil
	}
	return b.stream
}

// SinkStatus is a secondary sink's delivery state, for health reports and metrics.
type SinkStatus interface {
	String() string
	// Pending is how many events wait for the sink (that the process knows of).
	Pending() int
	// Dropped is how many events the sink will never get.
	Dropped() uint64
	// LastError is the error of the last failed write, "" once one succeeded since.
	LastError() string
}

// Feed registers a feeder: Publish wakes it, Secondaries reports it and Close stops it. Call
// before the bus is used.
func (b *Bus) Feed(f *Feeder) {
	b.feeders = append(b.feeders, f)
	b.Observe(f.Observe)
}

// Feeders returns the feeders registered with Feed.
func (b *Bus) Feeders() []*Feeder {
	if b == nil {
		return nil
	}
	return b.feeders
}

// Secondaries returns the secondary sinks, for health reports and metrics.
func (b *Bus) Secondaries() []SinkStatus {
	if b == nil {
		return nil
	}
	out := make([]SinkStatus, 0, len(b.feeders))
	for _, f := range b.feeders {
		out = append(out, f)
	}
	return out
}

// Emit records events. It fills in a missing time and level; a failing stream write is logged,
// not returned: an event never fails the transition it reports.
func (b *Bus) Emit(ctx context.Context, events ...Event) {
	if b == nil || len(events) == 0 {
		return
	}
	now := b.now().UTC().Truncate(time.Microsecond) // the precision of every stored time
	for i := range events {
		if events[i].Time.IsZero() {
			events[i].Time = now
		}
		if events[i].Level == "" {
			events[i].Level = "info"
		}
	}
	if b.stream != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		if err := b.stream.Write(wctx, events); err != nil {
			b.log.Warn("events not written to the stream", "events", len(events), "err", err)
		}
		cancel()
	}
	b.Publish(ctx, events...)
}

// Publish hands events already in the stream (the store's scripts write a change's events
// themselves) to the observers, the feeders among them.
func (b *Bus) Publish(ctx context.Context, events ...Event) {
	if b == nil || len(events) == 0 {
		return
	}
	for _, f := range b.observers {
		f(ctx, events)
	}
}

// listened reports whether any observer would see a published event: without one, a
// transition's events need not even be built.
func (b *Bus) listened() bool {
	return b != nil && len(b.observers) > 0
}

func (b *Bus) logger() *slog.Logger {
	if b == nil {
		return slog.Default()
	}
	return b.log
}

// Close stops the feeders: each delivers what it can until ctx ends, and stops with nothing lost
// (its cursors say where the next holder of its lease resumes).
func (b *Bus) Close(ctx context.Context) {
	if b == nil {
		return
	}
	var wg sync.WaitGroup
	for _, f := range b.feeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Close(ctx); err != nil {
				b.log.Warn("log sink: closing", "sink", f.String(), "err", err)
			}
		}()
	}
	wg.Wait()
}
