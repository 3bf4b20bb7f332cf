package event

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStdoutSink(t *testing.T) {
	var buf bytes.Buffer
	s, err := DefaultRegistry(RegistryOptions{Stdout: &buf}).Open("stdout://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.String(), "stdout://"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	t0 := time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				events := []Event{
					{Time: t0, Workflow: "wf", Job: string(rune('a' + g)), Type: TypeLog, Level: "info", Message: "first", Fields: map[string]any{"i": float64(i)}},
					{Time: t0, Workflow: "wf", Job: string(rune('a' + g)), Type: TypeLog, Level: "info", Message: "second", Fields: map[string]any{"i": float64(i)}},
				}
				if err := s.Write(context.Background(), events); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	sc := bufio.NewScanner(&buf)
	var lines []Event
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line is not JSON: %v: %q", err, sc.Text())
		}
		lines = append(lines, e)
	}
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		// A batch's lines stay together.
		if lines[i].Message != "first" || lines[i+1].Message != "second" || lines[i].Job != lines[i+1].Job {
			t.Fatalf("lines %d and %d are not one batch: %+v %+v", i, i+1, lines[i], lines[i+1])
		}
	}
}

func TestStdoutSinkUnencodableFields(t *testing.T) {
	var buf bytes.Buffer
	s := NewStdoutSink(&buf)
	err := s.Write(context.Background(), []Event{{Type: TypeLog, Level: "info", Message: "m", Fields: map[string]any{"ratio": math.NaN()}}})
	if err != nil {
		t.Fatal(err)
	}
	var e Event
	if err := json.Unmarshal(buf.Bytes(), &e); err != nil {
		t.Fatalf("not JSON: %v: %s", err, buf.Bytes())
	}
	if e.Message != "m" || !strings.Contains(e.Fields["batchy_encode_error"].(string), "NaN") {
		t.Errorf("got %+v, want the message kept and the encoding error in the fields", e)
	}
}

func TestDefaultRegistry(t *testing.T) {
	reg := DefaultRegistry(RegistryOptions{})
	if got, want := reg.Schemes(), []string{"file", "nats", "postgres", "postgresql", "stdout"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Schemes() = %q, want %q", got, want)
	}
	// The caller adds redis.
	reg.Register("redis", func(*url.URL) (Sink, error) { return NewStdoutSink(nil), nil })
	for _, raw := range []string{"stdout://host", "stdout:///path", "stdout://?x=1", "kafka://host"} {
		if s, err := reg.Open(raw); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", raw)
		}
	}
}
