package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestPauseCommand: `batchy pause` stops a scheduled workflow from firing, also across a restart
// of the server; `batchy resume` brings it back.
func TestPauseCommand(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "etl.yaml"), []byte("batchy:\n  schedule: \"@every 1s\"\n  catchup: none\nload:\n  run: {type: exec, command: [\"true\"]}\n"), 0o644)
	args := []string{"--redis-url", "redis://" + srv.Addr, "--cfg-dir", cfg, "--scheduler-lease", "2s"}
	p := startServe(t, nil, args...)
	if code, body := curl(t, p.url+"/load_cfg/etl"); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != want {
			t.Fatalf("batchy %s: exit %d, want %d; stderr %s", strings.Join(args, " "), code, want, errb.String())
		}
		return out.String() + errb.String()
	}
	if out := cli(exitOK, "pause", "etl", "--url", p.url, "--reason", "source down"); !strings.Contains(out, "etl: paused since ") || !strings.Contains(out, "(source down)") {
		t.Fatalf("pause said %q", out)
	}
	cli(exitError, "pause", "nope", "--url", p.url) // unknown workflow: 404
	runsNow := func(url string) int {
		t.Helper()
		_, body := curl(t, url+"/v1/workflows/etl/runs")
		return strings.Count(body, `"trigger":`)
	}
	before := runsNow(p.url)
	time.Sleep(2500 * time.Millisecond)
	if n := runsNow(p.url); n != before {
		t.Fatalf("runs while paused: %d, then %d", before, n)
	}
	p.stop(t)
	p = startServe(t, nil, args...)
	time.Sleep(2500 * time.Millisecond)
	if n := runsNow(p.url); n != before {
		t.Fatalf("runs while paused, after a restart: %d, then %d\nlogs:\n%s", before, n, p.logs)
	}
	if _, body := curl(t, p.url+"/v1/workflows"); !strings.Contains(body, `"paused":true`) {
		t.Errorf("the list does not show the pause: %s", body)
	}
	if out := cli(exitOK, "resume", "etl", "--url", p.url); out != "etl: triggers active\n" {
		t.Fatalf("resume said %q", out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for runsNow(p.url) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no run after the resume; logs:\n%s", p.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
