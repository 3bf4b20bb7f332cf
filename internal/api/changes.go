package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
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
// whatever the number of workflows, and a change costs one check per open stream.
func (s *Server) streamChanges(c *gin.Context) error {
	f, err := changeQuery(c)
	if err != nil {
		return err
	}
	current, ok := s.opts.Summaries.(batch.CurrentSummarizer)
	if !ok {
		return batch.Errorf(batch.EUNAVAILABLE, "this store keeps no workflow summaries")
	}
	// Following before answering: a change made once the client holds the answer is reported.
	follow := s.opts.Hub.Follow(f.match)
	defer follow.Stop()
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": batchy change stream\n\n")
	w.Flush()
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
		sums, err := current.CurrentSummaries(ctx, names)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("change stream: reading summaries", "err", err)
			// The client reads what it shows again (and learns the store is down from that).
			fmt.Fprint(w, "event: reset\ndata: {}\n\n")
			w.Flush()
			continue
		}
		i := 0
		for _, wf := range names {
			if i < len(sums) && sums[i].Workflow == wf {
				data, _ := json.Marshal(sums[i])
				fmt.Fprintf(w, "event: change\ndata: %s\n\n", data)
				i++
				continue
			}
			data, _ := json.Marshal(gin.H{"workflow": wf})
			fmt.Fprintf(w, "event: removed\ndata: %s\n\n", data)
		}
		w.Flush()
		keepAlive.Reset(changeKeepAlive)
	}
}
