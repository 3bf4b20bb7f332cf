package ui

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// funcs are the template functions.
var funcs = template.FuncMap{
	"time":       fmtTime,
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":        fmtDuration,
	"rel":        relTime,
	"short":      shortTime,
	"icon":       statusIcon,
	"wfPage":     func(wf string) string { return "/ui/workflows/" + url.PathEscape(wf) },
	"api":        apiPath,
	"runPage":    func(wf, id string) string { return runURL(wf, id, "") },
	"json":       toJSON,
	"join":       strings.Join,
	"ftoa":       func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"add":        func(a, b int) int { return a + b },
	"types":      func() string { return strings.Join(eventTypes, " ") },
	"upstream":   upstreamWorkflow,
	"finished":   runFinished,
	"cls":        cssClass,
	"wfActions":  workflowActions,
	"jobActions": jobActions,
	"cancel":     cancelAction,
	"loadAction": func(wf string) actButton { return workflowActions(unloaded(wf), false)[0] },
	"deref":      deref,
	"setdur":     func(d batch.Duration) string { return time.Duration(d).String() },
	// sentinel: a window that starts at the original's "everything" date reads as such.
	"sentinel": func(t time.Time) bool { return t.Equal(batch.DefaultInitialFromDate) },
}

// deref reads the optional (pointer) fields of runs.
func deref(v any) any {
	switch p := v.(type) {
	case *time.Time:
		if p != nil {
			return *p
		}
		return time.Time{}
	case *int:
		if p != nil {
			return *p
		}
		return 0
	}
	return v
}

// cssClass turns a status or filter into a class name suffix: "not loaded" → "not-loaded".
func cssClass(s string) string {
	if s == "" {
		return "all"
	}
	return strings.NewReplacer(" ", "-", "_", "-", ".", "-").Replace(s)
}

// eventTypes are the SSE event names the live tail listens to.
var eventTypes = []string{
	event.TypeLoad, event.TypeOpen, event.TypeClose, event.TypeFail, event.TypeAbandon, event.TypeRewind, event.TypePause, event.TypeResume,
	event.TypeLog, event.TypeAlert, event.TypeRunScheduled, event.TypeRunStarted, event.TypeRunRetried,
	event.TypeRunFinished, event.TypeRunCancelled, event.TypeRunStopped,
}

// fmtTime shows a time in UTC to the second; the zero time is empty.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtDuration rounds a duration for people: 450ms, 12s, 3m20s, 1h02m, 3d4h.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// statusIcon is the symbol shown beside a status's text: the status is never colour alone.
func statusIcon(status string) string {
	switch status {
	case statusSuccess, "succeeded":
		return "✔"
	case statusFailed:
		return "✖"
	case statusOpen, "running":
		return "▶"
	case statusNew, "queued":
		return "○"
	case statusAbandoned, "cancelled", "skipped":
		return "⊘"
	case "waiting_retry":
		return "↻"
	case statusUnloaded:
		return "…"
	}
	return "•"
}

// apiPath builds a v1 API path from escaped segments: api "wf1" "jobs" "job2" "close".
func apiPath(parts ...string) string {
	var b strings.Builder
	b.WriteString("/v1/workflows")
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// upstreamWorkflow is the workflow of an after: target ("wf" or "wf:job").
func upstreamWorkflow(target string) string {
	wf, _, _ := strings.Cut(target, ":")
	return wf
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// relTime shows a time compactly (shortTime), marked for the page's script to show it relative
// to now ("3m ago", "in 5m") and keep it so: the server's answer does not change with the clock,
// so a refresh of an unchanged page answers 304. The absolute time in UTC is on hover.
func relTime(now, t time.Time) template.HTML {
	if t.IsZero() {
		return `<span class="muted">–</span>`
	}
	return template.HTML(strings.Replace(string(shortTime(now, t)), "<time ", "<time data-rel ", 1))
}

// shortTime shows a time compactly, to the minute ("12-04 13:41"; the year when it is not now's),
// with the full time on hover.
func shortTime(now, t time.Time) template.HTML {
	if t.IsZero() {
		return `<span class="muted">–</span>`
	}
	layout := "01-02 15:04"
	if t.UTC().Year() != now.UTC().Year() {
		layout = "2006-01-02 15:04"
	}
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`, t.UTC().Format(time.RFC3339), fmtTime(t), t.UTC().Format(layout)))
}
