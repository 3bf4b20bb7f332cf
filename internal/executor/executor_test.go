//go:build unix

package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// generous bounds the duration of anything that should take well under a second, so that only a
// hang fails a test, never a slow machine.
const generous = 10 * time.Second

// output collects the lines a task logs.
type output struct {
	mu    sync.Mutex
	lines map[string][]string
}

func (o *output) log(stream, line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines == nil {
		o.lines = map[string][]string{}
	}
	o.lines[stream] = append(o.lines[stream], line)
}

func (o *output) get(stream string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lines[stream]...)
}

func newExecutor(tb testing.TB, r *Registry, typ string, settings map[string]any) Executor {
	tb.Helper()
	ex, err := r.New(Spec{Type: typ, Settings: settings})
	if err != nil {
		tb.Fatalf("New(%s, %v): %v", typ, settings, err)
	}
	return ex
}

func run(tb testing.TB, ex Executor, ctx context.Context, task Task) (Result, *output, time.Duration) {
	tb.Helper()
	out := &output{}
	if task.Log == nil {
		task.Log = out.log
	}
	start := time.Now()
	res := ex.Run(ctx, task)
	return res, out, time.Since(start)
}

func equal[T any](tb testing.TB, what string, got, want T) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

// pidGone reports whether a process no longer runs. A zombie counts as gone: orphans are
// reparented to PID 1, and some container inits never reap them.
func pidGone(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || syscall.Kill(pid, 0) == syscall.ESRCH
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// readPIDs reads the process ids a script wrote to file, one a line.
func readPIDs(tb testing.TB, file string, want int) []int {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			tb.Fatalf("pid file %q: %v", data, err)
		}
		pids = append(pids, pid)
	}
	if len(pids) != want {
		tb.Fatalf("pid file holds %d pids (%q), want %d", len(pids), data, want)
	}
	return pids
}

