package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// Log ingestion limits.
const (
	maxLogLines   = 10_000
	maxLogMessage = 64 << 10
)

// routesEvents registers log ingestion, the event readers and the change stream (changes.go).
func (s *Server) routesEvents(v1 *gin.RouterGroup) {
	v1.POST("/workflows/:wf/logs", s.handle(s.postLogs))
	v1.GET("/workflows/:wf/events", s.handle(s.listEvents))
	v1.GET("/workflows/:wf/events/stream", s.handle(s.streamEvents))
	v1.GET("/changes", s.handle(s.streamChanges))
}

func (s *Server) stream() (event.Stream, error) {
	if st := s.opts.Events.Stream(); st != nil {
		return st, nil
	}
	return nil, batch.Errorf(batch.EUNAVAILABLE, "events are not recorded on this server")
}

// LogLine is one JSON log line posted to .../logs.
type LogLine struct {
	Level   string         `json:"level"`
	Message string         `json:"message"`
	Job     string         `json:"job"`
	Fields  map[string]any `json:"fields"`
}

// postLogs takes log lines from ETL tools that only have curl: text (a line each) or JSON (one
// object or an array), tied to the workflow's current batch and, with ?job= or a line's job, to a
// job.
func (s *Server) postLogs(c *gin.Context) error {
	wf, err := workflow(c)
	if err != nil {
		return err
	}
	job := c.Query("job")
	if job != "" {
		if err := batch.CheckName("job", job); err != nil {
			return err
		}
	}
	var lines []LogLine
	if strings.HasPrefix(strings.ToLower(c.ContentType()), "application/json") { // media types ignore case
		var raw json.RawMessage
		if err := s.decode(c, &raw); err != nil {
			return err
		}
		if trimmed := strings.TrimSpace(string(raw)); strings.HasPrefix(trimmed, "[") {
			err = strictJSON(raw, &lines)
		} else {
			var one LogLine
			err = strictJSON(raw, &one)
			lines = []LogLine{one}
		}
		if err != nil {
			return batch.Errorf(batch.EINVALID, "request body: %s", jsonError(err))
		}
	} else {
		body := http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes)
		sc := bufio.NewScanner(body)
		// Room for a line of maxLogMessage bytes with its "\r\n": a longer one is refused below.
		sc.Buffer(make([]byte, 64<<10), maxLogMessage+2)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
				lines = append(lines, LogLine{Message: line})
			}
		}
		var tooBig *http.MaxBytesError
		switch err := sc.Err(); {
		case errors.As(err, &tooBig):
			return batch.Errorf(batch.ETOOLARGE, "request body is larger than %d bytes", s.opts.MaxBodyBytes)
		case errors.Is(err, bufio.ErrTooLong):
			return batch.Errorf(batch.EINVALID, "line %d: message must be 1 to %d bytes", len(lines)+1, maxLogMessage)
		case err != nil:
			return batch.Errorf(batch.EINVALID, "reading request body: %v", err)
		}
	}
	if len(lines) == 0 {
		return batch.Errorf(batch.EINVALID, "no log lines in the body")
	}
	if len(lines) > maxLogLines {
		return batch.Errorf(batch.ETOOLARGE, "%d log lines in one request; at most %d", len(lines), maxLogLines)
	}
	st, err := s.opts.Store.State(c.Request.Context(), wf)
	if err != nil {
		return err
	}
	events := make([]event.Event, len(lines))
	for i, l := range lines {
		if l.Level == "" {
			l.Level = "info"
		}
		if !event.ValidLevel(l.Level) {
			return batch.Errorf(batch.EINVALID, "line %d: level %q must be one of %s", i+1, clip(l.Level), strings.Join(event.Levels, ", "))
		}
		if l.Message == "" || len(l.Message) > maxLogMessage {
			return batch.Errorf(batch.EINVALID, "line %d: message must be 1 to %d bytes", i+1, maxLogMessage)
		}
		if l.Job == "" {
			l.Job = job
		}
		e := event.Event{Workflow: wf, Job: l.Job, Type: event.TypeLog, Level: l.Level, Message: l.Message, Fields: l.Fields}
		if l.Job != "" {
			if err := batch.CheckName("job", l.Job); err != nil {
				return batch.Errorf(batch.EINVALID, "line %d: %s", i+1, batch.ErrorMessage(err))
			}
			j, ok := st.Jobs.Get(l.Job)
			if !ok {
				return batch.Errorf(batch.ENOTFOUND, "line %d: job %s is not in workflow %s", i+1, clip(l.Job), wf)
			}
			e.BatchID, _ = j.Fields.Int(batch.FieldBatchID)
		} else {
			e.BatchID = st.Jobs.BatchID()
		}
		events[i] = e
	}
	s.opts.Events.Emit(c.Request.Context(), events...)
	c.JSON(http.StatusAccepted, gin.H{"accepted": len(events)})
	return nil
}

