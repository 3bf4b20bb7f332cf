//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// killJobScript is an exec job that records its start, reports any process of an earlier
// attempt still alive (an overlap), leaves a grandchild in a session of its own (setsid) and
// waits, except on a retry, which succeeds. $D is the test's work directory.
const killJobScript = `echo "$BATCHY_ATTEMPT $$" >> "$D/starts"
for p in $(cat "$D/pids" 2>/dev/null); do
  if kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' /proc/$p/status 2>/dev/null; then echo "attempt $BATCHY_ATTEMPT: $p alive" >> "$D/overlap"; fi
done
setsid sh -c 'echo $$ >> "$D/pids"; exec sleep 300' &
echo $$ >> "$D/pids"
until [ "$(wc -l < "$D/pids")" -ge "$((BATCHY_ATTEMPT * 2))" ]; do sleep 0.05; done
echo "$BATCHY_ATTEMPT" >> "$D/ready"
if [ "$BATCHY_ATTEMPT" -ge 2 ]; then exit 0; fi
sleep 300
`

// TestKill9DuringExecRun: batchy is killed (SIGKILL) while an exec job runs with a grandchild that
// left its process group (setsid): right after the job started, and mid-run. No process of the
// job survives batchy; the restarted batchy fails the run ("replica died") or retries it as
// retries says, and a job never runs twice at once.
func TestKill9DuringExecRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retries int
		wait    time.Duration // after the job is ready, before the kill; -1: kill as soon as it starts
	}{
		{"right after the start, no retries", 0, -1},
		{"mid-run, one retry", 1, 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rdbtest.StartRedis(t)
			cfg, work := t.TempDir(), t.TempDir()
			t.Cleanup(func() { // when the test fails, leave no orphan behind
				data, _ := os.ReadFile(filepath.Join(work, "pids"))
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil && alive(pid) {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			script := filepath.Join(work, "job.sh")
			os.WriteFile(script, []byte(killJobScript), 0o755)
			os.WriteFile(filepath.Join(cfg, "w.yaml"), []byte(fmt.Sprintf(`batchy:
  retries: {count: %d, backoff: 1s}
a:
  run: {type: exec, command: ["/bin/sh", %q], env: {D: %q}}
`, tc.retries, script, work)), 0o644)
			args := []string{"--redis-url", "redis://" + srv.Addr, "--cfg-dir", cfg, "--scheduler-lease", "2s"}
			p := startServe(t, nil, args...)
			if code, body := curl(t, p.url+"/load_cfg/w"); code != 200 {
				t.Fatalf("load: %d %s", code, body)
			}
			res, err := http.Post(p.url+"/v1/workflows/w/runs", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			var run struct{ ID string }
			json.NewDecoder(res.Body).Decode(&run)
			res.Body.Close()
			if res.StatusCode != 202 || run.ID == "" {
				t.Fatalf("POST runs: %d %+v", res.StatusCode, run)
			}

			file := filepath.Join(work, "starts")
			if tc.wait >= 0 {
				file = filepath.Join(work, "ready")
			}
			// A whole line, not the file alone: the shell creates the file before it writes, and a
			// kill between the two would leave a start unrecorded.
			waitFor(t, func() bool { b, err := os.ReadFile(file); return err == nil && strings.Contains(string(b), "\n") }, "the job to start")
			if tc.wait > 0 {
				time.Sleep(tc.wait)
			}
			p.cmd.Process.Kill()
			p.cmd.Wait()

			// Every process of the job goes with batchy: the supervisor saw its control pipe close.
			killed := time.Now()
			waitFor(t, func() bool { return len(jobProcesses(work)) == 0 }, "the job's processes to be gone after batchy's kill -9")
			if took := time.Since(killed); took > 5*time.Second {
				t.Errorf("the job's processes outlived batchy by %s", took)
			}

			p = startServe(t, nil, args...)
			final := "failed"
			if tc.retries > 0 {
				final = "succeeded"
			}
			var got runRecord
			waitFor(t, func() bool {
				got = getRun(t, p.url, run.ID)
				return got.State == "succeeded" || got.State == "failed"
			}, "the run to end "+final)
			if got.State != final || len(got.Attempts) != tc.retries+1 || !strings.Contains(got.Attempts[0].Error, "stopped renewing its lease") {
				t.Errorf("run: %s (%s), %d attempts (first: %q); want %s after %d", got.State, got.Reason, len(got.Attempts), got.Attempts[0].Error, final, tc.retries+1)
			}
			if final == "failed" && !strings.Contains(got.Reason, "replica died") {
				t.Errorf("run reason = %q, want replica died", got.Reason)
			}
			starts, _ := os.ReadFile(filepath.Join(work, "starts"))
			if n := strings.Count(string(starts), "\n"); n != tc.retries+1 {
				t.Errorf("the job started %d times, want %d:\n%s", n, tc.retries+1, starts)
			}
			if overlap, err := os.ReadFile(filepath.Join(work, "overlap")); err == nil {
				t.Errorf("a retry started while the earlier attempt's processes ran:\n%s", overlap)
			}
			if left := jobProcesses(work); len(left) > 0 {
				t.Errorf("processes of the job left after the run ended: %v", left)
			}
			p.stop(t)
		})
	}
}

type runRecord struct {
	State    string
	Reason   string
	Attempts []struct{ Error string }
}

func getRun(t *testing.T, url, id string) runRecord {
	t.Helper()
	code, body := curl(t, url+"/v1/workflows/w/runs/"+id)
	var r runRecord
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET run: %d %s", code, body)
	}
	return r
}

// jobProcesses returns the live processes of the job run from work: those whose pid the job
// wrote, and any whose command line names work (the supervisor and the job's shell).
func jobProcesses(work string) []string {
	var out []string
	data, _ := os.ReadFile(filepath.Join(work, "pids"))
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && alive(pid) {
			out = append(out, f)
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Contains(cmdline, []byte(work)) && alive(pid) {
			out = append(out, fmt.Sprintf("%d (%s)", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// alive reports whether pid runs; a zombie does not (its parent, maybe init, reaps it).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && !bytes.Contains(status, []byte("State:\tZ"))
}
