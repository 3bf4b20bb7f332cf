package api

import (
	"context"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// sharedReads lets many waits of one workflow share a state read. A change wakes every wait of
// the workflow at once; without sharing, a thousand waits would make a thousand identical reads
// (measured: most of the wake-up latency with 1,000 waits). A caller joins the next read that
// starts after it asked, never one already under way, so it never sees state older than its
// wake-up.
type sharedReads struct {
	store batch.Store
	mu    sync.Mutex
	byWF  map[string]*wfReads
	seq   uint64 // the last read's number
}

type wfReads struct {
	running *stateRead // under way
	next    *stateRead // starts when running ends; callers arriving now join it
}

// stateRead is one read of a workflow's state, shared by the callers that joined it.
type stateRead struct {
	done chan struct{}
	seq  uint64 // unique among reads: answers derived from several reads are keyed by them
	st   *batch.State
	err  error
	// answers holds what waits derived from this read, by question (see Server.answer): the
	// waits woken by one change mostly ask the same question, and get one answer, computed and
	// encoded once. It goes away with the read, when the last wait that joined it returns.
	answers sync.Map
}

func newSharedReads(store batch.Store) *sharedReads {
	return &sharedReads{store: store, byWF: map[string]*wfReads{}}
}

// Read returns a read of the workflow's state that started after the call; its st and err are
// set. The error is the caller's context's only: a failed read is returned with its err.
func (r *sharedReads) Read(ctx context.Context, wf string) (*stateRead, error) {
	r.mu.Lock()
	w := r.byWF[wf]
	if w == nil {
		w = &wfReads{}
		r.byWF[wf] = w
	}
	var mine *stateRead
	if w.running == nil {
		mine = r.newRead()
		w.running = mine
		go r.read(wf, w, mine)
	} else {
		if w.next == nil {
			w.next = r.newRead()
		}
		mine = w.next
	}
	r.mu.Unlock()
	select {
	case <-mine.done:
		return mine, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// State returns the workflow's state as read by a read that started after the call.
func (r *sharedReads) State(ctx context.Context, wf string) (*batch.State, error) {
	rd, err := r.Read(ctx, wf)
	if err != nil {
		return nil, err
	}
	return rd.st, rd.err
}

// newRead returns a read not yet started; r.mu is held.
func (r *sharedReads) newRead() *stateRead {
	r.seq++
	return &stateRead{done: make(chan struct{}), seq: r.seq}
}

// read performs one read, then starts the queued one, if any.
func (r *sharedReads) read(wf string, w *wfReads, rd *stateRead) {
	// Not the caller's context: other callers share this read.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	rd.st, rd.err = r.store.State(ctx, wf)
	cancel()
	close(rd.done)
	r.mu.Lock()
	defer r.mu.Unlock()
	w.running = nil
	if w.next != nil {
		w.running, w.next = w.next, nil
		go r.read(wf, w, w.running)
		return
	}
	delete(r.byWF, wf)
}
