package event

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readEvents parses a JSON-lines file, failing the test on any line that is not an event.
func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s line %d is not JSON (%v): %.200q", path, n, err, sc.Text())
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeNumbered writes batches of events numbered writer/0.. through s, some with large messages,
// so that some batches exceed one 64 KiB write.
func writeNumbered(s Sink, writer string, batches int) error {
	seq := 0
	for b := range batches {
		n := 1 + b%25
		events := make([]Event, n)
		for i := range events {
			msg := ""
			if b%7 == 0 {
				msg = strings.Repeat("x", 5000) // 25 of these make 125 KiB
			}
			events[i] = Event{Time: time.Now(), Workflow: "wf", Job: writer, Type: TypeLog, Level: "info", Message: msg, Fields: map[string]any{"seq": seq}}
			seq++
		}
		if err := s.Write(context.Background(), events); err != nil {
			return err
		}
	}
	return nil
}

// checkNumbered checks that the file holds each writer's events exactly once, in order.
func checkNumbered(t *testing.T, path string, want map[string]int) {
	t.Helper()
	next := map[string]int{}
	for _, e := range readEvents(t, path) {
		seq := int(e.Fields["seq"].(float64))
		if seq != next[e.Job] {
			t.Fatalf("writer %s: event %d follows %d", e.Job, seq, next[e.Job]-1)
		}
		next[e.Job]++
	}
	for w, n := range want {
		if next[w] != n {
			t.Errorf("writer %s: %d events in the file, want %d", w, next[w], n)
		}
	}
}

// eventsFor returns how many events writeNumbered writes in the given number of batches.
func eventsFor(batches int) int {
	n := 0
	for b := range batches {
		n += 1 + b%25
	}
	return n
}

func TestFileSinkSeveralWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	reg := DefaultRegistry(RegistryOptions{})
	var sinks []Sink
	for range 2 {
		s, err := reg.Open("file://" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sinks = append(sinks, s)
	}
	const batches = 200
	want := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		w := "w" + strconv.Itoa(g)
		want[w] = eventsFor(batches)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writeNumbered(sinks[g%2], w, batches)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkNumbered(t, path, want)
}

// TestFileSinkHelperProcess is not a test: TestFileSinkSeveralProcesses runs it in child processes.
func TestFileSinkHelperProcess(t *testing.T) {
	spec := os.Getenv("BATCHY_TEST_FILE_SINK_WRITER")
	if spec == "" {
		t.Skip("run by TestFileSinkSeveralProcesses")
	}
	path, writer, _ := strings.Cut(spec, "|")
	s, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := writeNumbered(s, writer, 300); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkSeveralProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "events.jsonl") // directories created
	want := map[string]int{}
	var cmds []*exec.Cmd
	for i := range 3 {
		w := "proc" + strconv.Itoa(i)
		want[w] = eventsFor(300)
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileSinkHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "BATCHY_TEST_FILE_SINK_WRITER="+path+"|"+w)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s output:\n%s", w, out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	// And this process writes too.
	s, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want["parent"] = eventsFor(300)
	if err := writeNumbered(s, "parent", 300); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	checkNumbered(t, path, want)
}

func TestFileSinkReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	s, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(msg string) {
		t.Helper()
		if err := s.Write(context.Background(), []Event{{Time: time.Now(), Workflow: "wf", Type: TypeLog, Level: "info", Message: msg}}); err != nil {
			t.Fatal(err)
		}
	}
	messages := func(p string) []string {
		t.Helper()
		var out []string
		for _, e := range readEvents(t, p) {
			out = append(out, e.Message)
		}
		return out
	}

	t.Run("Reopen", func(t *testing.T) {
		write("before")
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		write("after rename") // still the renamed file, as with logrotate before its postrotate
		if err := s.Reopen(); err != nil {
			t.Fatal(err)
		}
		write("after reopen")
		if got, want := fmt.Sprint(messages(path+".1")), "[before after rename]"; got != want {
			t.Errorf("rotated file = %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(messages(path)), "[after reopen]"; got != want {
			t.Errorf("new file = %s, want %s", got, want)
		}
	})

	t.Run("SIGHUP", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Through a Feeder, which ReopenAll looks through.
		a := NewFeeder(s, standby{}, FeederOptions{Holder: "r1", Log: quietLog})
		defer a.Close(ctx) // closes s too; the next subtest expects that
		WatchSIGHUP(ctx, []*Feeder{a}, slog.New(slog.DiscardHandler))
		if err := os.Rename(path, path+".2"); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(path); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("SIGHUP did not reopen the file")
			}
			time.Sleep(10 * time.Millisecond)
		}
		write("after SIGHUP")
		if got, want := fmt.Sprint(messages(path)), "[after SIGHUP]"; got != want {
			t.Errorf("new file = %s, want %s", got, want)
		}
	})

	t.Run("write after Close fails", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(context.Background(), []Event{{Type: TypeLog}}); err == nil {
			t.Error("Write after Close succeeded")
		}
		if err := s.Reopen(); err != nil {
			t.Errorf("Reopen after Close: %v", err)
		}
	})
}

func TestFileSinkLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := strings.Repeat("y", 200<<10)
	events := []Event{{Type: TypeLog, Message: "short"}, {Type: TypeLog, Message: long}, {Type: TypeLog, Message: "short"}}
	if err := s.Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, path)
	if len(got) != 3 || got[1].Message != long {
		t.Errorf("read %d events; the long one intact: %v", len(got), len(got) == 3 && got[1].Message == long)
	}
}

func TestFileSinkURLs(t *testing.T) {
	reg := DefaultRegistry(RegistryOptions{})
	dir := t.TempDir()
	t.Run("String", func(t *testing.T) {
		s, err := reg.Open("file://" + dir + "/a/events.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got, want := s.String(), "file://"+dir+"/a/events.jsonl"; got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	})
	for _, raw := range []string{"file://events.jsonl", "file:events.jsonl", "file://" + dir + "/e.jsonl?mode=x", "file://"} {
		t.Run(raw, func(t *testing.T) {
			s, err := reg.Open(raw)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", raw)
			}
		})
	}
}

func TestFileSinkCarriesEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := NewFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	want := []Event{
		{ID: "1-0", Time: t0, Workflow: "wf", Job: "j", BatchID: 3, RunID: "r", Type: TypeFail, Level: "error", Message: "a <b> & c", Fields: map[string]any{"rows": 1.5}},
	}
	if err := s.Write(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, path)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read %+v, want %+v", got, want)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), "a <b> & c") {
		t.Errorf("HTML characters escaped: %s", raw)
	}
}
