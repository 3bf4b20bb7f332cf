package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
)

// The embedded store's targets (issue 14).
const (
	targetEmbeddedRatio = 0.5  // open+close on the embedded store / on Redis, at c16, same run
	targetEmbeddedPairs = 1000 // open+close pairs per second on the embedded store, at c16
	targetEmbeddedFlat  = 0.20 // the rate with history within this share of the fresh store's
	targetEmbeddedRSS   = 64 << 20
	historyBatches      = 100_000 // batches of history the flatness measurement holds in all
	rssWorkflows        = 100     // workflows × rssBatches the RSS measurement holds
	rssBatches          = 1000
)

// EmbeddedFigures are the embedded store's measurements beyond the fresh store's phases.
type EmbeddedFigures struct {
	// History is open+close at c16 with historyBatches batches of history in the store.
	History   Result
	HistoryOK bool
	// RSS is batchy's RSS serving rssWorkflows workflows of rssBatches batches each, with its
	// anonymous and file-backed (the binary's pages) parts.
	RSS, RSSAnon, RSSFile int64
	RSSBytes              int64 // the data files' size on disk
	// StoreFloor is the same data file held by the embedded store alone (bench/memfloor: no
	// server), CompactFloor a bare miniredis holding as many batches in one short field each: the
	// memory the layout costs with batchy out of the path, and what a layout change could reach.
	StoreFloor, CompactFloor memFigures
}

// memFigures is what bench/memfloor prints.
type memFigures struct {
	RSS, RSSAnon, RSSFile, HeapInuse int64
}

// memFloor runs bench/memfloor with args and reads its figures.
func memFloor(ctx context.Context, tmp string, args ...string) (memFigures, error) {
	var f memFigures
	bin := filepath.Join(tmp, "memfloor")
	if _, err := os.Stat(bin); err != nil {
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/memfloor").CombinedOutput(); err != nil {
			return f, fmt.Errorf("go build ./bench/memfloor: %v: %s", err, out)
		}
	}
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return f, fmt.Errorf("memfloor %v: %w", args, err)
	}
	return f, json.Unmarshal(out, &f)
}

// fillHistory writes a data file in which each of names holds perWF batches of history (and
// rssWorkflows extra ones when asked), restored through the store in-process: generating them
// through HTTP would take minutes. The history is a real batch's, repeated with new ids.
func fillHistory(ctx context.Context, dataFile, cfgDir string, names []string, perWF int) error {
	e, err := rdb.StartEmbedded(dataFile)
	if err != nil {
		return err
	}
	defer e.Close()
	store := rdb.New(e.Client(), rdb.Options{HistoryKeep: 1 << 30})
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(cfgDir, name+".yaml"))
		if err != nil {
			return err
		}
		wf, err := config.Parse(name, data, config.Limits{})
		if err != nil {
			return err
		}
		if _, err := store.Load(ctx, wf, true); err != nil {
			return err
		}
		if _, err := store.Open(ctx, name, batch.OpenRequest{}); err != nil {
			return err
		}
		if _, err := store.End(ctx, name, batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			return err
		}
		d, err := store.Dump(ctx, name)
		if err != nil {
			return err
		}
		tmpl := d.Batches[len(d.Batches)-1]
		d.Batches = d.Batches[:0]
		for i := range perWF {
			id := tmpl.ID - int64(perWF) + int64(i) + 1
			b := batch.Batch{ID: id, Jobs: make(batch.Jobs, len(tmpl.Jobs))}
			for k, j := range tmpl.Jobs {
				f := make(batch.Fields, len(j.Fields))
				for key, v := range j.Fields {
					f[key] = v
				}
				f[batch.FieldBatchID] = json.RawMessage(strconv.FormatInt(id, 10))
				b.Jobs[k] = batch.Job{Name: j.Name, Fields: f}
			}
			d.Batches = append(d.Batches, b)
		}
		if err := store.Restore(ctx, d); err != nil {
			return fmt.Errorf("restoring %s: %w", name, err)
		}
	}
	return nil
}

