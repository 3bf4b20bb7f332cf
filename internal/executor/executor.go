// Package executor runs a job's action for the scheduler: the `run:` map of a job names an executor
// type (exec, http, none) and its settings. A Registry maps types to factories, which validate the
// settings when a workflow is loaded; the executors they build run one Task at a time per call and
// may be called concurrently.
package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// Spec is a job's `run:` map as written in the workflow file.
type Spec struct {
	// Type is the registry key: "exec", "http", "none".
	Type string
	// Settings holds every other key of the run: map, decoded (map[string]any, []any, string,
	// float64, json.Number, int, bool, nil), but retries.
	Settings map[string]any
	// Retries is the job's own retry policy (run: retries:, the shape of the workflow's), which
	// the scheduler uses instead of the workflow's; nil when the job has none.
	Retries *batch.Retries
}

// ParseSpec reads a job's `run:` value: a map[string]any with a "type" key, or its JSON text
// (json.RawMessage or []byte, as batch.Job fields hold it; numbers then keep their exact text).
// Errors are EINVALID.
func ParseSpec(v any) (Spec, error) {
	switch raw := v.(type) {
	case json.RawMessage:
		return parseSpecJSON(raw)
	case []byte:
		return parseSpecJSON(raw)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Spec{}, batch.Errorf(batch.EINVALID, "run must be a map with a type (%s)", knownList(Default().Types()))
	}
	tv, ok := m["type"]
	if !ok || tv == nil {
		return Spec{}, batch.Errorf(batch.EINVALID, "run needs a type (%s)", knownList(Default().Types()))
	}
	typ, ok := tv.(string)
	if !ok || typ == "" {
		return Spec{}, batch.Errorf(batch.EINVALID, "run: type must be a non-empty string (%s)", knownList(Default().Types()))
	}
	settings := make(map[string]any, len(m)-1)
	for k, val := range m {
		if k != "type" && k != "retries" {
			settings[k] = val
		}
	}
	spec := Spec{Type: typ, Settings: settings}
	if rv, ok := m["retries"]; ok && rv != nil {
		r, err := parseRetries(rv)
		if err != nil {
			return Spec{}, err
		}
		spec.Retries = &r
	}
	return spec, nil
}

// parseRetries reads a job's run: retries, strictly: the workflow's shape ({count, backoff,
// max_backoff, jitter}), durations as strings.
func parseRetries(v any) (batch.Retries, error) {
	var r batch.Retries
	if _, ok := v.(map[string]any); !ok {
		return r, batch.Errorf(batch.EINVALID, "run: retries must be a map such as {count: 3, backoff: 1m}")
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return r, batch.Errorf(batch.EINVALID, "run: retries: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			want := "a duration such as \"1m\""
			switch te.Field {
			case "count":
				want = "a whole number"
			case "jitter":
				want = "a number from 0 to 1"
			}
			msg = te.Field + " must be " + want
		case strings.HasPrefix(msg, "json: unknown field "):
			msg = strings.TrimPrefix(msg, "json: unknown field ") + " is not a retries setting (count, backoff, max_backoff, jitter)"
		}
		return r, batch.Errorf(batch.EINVALID, "run: retries: %s", strings.TrimPrefix(msg, "json: "))
	}
	if err := r.Check(); err != nil {
		return r, batch.Errorf(batch.EINVALID, "run: %v", err)
	}
	return r, nil
}

func parseSpecJSON(raw []byte) (Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Spec{}, batch.Errorf(batch.EINVALID, "run must be a map with a type (%s)", knownList(Default().Types()))
	}
	return ParseSpec(v)
}

// Task is one execution of one job of an opened batch.
type Task struct {
	Workflow, Job string
	BatchID       int64
	RunID         string
	Attempt       int
	// Env holds the batch's NAME=value pairs (format.EnvVars): exec adds them to the process
	// environment.
	Env []string
	// Batch is the opened job's fields as a JSON object, sent by http; nil is sent as null.
	Batch json.RawMessage
	// Timeout bounds the task; zero means none. An executor's own timeout setting wins over it.
	Timeout time.Duration
	// Log receives each line of output: stream "stdout" or "stderr" for exec, "http" for the
	// response body. Nil discards output. It is never called concurrently, nor after Run returns.
	Log func(stream, line string)
}