func assertGone(tb testing.TB, pids []int) {
	tb.Helper()
	for _, pid := range pids {
		if !pidGone(pid) {
			tb.Errorf("process %d still runs after Run returned", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// groupScript starts two background sleeps besides the shell itself, writes the three pids to
// $PIDS, says ready and waits.
const groupScript = `echo $$ > "$PIDS"; sleep 100 & echo $! >> "$PIDS"; sleep 100 & echo $! >> "$PIDS"; echo ready; wait`

func TestExecArgumentsAreNotInterpreted(t *testing.T) {
	args := []string{"a b", `"double" 'single'`, "$HOME", "*", `back\slash`, "$(echo no)", ""}
	cmd := []any{"printf", `%s\n`}
	for _, a := range args {
		cmd = append(cmd, a)
	}
	cmd = append(cmd, float64(42), json.Number("12345678901234567890"), true)
	ex := newExecutor(t, Default(), "exec", map[string]any{"command": cmd})
	res, out, _ := run(t, ex, context.Background(), Task{})
	equal(t, "result", res, Result{})
	equal(t, "stdout", out.get("stdout"), append(args, "42", "12345678901234567890", "true"))
	equal(t, "stderr", out.get("stderr"), []string(nil))
}

func TestExecShell(t *testing.T) {
	ex := newExecutor(t, Default(), "exec", map[string]any{
		"command": `for w in one "two three"; do echo "$w"; done | tr a-z A-Z`,
		"shell":   true,
	})
	res, out, _ := run(t, ex, context.Background(), Task{})
	equal(t, "result", res, Result{})
	equal(t, "stdout", out.get("stdout"), []string{"ONE", "TWO THREE"})
}

func TestExecEnvironment(t *testing.T) {
	ex := newExecutor(t, Default(), "exec", map[string]any{
		"command": []any{"env"},
		"env": map[string]any{
			"EXTRA":         float64(42),
			"FLAG":          true,
			"EMPTY":         nil,
			"SPACED":        "x y",
			"OVERRIDE":      "from settings",
			"BATCHY_RUN_ID": "settings lose to the task's run id",
		},
	})
	res, out, _ := run(t, ex, context.Background(), Task{
		Env:     []string{"BATCHY_WF=wf1", "BATCHY_JOB2_FROM_DATE=2026-01-01T00:00:00Z", "OVERRIDE=from the batch"},
		RunID:   "run-7",
		Attempt: 2,
	})
	equal(t, "result", res, Result{})
	got := map[string]string{}
	for _, l := range out.get("stdout") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"BATCHY_WF":             "wf1",
		"BATCHY_JOB2_FROM_DATE": "2026-01-01T00:00:00Z",
		"EXTRA":                 "42",
		"FLAG":                  "true",
		"EMPTY":                 "",
		"SPACED":                "x y",
		"OVERRIDE":              "from settings",
		"BATCHY_RUN_ID":         "run-7",
		"BATCHY_ATTEMPT":        "2",
		"PATH":                  os.Getenv("PATH"), // batchy's own environment is inherited
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("child's %s = %q (set: %v), want %q", k, v, ok, want)
		}
	}
}

func TestExecDir(t *testing.T) {
	dir := t.TempDir()
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	ex := newExecutor(t, Default(), "exec", map[string]any{"command": []any{"pwd"}, "dir": dir})
	res, out, _ := run(t, ex, context.Background(), Task{})
	equal(t, "result", res, Result{})
	equal(t, "stdout", out.get("stdout"), []string{want})
}

func TestExecStreams(t *testing.T) {
	ex := newExecutor(t, Default(), "exec", map[string]any{
		"command": `i=1; while [ $i -le 200 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; printf 'no newline'`,
		"shell":   true,
	})
	// An unsynchronized Log: the race detector fails the test if Run calls it concurrently.
	var calls []string
	byStream := map[string][]string{}
	res := ex.Run(context.Background(), Task{Log: func(stream, line string) {
		calls = append(calls, stream)
		byStream[stream] = append(byStream[stream], line)
	}})
	equal(t, "result", res, Result{})
	var wantOut, wantErr []string
	for i := 1; i <= 200; i++ {
		wantOut = append(wantOut, "out"+strconv.Itoa(i))
		wantErr = append(wantErr, "err"+strconv.Itoa(i))
	}
	equal(t, "stdout", byStream["stdout"], append(wantOut, "no newline"))
	equal(t, "stderr", byStream["stderr"], wantErr)
	equal(t, "calls", len(calls), 401)
}

func TestExecLongLineIsSplitNotLost(t *testing.T) {
	const n = 2*maxLine + 12345
	ex := newExecutor(t, Default(), "exec", map[string]any{
		"command": fmt.Sprintf(`head -c %d /dev/zero | tr '\0' a; echo; echo after`, n),
		"shell":   true,
	})
	res, out, _ := run(t, ex, context.Background(), Task{})
	equal(t, "result", res, Result{})
	lines := out.get("stdout")
	var lens []int
	for _, l := range lines {
		lens = append(lens, len(l))
	}
	equal(t, "line lengths", lens, []int{maxLine, maxLine, 12345, 5})
	equal(t, "last line", lines[len(lines)-1], "after")
}

func TestSplitLinesKeepsRunesWhole(t *testing.T) {
	data := append(bytes.Repeat([]byte("a"), maxLine-1), "é and more"...) // é straddles the cut
	adv, tok, err := splitLines(data, false)
	equal(t, "advance", adv, maxLine-1)
	equal(t, "token", len(tok), maxLine-1)
	equal(t, "err", err, nil)
}

func TestExecExitCode(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		code         int
		err          string
	}{
		{"exit 3", "echo failing >&2; exit 3", 3, "exit status 3"},
		{"killed by a signal", "kill -9 $$", -1, "signal: killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := newExecutor(t, Default(), "exec", map[string]any{"command": tc.script, "shell": true})
			res, _, _ := run(t, ex, context.Background(), Task{})
			equal(t, "exit code", res.ExitCode, tc.code)
			if res.Err == nil || res.Err.Error() != tc.err {
				t.Errorf("Err = %v, want %s", res.Err, tc.err)
			}
		})
	}
	t.Run("cannot start", func(t *testing.T) {
		for _, s := range []map[string]any{
			{"command": []any{"/nonexistent/program"}},
			{"command": []any{"true"}, "dir": "/nonexistent/dir"},
		} {
			res, _, _ := run(t, newExecutor(t, Default(), "exec", s), context.Background(), Task{})
			if res.ExitCode != -1 || res.Err == nil || !strings.HasPrefix(res.Err.Error(), "start: ") {
				t.Errorf("%v: got %+v, want exit code -1 and a start error", s, res)
			}
		}
	})
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setting  any           // the timeout setting, nil for none
		task     time.Duration // Task.Timeout
		script   string
		registry *Registry
		want     string
	}{
		{"setting", "1s", 0, groupScript, Default(), "timed out after 1s"},
		{"task timeout", nil, 1500 * time.Millisecond, groupScript, Default(), "timed out after 1.5s"},
		{"setting wins over task", "1s", time.Hour, groupScript, Default(), "timed out after 1s"},
		{"SIGTERM ignored: SIGKILL after the grace", "1s", 0, `trap '' TERM; ` + groupScript, graceRegistry(300 * time.Millisecond), "timed out after 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := filepath.Join(t.TempDir(), "pids")
			s := map[string]any{"command": tc.script, "shell": true, "env": map[string]any{"PIDS": pids}}
			if tc.setting != nil {
				s["timeout"] = tc.setting
			}
			res, out, took := run(t, newExecutor(t, tc.registry, "exec", s), context.Background(), Task{Timeout: tc.task})
			equal(t, "stdout", out.get("stdout"), []string{"ready"})
			equal(t, "exit code", res.ExitCode, -1)
			if res.Err == nil || res.Err.Error() != tc.want || !errors.Is(res.Err, ErrTimeout) {
				t.Errorf("Err = %v, want %s (ErrTimeout)", res.Err, tc.want)
			}
			if took > generous {
				t.Errorf("Run took %v", took)
			}
			assertGone(t, readPIDs(t, pids, 3))
		})
	}
}

