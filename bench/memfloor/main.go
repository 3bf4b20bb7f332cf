// Command memfloor is the memory floor of the embedded store's RSS measurement: the same history
// held with batchy's server out of the path. It prints, as JSON, its own RSS (anonymous and
// file-backed parts) and Go heap after a full garbage collection, holding either
//
//   - store: the data file batchy served, opened by the embedded store alone (miniredis with the
//     journal; no HTTP, API, scheduler, metrics or index): what the current layout costs in memory
//     wherever it is held; or
//
//   - compact: a bare miniredis holding the same number of batches as one hash field each (every
//     job's status and four dates in one short value, no configured fields) plus the ZSET index:
//     a model of the most compact layout a Redis hash can hold, to tell what a layout change could
//     reach.
//
//     go run ./bench/memfloor --data-file /tmp/x/batchy.json
//     go run ./bench/memfloor --compact --workflows 100 --batches 1000 --jobs extract,transform,load
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/pflag"

	"github.com/batchy/batchy/internal/rdb"
)

// Figures is what memfloor prints.
type Figures struct {
	RSS, RSSAnon, RSSFile, HeapInuse int64
}

func main() {
	dataFile := pflag.String("data-file", "", "the embedded store's data file to hold")
	compact := pflag.Bool("compact", false, "hold the compact model instead of a data file")
	workflows := pflag.Int("workflows", 100, "workflows of the compact model")
	batches := pflag.Int("batches", 1000, "batches per workflow of the compact model")
	jobs := pflag.StringSlice("jobs", []string{"extract", "transform", "load"}, "the jobs of each batch of the compact model")
	pflag.Parse()

	var keep any
	switch {
	case *compact:
		keep = compactModel(*workflows, *batches, *jobs)
	case *dataFile != "":
		e, err := rdb.StartEmbedded(*dataFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "memfloor:", err)
			os.Exit(1)
		}
		defer e.Close()
		keep = e
	default:
		fmt.Fprintln(os.Stderr, "memfloor: give --data-file or --compact")
		os.Exit(2)
	}
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(500 * time.Millisecond)
	var f Figures
	f.RSS, f.RSSAnon, f.RSSFile = status("VmRSS:"), status("RssAnon:"), status("RssFile:")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f.HeapInuse = int64(ms.HeapInuse)
	json.NewEncoder(os.Stdout).Encode(f)
	runtime.KeepAlive(keep)
}

// compactModel fills a bare miniredis: per batch one field of its workflow's history hash (each
// job's name, status and four dates in base 36) and one member of the ZSET of batch ids.
func compactModel(workflows, batches int, jobs []string) *miniredis.Miniredis {
	m := miniredis.NewMiniRedis()
	const first = 1795355370
	for w := range workflows {
		h := "batchy:{wf-" + strconv.Itoa(w) + "}:history"
		z := "batchy:{wf-" + strconv.Itoa(w) + "}:batches"
		for b := range batches {
			var v strings.Builder
			for j, name := range jobs {
				if j > 0 {
					v.WriteByte(0x1e)
				}
				from := int64(1767225600000000) + int64(b)*3_600_000_000
				fmt.Fprintf(&v, "%s s %s %s %s %s", name, strconv.FormatInt(from, 36), strconv.FormatInt(from+3_600_000_000, 36),
					strconv.FormatInt(from+3_600_100_000, 36), strconv.FormatInt(from+3_600_200_000, 36))
			}
			id := strconv.Itoa(first + b)
			m.HSet(h, id, strings.Clone(v.String())) // a string of its own length, as a command's argument is
			m.ZAdd(z, float64(first+b), id)
		}
	}
	return m
}

func status(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}
