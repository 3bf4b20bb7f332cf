package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name, flag, store string
		envSet            bool
		held              int64
		want              int64
	}{
		{"auto, Redis, little held: the floor", "auto", "redis", false, 10 * mib, 32 * mib},
		{"auto, Redis, much held: twice it", "auto", "redis", false, 50 * mib, 100 * mib},
		{"auto, embedded store: none", "auto", "embedded", false, 10 * mib, 0},
		{"auto, GOMEMLIMIT set: the runtime's", "auto", "redis", true, 10 * mib, 0},
		{"off", "off", "redis", false, 10 * mib, 0},
		{"a size, even on the embedded store", "96MiB", "embedded", false, 10 * mib, 96 * mib},
		{"a size wins over GOMEMLIMIT", "1GiB", "redis", true, 10 * mib, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := memoryLimit(tc.flag, tc.store, tc.envSet, tc.held)
			if got != tc.want || why == "" {
				t.Errorf("memoryLimit(%q, %q, %v, %d) = %d, %q; want %d and a reason", tc.flag, tc.store, tc.envSet, tc.held, got, why, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "512B": 512, "64KiB": 64 << 10, "96MiB": 96 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40} {
		if got, err := parseBytes(in); got != want || err != nil {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "64MB", "MiB", "1.5GiB", "99999999999TiB"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, nil; want an error", in, got)
		}
	}
}

func TestMemoryLimitFlagChecked(t *testing.T) {
	var stderr strings.Builder
	code := serve(t.Context(), []string{"--memory-limit", "64MB"}, &strings.Builder{}, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "--memory-limit") {
		t.Errorf("serve --memory-limit 64MB: exit %d, stderr %q; want %d and a word on --memory-limit", code, stderr.String(), exitUsage)
	}
}

// TestFollowLiveHeap: an auto limit the live heap outgrew is raised to twice the live heap, and
// logged; it is never lowered.
func TestFollowLiveHeap(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	const limit = 16 << 20
	debug.SetMemoryLimit(limit)
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20) // 64 MiB live: four times the limit
	}
	runtime.GC()
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		followLiveHeap(ctx, limit, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for debug.SetMemoryLimit(-1) == limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	runtime.KeepAlive(live)
	if got := debug.SetMemoryLimit(-1); got < 2*64<<20 {
		t.Errorf("limit = %d MiB with 64 MiB live, want at least 128 MiB", got>>20)
	}
	if !strings.Contains(logs.String(), "memory limit raised") {
		t.Errorf("no log of the raise: %q", logs.String())
	}
}

// TestRaiseLimit: when an auto limit is raised, and by how much.
func TestRaiseLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name              string
		limit, live, goal int64
		share             float64
		limiter           bool
		want              int64
	}{
		{"room to spare", 32 * mib, 5 * mib, 10 * mib, 0.01, false, 32 * mib},
		{"the limit binds, the GC idle", 32 * mib, 15 * mib, 20 * mib, 0.01, false, 32 * mib},
		{"the limit binds and costs CPU", 32 * mib, 15 * mib, 20 * mib, 0.15, false, 42 * mib},
		{"GOGC's goal, the GC busy", 32 * mib, 8 * mib, 16 * mib, 0.30, false, 32 * mib},
		{"the limiter engaged", 32 * mib, 20 * mib, 24 * mib, 0.01, true, 40 * mib},
		{"live past three quarters", 32 * mib, 26 * mib, 30 * mib, 0.01, false, 52 * mib},
		{"both: the larger", 32 * mib, 26 * mib, 28 * mib, 0.20, false, 56 * mib},
	} {
		if got := raiseLimit(c.limit, c.live, c.goal, c.share, c.limiter); got != c.want {
			t.Errorf("%s: %d MiB, want %d MiB", c.name, got/mib, c.want/mib)
		}
	}
}

// TestAutoLimitPacesTheGC: an auto limit turns GOGC's pacing off, unless GOGC is set; a size given
// keeps it.
func TestAutoLimitPacesTheGC(t *testing.T) {
	limitBefore, percentBefore := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(limitBefore); debug.SetGCPercent(percentBefore) })
	for _, c := range []struct {
		name, flag, gogc string
		wantPercent      int
	}{
		{"auto", "auto", "", -1},
		{"auto with GOGC set", "auto", "200", 100},
		{"a size", "96MiB", "", 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOGC", c.gogc)
			if c.gogc == "" {
				os.Unsetenv("GOGC")
			}
			t.Setenv("GOMEMLIMIT", "")
			os.Unsetenv("GOMEMLIMIT")
			debug.SetGCPercent(100)
			limit, why := applyMemoryLimit(c.flag, "redis", 10<<20)
			if got := debug.SetGCPercent(100); got != c.wantPercent || limit == 0 {
				t.Errorf("GC percent %d with limit %d (%s), want %d", got, limit, why, c.wantPercent)
			}
		})
	}
}