func graceRegistry(grace time.Duration) *Registry {
	r := NewRegistry()
	r.Register("exec", ExecFactory(ExecOptions{KillGrace: grace, OutputGrace: 200 * time.Millisecond}))
	return r
}

func TestExecCancelKillsPromptly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  string
	}{
		{"plain", nil, "cancelled"},
		{"with a cause", errors.New("run cancelled by alice"), "cancelled: run cancelled by alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := filepath.Join(t.TempDir(), "pids")
			ex := newExecutor(t, Default(), "exec", map[string]any{"command": groupScript, "shell": true, "env": map[string]any{"PIDS": pids}})
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			start := time.Now()
			res := ex.Run(ctx, Task{Log: func(stream, line string) {
				if line == "ready" {
					cancel(tc.cause)
				}
			}})
			if took := time.Since(start); took > generous {
				t.Errorf("Run took %v after cancel", took)
			}
			equal(t, "exit code", res.ExitCode, -1)
			if res.Err == nil || res.Err.Error() != tc.want || !errors.Is(res.Err, ErrCancelled) {
				t.Errorf("Err = %v, want %s (ErrCancelled)", res.Err, tc.want)
			}
			assertGone(t, readPIDs(t, pids, 3))
		})
	}
	t.Run("cancelled before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		marker := filepath.Join(t.TempDir(), "ran")
		ex := newExecutor(t, Default(), "exec", map[string]any{"command": []any{"touch", marker}})
		res, _, _ := run(t, ex, ctx, Task{})
		if !errors.Is(res.Err, ErrCancelled) {
			t.Errorf("Err = %v, want cancelled", res.Err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the command ran")
		}
	})
}

func TestExecLeftoversAreKilledAtExit(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	ex := newExecutor(t, Default(), "exec", map[string]any{
		"command": `sleep 100 & echo $! > "$PIDS"; echo done`,
		"shell":   true,
		"env":     map[string]any{"PIDS": pids},
	})
	res, out, took := run(t, ex, context.Background(), Task{})
	equal(t, "result", res, Result{})
	equal(t, "stdout", out.get("stdout"), []string{"done"})
	if took > generous {
		t.Errorf("Run took %v", took)
	}
	assertGone(t, readPIDs(t, pids, 1))
}

