package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// TestWorkflowListAppendJSON: the list written from the summaries' stored JSON is, byte for byte,
// the list encoded whole, for summaries empty and full, configured or not, with and without the
// optional fields after them.
func TestWorkflowListAppendJSON(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	sums := []batch.Summary{
		{Workflow: "a", Status: batch.StatusNew, Jobs: 2, LoadedAt: at},
		{Workflow: "b", Status: batch.StatusFailed, Jobs: 3, LastBatchID: 7, From: &at, To: &at, LastStart: &at, Failed: []string{"x", "y"},
			Reason: `{"error":"disk <full>"}`, Schedule: "0 3 * * *", After: []string{"a"}, MaxOpen: batch.Duration(time.Hour), LoadedAt: at, Paused: true, PausedAt: &at},
	}
	for _, c := range []struct {
		name string
		list WorkflowList
	}{
		{"a page", WorkflowList{Next: "b", Counts: map[batch.Status]int{batch.StatusNew: 1, batch.StatusFailed: 1}, Total: 2}},
		{"the first page, unloaded files", WorkflowList{Counts: map[batch.Status]int{}, Total: 2, Unloaded: []string{"c"}}},
		{"an empty page", WorkflowList{Counts: map[batch.Status]int{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := c.list
			var raw []json.RawMessage
			if c.name != "an empty page" {
				for i, s := range sums {
					l.Workflows = append(l.Workflows, WorkflowSummary{Summary: s, Loaded: true, Configured: i == 0})
					js, err := json.Marshal(s)
					if err != nil {
						t.Fatal(err)
					}
					raw = append(raw, js)
				}
			} else {
				l.Workflows = []WorkflowSummary{}
			}
			want, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.appendJSON(nil, raw)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("appendJSON:\n%s\nwant, as encoded whole:\n%s", got, want)
			}
		})
	}
	// A stored summary the index rewrote (lua/index.lua puts a kept last_success first) is still
	// one object with our fields after its own.
	l := WorkflowList{Workflows: []WorkflowSummary{{Summary: batch.Summary{Workflow: "a"}}}, Counts: map[batch.Status]int{}}
	got, err := l.appendJSON(nil, []json.RawMessage{json.RawMessage(`{"last_success":"2026-12-04T10:00:00Z","workflow":"a","nested":{"k":{}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Workflows []map[string]any `json:"workflows"`
	}
	if err := json.Unmarshal(got, &back); err != nil || len(back.Workflows) != 1 || back.Workflows[0]["loaded"] != true ||
		back.Workflows[0]["configured"] != false || back.Workflows[0]["last_success"] == nil || back.Workflows[0]["nested"] == nil {
		t.Errorf("appendJSON of a rewritten summary: %s (%v)", got, err)
	}
}
