package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// minAutoMemoryLimit is the least soft memory limit --memory-limit auto sets: room for batchy's own
// tables (about 8 MB of Go memory with few workflows), a wave of a thousand requests in flight
// (net/http's buffers, about 10 KB each) and the garbage between two collections.
const minAutoMemoryLimit = 32 << 20

// memoryLimit is the soft limit of the Go runtime's memory that --memory-limit asks for (0: none)
// and why, given whether GOMEMLIMIT is set and the Go memory batchy holds once started.
//
// With a Redis store batchy's heap holds no data, only its tables and what the requests in flight
// hold, and its garbage comes in waves: a thousand waits registered at once leave about 10 MB. At
// the GC's default pacing (GOGC=100) the heap may grow to twice what was live at the last
// collection, so a collection that happens during a wave sets the next goal from the wave, and the
// process keeps that memory for several waves after. A soft limit caps that. Near it the GC runs
// more often (the runtime holds it to about half the CPU) rather than let the heap grow: the cost
// when the live heap itself nears the limit.
//
// auto sets one only for the Redis store (the embedded store's data lives on the Go heap, so its
// size is the data's) and only when GOMEMLIMIT is not set (the runtime already applies it): twice
// the Go memory held once started, and at least minAutoMemoryLimit.
func memoryLimit(flag, store string, envSet bool, held int64) (limit int64, why string) {
	switch {
	case flag == "off":
		return 0, "--memory-limit off"
	case flag != "auto":
		n, _ := parseBytes(flag) // checked by serveConfig.check
		return n, "--memory-limit"
	case envSet:
		return 0, "GOMEMLIMIT is set"
	case store != "redis":
		return 0, "the embedded store keeps its data on the Go heap"
	}
	return max(minAutoMemoryLimit, 2*held), "auto: twice the memory held at start, at least 32MiB"
}

// applyMemoryLimit sets --memory-limit in the runtime, given the Go memory held (goMemory); it
// returns the limit (0: none) and why.
//
// An auto limit also turns GOGC's pacing off (unless GOGC is set): the GC then runs when the Go
// memory nears the limit, not whenever the heap doubles. With GOGC's pacing the memory kept after a
// wave depends on when, within the wave, the last collection happened, and the runtime returns
// what it kept to the system slowly, so the process's memory wandered by a fifth from one wave of a
// thousand waits to the next (bench, wake part). Paced by the limit alone it stays at the limit,
// and the GC runs less often. The cost: an idle batchy holds its limit, not its live heap (32 MiB
// of Go memory at least).
func applyMemoryLimit(flag, store string, held int64) (int64, string) {
	limit, why := memoryLimit(flag, store, os.Getenv("GOMEMLIMIT") != "", held)
	if limit > 0 {
		debug.SetMemoryLimit(limit)
		if flag == "auto" && os.Getenv("GOGC") == "" {
			debug.SetGCPercent(-1)
			why += "; GOGC off: the GC runs as memory nears the limit"
		}
	}
	return limit, why
}

// goMemory is the memory that runtime/debug.SetMemoryLimit counts: all the runtime maps, less
// what it returned to the system.
func goMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// parseBytes reads a size as GOMEMLIMIT writes it: a number of bytes, alone or followed by B, KiB,
// MiB, GiB or TiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = rest, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q: use auto, off, or a size such as 96MiB", s)
	}
	return n << shift, nil
}

// followLiveHeap raises an auto limit that the live heap has outgrown, so that an installation
// growing after start (more workflows loaded, thousands of waits held) never pays for the limit
// with its CPU for long. Every interval it looks at the runtime (raiseLimit says when and how
// much); it never lowers the limit.
func followLiveHeap(ctx context.Context, limit int64, every time.Duration, log *slog.Logger) {
	s := []metrics.Sample{{Name: "/gc/limiter/last-enabled:gc-cycle"}, {Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/user:cpu-seconds"}}
	metrics.Read(s)
	lastLimited, lastGC, lastUser := s[0].Value.Uint64(), s[3].Value.Float64(), s[4].Value.Float64()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(s)
		limited, live, goal := s[0].Value.Uint64(), int64(s[1].Value.Uint64()), int64(s[2].Value.Uint64())
		gc, user := s[3].Value.Float64()-lastGC, s[4].Value.Float64()-lastUser
		share := 0.0
		if gc+user > 0 {
			share = gc / (gc + user)
		}
		if raised := raiseLimit(limit, live, goal, share, limited != lastLimited); raised > limit {
			limit = raised
			debug.SetMemoryLimit(limit)
			log.Info("memory limit raised: the live heap outgrew it", "bytes", limit, "live", live, "goal", goal,
				"gc_cpu_share", math.Round(share*1000)/1000, "gc_limiter_engaged", limited != lastLimited)
		}
		lastLimited, lastGC, lastUser = limited, s[3].Value.Float64(), s[4].Value.Float64()
	}
}

// gcShareToRaise is the share of the process's CPU the GC may take, while the limit holds the
// heap below GOGC's goal, before the limit is raised.
const gcShareToRaise = 0.05

// raiseLimit returns the limit an auto limit should become (limit itself to keep it), given the
// heap live after the last collection and the heap goal the runtime sets now, the GC's share of the
// CPU since the last look, and whether the GC's CPU limiter engaged since (the limit made the GC
// take half the CPU).
//   - The limiter engaged, or the live heap passed three quarters of the limit (a collection at
//     almost every allocation): twice the live heap.
//   - The limit holds the goal under twice the live heap (what GOGC=100 allows) and the GC took
//     more than gcShareToRaise of the CPU: raised by what the goal lacks. The limit also counts
//     the memory besides the heap (stacks, the runtime's own), so a live heap well under it may
//     still leave little room between collections: with 10,000 workflows loaded, about 15 MB
//     live under 32 MiB made the dashboard collect every 14 views, a sixth of its CPU.
func raiseLimit(limit, live, goal int64, gcShare float64, limiterEngaged bool) int64 {
	out := limit
	if limiterEngaged || live > limit/4*3 {
		out = max(out, 2*live)
	}
	if goal < 2*live && gcShare > gcShareToRaise {
		out = max(out, limit+2*live-goal)
	}
	return out
}
