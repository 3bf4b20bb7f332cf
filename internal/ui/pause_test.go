package ui_test

import (
	"strings"
	"testing"
)

// TestPauseButton: a scheduled workflow's page offers Pause; once paused, Resume instead.
func TestPauseButton(t *testing.T) {
	e := newEmbedded(t, envOptions{})
	e.load(t, "nightly", "batchy:\n  schedule: \"0 2 * * *\"\na: {}\n")
	body := e.page(t, "/ui/workflows/nightly")
	if !strings.Contains(body, `id="act-nightly-pause"`) || strings.Contains(body, `id="act-nightly-resume"`) {
		t.Fatalf("a scheduled workflow's page lacks Pause (or shows Resume)")
	}
	if r := e.post(t, "/v1/workflows/nightly/pause", `{"reason":"paused in the web UI"}`); r.status != 200 {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	body = e.page(t, "/ui/workflows/nightly")
	if !strings.Contains(body, `id="act-nightly-resume"`) || strings.Contains(body, `id="act-nightly-pause"`) {
		t.Fatalf("a paused workflow's page lacks Resume (or shows Pause)")
	}
}
