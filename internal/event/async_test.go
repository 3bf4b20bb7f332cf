package event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quietLog = slog.New(slog.DiscardHandler)

// blockingSink never returns from Write until release is closed, ignoring its context: the
// worst a secondary sink can do.
type blockingSink struct {
	release chan struct{}
	calls   atomic.Int64
}

func (s *blockingSink) Write(ctx context.Context, events []Event) error {
	s.calls.Add(1)
	<-s.release
	return nil
}
func (s *blockingSink) Close() error   { return nil }
func (s *blockingSink) String() string { return "blocking://" }

// flakySink fails its first failures writes (and any write while down is set), then records
// what it is given.
type flakySink struct {
	mu       sync.Mutex
	failures int
	attempts int
	down     bool
	got      []Event
	closed   bool
}

func (s *flakySink) Write(ctx context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.closed {
		return errors.New("closed")
	}
	if s.down || s.attempts <= s.failures {
		return fmt.Errorf("attempt %d: connection refused", s.attempts)
	}
	s.got = append(s.got, events...)
	return nil
}
func (s *flakySink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
func (s *flakySink) String() string { return "flaky://" }

func (s *flakySink) received() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.got...)
}

func numbered(from, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{Workflow: "wf", Type: TypeLog, Level: "info", Message: fmt.Sprint(from + i)}
	}
	return out
}

func TestAsyncBlockedSinkNeverBlocksEmit(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	defer close(sink.release) // let the stuck goroutine go at the end
	a := NewAsync(sink, AsyncOptions{Buffer: 100, BatchSize: 10, Log: quietLog})

	// The sink never returns until the test ends, so an Emit that waited for it would never
	// return: finishing at all is the proof. The bound only turns a hang into a failure; it is no
	// speed measurement, which would flake on a loaded machine.
	const emitted = 5000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range emitted {
			a.Emit(numbered(i, 1)...)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Emit blocked behind a stuck sink: %d calls did not finish in 30s", emitted)
	}
	// Wait until the goroutine is stuck in Write, so that the accounting below is settled.
	for deadline := time.Now().Add(5 * time.Second); sink.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sink was never written to")
		}
	}
	dropped, pending := a.Dropped(), a.Pending()
	if pending > 110 {
		t.Errorf("Pending() = %d, want at most the buffer plus one batch (110)", pending)
	}
	if int(dropped)+pending != emitted {
		t.Errorf("Dropped() %d + Pending() %d = %d, want every event emitted (%d) accounted for", dropped, pending, int(dropped)+pending, emitted)
	}
	if dropped < emitted-110 {
		t.Errorf("Dropped() = %d, want at least %d", dropped, emitted-110)
	}

	// Close gives up on the stuck sink soon after its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Close(ctx)
	if d := time.Since(start); d > closeGrace+5*time.Second { // a bound on a hang, with room for a loaded machine
		t.Errorf("Close took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "not delivered") {
		t.Errorf("Close() = %v, want an error counting the undelivered events", err)
	}
	// Emit after Close still does not block, and counts.
	before := a.Dropped()
	a.Emit(numbered(0, 3)...)
	if got := a.Dropped() - before; got != 3 {
		t.Errorf("Emit after Close dropped %d, want 3", got)
	}
}

