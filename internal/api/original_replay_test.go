package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// replayStep is one step of testdata/original/replay.golden (its header says the format).
type replayStep struct {
	line        int
	differences []string
	clock       time.Time
	path        string
	headers     [][2]string
	status      int
	ctype       string
	body        []byte
	waitsy      string // "start <args>", "running" or "exit <code>"; the step is a waitsy step
}

// replayGolden is the parsed golden file.
type replayGolden struct {
	differences map[string]bool // declared: the steps may rely on them
	notReplayed map[string]bool // documented differences the replay cannot show
	steps       []replayStep
}

func readReplay(t *testing.T, path string) replayGolden {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := replayGolden{differences: map[string]bool{}, notReplayed: map[string]bool{}}
	r := bufio.NewReader(bytes.NewReader(data))
	line := 0
	var cur *replayStep
	readLine := func() (string, bool) {
		s, err := r.ReadString('\n')
		if err == io.EOF && s == "" {
			return "", false
		}
		line++
		return strings.TrimSuffix(s, "\n"), true
	}
	bad := func(format string, a ...any) { t.Fatalf("%s:%d: %s", path, line, fmt.Sprintf(format, a...)) }
	step := func() *replayStep {
		if cur == nil {
			g.steps = append(g.steps, replayStep{line: line + 1})
			cur = &g.steps[len(g.steps)-1]
		}
		return cur
	}
	for {
		s, ok := readLine()
		if !ok {
			break
		}
		word, rest, _ := strings.Cut(s, " ")
		switch word {
		case "", "#":
		case "difference", "not-replayed":
			id, _, _ := strings.Cut(rest, ":")
			if word == "difference" {
				g.differences[id] = true
			} else {
				g.notReplayed[id] = true
			}
		case "differences":
			step().differences = strings.Fields(rest)
		case "clock":
			c, err := time.Parse(time.RFC3339Nano, rest)
			if err != nil {
				bad("clock: %v", err)
			}
			step().clock = c
		case "GET":
			step().path = rest
		case "header":
			name, value, _ := strings.Cut(rest, ": ")
			step().headers = append(step().headers, [2]string{name, value})
		case "status":
			step().status, _ = strconv.Atoi(rest)
		case "type":
			step().ctype = rest
		case "body":
			n, err := strconv.Atoi(rest)
			if err != nil {
				bad("body: %v", err)
			}
			b := make([]byte, n+1)
			if _, err := io.ReadFull(r, b); err != nil || b[n] != '\n' {
				bad("body of %d bytes not followed by a line break", n)
			}
			line += bytes.Count(b, []byte("\n"))
			step().body = b[:n]
			cur = nil // a request step ends with its body
		case "waitsy":
			st := step()
			st.waitsy = rest
			cur = nil
		default:
			bad("unknown line %q", s)
		}
	}
	if cur != nil {
		t.Fatalf("%s: the last step has no body", path)
	}
	return g
}