// embeddedHistory measures open+close at c16 with historyBatches batches of history spread over
// the workers' workflows, and batchy's RSS with rssWorkflows × rssBatches.
func embeddedHistory(ctx context.Context, cfg benchConfig, hc *http.Client, bin, tmp, cfgDir string, workers []string, extra []string, logf func(string, ...any)) (EmbeddedFigures, error) {
	var out EmbeddedFigures
	dir := filepath.Join(tmp, "data-history")
	data := filepath.Join(dir, "batchy.json")
	logf("embedded: filling %d batches of history over %d workflows", historyBatches, len(workers))
	if err := fillHistory(ctx, data, cfgDir, workers, historyBatches/len(workers)); err != nil {
		return out, err
	}
	ep, base, err := startBatchy(ctx, nil, bin, append([]string{"--data-file", data, "--history", strconv.Itoa(2 * historyBatches)}, extra...)...)
	if err != nil {
		return out, err
	}
	// A first round, not kept: the server has just loaded the snapshot (its first garbage
	// collections mark the whole history), which is a start's cost, not the rate with history.
	httpSuite(ctx, cfg, []int{targetConc}, "embedded-history-warmup", hc, base, ep.pid(), nil, nil, logf, opPair)
	rs := httpSuite(ctx, cfg, []int{targetConc}, "embedded-history", hc, base, ep.pid(), nil, nil, logf, opPair)
	ep.stop()
	if r, ok := find(rs, "http-embedded-history/original", opPair, targetConc); ok {
		out.History, out.HistoryOK = r, true
	}

	var rssNames []string
	for i := range rssWorkflows {
		n := "rss-" + strconv.Itoa(i+1)
		rssNames = append(rssNames, n)
		if err := os.WriteFile(filepath.Join(cfgDir, n+".yaml"), []byte(workflowYAML), 0o644); err != nil {
			return out, err
		}
	}
	dir = filepath.Join(tmp, "data-rss")
	data = filepath.Join(dir, "batchy.json")
	logf("embedded: filling %d workflows × %d batches for the RSS", rssWorkflows, rssBatches)
	if err := fillHistory(ctx, data, cfgDir, rssNames, rssBatches); err != nil {
		return out, err
	}
	ep, base, err = startBatchy(ctx, nil, bin, append([]string{"--data-file", data}, extra...)...)
	if err != nil {
		return out, err
	}
	// A view of every workflow and a transition on each: what a day of use touches.
	for _, n := range rssNames {
		if err := do(ctx, hc, http.MethodGet, base+"/open_batch/"+n); err != nil {
			return out, err
		}
		if err := do(ctx, hc, http.MethodGet, base+"/close_batch/"+n); err != nil {
			return out, err
		}
	}
	time.Sleep(time.Second)
	out.RSS, err = rssBytes(ep.pid())
	out.RSSAnon, _ = procStatus(ep.pid(), "RssAnon:")
	out.RSSFile, _ = procStatus(ep.pid(), "RssFile:")
	ep.stop()
	if err != nil {
		return out, err
	}
	files, _ := filepath.Glob(data + "*")
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			out.RSSBytes += st.Size()
		}
	}
	logf("embedded: the memory floor (the store alone, and the compact model)")
	if out.StoreFloor, err = memFloor(ctx, tmp, "--data-file", data); err != nil {
		return out, err
	}
	out.CompactFloor, err = memFloor(ctx, tmp, "--compact", "--workflows", strconv.Itoa(rssWorkflows), "--batches", strconv.Itoa(rssBatches))
	return out, err
}

// embeddedChecks are the embedded store's targets with their figures.
func embeddedChecks(rep *Report) []Check {
	fresh, okF := find(rep.HTTP, "http-embedded/original", opPair, targetConc)
	redis, okR := find(rep.HTTP, "http-redis/original", opPair, targetConc)
	c1 := Check{Target: fmt.Sprintf("embedded open+close ≥ %.1f × Redis's in the same run, at c%d (original routes)", targetEmbeddedRatio, targetConc)}
	c2 := Check{Target: fmt.Sprintf("embedded open+close ≥ %d pairs/s at c%d", targetEmbeddedPairs, targetConc)}
	if okF {
		c2.Measured, c2.Met = true, fresh.OpsPerSec() >= targetEmbeddedPairs
		c2.Figure = fmt.Sprintf("%.0f pairs/s (batchy CPU %.0f µs per request, the store's included)", fresh.OpsPerSec(), fresh.ServerUsec)
		if okR && redis.OpsPerSec() > 0 {
			ratio := fresh.OpsPerSec() / redis.OpsPerSec()
			c1.Measured, c1.Met = true, ratio >= targetEmbeddedRatio
			c1.Figure = fmt.Sprintf("%.2f (%.0f / %.0f pairs/s)", ratio, fresh.OpsPerSec(), redis.OpsPerSec())
		}
	}
	c3 := Check{Target: fmt.Sprintf("embedded open+close with %d batches of history within %.0f %% of the fresh store's rate, at c%d", historyBatches, 100*targetEmbeddedFlat, targetConc)}
	if e := rep.Embedded; e != nil && e.HistoryOK && okF && fresh.OpsPerSec() > 0 {
		ratio := e.History.OpsPerSec() / fresh.OpsPerSec()
		c3.Measured, c3.Met = true, ratio >= 1-targetEmbeddedFlat
		c3.Figure = fmt.Sprintf("%.2f × (%.0f / %.0f pairs/s)", ratio, e.History.OpsPerSec(), fresh.OpsPerSec())
	}
	c4 := Check{Target: fmt.Sprintf("embedded: batchy RSS ≤ %d MB with %d workflows × %d batches", targetEmbeddedRSS>>20, rssWorkflows, rssBatches)}
	if e := rep.Embedded; e != nil && e.RSS > 0 {
		c4.Measured, c4.Met = true, e.RSS <= targetEmbeddedRSS
		c4.Figure = fmt.Sprintf("%s (anonymous %s, the binary's pages %s; data files %s). Floor, batchy out of the path: the store alone %s, the most compact one-field-per-batch layout %s (its own binary's pages %s)",
			mb(e.RSS), mb(e.RSSAnon), mb(e.RSSFile), mb(e.RSSBytes), mb(e.StoreFloor.RSS), mb(e.CompactFloor.RSS), mb(e.CompactFloor.RSSFile))
	}
	return []Check{c1, c2, c3, c4}
}
