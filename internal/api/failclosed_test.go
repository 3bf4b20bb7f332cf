package api_test

import (
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// snippetMarker precedes each fail-closed shell snippet of the docs; the sh block after it is run
// here.
var snippetMarker = regexp.MustCompile("(?s)<!-- fail-closed snippet:[^>]*-->\n```sh\n(.*?)```")

// docSnippets returns the fail-closed snippets of README.md and docs/scheduler.md.
func docSnippets(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, doc := range []string{"../../README.md", "../../docs/scheduler.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		m := snippetMarker.FindAllSubmatch(b, -1)
		if len(m) != 1 {
			t.Fatalf("%s: %d fail-closed snippets, want 1", doc, len(m))
		}
		out[filepath.Base(doc)] = string(m[0][1])
	}
	return out
}

// TestFailClosedSnippet runs the documented ETL scripts as they are written, with the server's
// address and the ETL command replaced, against a stopped server, an unknown workflow and a
// working one: the ETL must run only in the last case, with its window.
func TestFailClosedSnippet(t *testing.T) {
	for _, bin := range []string{"sh", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed", bin)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	// A port where nothing listens: a stopped batchy.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := l.Addr().String()
	l.Close()

	client := rdbtest.StartRedis(t).Client(t)
	now := time.Date(2026, 11, 22, 13, 49, 30, 0, time.UTC)
	store := rdb.New(client, rdb.Options{Now: func() time.Time { return now }})
	cfg := t.TempDir()
	wf1, err := os.ReadFile("../../cfg/wf1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cfg, "wf1.yaml"), wf1, 0o644)
	os.WriteFile(filepath.Join(cfg, "sales.yaml"), []byte("extract: {}\n"), 0o644)
	srv := httptest.NewServer(api.New(api.Options{Store: store, CfgDir: cfg, LoopbackOnly: true}).Handler())
	defer srv.Close()
	up := strings.TrimPrefix(srv.URL, "http://")
	e := &env{url: srv.URL}

	// The check bites: the pattern the docs used to show runs the ETL against a stopped server.
	old := `eval "$(curl -sf localhost:5000/open_batch/wf1/env)" || exit 1
run_my_etl --from "$BATCHY_JOB2_FROM_DATE" --to "$BATCHY_JOB2_TO_DATE"
`
	snippets := docSnippets(t)
	snippets["the old pattern"] = old
	for doc, snippet := range snippets {
		t.Run(doc, func(t *testing.T) {
			dir := t.TempDir()
			ran := filepath.Join(dir, "etl-ran")
			// The ETL step records that it ran and the window it got.
			etl := filepath.Join(dir, "etl.sh")
			os.WriteFile(etl, []byte("#!/bin/sh\necho \"$@\" \"$BATCHY_WF\" > "+ran+"\n"), 0o755)
			script := strings.NewReplacer("run_my_etl", etl, "/opt/etl/run.sh", etl).Replace(snippet)
			wf := "wf1"
			if strings.Contains(snippet, "/sales/") {
				wf = "sales"
			}
			runScript := func(addr string) error {
				cmd := exec.Command("sh", "-c", strings.ReplaceAll(script, "localhost:5000", addr))
				cmd.Dir = dir
				return cmd.Run()
			}
			etlRan := func() bool {
				_, err := os.Stat(ran)
				return err == nil
			}

			if doc == "the old pattern" {
				runScript(stopped)
				if !etlRan() {
					t.Fatal("the old pattern did not run the ETL against a stopped server: this test would not see a pattern that fails open")
				}
				return
			}
			if err := runScript(stopped); err == nil || etlRan() {
				t.Fatalf("with batchy stopped: exit %v, ETL ran %v; want a failure and no ETL", err, etlRan())
			}
			// Not loaded yet: an unknown workflow.
			if err := runScript(up); err == nil || etlRan() {
				t.Fatalf("with an unknown workflow: exit %v, ETL ran %v; want a failure and no ETL", err, etlRan())
			}
			wantStatus(t, e.get(t, "/load_cfg/"+wf), 200)
			if err := runScript(up); err != nil || !etlRan() {
				t.Fatalf("with batchy up: exit %v, ETL ran %v; want success and the ETL run", err, etlRan())
			}
			if b, _ := os.ReadFile(ran); !strings.Contains(string(b), wf) {
				t.Errorf("the ETL did not get the batch's variables: %q", b)
			}
			if wf == "wf1" {
				if b, _ := os.ReadFile(ran); !strings.Contains(string(b), "--from 2016-01-01T23:59:00.000000Z --to 2026-11-22T13:49:30.000000Z") {
					t.Errorf("the ETL did not get job2's window: %q", b)
				}
			}
			if r := e.get(t, "/get_status/"+wf); strings.Contains(r.body, `"open"`) || !strings.Contains(r.body, `"success"`) {
				t.Errorf("after the script the batch is not closed: %s", r.body)
			}
		})
	}
}