// needSetsid fails the test under CI, where nothing may skip, when setsid(1) is missing.
func needSetsid(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("setsid"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs setsid:", err)
		}
		t.Skip("needs setsid:", err)
	}
}

// escapeScript starts a process that leaves the job's process group and session (setsid) and
// keeps stdout open, a double fork (the shell in between exits at once), writes both pids to
// $PIDS and says ready.
const escapeScript = `setsid sh -c 'echo $$ >> "$PIDS"; exec sleep 100' & sh -c 'sleep 100 & echo $! >> "$PIDS"'; until [ "$(wc -l < "$PIDS")" -ge 2 ]; do sleep 0.05; done; echo ready`

func TestExecKillsProcessesThatLeftTheGroup(t *testing.T) {
	needSetsid(t)
	for _, tc := range []struct {
		name   string
		script string
		cancel bool
		want   Result
	}{
		{"leader exits", escapeScript, false, Result{}},
		{"cancelled", escapeScript + "; sleep 100", true, Result{ExitCode: -1, Err: &cancelError{cause: context.Canceled}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := filepath.Join(t.TempDir(), "pids")
			ex := newExecutor(t, graceRegistry(time.Second), "exec", map[string]any{"command": tc.script, "shell": true, "env": map[string]any{"PIDS": pids}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			res := ex.Run(ctx, Task{Log: func(stream, line string) {
				if line == "ready" && tc.cancel {
					cancel()
				}
			}})
			escaped := readPIDs(t, pids, 2)
			equal(t, "result", res, tc.want)
			if took := time.Since(start); took > generous {
				t.Errorf("Run took %v", took)
			}
			assertGone(t, escaped)
		})
	}
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		settings map[string]any
		want     string // in the message
	}{
		{"exec", nil, "exec: setting command is required"},
		{"exec", map[string]any{"command": nil}, "setting command is required"},
		{"exec", map[string]any{"command": "echo hi"}, "write a list [program, arg...], or add shell: true"},
		{"exec", map[string]any{"command": "echo hi", "shell": false}, "add shell: true"},
		{"exec", map[string]any{"command": []any{}}, "empty list"},
		{"exec", map[string]any{"command": []any{""}}, "empty program name"},
		{"exec", map[string]any{"command": []any{"echo", map[string]any{}}}, "item 2 must be a string, not a map"},
		{"exec", map[string]any{"command": []any{"echo"}, "shell": true}, "must be a string when shell is true"},
		{"exec", map[string]any{"command": 3.0}, "must be a list [program, arg...] or a string with shell: true"},
		{"exec", map[string]any{"command": "echo", "shell": "yes"}, "setting shell must be true or false"},
		{"exec", map[string]any{"command": []any{"true"}, "comand": "x"}, `exec: unknown setting "comand" (known: command, dir, env, shell, timeout)`},
		{"exec", map[string]any{"command": []any{"true"}, "b": 1, "a": 1}, `unknown settings "a", "b"`},
		{"exec", map[string]any{"command": []any{"true"}, "timeout": "5 minutes"}, `setting timeout "5 minutes" is not a duration`},
		{"exec", map[string]any{"command": []any{"true"}, "timeout": 30.0}, "setting timeout must be a duration"},
		{"exec", map[string]any{"command": []any{"true"}, "timeout": "-1s"}, "must be positive"},
		{"exec", map[string]any{"command": []any{"true"}, "env": []any{"A=1"}}, "setting env must be a map"},
		{"exec", map[string]any{"command": []any{"true"}, "env": map[string]any{"A=B": "x"}}, "not a valid variable name"},
		{"exec", map[string]any{"command": []any{"true"}, "env": map[string]any{"A": []any{}}}, `setting env "A" must be a string, number or boolean`},
		{"exec", map[string]any{"command": []any{"true"}, "dir": 3.0}, "setting dir must be a string"},
		{"http", nil, "http: setting url is required"},
		{"http", map[string]any{"url": "ftp://example.com/x"}, "must start with http:// or https://"},
		{"http", map[string]any{"url": "http:///path"}, "has no host"},
		{"http", map[string]any{"url": "http://user:s3cret@[::1"}, "setting url is not a valid URL"},
		{"http", map[string]any{"url": "http://x", "method": "GE T"}, "not an HTTP method"},
		{"http", map[string]any{"url": "http://x", "headers": map[string]any{"Bad Name": "x"}}, "not a valid header name"},
		{"http", map[string]any{"url": "http://x", "headers": map[string]any{"X": "a\nb"}}, "line break"},
		{"http", map[string]any{"url": "http://x", "timout": "1s"}, `http: unknown setting "timout" (known: body, completion, completion_timeout, headers, method, timeout, url)`},
		{"http", map[string]any{"url": "http://x", "completion": "later"}, `"later" must be response, callback or a poll map`},
		{"http", map[string]any{"url": "http://x", "completion": 3}, "must be response, callback or a poll map, not a number"},
		{"http", map[string]any{"url": "http://x", "completion_timeout": "1h"}, "completion_timeout needs completion"},
		{"http", map[string]any{"url": "http://x", "completion": "callback", "completion_timeout": "soon"}, "completion_timeout"},
		{"http", map[string]any{"url": "http://x", "completion": map[string]any{"result": "state", "success": "ok", "failure": "ko"}}, "poll is required"},
		{"http", map[string]any{"url": "http://x", "completion": map[string]any{"poll": "ftp://x", "result": "state", "success": "ok", "failure": "ko"}}, "poll must start with http"},
		{"http", map[string]any{"url": "http://x", "completion": map[string]any{"poll": "http://x/{batch_id}", "success": "ok", "failure": "ko"}}, "result is required"},
		{"http", map[string]any{"url": "http://x", "completion": map[string]any{"poll": "http://x", "result": "state", "failure": "ko"}}, "success is required"},
		{"http", map[string]any{"url": "http://x", "completion": map[string]any{"poll": "http://x", "result": "state", "success": "ok", "failure": "ko", "interval": "1ms"}}, "at least 100ms"},
		{"http", map[string]any{"url": "http://x", "completion": map[string]any{"poll": "http://x", "result": "state", "success": "ok", "failure": "ko", "every": "1s"}}, `unknown setting "every"`},
		{"http", map[string]any{"url": "http://x", "timeout": "soon"}, "setting timeout"},
		{"none", map[string]any{"url": "http://x"}, `none: unknown setting "url" (it takes no settings)`},
		{"cron", nil, `unknown executor type "cron" (known: exec, http, none)`},
		{"", nil, "run needs a type (known: exec, http, none)"},
	} {
		t.Run(tc.typ+" "+tc.want, func(t *testing.T) {
			_, err := Default().New(Spec{Type: tc.typ, Settings: tc.settings})
			if batch.ErrorCode(err) != batch.EINVALID || !strings.Contains(batch.ErrorMessage(err), tc.want) {
				t.Errorf("got %v, want an %s error containing %q", err, batch.EINVALID, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	for _, spec := range []Spec{
		{Type: "exec", Settings: map[string]any{"command": []any{"true"}, "dir": "/", "env": map[string]any{"A": "1"}, "timeout": "1h"}},
		{Type: "exec", Settings: map[string]any{"command": "true", "shell": true}},
		{Type: "http", Settings: map[string]any{"url": "https://x/y", "method": "put", "headers": map[string]any{"X-Token": "t"}, "timeout": "30s"}},
		{Type: "none"},
	} {
		if _, err := Default().New(spec); err != nil {
			t.Errorf("New(%+v): %v", spec, err)
		}
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want Spec
	}{
		{"map", map[string]any{"type": "exec", "command": []any{"true"}}, Spec{Type: "exec", Settings: map[string]any{"command": []any{"true"}}}},
		{"json", json.RawMessage(`{"type":"none"}`), Spec{Type: "none", Settings: map[string]any{}}},
		{"json numbers keep their text", []byte(`{"type":"exec","env":{"N":12345678901234567890}}`),
			Spec{Type: "exec", Settings: map[string]any{"env": map[string]any{"N": json.Number("12345678901234567890")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSpec(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "spec", got, tc.want)
		})
	}
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"not a map", "exec", "run must be a map with a type"},
		{"no type", map[string]any{"command": "x"}, "run needs a type (known: exec, http, none)"},
		{"null type", map[string]any{"type": nil}, "run needs a type"},
		{"type not a string", map[string]any{"type": 3.0}, "type must be a non-empty string"},
		{"bad json", json.RawMessage(`{"type":`), "run must be a map with a type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec(tc.in)
			if batch.ErrorCode(err) != batch.EINVALID || !strings.Contains(batch.ErrorMessage(err), tc.want) {
				t.Errorf("got %v, want an %s error containing %q", err, batch.EINVALID, tc.want)
			}
		})
	}
	t.Run("end to end", func(t *testing.T) {
		spec, err := ParseSpec(json.RawMessage(`{"type":"exec","command":["echo","hi"],"timeout":"1m"}`))
		if err != nil {
			t.Fatal(err)
		}
		res, out, _ := run(t, newExecutor(t, Default(), spec.Type, spec.Settings), context.Background(), Task{})
		equal(t, "result", res, Result{})
		equal(t, "stdout", out.get("stdout"), []string{"hi"})
	})
}

func TestRegistry(t *testing.T) {
	equal(t, "empty", NewRegistry().Types(), []string{})
	equal(t, "default", Default().Types(), []string{"exec", "http", "none"})

	r := NewRegistry()
	r.Register("plain", func(map[string]any) (Executor, error) { return nil, errors.New("bad setting x") })
	_, err := r.New(Spec{Type: "plain"})
	if batch.ErrorCode(err) != batch.EINVALID || batch.ErrorMessage(err) != "plain: bad setting x" {
		t.Errorf("a factory's plain error: got %v, want EINVALID plain: bad setting x", err)
	}
	_, err = r.New(Spec{Type: "exec"})
	if !strings.Contains(batch.ErrorMessage(err), "(known: plain)") {
		t.Errorf("unknown type in a custom registry: %v", err)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("registering a type twice did not panic")
			}
		}()
		r.Register("plain", NewNone)
	}()
	// Registries share nothing.
	if got := Default().Types(); len(got) != 3 {
		t.Errorf("Default after registering elsewhere: %v", got)
	}
}

func TestNone(t *testing.T) {
	res, _, _ := run(t, newExecutor(t, Default(), "none", nil), context.Background(), Task{})
	equal(t, "result", res, Result{Detached: true})
}

// server is an httptest server whose handler blocks until the test ends or the client goes.
func server(tb testing.TB, h http.HandlerFunc) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

func TestHTTPSuccess(t *testing.T) {
	type request struct {
		method, path, contentType, token string
		body                             map[string]any
	}
	got := make(chan request, 1)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			t.Errorf("server: decoding the body: %v", err)
		}
		got <- request{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("X-Token"), body}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted\r\nqueued #12\n")
	})
	ex := newExecutor(t, Default(), "http", map[string]any{
		"url":     srv.URL + "/hook?x=1",
		"headers": map[string]any{"X-Token": "t0ken"},
	})
	res, out, _ := run(t, ex, context.Background(), Task{
		Workflow: "wf1", Job: "job2", BatchID: 1795355370, RunID: "run-7", Attempt: 2,
		Batch: json.RawMessage(`{"from_date":"2026-01-01T00:00:00Z","param1":"hello"}`),
	})
	equal(t, "result", res, Result{HTTPStatus: http.StatusAccepted})
	equal(t, "logged", out.get("http"), []string{"accepted", "queued #12"})
	equal(t, "request", <-got, request{
		method: "POST", path: "/hook?x=1", contentType: "application/json", token: "t0ken",
		body: map[string]any{
			"workflow": "wf1", "job": "job2", "batch_id": json.Number("1795355370"), "run_id": "run-7",
			"attempt": json.Number("2"),
			"batch":   map[string]any{"from_date": "2026-01-01T00:00:00Z", "param1": "hello"},
		},
	})

	t.Run("method and null batch", func(t *testing.T) {
		ex := newExecutor(t, Default(), "http", map[string]any{"url": srv.URL, "method": "put"})
		res, _, _ := run(t, ex, context.Background(), Task{})
		equal(t, "result", res, Result{HTTPStatus: http.StatusAccepted})
		r := <-got
		equal(t, "method", r.method, "PUT")
		equal(t, "batch", r.body["batch"], nil)
	})
}

