package event

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestBackoff(t *testing.T) {
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
			if d := backoff(100*time.Millisecond, 30*time.Second, tc.n); d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.n, d, tc.min, tc.max)
			}
		}
	}
}

// standby is a FeedStore whose lease another replica always holds.
type standby struct{}

func (standby) Lease(context.Context, string, string, time.Duration) (bool, error)  { return false, nil }
func (standby) Release(context.Context, string, string) error                       { return nil }
func (standby) Marks(context.Context, int64, int) ([]Mark, error)                   { return nil, nil }
func (standby) Start(_ context.Context, _ string, now time.Time) (time.Time, error) { return now, nil }
func (standby) Next(context.Context, string, string, time.Time, int) (*Pending, error) {
	return &Pending{}, nil
}
func (standby) Advance(context.Context, string, string, *Pending) error { return nil }

func TestReopenAll(t *testing.T) {
	path := t.TempDir() + "/e.jsonl"
	f, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	fd := NewFeeder(f, standby{}, FeederOptions{Holder: "r1", Log: quietLog})
	defer fd.Close(context.Background())
	var nilFeeder *Feeder
	if err := ReopenAll([]Sink{NewStdoutSink(nil), f}); err != nil {
		t.Error(err)
	}
	if err := ReopenAll([]*Feeder{fd, nilFeeder}); err != nil {
		t.Error(err)
	}
	if fd.String() != f.String() {
		t.Errorf("a feeder without an ID goes by %q, want its sink's description %q", fd.String(), f.String())
	}
}