func TestAsyncRetriesInOrder(t *testing.T) {
	for _, failures := range []int{0, 1, 5} {
		t.Run(fmt.Sprint(failures, " failures"), func(t *testing.T) {
			sink := &flakySink{failures: failures}
			a := NewAsync(sink, AsyncOptions{BatchSize: 50, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Log: quietLog})
			const emitted = 1234
			for i := 0; i < emitted; i += 17 {
				a.Emit(numbered(i, min(17, emitted-i))...)
				if i%170 == 0 {
					time.Sleep(time.Millisecond) // let some batches go out mid-stream
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			got := sink.received()
			if len(got) != emitted {
				t.Fatalf("sink received %d events, want %d", len(got), emitted)
			}
			for i, e := range got {
				if e.Message != fmt.Sprint(i) {
					t.Fatalf("event %d is %q: out of order or repeated", i, e.Message)
				}
			}
			if a.Dropped() != 0 || a.Pending() != 0 || a.Delivered() != emitted {
				t.Errorf("Dropped %d, Pending %d, Delivered %d; want 0, 0, %d", a.Dropped(), a.Pending(), a.Delivered(), emitted)
			}
			if !sink.closed {
				t.Error("the sink was not closed")
			}
		})
	}
}

func TestAsyncKeepsNewestWhileSinkIsDown(t *testing.T) {
	sink := &flakySink{down: true}
	a := NewAsync(sink, AsyncOptions{Buffer: 100, BatchSize: 10, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Log: quietLog})
	a.Emit(numbered(0, 10)...) // the first batch, taken and retried
	for deadline := time.Now().Add(5 * time.Second); a.LastError() == ""; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed write reported")
		}
	}
	if got := a.LastError(); !strings.Contains(got, "connection refused") {
		t.Errorf("LastError() = %q", got)
	}
	a.Emit(numbered(10, 300)...) // 310 for 10 in flight + 100 buffered: the oldest 200 waiting go
	if got, want := a.Dropped(), uint64(200); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	if got, want := a.Pending(), 110; got != want {
		t.Errorf("Pending() = %d, want %d", got, want)
	}
	sink.mu.Lock()
	sink.down = false
	sink.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range sink.received() {
		msgs = append(msgs, e.Message)
	}
	want := append(messages(0, 10), messages(210, 100)...)
	if fmt.Sprint(msgs) != fmt.Sprint(want) {
		t.Errorf("received %v\nwant %v", msgs, want)
	}
	if got := a.LastError(); got != "" {
		t.Errorf("LastError() = %q after a successful write, want \"\"", got)
	}
}

func messages(from, n int) []string {
	var out []string
	for _, e := range numbered(from, n) {
		out = append(out, e.Message)
	}
	return out
}

func TestAsyncCloseGivesUpOnFailingSink(t *testing.T) {
	sink := &flakySink{down: true}
	a := NewAsync(sink, AsyncOptions{MinBackoff: time.Millisecond, Log: quietLog})
	a.Emit(numbered(0, 700)...)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := a.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "700 events not delivered") {
		t.Errorf("Close() = %v, want 700 events not delivered", err)
	}
	if got := a.Dropped(); got != 700 {
		t.Errorf("Dropped() = %d, want 700", got)
	}
	if !sink.closed {
		t.Error("the sink was not closed")
	}
}

func TestAsyncBackoff(t *testing.T) {
	a := &Async{opts: AsyncOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second}}
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{9, 12800 * time.Millisecond, 25600 * time.Millisecond},
		{10, 15 * time.Second, 30 * time.Second},
		{1000, 15 * time.Second, 30 * time.Second},
	} {
		for range 100 {
			if d := a.backoff(tc.n); d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.n, d, tc.min, tc.max)
			}
		}
	}
}

func TestReopenAll(t *testing.T) {
	path := t.TempDir() + "/e.jsonl"
	f, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAsync(f, AsyncOptions{Log: quietLog})
	defer a.Close(context.Background())
	var nilAsync *Async
	if err := ReopenAll([]Sink{NewStdoutSink(nil), f}); err != nil {
		t.Error(err)
	}
	if err := ReopenAll([]*Async{a, nilAsync}); err != nil {
		t.Error(err)
	}
}

// TestBusCloseLogsLostEvents: events a sink could not take before shutdown are not dropped
// silently: Bus.Close logs how many, naming the sink.
func TestBusCloseLogsLostEvents(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	b := NewBus(nil, []*Async{NewAsync(&flakySink{down: true}, AsyncOptions{MinBackoff: time.Millisecond, Log: quietLog})}, log)
	b.Publish(context.Background(), numbered(0, 5)...)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	b.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if got := logs.String(); !strings.Contains(got, "events lost at shutdown") || !strings.Contains(got, "5 events not delivered") || !strings.Contains(got, "flaky://") {
		t.Errorf("log after closing a bus whose sink is down: %q, want the sink and 5 events lost", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
