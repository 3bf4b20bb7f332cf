//go:build unix

package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/metrics"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// BenchmarkTransition measures batchy's own work per original-route transition on the reference
// workflow (cfg/wf1.yaml, three jobs), wired as batchy serve wires it (event stream, alerts and
// metrics observing the bus), without the network between client and server: with -benchmem
// and -memprofile it shows what each request allocates.
func BenchmarkTransition(b *testing.B) {
	client := rdbtest.StartRedis(b).Client(b)
	store := rdb.New(client, rdb.Options{})
	quiet := slog.New(slog.DiscardHandler)
	bus := event.NewBus(rdb.NewEventStream(client, store.Keys(), 0), quiet)
	alerter := alert.New(alert.Options{Store: store, Marker: store, Events: bus, Logger: quiet})
	bus.Observe(alerter.Observe)
	m := metrics.New()
	bus.Observe(m.Observe)
	cfg := b.TempDir()
	wf1, err := os.ReadFile("../../cfg/wf1.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "wf1.yaml"), wf1, 0o644); err != nil {
		b.Fatal(err)
	}
	h := api.New(api.Options{Store: event.RecordingStore{Store: store, Bus: bus}, Events: bus, CfgDir: cfg, Metrics: m, Logger: quiet}).Handler()
	get := func(b *testing.B, path string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	get(b, "/load_cfg/wf1")
	for _, tc := range []struct{ name, end string }{{"open", ""}, {"open+close", "/close_batch/wf1"}, {"open+fail", "/fail_batch/wf1"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				get(b, "/open_batch/wf1")
				if tc.end != "" {
					get(b, tc.end)
				}
			}
			time.Sleep(50 * time.Millisecond) // let the alerts raised in the background finish
			// CPU time, unlike ns/op, does not count the waits for Redis, nor other processes' use of
			// a shared machine; it counts the client's work too, the same in every version.
			b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