// Result is the outcome of a task.
type Result struct {
	// ExitCode is exec's exit code: -1 when the process did not exit by itself with a code (killed
	// by a signal, timed out, cancelled, or never started); 0 for the other executors.
	ExitCode int
	// HTTPStatus is http's response status; 0 when no response came, and for the other executors.
	HTTPStatus int
	// Err is nil when the job succeeded, otherwise why it failed. errors.Is(Err, ErrTimeout) and
	// errors.Is(Err, ErrCancelled) tell a timeout and a cancellation apart.
	Err error
	// Detached means nothing ran (none): the batch stays open until an external tool closes or
	// fails it.
	Detached bool
	// Await, when positive, means the job was started and reports its own end (http with
	// completion: callback): it closes or fails its batch through the API within Await, which the
	// caller waits for.
	Await time.Duration
}

// Executor runs tasks. Run returns promptly when ctx is cancelled, after stopping the work (exec
// kills every process of the job, http aborts the request), and reports ErrCancelled in Result.Err.
// Implementations are safe for concurrent use.
type Executor interface {
	Run(ctx context.Context, t Task) Result
}

// Factory builds an executor from a Spec's settings, validating them, so that a mistyped setting
// surfaces when the workflow is loaded. Errors should be EINVALID and name the setting.
type Factory func(settings map[string]any) (Executor, error)

// ErrTimeout is matched (errors.Is) by a Result.Err caused by the task's timeout.
var ErrTimeout = errors.New("timed out")

// ErrCancelled is matched (errors.Is) by a Result.Err caused by the cancellation of Run's context.
var ErrCancelled = errors.New("cancelled")

// timeoutError reads "timed out after 5m0s".
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string        { return fmt.Sprintf("timed out after %s", e.after) }
func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }

// cancelError reads "cancelled", or "cancelled: <cause>" when the context was cancelled with a
// cause (context.WithCancelCause), so a reason given by the canceller reaches the run record.
type cancelError struct{ cause error }

func (e *cancelError) Error() string {
	if e.cause == nil || e.cause == context.Canceled {
		return "cancelled"
	}
	return "cancelled: " + e.cause.Error()
}
func (e *cancelError) Is(target error) bool { return target == ErrCancelled }
func (e *cancelError) Unwrap() error        { return e.cause }

func cancelled(ctx context.Context) error { return &cancelError{cause: context.Cause(ctx)} }

// Registry maps executor types to factories. Registering has no side effect besides the entry;
// it is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Default returns a new registry holding exec, http and none.
func Default() *Registry {
	r := NewRegistry()
	r.Register("exec", NewExec)
	r.Register("http", NewHTTP)
	r.Register("none", NewNone)
	return r
}

// Register adds a factory under typ; it panics on an empty type, a nil factory or a duplicate,
// which are programming errors.
func (r *Registry) Register(typ string, f Factory) {
	if typ == "" || f == nil {
		panic("executor: Register needs a type and a factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[typ]; dup {
		panic("executor: type " + typ + " registered twice")
	}
	r.factories[typ] = f
}

// New builds the executor of spec, EINVALID for an unknown type (listing the known ones) or
// invalid settings.
func (r *Registry) New(spec Spec) (Executor, error) {
	r.mu.RLock()
	f, ok := r.factories[spec.Type]
	r.mu.RUnlock()
	if !ok {
		if spec.Type == "" {
			return nil, batch.Errorf(batch.EINVALID, "run needs a type (%s)", knownList(r.Types()))
		}
		return nil, batch.Errorf(batch.EINVALID, "run: unknown executor type %q (%s)", clip(spec.Type), knownList(r.Types()))
	}
	ex, err := f(spec.Settings)
	if err != nil {
		if batch.ErrorCode(err) == batch.EINVALID {
			return nil, err
		}
		return nil, &batch.Error{Code: batch.EINVALID, Message: spec.Type + ": " + err.Error()}
	}
	return ex, nil
}

// Types returns the registered types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func knownList(types []string) string {
	if len(types) == 0 {
		return "no executor types are registered"
	}
	return "known: " + strings.Join(types, ", ")
}

// clip shortens a user value quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
