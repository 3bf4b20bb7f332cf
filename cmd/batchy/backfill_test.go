package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestBackfillCommand: `batchy backfill` over 6 hours of an hourly interval workflow creates 6
// runs, which batchy serve runs oldest first, each over exactly its hour.
func TestBackfillCommand(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "hourly.yaml"), []byte("batchy:\n  schedule: \"0 * * * *\"\n  window: schedule\nload:\n  run: {type: exec, command: [\"true\"]}\n"), 0o644)
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr, "--cfg-dir", cfg, "--scheduler-lease", "2s")
	if code, body := curl(t, p.url+"/load_cfg/hourly"); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	base := time.Now().UTC().Truncate(time.Hour)
	from, to := base.Add(-7*time.Hour), base.Add(-time.Hour)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"backfill", "hourly", "--url", p.url, "--from", batch.FormatTime(from), "--to", batch.FormatTime(to)}, &out, &errb)
	if code != exitOK {
		t.Fatalf("backfill: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasSuffix(lines[0], "["+batch.FormatTime(from)+", "+batch.FormatTime(from.Add(time.Hour))+")") {
		t.Fatalf("backfill printed:\n%s", out.String())
	}
	var batches struct {
		Batches []struct {
			BatchID int64                     `json:"batch_id"`
			Jobs    map[string]map[string]any `json:"jobs"`
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := curl(t, p.url+"/v1/workflows/hourly/batches")
		batches.Batches = nil
		json.Unmarshal([]byte(body), &batches)
		_, runs := curl(t, p.url+"/v1/workflows/hourly/runs")
		if len(batches.Batches) == 6 && strings.Count(runs, `"state":"succeeded"`) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backfill did not finish: %d batches\nruns %s\nlogs:\n%s", len(batches.Batches), runs, p.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Newest first: the latest interval has the highest batch id, so they ran oldest first.
	for i, b := range batches.Batches {
		start := to.Add(-time.Duration(i+1) * time.Hour)
		j := b.Jobs["load"]
		if j["from_date"] != batch.FormatTime(start) || j["to_date"] != batch.FormatTime(start.Add(time.Hour)) || j["status"] != "success" {
			t.Errorf("batch %d (%d): %v, want [%s, %s)", i, b.BatchID, j, start, start.Add(time.Hour))
		}
	}
	// Bad input: refused with a message, nothing created.
	for _, args := range [][]string{
		{"backfill", "hourly", "--url", p.url, "--from", "yesterday", "--to", batch.FormatTime(to)},
		{"backfill", "hourly", "--url", p.url, "--to", batch.FormatTime(to)},
	} {
		if code := run(context.Background(), args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code := run(context.Background(), []string{"backfill", "hourly", "--url", p.url, "--from", batch.FormatTime(to), "--to", batch.FormatTime(base.Add(2 * time.Hour))}, &out, &errb); code != exitError {
		t.Errorf("a backfill into the future: exit %d, want %d", code, exitError)
	}
}