// docDifferences returns the ids of the table of differences in docs/coming-from-original.md: the
// first column of each row, in backquotes.
func docDifferences(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/coming-from-original.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## What changed, deliberately")
	if !ok {
		t.Fatal(`docs/coming-from-original.md has no "## What changed, deliberately" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	// Every row of the table has an id, so that no difference escapes the check.
	row := regexp.MustCompile("^\\| `([a-z0-9-]+)` \\|")
	var ids []string
	for _, l := range strings.Split(section, "\n") {
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| id |") {
			continue
		}
		m := row.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("docs/coming-from-original.md: a row of the table of differences has no id (`some-id` in its first column): %.80s", l)
			continue
		}
		ids = append(ids, m[1])
	}
	if len(ids) == 0 {
		t.Fatal("docs/coming-from-original.md: no rows with an id in the table of differences")
	}
	return ids
}

// TestOriginalReplay replays the original Batchy's documented curl and waitsy usage, recorded in
// testdata/original/replay.golden with the clock fixed, against batchy, and compares status,
// Content-Type and body byte for byte; and it checks that the differences the golden file allows
// are the table of docs/coming-from-original.md, no more and no less.
func TestOriginalReplay(t *testing.T) {
	g := readReplay(t, "testdata/original/replay.golden")

	// The documentation's table and the golden file's differences are the same list.
	docIDs := docDifferences(t)
	for _, id := range docIDs {
		if !g.differences[id] && !g.notReplayed[id] {
			t.Errorf("docs/coming-from-original.md lists the difference %s, which replay.golden neither allows nor names as not replayed", id)
		}
	}
	for id := range g.differences {
		if !slices.Contains(docIDs, id) {
			t.Errorf("replay.golden allows the difference %s, which docs/coming-from-original.md does not list", id)
		}
	}
	for id := range g.notReplayed {
		if !slices.Contains(docIDs, id) {
			t.Errorf("replay.golden names %s as not replayed, which docs/coming-from-original.md does not list", id)
		}
	}
	used := map[string]bool{}
	for _, s := range g.steps {
		for _, id := range s.differences {
			if !g.differences[id] {
				t.Errorf("replay.golden:%d: the step relies on %s, which is not a declared difference", s.line, id)
			}
			used[id] = true
		}
	}
	for id := range g.differences {
		if !used[id] {
			t.Errorf("replay.golden declares the difference %s, which no step relies on", id)
		}
	}

	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is needed to build waitsy")
	}
	dir := t.TempDir()
	waitsyBin := filepath.Join(dir, "waitsy")
	if out, err := exec.Command("go", "build", "-o", waitsyBin, "../../cmd/waitsy").CombinedOutput(); err != nil {
		t.Fatalf("building waitsy: %v\n%s", err, out)
	}

	// batchy as a user of the original runs it: on this machine, without tokens (so loopback
	// only), the original's wf1.yaml in its cfg directory.
	var mu sync.Mutex
	now := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	client := rdbtest.StartRedis(t).Client(t)
	store := rdb.New(client, rdb.Options{Now: clock})
	cfg := t.TempDir()
	wf1, err := os.ReadFile("../../cfg/wf1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "wf1.yaml"), wf1, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := notify.NewHub(store, nil)
	go hub.Run(ctx)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.New(api.Options{Store: store, Hub: hub, CfgDir: cfg, LoopbackOnly: true}).Handler()}
	go srv.Serve(l)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	// The original's URL: 0.0.0.0 reaches the loopback listener.
	base := "http://0.0.0.0:" + port

	type waitsyRun struct {
		cmd    *exec.Cmd
		done   chan struct{}
		stderr bytes.Buffer
	}
	var w *waitsyRun
	defer func() {
		if w != nil && w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
			<-w.done
		}
	}()
	for _, s := range g.steps {
		if !s.clock.IsZero() {
			mu.Lock()
			now = s.clock
			mu.Unlock()
		}
		if s.waitsy != "" {
			verb, args, _ := strings.Cut(s.waitsy, " ")
			switch verb {
			case "start":
				mu.Lock()
				today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
				mu.Unlock()
				args = strings.NewReplacer("{url}", base, "{today}", today.Format(time.RFC3339)).Replace(args)
				w = &waitsyRun{done: make(chan struct{})}
				w.cmd = exec.Command(waitsyBin, strings.Fields(args)...)
				w.cmd.Stderr = &w.stderr
				if err := w.cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func(w *waitsyRun) { w.cmd.Wait(); close(w.done) }(w)
			case "running":
				// Time to see the last change, and to exit if it wrongly would.
				select {
				case <-w.done:
					t.Fatalf("replay.golden:%d: waitsy exited (%v), want it still waiting:\n%s", s.line, w.cmd.ProcessState, w.stderr.String())
				case <-time.After(700 * time.Millisecond):
				}
			case "exit":
				want, _ := strconv.Atoi(args)
				select {
				case <-w.done:
				case <-time.After(20 * time.Second):
					t.Fatalf("replay.golden:%d: waitsy did not exit:\n%s", s.line, w.stderr.String())
				}
				if got := w.cmd.ProcessState.ExitCode(); got != want {
					t.Fatalf("replay.golden:%d: waitsy exited %d, want %d:\n%s", s.line, got, want, w.stderr.String())
				}
			default:
				t.Fatalf("replay.golden:%d: unknown waitsy step %q", s.line, s.waitsy)
			}
			continue
		}
		req, err := http.NewRequest("GET", base+s.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range s.headers {
			if strings.EqualFold(h[0], "Host") {
				req.Host = h[1]
			} else {
				req.Header.Set(h[0], h[1])
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("replay.golden:%d: GET %s: %v", s.line, s.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != s.status || res.Header.Get("Content-Type") != s.ctype || !bytes.Equal(body, s.body) {
			t.Errorf("replay.golden:%d: GET %s answered %d %q, want %d %q; body:\n%s", s.line, s.path,
				res.StatusCode, res.Header.Get("Content-Type"), s.status, s.ctype, firstDifference(body, s.body))
		}
	}
	if w == nil {
		t.Error("replay.golden has no waitsy step")
	}
}

// firstDifference shows where got departs from want.
func firstDifference(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	start := max(0, i-80)
	return fmt.Sprintf("the same up to byte %d: %q\ngot  then: %q\nwant then: %q", i, got[start:i], got[i:min(len(got), i+80)], want[i:min(len(want), i+80)])
}
