package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
)

// maxFileWrite bounds one write call. Appends from several processes to one file do not
// interleave as long as each line goes out in a single write; keeping writes small also keeps
// them atomic on filesystems that only promise it up to a pipe buffer's size.
const maxFileWrite = 64 << 10

// FileSink appends events as JSON lines to a file. Several sinks, in one process or several, may
// share a file: the file is opened in append mode and each line is written whole by one write call.
type FileSink struct {
	path string

	mu     sync.Mutex
	f      *os.File
	closed bool
}

var _ Sink = (*FileSink)(nil)

// Reopener is a sink that reopens its destination, for logrotate.
type Reopener interface {
	Reopen() error
}

var _ Reopener = (*FileSink)(nil)

// NewFileSink opens (creating it and its directory if missing) the file at path, which must be
// absolute.
func NewFileSink(path string) (*FileSink, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("event.NewFileSink: path %q is not absolute", path)
	}
	path = filepath.Clean(path)
	s := &FileSink{path: path}
	f, err := s.open()
	if err != nil {
		return nil, err
	}
	s.f = f
	return s, nil
}

// openFileSink is the factory for file:///path/to/events.jsonl.
func openFileSink(u *url.URL) (Sink, error) {
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
		return nil, errors.New("want an absolute path such as file:///var/log/batchy/events.jsonl")
	}
	if u.RawQuery != "" {
		return nil, errors.New("file sinks take no query parameters")
	}
	return NewFileSink(u.Path)
}

func (s *FileSink) open() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return nil, fmt.Errorf("event.FileSink: %w", err)
	}
	// 0640: events quote log lines and run metadata, which are not for every local user.
	f, err := os.OpenFile(s.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("event.FileSink: %w", err)
	}
	return f, nil
}

// String names the sink by its URL.
func (s *FileSink) String() string { return (&url.URL{Scheme: "file", Path: s.path}).String() }

// Path returns the file's path.
func (s *FileSink) Path() string { return s.path }

// Write appends one JSON line per event, in chunks of whole lines of at most 64 KiB per write
// call (a longer line gets a call of its own).
func (s *FileSink) Write(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	var buf bytes.Buffer
	ends := make([]int, 0, len(events)) // where each line ends in buf
	for i := range events {
		appendJSONLine(&buf, &events[i])
		ends = append(ends, buf.Len())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("event.FileSink: write after Close")
	}
	data := buf.Bytes()
	start := 0
	for i := 0; i < len(ends); {
		// Take as many whole lines as fit; always at least one.
		j := i + 1
		for j < len(ends) && ends[j]-start <= maxFileWrite {
			j++
		}
		if _, err := s.f.Write(data[start:ends[j-1]]); err != nil {
			return fmt.Errorf("event.FileSink: %w", err)
		}
		start = ends[j-1]
		i = j
	}
	return nil
}

// Reopen opens the path again and switches to it, so that after logrotate has renamed the file,
// events go to a new one at the original path. On error the sink keeps the old file.
func (s *FileSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	f, err := s.open()
	if err != nil {
		return err
	}
	old := s.f
	s.f = f
	if err := old.Close(); err != nil {
		return fmt.Errorf("event.FileSink: closing the rotated file: %w", err)
	}
	return nil
}

// Close closes the file; later writes fail.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("event.FileSink: %w", err)
	}
	return nil
}

// ReopenAll calls Reopen on every element of sinks that is a Reopener or wraps one (through an
// Unwrap() Sink method, as Feeder has), and returns the errors joined. It takes any slice so that
// both []Sink and []*Feeder work.
func ReopenAll[S any](sinks []S) error {
	var errs []error
	for _, v := range sinks {
		x := any(v)
		for x != nil {
			if r, ok := x.(Reopener); ok {
				if err := r.Reopen(); err != nil {
					errs = append(errs, fmt.Errorf("%v: %w", x, err))
				}
				break
			}
			w, ok := x.(interface{ Unwrap() Sink })
			if !ok {
				break
			}
			x = w.Unwrap()
		}
	}
	return errors.Join(errs...)
}

// WatchSIGHUP reopens the sinks (see ReopenAll) each time the process receives SIGHUP, until ctx
// ends. It returns at once (calling it with go is harmless) and listens from before it returns,
// so no SIGHUP sent after the call is missed. Errors are logged to log (nil means slog.Default()).
func WatchSIGHUP[S any](ctx context.Context, sinks []S, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if err := ReopenAll(sinks); err != nil {
					log.Error("log sinks not reopened on SIGHUP", "err", err)
				} else {
					log.Info("log sinks reopened on SIGHUP")
				}
			}
		}
	}()
}