// eventQuery reads the filters of the event routes.
func eventQuery(c *gin.Context) (event.Query, error) {
	q := event.Query{Job: c.Query("job"), RunID: c.Query("run"), Type: c.Query("type"), Level: c.Query("level")}
	if q.Job != "" {
		if err := batch.CheckName("job", q.Job); err != nil {
			return q, err
		}
	}
	if q.Level != "" && !event.ValidLevel(q.Level) {
		return q, batch.Errorf(batch.EINVALID, "level %q must be one of %s", clip(q.Level), strings.Join(event.Levels, ", "))
	}
	var err error
	if q.BatchID, err = intQuery(c, "batch", 0, 1, 1<<62); err != nil {
		return q, err
	}
	limit, err := intQuery(c, "limit", 100, 1, 1000)
	if err != nil {
		return q, err
	}
	q.Limit = int(limit)
	if v := c.Query("since"); v != "" {
		if q.Since, err = dateField("since", v); err != nil {
			return q, err
		}
	}
	if v := c.Query("before"); v != "" {
		if !event.ValidID(v) {
			return q, batch.Errorf(batch.EINVALID, "before %q is not an event id such as 1795355370000-0", clip(v))
		}
		q.Before = v
	}
	return q, nil
}

// eventRequest reads what both event readers need: a loaded workflow, the filters, the stream.
func (s *Server) eventRequest(c *gin.Context) (string, event.Query, event.Stream, error) {
	wf, err := workflow(c)
	if err != nil {
		return "", event.Query{}, nil, err
	}
	q, err := eventQuery(c)
	if err != nil {
		return "", q, nil, err
	}
	stream, err := s.stream()
	if err != nil {
		return "", q, nil, err
	}
	if _, err := s.opts.Store.State(c.Request.Context(), wf); err != nil {
		return "", q, nil, err
	}
	return wf, q, stream, nil
}

func (s *Server) listEvents(c *gin.Context) error {
	wf, q, stream, err := s.eventRequest(c)
	if err != nil {
		return err
	}
	events, err := stream.Read(c.Request.Context(), wf, q)
	if err != nil {
		return err
	}
	body := gin.H{"workflow": wf, "events": events}
	if len(events) == q.Limit {
		body["next_before"] = events[len(events)-1].ID
	}
	c.JSON(http.StatusOK, body)
	return nil
}

// streamEvents is a live tail with Server-Sent Events, resumable with Last-Event-ID.
func (s *Server) streamEvents(c *gin.Context) error {
	wf, q, stream, err := s.eventRequest(c)
	if err != nil {
		return err
	}
	last := c.GetHeader("Last-Event-ID")
	if last == "" {
		last = c.Query("last_event_id")
	}
	if last != "" && !event.ValidID(last) {
		return batch.Errorf(batch.EINVALID, "Last-Event-ID %q is not an event id", clip(last))
	}
	if last == "" {
		// Only new events: start from the newest now, so nothing written later is missed.
		if last, err = stream.LastID(c.Request.Context(), wf); err != nil {
			return batch.Errorf(batch.EUNAVAILABLE, "the store is not available")
		}
	}
	w := startSSE(c, "batchy event stream")
	ctx := c.Request.Context()
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		default:
		}
		tctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-tctx.Done():
			}
		}()
		// A short block: a blocked XREAD does not notice the client leaving, so the loop checks
		// between reads.
		events, err := stream.Tail(tctx, wf, last, 2*time.Second)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(w, ": error reading events; retrying\n\n")
			w.Flush()
			time.Sleep(time.Second)
			continue
		}
		for _, e := range events {
			last = e.ID
			if !q.Match(&e) {
				continue
			}
			data, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.ID, e.Type, data)
		}
		if len(events) == 0 && time.Since(lastWrite) > 15*time.Second {
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		if len(events) > 0 || time.Since(lastWrite) > 15*time.Second {
			w.Flush()
			lastWrite = time.Now()
		}
	}
}

// startSSE answers 200 with the headers of a Server-Sent Events stream (no caching, no proxy
// buffering), writes comment as its first line and flushes, so the client sees the stream open.
func startSSE(c *gin.Context, comment string) gin.ResponseWriter {
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": %s\n\n", comment)
	w.Flush()
	return w
}
