// Package event is batchy's one event model: every state transition, every run step and every log
// line is an Event, written to the sinks configured with --log-sink. The Redis stream sink is the
// authoritative one the API and the UI read back; the others (files, stdout, PostgreSQL, NATS)
// are fed from it by a Feeder each, from a cursor kept in Redis, so a slow or unreachable sink never
// blocks a transition and gets every event once it is back, even across restarts.
package event

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// Event types.
const (
	TypeLoad    = "load"
	TypeOpen    = "open"
	TypeClose   = "close"
	TypeFail    = "fail"
	TypeAbandon = "abandon"
	TypeRewind  = "rewind"
	// TypePause and TypeResume: a workflow's triggers were paused or resumed.
	TypePause  = "pause"
	TypeResume = "resume"
	TypeLog    = "log"
	TypeAlert  = "alert"

	TypeRunScheduled = "run.scheduled"
	TypeRunStarted   = "run.started"
	TypeRunRetried   = "run.retried"
	TypeRunFinished  = "run.finished"
	TypeRunCancelled = "run.cancelled"
	// TypeRunStopped reports an attempt stopped by a graceful shutdown of its replica (not a
	// failure of the run's jobs): the run is retried or ended as its policy says, without alerts.
	TypeRunStopped = "run.stopped"
)

// runKey is the context key of WithRun.
type runKey struct{}

// WithRun marks ctx as a scheduler run's: the transitions made with it are steps of the run,
// whose own events (run.retried, run.finished) report its outcome. The alerts read it to page for
// a run's final failure rather than for each failed attempt.
func WithRun(ctx context.Context, runID string) context.Context {
	return context.WithValue(ctx, runKey{}, runID)
}

// RunOf returns the run a context was marked with by WithRun.
func RunOf(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(runKey{}).(string)
	return id, ok
}

// Levels, lowest first.
var Levels = []string{"debug", "info", "warn", "error"}

// ValidLevel reports whether s is one of Levels.
func ValidLevel(s string) bool {
	for _, l := range Levels {
		if l == s {
			return true
		}
	}
	return false
}

// Event is one thing that happened to a workflow.
type Event struct {
	// ID orders events within a workflow; the Redis stream sink assigns it ("<ms>-<seq>").
	ID       string         `json:"id,omitempty"`
	Time     time.Time      `json:"time"`
	Workflow string         `json:"workflow"`
	Job      string         `json:"job,omitempty"`
	BatchID  int64          `json:"batch_id,omitempty"`
	RunID    string         `json:"run_id,omitempty"`
	Type     string         `json:"type"`
	Level    string         `json:"level"`
	Message  string         `json:"message"`
	Fields   map[string]any `json:"fields,omitempty"`
}

// Sink receives events. Write gets events in the order they happened; it may be called with
// several at once (a batch) and must be safe to retry with the same events.
type Sink interface {
	Write(ctx context.Context, events []Event) error
	Close() error
	// String names the sink for logs and /healthz, without credentials.
	String() string
}

// Factory opens a sink from its URL.
type Factory func(u *url.URL) (Sink, error)

// Registry maps URL schemes to sink factories. It holds no global state: callers build one and
// register what they want.
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Register adds a factory for a scheme; registering a scheme twice is a programming error.
func (r *Registry) Register(scheme string, f Factory) {
	if _, dup := r.factories[scheme]; dup {
		panic("event: sink scheme " + scheme + " registered twice")
	}
	r.factories[scheme] = f
}

// Schemes returns the registered schemes, sorted.
func (r *Registry) Schemes() []string {
	out := make([]string, 0, len(r.factories))
	for s := range r.factories {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the sink a URL names. Errors never quote the URL's password.
func (r *Registry) Open(raw string) (Sink, error) {
	if batch.URLMisread(raw) {
		return nil, fmt.Errorf("log sink %s could not be read: percent-encode special characters ('#', '/', '?', '@') in its user name and password", Redact(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("log sink %q is not a URL such as file:///var/log/batchy.jsonl", Redact(raw))
	}
	f, ok := r.factories[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("log sink %s: unknown scheme %q (known: %s)", Redact(raw), u.Scheme, strings.Join(r.Schemes(), ", "))
	}
	s, err := f(u)
	if err != nil {
		return nil, fmt.Errorf("log sink %s: %s", Redact(raw), RedactText(err.Error(), raw))
	}
	return s, nil
}

// Redact returns a URL with its credentials hidden: userinfo and query values (see
// batch.HideURLSecrets), for logs, /healthz and errors.
func Redact(raw string) string {
	if _, err := url.Parse(raw); err != nil {
		return "(unparseable URL)"
	}
	return batch.HideURLSecrets(raw)
}

// RedactText removes a URL's password from text that may quote it (a driver's error).
func RedactText(text, raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return text
	}
	if p, ok := u.User.Password(); ok && p != "" {
		text = strings.ReplaceAll(text, p, "xxxxx")
	}
	return text
}
