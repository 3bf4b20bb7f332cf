package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batchy/batchy/internal/batch"
)

// DefaultNATSSubjectPrefix is the subject prefix of a nats:// sink whose URL has no
// subject_prefix parameter.
const DefaultNATSSubjectPrefix = "batchy.event"

// natsFlushTimeout bounds the wait for the server to confirm a batch.
const natsFlushTimeout = 5 * time.Second

// NATSSink publishes each event as JSON on the subject <prefix>.<workflow>.<job> (job "_" when
// empty). Each message carries a Nats-Msg-Id header "<workflow>/<id>" when the event has a stream
// ID, so a JetStream stream capturing the subjects discards a retried batch's duplicates.
type NATSSink struct {
	u      *url.URL // as given, for String and for removing the password from errors
	prefix string
	nc     *nats.Conn
}

var _ Sink = (*NATSSink)(nil)

// NewNATSSink connects to the server a nats://[user:pass@]host:port URL names; its only parameter
// is subject_prefix (default DefaultNATSSubjectPrefix). An unreachable server is not an error: the
// client keeps reconnecting and writes fail until it is back.
func NewNATSSink(u *url.URL) (*NATSSink, error) {
	if u.Scheme != "nats" {
		return nil, fmt.Errorf("event.NewNATSSink: scheme %q is not nats", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("event.NewNATSSink: want a server such as nats://127.0.0.1:4222")
	}
	q := u.Query()
	prefix := DefaultNATSSubjectPrefix
	if q.Has("subject_prefix") {
		prefix = q.Get("subject_prefix")
		if !validSubjectPrefix(prefix) {
			return nil, fmt.Errorf("event.NewNATSSink: subject_prefix %q is not dot-separated tokens of letters, digits, '_' and '-'", prefix)
		}
	}
	q.Del("subject_prefix")
	if len(q) > 0 {
		// Name the parameters, never their values: one may be a credential (?token=).
		return nil, fmt.Errorf("event.NewNATSSink: unknown parameters %s (known: subject_prefix; a token goes in the URL as nats://TOKEN@host)", strings.Join(slices.Sorted(maps.Keys(q)), ", "))
	}
	server := &url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}
	nc, err := nats.Connect(server.String(),
		nats.Name("batchy"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		// Without a reconnect buffer a publish while disconnected fails at once, so Write reports
		// it and the Feeder retries, instead of the client holding (and later maybe duplicating) it.
		nats.ReconnectBufSize(-1),
	)
	if err != nil {
		return nil, redactErr("event.NewNATSSink", err, u)
	}
	orig := *u
	return &NATSSink{u: &orig, prefix: prefix, nc: nc}, nil
}

// openNATSSink is the factory for nats://.
func openNATSSink(u *url.URL) (Sink, error) { return NewNATSSink(u) }

// String names the sink by its URL, password hidden.
func (s *NATSSink) String() string { return batch.HideURLSecrets(s.u.String()) }

// Subject returns the subject an event is published on.
func (s *NATSSink) Subject(e *Event) string {
	job := e.Job
	if job == "" {
		job = "_"
	}
	return s.prefix + "." + SubjectToken(e.Workflow) + "." + SubjectToken(job)
}

// Write publishes the events, then waits (at most 5 s, or until ctx ends) for the server to
// confirm it has them, so that a lost connection is reported rather than silently dropped.
func (s *NATSSink) Write(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if !s.nc.IsConnected() {
		err := fmt.Errorf("not connected to the server (%s)", s.nc.Status())
		if last := s.nc.LastError(); last != nil {
			err = fmt.Errorf("%w: %w", err, last)
		}
		return redactErr("event.NATSSink", err, s.u)
	}
	var buf bytes.Buffer
	for i := range events {
		e := &events[i]
		buf.Reset()
		appendJSON(&buf, e)
		m := &nats.Msg{Subject: s.Subject(e), Data: bytes.Clone(buf.Bytes())}
		if e.ID != "" {
			m.Header = nats.Header{nats.MsgIdHdr: []string{e.Workflow + "/" + e.ID}}
		}
		err := s.nc.PublishMsg(m)
		if errors.Is(err, nats.ErrMaxPayload) {
			// Retrying cannot help an event larger than the server accepts: send it cut short.
			m.Data = truncatedEvent(e, len(m.Data))
			err = s.nc.PublishMsg(m)
		}
		if err != nil {
			return redactErr("event.NATSSink: publishing to "+m.Subject, err, s.u)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, natsFlushTimeout)
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		return redactErr("event.NATSSink: flushing", err, s.u)
	}
	return nil
}

// Close closes the connection.
func (s *NATSSink) Close() error {
	s.nc.Close()
	return nil
}

// truncatedEvent encodes e with its message cut to 4 KiB and its fields replaced by a note of
// its encoded size.
func truncatedEvent(e *Event, size int) []byte {
	c := *e
	if len(c.Message) > 4096 {
		c.Message = strings.ToValidUTF8(c.Message[:4096], "")
	}
	c.Fields = map[string]any{"batchy_truncated_from_bytes": size}
	var buf bytes.Buffer
	appendJSON(&buf, &c)
	return buf.Bytes()
}

// SubjectToken makes s one subject token: every character outside [A-Za-z0-9_-] becomes '_'
// ('.' separates tokens; '*', '>' and spaces have meanings of their own); "" becomes "_".
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	for _, r := range s {
		if r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// validSubjectPrefix reports whether p is one or more valid tokens separated by dots.
func validSubjectPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || SubjectToken(tok) != tok {
			return false
		}
	}
	return true
}
