package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
)

// Change stream limits.
const (
	// maxChangeNames bounds the names= list of GET /v1/changes (a dashboard page shows 50).
	maxChangeNames = 500
	// changeKeepAlive is how often an idle change stream sends a comment, so that proxies and
	// browsers keep the connection.
	changeKeepAlive = 15 * time.Second
)

// changeFilter selects the workflows a change stream reports: all of its conditions hold.
type changeFilter struct {
	prefix       string
	names        map[string]bool // nil: any name
	after, until string          // "" for no bound
}

func (f changeFilter) match(wf string) bool {
	return (f.names == nil || f.names[wf]) && strings.HasPrefix(wf, f.prefix) &&
		(f.after == "" || wf > f.after) && (f.until == "" || wf <= f.until)
}

// changeQuery reads the filters of GET /v1/changes.
func changeQuery(c *gin.Context) (changeFilter, error) {
	f := changeFilter{prefix: c.Query("prefix"), after: c.Query("after"), until: c.Query("until")}
	for _, p := range []struct{ name, v string }{{"prefix", f.prefix}, {"after", f.after}, {"until", f.until}} {
		if p.v != "" && !batch.ValidName(p.v) {
			return f, batch.Errorf(batch.EINVALID, "%s %q is invalid: use 1 to 128 of A-Z a-z 0-9 _ . -", p.name, clip(p.v))
		}
	}
	if v := c.Query("names"); v != "" {
		list := strings.Split(v, ",")
		if len(list) > maxChangeNames {
			return f, batch.Errorf(batch.ETOOLARGE, "names lists %d workflows; at most %d", len(list), maxChangeNames)
		}
		f.names = make(map[string]bool, len(list))
		for _, n := range list {
			if err := batch.CheckName("workflow", n); err != nil {
				return f, err
			}
			f.names[n] = true
		}
	}
	return f, nil
}

// streamChanges reports every change of the workflows the query selects with Server-Sent
// Events: a "change" event whose data is the workflow's summary (as GET /v1/workflows lists it),
// "removed" when it is no longer loaded, and "reset" when changes may have been missed (the
// server's subscription to them was lost), after which a client reads what it shows again; so
// does a client that reconnects. A workflow changed several times within ChangeInterval is
// reported once, as it is at the end. The stream rides the process's one subscription to the
// change notifications (notify.Hub): a stream costs nothing while its workflows do not change,
// whatever the number of workflows, and a change costs one check per open stream and one read
// of the workflow (its state and its kept summary), encoded once, shared by the streams it
// concerns.
func (s *Server) streamChanges(c *gin.Context) error {
	f, err := changeQuery(c)
	if err != nil {
		return err
	}
	kept, ok := s.opts.Summaries.(batch.IndexedSummary)
	if !ok {
		return batch.Errorf(batch.EUNAVAILABLE, "this store keeps no workflow summaries")
	}
	// Following before answering: a change made once the client holds the answer is reported.
	follow := s.opts.Hub.Follow(f.match)
	defer follow.Stop()
	w := startSSE(c, "batchy change stream")
	ctx := c.Request.Context()
	keepAlive := time.NewTicker(changeKeepAlive)
	defer keepAlive.Stop()
	var sent time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
			continue
		case <-follow.C:
		}
		// Coalescing: at most one report per ChangeInterval; the changes meanwhile gather in
		// the follower, each workflow once.
		if wait := s.opts.ChangeInterval - time.Since(sent); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-s.closing:
				return nil
			case <-time.After(wait):
			}
		}
		names, missed := follow.Take()
		sent = time.Now()
		if missed {
			fmt.Fprint(w, "event: reset\ndata: {}\n\n")
		}
		for _, wf := range names {
			frame, err := s.changeFrame(ctx, kept, wf)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("change stream: reading a workflow", "workflow", wf, "err", err)
				// The client reads what it shows again (and learns the store is down from that).
				frame = []byte("event: reset\ndata: {}\n\n")
			}
			w.Write(frame)
		}
		w.Flush()
		keepAlive.Reset(changeKeepAlive)
	}
}

// changeAnswer is a "change" or "removed" frame derived from one shared read of a workflow's
// state (sharedReads): the streams woken by one change share the read, the index's read and the
// encoding.
type changeAnswer struct {
	once  sync.Once
	frame []byte
	err   error
}

// changeKey keys the change frame among a read's answers.
type changeKey struct{}

// changeFrame returns the frame that reports the workflow as it is now: a state read that started
// after the call (so after the notification), summarised, with the last success and failure the
// index kept.
func (s *Server) changeFrame(ctx context.Context, kept batch.IndexedSummary, wf string) ([]byte, error) {
	rd, err := s.reads.Read(ctx, wf)
	if err != nil {
		return nil, err
	}
	v, _ := rd.answers.LoadOrStore(changeKey{}, &changeAnswer{})
	a := v.(*changeAnswer)
	a.once.Do(func() {
		if batch.ErrorCode(rd.err) == batch.ENOTFOUND {
			data, _ := json.Marshal(gin.H{"workflow": wf})
			a.frame = fmt.Appendf(nil, "event: removed\ndata: %s\n\n", data)
			return
		}
		if rd.err != nil {
			a.err = rd.err
			return
		}
		// Not the caller's context: other streams share the answer.
		kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		prev, err := kept.SummaryOf(kctx, wf)
		if err != nil {
			a.err = err
			return
		}
		sum := batch.Summarize(rd.st)
		sum.KeepOutcomes(prev)
		data, err := json.Marshal(sum)
		if err != nil {
			a.err = err
			return
		}
		a.frame = fmt.Appendf(nil, "event: change\ndata: %s\n\n", data)
	})
	return a.frame, a.err
}
