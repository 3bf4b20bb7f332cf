package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
)

// WriterSink writes events as JSON lines to an io.Writer: stdout:// names one on os.Stdout.
type WriterSink struct {
	name string

	mu sync.Mutex // one batch's lines go out together, never interleaved with another's
	w  io.Writer
}

var _ Sink = (*WriterSink)(nil)

// NewStdoutSink returns a sink writing to w, named stdout://; nil means os.Stdout.
func NewStdoutSink(w io.Writer) *WriterSink {
	if w == nil {
		w = os.Stdout
	}
	return &WriterSink{name: "stdout://", w: w}
}

// stdoutFactory returns the factory for stdout://, writing to w (nil means os.Stdout).
func stdoutFactory(w io.Writer) Factory {
	return func(u *url.URL) (Sink, error) {
		if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.RawQuery != "" {
			return nil, errors.New("stdout takes no host, path or parameters: write stdout://")
		}
		return NewStdoutSink(w), nil
	}
}

// String names the sink.
func (s *WriterSink) String() string { return s.name }

// Write writes one JSON line per event, the whole batch in one call to the writer.
func (s *WriterSink) Write(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for i := range events {
		appendJSONLine(&buf, &events[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("event.WriterSink %s: %w", s.name, err)
	}
	return nil
}

// Close does nothing: the writer (stdout) belongs to the caller.
func (s *WriterSink) Close() error { return nil }