func TestHTTPFailureStatus(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom\ndetails")
	})
	res, out, _ := run(t, newExecutor(t, Default(), "http", map[string]any{"url": srv.URL}), context.Background(), Task{})
	equal(t, "status", res.HTTPStatus, 500)
	if res.Err == nil || res.Err.Error() != "HTTP 500" {
		t.Errorf("Err = %v, want HTTP 500", res.Err)
	}
	equal(t, "logged", out.get("http"), []string{"boom", "details"})

	// A redirect is not followed: the POST would become a GET that triggers nothing.
	res, _, _ = run(t, newExecutor(t, Default(), "http", map[string]any{"url": srv.URL + "/moved"}), context.Background(), Task{})
	if res.HTTPStatus != 302 || res.Err == nil || res.Err.Error() != "HTTP 302" {
		t.Errorf("redirect: got %+v, want HTTP 302", res)
	}
}

func TestHTTPLogIsCut(t *testing.T) {
	line := strings.Repeat("x", 1023) + "\n"
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat(line, 100))
	})
	res, out, _ := run(t, newExecutor(t, Default(), "http", map[string]any{"url": srv.URL}), context.Background(), Task{})
	equal(t, "result", res, Result{HTTPStatus: 200})
	lines := out.get("http")
	equal(t, "lines", len(lines), 65)
	equal(t, "last", lines[len(lines)-1], "[response body cut after 64 KiB]")
}

func TestHTTPTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for handlers

	for _, tc := range []struct {
		name    string
		setting any
		task    time.Duration
		want    string
	}{
		{"setting", "300ms", 0, "timed out after 300ms"},
		{"task timeout", nil, 300 * time.Millisecond, "timed out after 300ms"},
		{"setting wins over task", "300ms", time.Hour, "timed out after 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := map[string]any{"url": srv.URL}
			if tc.setting != nil {
				s["timeout"] = tc.setting
			}
			res, _, took := run(t, newExecutor(t, Default(), "http", s), context.Background(), Task{Timeout: tc.task})
			if res.Err == nil || res.Err.Error() != tc.want || !errors.Is(res.Err, ErrTimeout) {
				t.Errorf("Err = %v, want %s (ErrTimeout)", res.Err, tc.want)
			}
			equal(t, "status", res.HTTPStatus, 0)
			if took > generous {
				t.Errorf("Run took %v", took)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		for len(started) > 0 {
			<-started // drop the earlier requests' signals
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() {
			<-started
			cancel(errors.New("run cancelled by alice"))
		}()
		res, _, took := run(t, newExecutor(t, Default(), "http", map[string]any{"url": srv.URL}), ctx, Task{})
		if res.Err == nil || res.Err.Error() != "cancelled: run cancelled by alice" || !errors.Is(res.Err, ErrCancelled) {
			t.Errorf("Err = %v, want cancelled: run cancelled by alice", res.Err)
		}
		if took > generous {
			t.Errorf("Run took %v", took)
		}
	})
}

func TestHTTPCredentialsAreRedacted(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ex := newExecutor(t, Default(), "http", map[string]any{"url": "http://admin:s3cret@" + addr + "/hook?token=t0psecret"})
	res, out, _ := run(t, ex, context.Background(), Task{})
	if res.Err == nil {
		t.Fatal("no error from an unreachable URL")
	}
	msg := res.Err.Error()
	for _, secret := range []string{"s3cret", "t0psecret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows %s", msg, secret)
		}
		if s := fmt.Sprint(ex); strings.Contains(s, secret) {
			t.Errorf("String() %q shows %s", s, secret)
		}
	}
	want := "POST http://admin:xxxxx@" + addr + "/hook?token=xxxxx: "
	if !strings.HasPrefix(msg, want) {
		t.Errorf("error %q, want it to start with %q", msg, want)
	}
	equal(t, "logged", out.get("http"), []string(nil))
}
